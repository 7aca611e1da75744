// Every fast CPU matmul kernel against the plain reference kernel (matmul_ref), on random shapes, for
// every kernel family (ISA) this build and CPU can run.
//
// Integer kernels quantize the activations to int8 (qgemm.h). The reference gets the same rounding
// by running on the dequantized int8 activations, so the two must agree to float summation error;
// the bound is relative to sum_k |x_k w_k|, not to the result, so cancellation cannot hide a bug.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <random>

#include "backend/cpu/fgemm.h"
#include "backend/cpu/kernels.h"
#include "quant/quantize.h"

using namespace elm;
using namespace elm::cpu;

namespace {

std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, scale);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

struct Weight {
  std::vector<uint8_t> bytes;
  TensorView view;
};

Weight make_weight(DType type, int64_t N, int64_t K, int group, DType scales, uint32_t seed) {
  std::vector<float> w = random_floats(size_t(N * K), seed, 0.5f);
  Weight out;
  out.bytes = quantize_matrix(w.data(), N, K, {type, group, scales}, &out.view);
  out.view.data = out.bytes.data();
  return out;
}

// x rounded the way the integer kernels round it: int8 per block of 32.
std::vector<float> int8_rounded(const std::vector<float>& x, int64_t R, int64_t K) {
  std::vector<float> out(x.size());
  std::vector<int8_t> q(static_cast<size_t>(K));
  std::vector<float> d(static_cast<size_t>(K / kActBlock));
  std::vector<int32_t> s(static_cast<size_t>(K / kActBlock));
  for (int64_t r = 0; r < R; ++r) {
    quantize_row_int8_ref(x.data() + r * K, K, q.data(), d.data(), s.data());
    for (int64_t k = 0; k < K; ++k) out[size_t(r * K + k)] = d[size_t(k / kActBlock)] * float(q[size_t(k)]);
  }
  return out;
}

// Checks got against matmul_ref on x_ref, within rel * sum |x w| per output.
void expect_matches_reference(const std::vector<float>& got, const std::vector<float>& x_ref, int64_t R,
                              const TensorView& w, const float* bias, double rel) {
  const int64_t N = w.rows(), K = w.cols();
  ThreadPool one(1);
  std::vector<float> want(size_t(R * N));
  matmul_ref(x_ref.data(), R, w, bias, want.data(), one);
  const std::vector<float> wf = to_f32(w);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t n = 0; n < N; ++n) {
      double mag = bias ? std::fabs(bias[n]) : 0;
      for (int64_t k = 0; k < K; ++k) mag += std::fabs(double(x_ref[size_t(r * K + k)]) * wf[size_t(n * K + k)]);
      const size_t i = size_t(r * N + n);
      ASSERT_NEAR(got[i], want[i], rel * mag + 1e-30) << "row " << r << " col " << n << " of [" << R << ", " << N
                                                      << "] x [" << N << ", " << K << "]^T";
    }
}

class Kernels : public testing::TestWithParam<Isa> {};

std::vector<Isa> simd_isas() {
  std::vector<Isa> out;
  for (Isa i : available_isas())
    if (i != Isa::Generic) out.push_back(i);
  return out;
}

}  // namespace

TEST_P(Kernels, QuantizeRowIsBitIdenticalToReference) {
  const QKernels* qk = qkernels(GetParam());
  if (!qk) GTEST_SKIP() << "no integer kernels";
  const int64_t K = 32 * 9;
  std::vector<float> x = random_floats(size_t(K), 1, 3.f);
  std::fill(x.begin() + 32, x.begin() + 64, 0.f);  // an all-zero block: scale 0
  x[70] = 1e6f;                                     // an outlier
  x[100] = -x[101];
  std::vector<int8_t> q1(static_cast<size_t>(K)), q2(static_cast<size_t>(K));
  std::vector<float> d1(9), d2(9);
  std::vector<int32_t> s1(9), s2(9);
  quantize_row_int8_ref(x.data(), K, q1.data(), d1.data(), s1.data());
  qk->quantize_row(x.data(), K, q2.data(), d2.data(), s2.data());
  EXPECT_EQ(q1, q2);
  EXPECT_EQ(d1, d2);
  EXPECT_EQ(s1, s2);
  EXPECT_EQ(d1[1], 0.f);
}

TEST_P(Kernels, PackIsBitIdenticalToPortablePack) {
  const QKernels* qk = qkernels(GetParam());
  if (!qk) GTEST_SKIP() << "no integer kernels";
  uint32_t seed = 300;
  for (DType type : {DType::Q8, DType::Q4, DType::Q4M})
    for (int group : {32, 64, 128})
      for (DType scales : {DType::F16, DType::F32})
        for (int64_t N : {5, 16, 37})
          for (int64_t blocks : {1, 3, 4, 8}) {
            const int64_t K = 32 * blocks * (group / 32);
            Weight w = make_weight(type, N, K, group, scales, seed++);
            const QMatrix qm = qmatrix(w.view);
            std::vector<uint8_t> want(packed_bytes(qm)), got(packed_bytes(qm), 0xee);
            const int64_t panels = (N + kPanelRows - 1) / kPanelRows;
            pack_panels(qm, 0, panels, want.data());
            qk->pack(qm, 0, panels, got.data());
            ASSERT_EQ(got, want) << dtype_name(type) << " g" << group << " N=" << N << " K=" << K;
          }
}

TEST(PackedLayout, UnpackedRowsEqualTheDequantizedOriginal) {
  uint32_t seed = 900;
  for (DType type : {DType::Q8, DType::Q4, DType::Q4M})
    for (int group : {32, 64, 128})
      for (DType scales : {DType::F16, DType::F32}) {
        const int64_t N = 37, K = 2 * group;
        Weight w = make_weight(type, N, K, group, scales, seed++);
        const QMatrix qm = qmatrix(w.view);
        std::vector<uint8_t> packed(packed_bytes(qm));
        pack_panels(qm, 0, (N + kPanelRows - 1) / kPanelRows, packed.data());
        const PackedQ pq{qm.type, qm.n, qm.k, qm.group, qm.f32_scales, packed.data()};
        std::vector<float> want(static_cast<size_t>(K)), got(static_cast<size_t>(K));
        for (int64_t n = 0; n < N; ++n) {
          dequantize_row(w.view, n, want.data());
          unpack_row(pq, n, got.data());
          ASSERT_EQ(got, want) << dtype_name(type) << " g" << group << " row " << n;
        }
      }
}

TEST_P(Kernels, QuantizedMatmulPlainAndPackedMatchReference) {
  const Isa isa = GetParam();
  if (!qkernels(isa)) GTEST_SKIP() << "no integer kernels";
  ThreadPool pool(3);
  std::mt19937 rng(7);
  uint32_t seed = 100;
  for (DType type : {DType::Q8, DType::Q4, DType::Q4M})
    for (int group : {32, 64, 128})
      for (DType scales : {DType::F16, DType::F32})
        for (int trial = 0; trial < 3; ++trial) {
          // Rows cover decode (1), the gemv/gemm switch, and tile remainders; N covers partial panels,
          // and in the last trial decode chunks of several tiles (which prefetch across tiles).
          const int64_t R = trial == 2 ? 1 : std::vector<int64_t>{1, 2, 3, 4, 5, 6, 13}[rng() % 7];
          const int64_t N = trial == 2 ? 1000 + int64_t(rng() % 600) : 1 + int64_t(rng() % 70);
          const int64_t K = group * (1 + int64_t(rng() % 4));
          SCOPED_TRACE(testing::Message() << dtype_name(type) << " g" << group << " " << dtype_name(scales) << " R=" << R
                                          << " N=" << N << " K=" << K);
          Weight w = make_weight(type, N, K, group, scales, seed++);
          const std::vector<float> x = random_floats(size_t(R * K), seed++);
          const std::vector<float> bias = random_floats(size_t(N), seed++);
          const float* b = trial == 1 ? bias.data() : nullptr;
          const std::vector<float> xq = int8_rounded(x, R, K);

          std::vector<float> plain(size_t(R * N));
          matmul(x.data(), R, MatmulWeight{&w.view, {}}, b, plain.data(), pool, isa);
          expect_matches_reference(plain, xq, R, w.view, b, 1e-5);

          const QMatrix qm = qmatrix(w.view);
          std::vector<uint8_t> packed(packed_bytes(qm));
          const int64_t panels = (N + kPanelRows - 1) / kPanelRows;
          pack_panels(qm, 0, panels, packed.data());
          MatmulWeight mw{&w.view, PackedQ{type, N, K, group, scales == DType::F32, packed.data()}};
          std::vector<float> got(size_t(R * N));
          matmul(x.data(), R, mw, b, got.data(), pool, isa);
          expect_matches_reference(got, xq, R, w.view, b, 1e-5);
        }
}

// Products sharing an input run as one job: each output equals its own matmul call bit for bit.
TEST_P(Kernels, MatmulGroupEqualsSeparateProducts) {
  const Isa isa = GetParam();
  if (!qkernels(isa)) GTEST_SKIP() << "no integer kernels";
  ThreadPool pool(3);
  uint32_t seed = 500;
  const int64_t K = 128;
  for (int64_t R : {1, 3, 13}) {
    std::vector<Weight> ws;
    std::vector<std::vector<uint8_t>> packs;
    std::vector<MatmulWeight> mws;
    const std::vector<std::pair<DType, int64_t>> mats = {{DType::Q4, 300}, {DType::Q8, 70}, {DType::Q4M, 1030}};
    for (const auto& [type, N] : mats) ws.push_back(make_weight(type, N, K, 32, DType::F16, seed++));
    for (const Weight& w : ws) {
      const QMatrix qm = qmatrix(w.view);
      packs.emplace_back(packed_bytes(qm));
      pack_panels(qm, 0, (qm.n + kPanelRows - 1) / kPanelRows, packs.back().data());
    }
    for (size_t i = 0; i < ws.size(); ++i)
      mws.push_back(MatmulWeight{&ws[i].view, PackedQ{ws[i].view.dtype, ws[i].view.rows(), K, 32, false, packs[i].data()}});
    const std::vector<float> x = random_floats(size_t(R * K), seed++);
    const std::vector<float> bias = random_floats(size_t(300), seed++);
    std::vector<std::vector<float>> alone(mws.size()), grouped(mws.size());
    std::vector<MatmulJob> jobs;
    for (size_t i = 0; i < mws.size(); ++i) {
      const int64_t N = mws[i].packed.n;
      alone[i].assign(size_t(R * N), 0.f);
      grouped[i].assign(size_t(R * N), 0.f);
      const float* b = i == 0 ? bias.data() : nullptr;
      matmul(x.data(), R, mws[i], b, alone[i].data(), pool, isa);
      jobs.push_back({&mws[i], b, grouped[i].data()});
    }
    matmul_group(x.data(), R, jobs, pool, isa);
    for (size_t i = 0; i < mws.size(); ++i) EXPECT_EQ(grouped[i], alone[i]) << "R=" << R << " product " << i;
  }
}

TEST_P(Kernels, FloatMatmulMatchesReference) {
  const Isa isa = GetParam();
  if (!fkernels(isa)) GTEST_SKIP() << "no float kernels";
  ThreadPool pool(3);
  std::mt19937 rng(11);
  uint32_t seed = 500;
  for (DType type : {DType::F32, DType::F16, DType::BF16})
    for (int trial = 0; trial < 6; ++trial) {
      const int64_t R = std::vector<int64_t>{1, 2, 4, 5, 7, 19}[size_t(trial)];
      const int64_t N = 1 + int64_t(rng() % 70);
      const int64_t K = 1 + int64_t(rng() % 300);  // any K: remainders of every vector width
      SCOPED_TRACE(testing::Message() << dtype_name(type) << " R=" << R << " N=" << N << " K=" << K);
      Weight w = make_weight(type, N, K, 0, DType::F16, seed++);
      const std::vector<float> x = random_floats(size_t(R * K), seed++);
      const std::vector<float> bias = random_floats(size_t(N), seed++);
      const float* b = trial % 2 ? bias.data() : nullptr;
      std::vector<float> got(size_t(R * N));
      matmul(x.data(), R, MatmulWeight{&w.view, {}}, b, got.data(), pool, isa);
      expect_matches_reference(got, x, R, w.view, b, 1e-6);
    }
}

// BF16 weights against bf16 activations (vdpbf16ps, prefill rows): the reference multiplies x rounded
// to bf16 the same way (nearest even), so with exact products only the summation order differs.
// Shapes: odd K, K past one packed block (512) and not a multiple of 32, N not a multiple of 16,
// rows past the gemv's 16 with every tile remainder.
TEST_P(Kernels, Bf16DotMatmulMatchesReference) {
  const Isa isa = GetParam();
  const FKernels* fk = fkernels(isa);
  if (!fk || !fk->gemm_bf16dot) GTEST_SKIP() << "no bf16 dot product";
  ThreadPool pool(3);
  std::mt19937 rng(13);
  uint32_t seed = 900;
  std::vector<std::array<int64_t, 3>> shapes = {{17, 1, 1}, {24, 16, 32}, {33, 17, 33}, {100, 47, 512}, {41, 32, 1025}};
  for (int64_t i = 0; i < 8; ++i)  // rows 17 .. 94: every remainder of 8-row tiles, on both panels of a tile
    shapes.push_back({17 + 11 * i, 17 + int64_t(rng() % 140), 1 + int64_t(rng() % 1100)});
  for (size_t s = 0; s < shapes.size(); ++s) {
    const auto [R, N, K] = shapes[s];
    SCOPED_TRACE(testing::Message() << "R=" << R << " N=" << N << " K=" << K);
    Weight w = make_weight(DType::BF16, N, K, 0, DType::F16, seed++);
    const std::vector<float> x = random_floats(size_t(R * K), seed++);
    const std::vector<float> bias = random_floats(size_t(N), seed++);
    const float* b = s % 2 ? bias.data() : nullptr;
    std::vector<float> xr = x;
    round_activations(DType::BF16, xr.data(), R * K);
    std::vector<float> got(size_t(R * N));
    matmul(x.data(), R, MatmulWeight{&w.view, {}}, b, got.data(), pool, isa, DType::BF16);
    expect_matches_reference(got, xr, R, w.view, b, 1e-6);

    // The kernel itself, its columns split between calls: each call writes its own, as in one call.
    const int64_t pairs = (K + 1) / 2, panels = (N + 15) / 16;
    std::vector<uint32_t> xp(size_t(R * pairs));
    for (int64_t r = 0; r < R; ++r) fk->to_bf16(x.data() + r * K, K, xp.data() + r * pairs);
    std::vector<float> split(size_t(R * N), NAN);
    const auto* wb = static_cast<const uint16_t*>(w.view.data);
    for (int64_t p0 = 0, p1; p0 < panels; p0 = p1) {  // chunks of 1 and 2 panels: odd starts too
      p1 = std::min(panels, p0 + 1 + p0 % 2);
      fk->gemm_bf16dot(wb, N, K, xp.data(), R, p0, p1, b, split.data(), N);
    }
    EXPECT_EQ(split, got);
  }
}

// The bf16 activation mode changes only prefill products of BF16 weights: decode rows and other
// weight types give the f32 mode's results bit for bit.
TEST_P(Kernels, Bf16ActivationsKeepOtherProducts) {
  const Isa isa = GetParam();
  if (!fkernels(isa)) GTEST_SKIP() << "no float kernels";
  ThreadPool pool(3);
  uint32_t seed = 950;
  for (DType type : {DType::F32, DType::F16, DType::BF16})
    for (int64_t R : {1, 16, 40}) {
      if (type == DType::BF16 && R > 16) continue;
      SCOPED_TRACE(testing::Message() << dtype_name(type) << " R=" << R);
      const int64_t N = 37, K = 75;
      Weight w = make_weight(type, N, K, 0, DType::F16, seed++);
      const std::vector<float> x = random_floats(size_t(R * K), seed++);
      std::vector<float> f32(size_t(R * N)), bf16(size_t(R * N));
      matmul(x.data(), R, MatmulWeight{&w.view, {}}, nullptr, f32.data(), pool, isa, DType::F32);
      matmul(x.data(), R, MatmulWeight{&w.view, {}}, nullptr, bf16.data(), pool, isa, DType::BF16);
      EXPECT_EQ(bf16, f32);
    }
}

INSTANTIATE_TEST_SUITE_P(Isa, Kernels, testing::ValuesIn(simd_isas()),
                         [](const testing::TestParamInfo<Isa>& i) { return std::string(isa_name(i.param)); });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(Kernels);
