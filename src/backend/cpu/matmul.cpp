// matmul dispatch: picks the kernel for the weight's dtype and layout, the row count and the ISA,
// and splits the output columns between the pool's threads.
#include <algorithm>
#include <tuple>
#include <vector>

#include "backend/cpu/fgemm.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/vec_ops.h"

namespace elm::cpu {

namespace {

struct ActScratch {
  std::vector<int8_t> q;
  std::vector<float> d;
  std::vector<int32_t> sum;
};

Int8Rows quantize_acts(const float* x, int64_t R, int64_t K, const QKernels& qk, ThreadPool& pool, ActScratch& s) {
  const int64_t nb = K / kActBlock;
  s.q.resize(size_t(R * K));
  s.d.resize(size_t(R * nb));
  s.sum.resize(size_t(R * nb));
  auto rows = [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      qk.quantize_row(x + r * K, K, s.q.data() + r * K, s.d.data() + r * nb, s.sum.data() + r * nb);
  };
  if (R * K >= (int64_t(1) << 16)) pool.parallel_for(R, rows);
  else rows(0, R);
  return Int8Rows{R, K, s.q.data(), s.d.data(), s.sum.data()};
}

// Chunks of panels claimed one at a time. Decode: about two per thread (whole 4-panel tiles, at most
// 64 panels), so each thread streams through consecutive tiles and prefetches across them, yet a
// thread slowed by a noisy neighbour hands its second chunk over. Rounded up, not down: 60 panels
// on two threads make chunks of 16, 16, 16 and 12 (32 : 28 panels a thread), not five of 12
// (36 : 24). Prefill: small chunks.
int64_t panel_chunk(int64_t R, int64_t panels, const ThreadPool& pool) {
  if (R != 1) return 2;
  const int64_t target = 2 * int64_t(pool.size());
  return std::clamp<int64_t>(((panels + target - 1) / target + 3) / 4 * 4, 4, 64);
}

void matmul_quantized(const float* x, int64_t R, const MatmulWeight& w, const QKernels& qk, const float* bias, float* y,
                      ThreadPool& pool) {
  const TensorView& t = *w.plain;
  const int64_t N = t.rows(), K = t.cols();
  thread_local ActScratch scratch;
  const Int8Rows a = quantize_acts(x, R, K, qk, pool, scratch);
  const int64_t chunk = panel_chunk(R, w.packed.panels(), pool);

  if (w.packed.data) {
    pool.parallel_for_dynamic(w.packed.panels(), [&](int64_t p0, int64_t p1) {
      qk.gemm_packed(w.packed, a, p0, p1, bias, y, N);
    }, chunk);
    return;
  }
  const QMatrix qm = qmatrix(t);
  if (qk.gemv_plain && R <= kGemvMaxRows && (qm.group == 32 || qm.group == 64 || qm.group == 128)) {
    // Decode: the weights are read once, in place.
    thread_local std::vector<uint8_t> prep;
    prep.resize(qk.gemv_prep_bytes(qm.type, R, K, qm.group));
    qk.gemv_prep(qm.type, a, qm.group, prep.data());
    // A plain pointer for the workers: naming the thread_local inside the lambda would give each
    // worker its own (empty) buffer. Chunks of about N / (2 threads) rows: each thread streams
    // long runs of consecutive rows, which the kernels prefetch ahead in.
    const uint8_t* prepared = prep.data();
    pool.parallel_for_dynamic(N, [&](int64_t n0, int64_t n1) {
      qk.gemv_plain(qm, a, prepared, n0, n1, bias, y, N);
    }, std::max<int64_t>(64, N / (2 * int64_t(pool.size())) / 16 * 16));
    return;
  }
  // Prefill: each thread packs the panels it claims into a small buffer (in L1/L2) and runs the
  // tiled kernel on it; packing (a 16x16 transpose) is paid once per panel for all R rows.
  const int64_t panels = (N + kPanelRows - 1) / kPanelRows;
  const size_t pb = packed_panel_bytes(qm.type, K, qm.group, qm.f32_scales);
  pool.parallel_for_dynamic(panels, [&](int64_t p0, int64_t p1) {
    thread_local std::vector<uint8_t> buf;
    buf.resize(size_t(p1 - p0) * pb);
    qk.pack(qm, p0, p1, buf.data());
    PackedQ sub;
    sub.type = qm.type;
    sub.n = std::min(N - p0 * kPanelRows, (p1 - p0) * kPanelRows);
    sub.k = K;
    sub.group = qm.group;
    sub.f32_scales = qm.f32_scales;
    sub.data = buf.data();
    qk.gemm_packed(sub, a, 0, p1 - p0, bias ? bias + p0 * kPanelRows : nullptr, y + p0 * kPanelRows, N);
  }, chunk);
}

}  // namespace

void matmul_group(const float* x, int64_t R, const std::vector<MatmulJob>& jobs, ThreadPool& pool, Isa isa,
                  DType act) {
  const QKernels* qk = qkernels(isa);
  const bool packed = qk && !jobs.empty() && std::all_of(jobs.begin(), jobs.end(), [&](const MatmulJob& j) {
    return j.w->packed.data && j.w->packed.k == jobs[0].w->packed.k;
  });
  if (!packed) {
    for (const MatmulJob& j : jobs) matmul(x, R, *j.w, j.bias, j.y, pool, isa, act);
    return;
  }
  const int64_t K = jobs[0].w->packed.k;
  thread_local ActScratch scratch;
  const Int8Rows a = quantize_acts(x, R, K, *qk, pool, scratch);
  struct Chunk {
    const MatmulJob* job;
    int64_t p0, p1;
  };
  std::vector<Chunk> chunks;
  for (const MatmulJob& j : jobs) {
    const int64_t panels = j.w->packed.panels(), step = panel_chunk(R, panels, pool);
    for (int64_t p = 0; p < panels; p += step) chunks.push_back({&j, p, std::min(panels, p + step)});
  }
  pool.parallel_for_dynamic(int64_t(chunks.size()), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const Chunk& ch = chunks[size_t(c)];
      qk->gemm_packed(ch.job->w->packed, a, ch.p0, ch.p1, ch.job->bias, ch.job->y, ch.job->w->packed.n);
    }
  }, 1);
}

bool matmul_glu(const float* x, int64_t R, const MatmulJob& gate, const MatmulJob& up, Unary act, DType round,
                float* y, ThreadPool& pool, Isa isa) {
  const QKernels* qk = qkernels(isa);
  const PackedQ &wg = gate.w->packed, &wu = up.w->packed;
  if (!qk || !wg.data || !wu.data || wg.n != wu.n || wg.k != wu.k) return false;
  if (act != Unary::Silu && act != Unary::Gelu && act != Unary::GeluTanh) return false;
  const int64_t N = wg.n, K = wg.k, panels = wg.panels();
  thread_local ActScratch scratch;
  const Int8Rows a = quantize_acts(x, R, K, *qk, pool, scratch);
  const VecOps& ops = vec_ops();
  // One chunk: panels p0..p1 of both products into [R, cols] scratch, then the gated rows into y.
  auto chunk = [&](int64_t p0, int64_t p1) {
    const int64_t c0 = p0 * kPanelRows, cols = std::min(N - c0, (p1 - p0) * kPanelRows);
    thread_local std::vector<float> g, u;
    g.resize(size_t(R * cols));
    u.resize(size_t(R * cols));
    for (auto [w, bias, out] : {std::tuple{&wg, gate.bias, g.data()}, std::tuple{&wu, up.bias, u.data()}}) {
      PackedQ sub = *w;
      sub.n = cols;
      sub.data = w->data + size_t(p0) * packed_panel_bytes(w->type, K, w->group, w->f32_scales);
      qk->gemm_packed(sub, a, 0, p1 - p0, bias ? bias + c0 : nullptr, out, cols);
      if (round != DType::F32) round_activations(round, out, R * cols);
    }
    if (act == Unary::Silu) ops.silu(g.data(), g.data(), R * cols);
    else unary(act, g.data(), R * cols, g.data());
    if (round != DType::F32) round_activations(round, g.data(), R * cols);
    for (int64_t r = 0; r < R; ++r) {
      float* yr = y + r * N + c0;
      ops.mul(g.data() + r * cols, u.data() + r * cols, yr, cols);
      if (round != DType::F32) round_activations(round, yr, cols);
    }
  };
  pool.parallel_for_dynamic(panels, chunk, panel_chunk(R, panels, pool));
  return true;
}

void matmul(const float* x, int64_t R, const MatmulWeight& w, const float* bias, float* y, ThreadPool& pool, Isa isa,
            DType act) {
  const TensorView& t = *w.plain;
  if (is_quantized(t.dtype)) {
    if (const QKernels* qk = qkernels(isa)) return matmul_quantized(x, R, w, *qk, bias, y, pool);
  } else if (const FKernels* fk = fkernels(isa); fk && fgemm_supports(*fk, t.dtype)) {
    return matmul_float(x, R, t, *fk, bias, y, pool, act);
  }
  matmul_ref(x, R, t, bias, y, pool);
}

}  // namespace elm::cpu
