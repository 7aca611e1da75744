// Decode products with the weights streamed through shared memory by bulk copies (Hopper's
// cp.async.bulk): y [T, N] = x [T, K] w^T for quantized w and T <= 8 tokens.
//
// The register kernel (gemv.cu) keeps its loads in flight in registers, so the bytes in flight per SM
// are bounded by what its warps can hold, and a warp's next loads wait for its sums. Here one producer
// warp per block copies tiles of rows into a ring of shared-memory stages and eight consumer warps
// decode them: the loads in flight are whole stages (tens of KiB per SM, no registers), and the
// producer runs ahead of the arithmetic by the depth of the ring.
//
// A block takes one SM's worth of the product and leaves room beside it for the next kernel's block:
// launched with programmatic dependent launch, that block starts while this one streams, fills its
// own ring with the next product's weights (which do not depend on this product) and waits only for x.
// So the memory system stays busy across the kernel boundary instead of draining at every product.
//
// Work: tiles of kWarps * rpw output units (rows, or gate and up rows for a gated MLP), each row in
// `slices` slices of ks values. Stage i of a block holds one slice of each row of one tile; consumer
// warp w owns units w * rpw ... w * rpw + rpw - 1 of each tile. Rows longer than one slice (rpw = 1)
// keep their sums in registers across the stages of the tile.
#include <algorithm>
#include <cstdlib>

#include "backend/cuda/common.cuh"
#include "backend/cuda/gemv_x.cuh"
#include "backend/cuda/matmul_internal.h"
#include "backend/cuda/stream_plan.h"

namespace elm::cuda {

namespace {

static_assert(kStreamWarps == kWarps, "stream_plan.h plans for the consumer warps of gemv_x.cuh");

// ---- mbarriers and bulk copies (PTX; sm_90) ----

__device__ __forceinline__ uint32_t smem_addr(const void* p) { return uint32_t(__cvta_generic_to_shared(p)); }

__device__ __forceinline__ void mbar_init(uint64_t* bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_addr(bar)), "r"(count) : "memory");
}
// One arrival that also announces `bytes` of copies completing this phase.
__device__ __forceinline__ void mbar_arrive_expect(uint64_t* bar, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_addr(bar)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_addr(bar)) : "memory");
}
// Returns once the phase of parity `parity` has completed.
__device__ __forceinline__ void mbar_wait(uint64_t* bar, unsigned parity) {
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(smem_addr(bar)), "r"(parity)
        : "memory");
  } while (!done);
}
// bytes (a multiple of 16, both addresses 16-byte aligned) global -> shared, completing on `bar`.
__device__ __forceinline__ void bulk_copy(void* dst, const void* src, unsigned bytes, uint64_t* bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                   smem_addr(dst)),
               "l"(src), "r"(bytes), "r"(smem_addr(bar))
               : "memory");
#endif
}

struct StreamParams {
  GemvParams g;
  StreamPlan t;  // the tiling (stream_plan.h)
};

// Where tile t's rows are: weight index (gated: 0), first row, rows that exist, rows of its weight.
struct Tile {
  int wi = 0;
  int64_t row0 = 0, N = 0;
  int valid = 0;
};

// Kernel parameters are only indexed with compile-time constants here (a run-time index would copy
// them to local memory).
template <int R>
__device__ __forceinline__ Tile locate_tile(const StreamParams& p, int64_t t) {
  const int tu = kWarps * p.t.rpw;
  Tile o;
  int64_t t0 = 0;
#pragma unroll
  for (int i = 0; i < 3; ++i)
    if ((R == 2 && i == 0) || (R == 1 && i < p.g.n && t >= p.t.toffs[i] && t < p.t.toffs[i + 1]))
      o.wi = i, o.N = p.g.w[i].rows, t0 = p.t.toffs[i];
  o.row0 = (t - t0) * tu;
  o.valid = int(o.N - o.row0 < tu ? o.N - o.row0 : tu);
  return o;
}

// The planes of weight r of a tile (gated: r = 0 the gate, 1 the up weight; else the tile's weight).
struct Planes {
  const uint8_t *q = nullptr, *s = nullptr, *m = nullptr;
};
template <int R>
__device__ __forceinline__ Planes planes_of(const StreamParams& p, int wi, int r) {
  Planes o;
#pragma unroll
  for (int i = 0; i < 3; ++i)
    if (R == 2 ? i == r : i == wi)
      o.q = p.g.w[i].data, o.s = o.q + p.g.w[i].scales_offset, o.m = o.q + p.g.w[i].mins_offset;
  return o;
}

// The producer warp: every stage of the block in order, each into its ring slot once the consumers
// have released the slot's previous contents.
template <DType WT, int R>
__device__ void produce(const StreamParams& p, uint8_t* ring, uint64_t* full, uint64_t* empty) {
  constexpr int planes = WT == DType::Q4M ? 2 : 1;  // scale planes: scales (and mins)
  const int lane = threadIdx.x & 31, tu = kWarps * p.t.rpw;
  const int sbytes = p.g.w[0].scale_f32 ? 4 : 2;
  const int64_t row_q = row_bytes<WT>(p.g.K), row_s = int64_t(p.g.K / p.g.w[0].group) * sbytes;
  int i = 0;
  for (int64_t t = blockIdx.x; t < p.t.tiles; t += gridDim.x) {
    const Tile tile = locate_tile<R>(p, t);
    for (int s = 0; s < p.t.slices; ++s, ++i) {
      const int slot = i % p.t.stages, round = i / p.t.stages;
      if (round > 0) mbar_wait(&empty[slot], (round - 1) & 1);
      uint8_t* st = ring + size_t(slot) * p.t.stage_bytes;
      // Whole-row tiles copy each plane in one piece, the scales rounded up to 16 bytes (rows' scales
      // need not be 16-byte multiples; tiles start aligned, and the device copy of a weight is padded).
      const unsigned s_bytes = p.t.slices == 1 ? (unsigned(tile.valid) * p.t.s_seg + 15) / 16 * 16
                                             : unsigned(tile.valid) * p.t.s_seg;
      const unsigned bytes = unsigned(R) * (unsigned(tile.valid) * p.t.q_seg + planes * s_bytes);
      if (lane == 0) mbar_arrive_expect(&full[slot], bytes);
      __syncwarp();
      // Copy j of the stage: weight r, plane (0 quants, 1 scales, 2 mins), unit u (all units at once
      // when a row is one slice: the tile's rows are then contiguous in every plane).
      const int per_plane = p.t.slices == 1 ? 1 : tile.valid, copies = R * (1 + planes) * per_plane;
      for (int j = lane; j < copies; j += 32) {
        const int u = j % per_plane, rp = j / per_plane, plane = rp % (1 + planes), r = rp / (1 + planes);
        const Planes w = planes_of<R>(p, tile.wi, r);
        const int64_t row = tile.row0 + u;
        const uint8_t* src;
        uint8_t* dst;
        unsigned n;
        if (plane == 0) {
          src = w.q + row * row_q + int64_t(s) * p.t.q_seg;
          dst = st + size_t(r * tu + u) * p.t.q_seg;
          n = p.t.q_seg;
        } else {
          src = (plane == 1 ? w.s : w.m) + row * row_s + int64_t(s) * p.t.s_seg;
          dst = st + size_t(R * tu) * p.t.q_seg + size_t(((plane - 1) * R + r) * tu + u) * p.t.s_seg;
          n = p.t.s_seg;
        }
        if (p.t.slices == 1) n = plane == 0 ? n * unsigned(tile.valid) : s_bytes;
        bulk_copy(dst, src, n, &full[slot]);
      }
    }
  }
}

template <DType WT, int NT, int R>
__global__ void __launch_bounds__(kThreads + 32, 2) gemv_stream_kernel(const StreamParams p) {
  extern __shared__ __align__(128) uint8_t smem[];
  __shared__ float red[8 * kWarps], inv[8];
  __shared__ uint64_t full[kStreamMaxStages], empty[kStreamMaxStages];
  constexpr int VPC = chunk_values<WT>();
  pdl_launch_dependents();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  uint8_t* ring = smem + p.t.x_bytes;
  if (threadIdx.x == 0) {
    for (int i = 0; i < p.t.stages; ++i) mbar_init(&full[i], 1), mbar_init(&empty[i], kWarps);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  if (warp == kWarps) {  // the producer: weights only, so it need not wait for the previous kernel
    produce<WT, R>(p, ring, full, empty);
    return;
  }
  pdl_wait();
  const XQ xq = stage_xq(p.g, NT, smem, red, inv);

  constexpr int planes = WT == DType::Q4M ? 2 : 1;
  const int tu = kWarps * p.t.rpw, kchunks = p.t.ks / VPC, group = p.g.w[0].group;
  const bool sf32 = p.g.w[0].scale_f32;
  float acc[R][NT];
  int i = 0;
  for (int64_t t = blockIdx.x; t < p.t.tiles; t += gridDim.x) {
    const Tile tile = locate_tile<R>(p, t);
    float* y = p.g.y[0];
    const float* bias0 = p.g.bias[0];
    const float* residual = p.g.residual[0];
#pragma unroll
    for (int k = 1; k < 3; ++k)
      if (R == 1 && tile.wi == k) y = p.g.y[k], bias0 = p.g.bias[k], residual = p.g.residual[k];
    const int64_t N = tile.N;
    for (int s = 0; s < p.t.slices; ++s, ++i) {
      const int slot = i % p.t.stages;
      mbar_wait(&full[slot], (i / p.t.stages) & 1);
      const uint8_t* st = ring + size_t(slot) * p.t.stage_bytes;
      for (int j = 0; j < p.t.rpw; ++j) {
        const int u = warp * p.t.rpw + j;
        const bool live = u < tile.valid;
        const int64_t row = tile.row0 + u;
        const bool writes = s == p.t.slices - 1 && live && lane < NT && lane < p.g.T;
        // The epilogue's values (lane t: token t), requested before the products.
        float res = 0.f, bias[R];
        if (writes) {
          if (R == 1 && residual) res = residual[int64_t(lane) * N + row];
#pragma unroll
          for (int r = 0; r < R; ++r) {
            const float* b = R == 2 ? p.g.bias[r] : bias0;
            bias[r] = b ? b[row] : 0.f;
          }
        }
        if (s == 0)
#pragma unroll
          for (int r = 0; r < R; ++r)
#pragma unroll
            for (int tt = 0; tt < NT; ++tt) acc[r][tt] = 0.f;
        if (live) {
#pragma unroll 2
          for (int c = lane; c < kchunks; c += 32) {
#pragma unroll
            for (int r = 0; r < R; ++r) {
              const uint4 w = *reinterpret_cast<const uint4*>(st + size_t(r * tu + u) * p.t.q_seg + size_t(c) * 16);
              const int gi = c * VPC / group;
              const uint8_t* sc = st + size_t(R * tu) * p.t.q_seg + size_t(r * tu + u) * p.t.s_seg;
              const float d = load_scale(sc, gi, sf32);
              const float m = planes == 2 ? load_scale(sc + size_t(R * tu) * p.t.s_seg, gi, sf32) : 0.f;
              chunk_dot_i8<WT, NT>(w, d, m, xq, s * kchunks + c, acc[r]);
            }
          }
        }
        if (s == p.t.slices - 1) {
#pragma unroll
          for (int r = 0; r < R; ++r)
#pragma unroll
            for (int tt = 0; tt < NT; ++tt) acc[r][tt] = warp_sum(acc[r][tt]);
          if (writes) {
            float v[R];
#pragma unroll
            for (int r = 0; r < R; ++r) {
              v[r] = acc[r][0];
#pragma unroll
              for (int tt = 1; tt < NT; ++tt)
                if (lane == tt) v[r] = acc[r][tt];
            }
            const int64_t o = int64_t(lane) * N + row;
            if constexpr (R == 2) y[o] = gate_act(p.g.gate, v[0] + bias[0]) * (v[1] + bias[1]);
            else y[o] = v[0] + bias[0] + res;
          }
        }
      }
      __syncwarp();
      if (lane == 0) mbar_arrive(&empty[slot]);
    }
  }
}

int env_int(const char* name, int fallback, int lo, int hi) {
  const char* e = std::getenv(name);
  return e && *e ? std::clamp(std::atoi(e), lo, hi) : fallback;
}

// Blocks per SM of a streamed product: 1 leaves the other half of each SM to the next kernel.
// ELM_CUDA_STREAM_BLOCKS=2 fills the SM (for measurements).
int stream_blocks_per_sm() {
  static const int n = env_int("ELM_CUDA_STREAM_BLOCKS", 1, 1, 2);
  return n;
}

// Bytes of quants per consumer warp and stage (ELM_CUDA_STREAM_STAGE, for measurements).
int stage_target() {
  static const int n = env_int("ELM_CUDA_STREAM_STAGE", 2048, 512, 8192);
  return n;
}

// The tiling of the product (stream_plan.h), after checking that its planes are 16-byte aligned.
template <DType WT, int R>
bool plan(StreamParams& p, int NT) {
  const GemvParams& g = p.g;
  for (int i = 0; i < (R == 2 ? 2 : g.n); ++i)
    if (reinterpret_cast<uintptr_t>(g.w[i].data) % 16 || g.w[i].scales_offset % 16 || g.w[i].mins_offset % 16)
      return false;
  StreamShape shape;
  shape.type = WT, shape.gated = R == 2, shape.tokens = NT, shape.K = g.K, shape.group = g.w[0].group;
  shape.scale_f32 = g.w[0].scale_f32, shape.n = R == 2 ? 2 : g.n;
  for (int i = 0; i < shape.n; ++i) shape.rows[i] = g.w[i].rows;
  return plan_stream(shape, sm_count() * stream_blocks_per_sm(), stage_target(), p.t);
}

template <DType WT, int NT, int R>
bool launch_stream(const GemvParams& g, cudaStream_t s) {
  StreamParams p{};
  p.g = g;
  if (!plan<WT, R>(p, NT)) return false;
  const size_t smem = p.t.smem_bytes();
  auto* k = gemv_stream_kernel<WT, NT, R>;
  allow_dynamic_smem(reinterpret_cast<const void*>(k), smem);
  const int64_t grid = std::min<int64_t>(p.t.tiles, int64_t(sm_count()) * stream_blocks_per_sm());
  launch(k, unsigned(grid), kThreads + 32, smem, s, "gemv_stream", p);
  return true;
}

template <DType WT, int R>
bool launch_nt(const GemvParams& g, cudaStream_t s) {
  if (g.T <= 1) return launch_stream<WT, 1, R>(g, s);
  if (g.T <= 2) return launch_stream<WT, 2, R>(g, s);
  if (g.T <= 4) return launch_stream<WT, 4, R>(g, s);
  return launch_stream<WT, 8, R>(g, s);
}

template <int R>
bool launch_type(const GemvParams& g, cudaStream_t s) {
  switch (g.w[0].dtype) {
    case DType::Q8: return launch_nt<DType::Q8, R>(g, s);
    case DType::Q4: return launch_nt<DType::Q4, R>(g, s);
    case DType::Q4M: return launch_nt<DType::Q4M, R>(g, s);
    default: return false;
  }
}

}  // namespace

bool gemv_streamed(const GemvParams& g, cudaStream_t s) {
  static const bool hopper = [] {
    int dev = 0, major = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
    return major >= 9;
  }();
  // Opt-in until measured on a GPU: ELM_CUDA_GEMV_STREAM=1 streams, anything else keeps the register
  // kernel (the tests run both). Read at each launch: decode steps are captured once, so this costs
  // nothing per token.
  const char* e = std::getenv("ELM_CUDA_GEMV_STREAM");
  const bool on = hopper && e && *e == '1';
  if (!on) return false;
  return g.gate != GateAct::None ? launch_type<2>(g, s) : launch_type<1>(g, s);
}

}  // namespace elm::cuda
