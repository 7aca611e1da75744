// Gated delta rule (Gated DeltaNet linear attention), in two forms that compute the same values:
// token by token (the definition, used for decode) and chunk by chunk (prefill).
//
// Per value head, with state S [dk, dv] and for each token (q, k, v, g, beta):
//   S = exp(g) S;   u = beta (v - S^T k);   S = S + k u^T;   out = S^T q
// Within a chunk of L tokens starting from state S0, let c_t be the running sum of g (so the decay
// from token s to token t is exp(c_t - c_s)). Unrolling the recurrence gives
//   u_t = beta_t v_t - beta_t exp(c_t) S0^T k_t - sum_{s<t} beta_t exp(c_t - c_s) (k_t . k_s) u_s
//   out_t = exp(c_t) S0^T q_t + sum_{s<=t} exp(c_t - c_s) (q_t . k_s) u_s
//   S_L = exp(c_L) S0 + sum_s exp(c_L - c_s) k_s u_s^T
// The u_t form a unit lower-triangular system, solved by forward substitution; everything else is a
// chunk-sized matrix product.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/kernels.h"

namespace elm::cpu {

namespace {

constexpr int64_t kChunk = 64;

// The inputs of one value head at one token, with q scaled and q, k normalized as asked.
struct HeadInputs {
  const DeltaRuleArgs& a;
  int64_t h, group;

  HeadInputs(const DeltaRuleArgs& args, int64_t head) : a(args), h(head), group(args.v_heads / args.k_heads) {}

  static float inv_norm(const float* x, int64_t n) {
    float ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
    return 1.0f / std::sqrt(ss + 1e-6f);
  }
  void qk(int64_t r, float* q, float* k) const {
    const int64_t off = r * a.k_heads * a.dk + (h / group) * a.dk;
    const float* qs = a.q + off;
    const float* ks = a.k + off;
    const float qn = a.l2norm ? inv_norm(qs, a.dk) : 1.f, kn = a.l2norm ? inv_norm(ks, a.dk) : 1.f;
    for (int64_t d = 0; d < a.dk; ++d) q[d] = qs[d] * qn * a.scale, k[d] = ks[d] * kn;
  }
  const float* v(int64_t r) const { return a.v + r * a.v_heads * a.dv + h * a.dv; }
  float g(int64_t r) const { return a.g[r * a.v_heads + h]; }
  float beta(int64_t r) const { return a.beta[r * a.v_heads + h]; }
  float* out(int64_t r) const { return a.out + r * a.v_heads * a.dv + h * a.dv; }
};

// C [M, N] += A [M, K] B [K, N], all row-major. C is built in strips of 32 columns held in a local
// accumulator (which the compiler keeps in vector registers), with a row of A sweeping down B's strip.
void matmul_acc(const float* A, const float* B, float* C, int64_t M, int64_t K, int64_t N) {
  constexpr int64_t kStrip = 32;
  for (int64_t m = 0; m < M; ++m) {
    const float* a = A + m * K;
    for (int64_t j0 = 0; j0 < N; j0 += kStrip) {
      float* c = C + m * N + j0;
      if (N - j0 < kStrip) {  // a narrow last strip
        for (int64_t k = 0; k < K; ++k)
          for (int64_t j = 0; j < N - j0; ++j) c[j] += a[k] * B[k * N + j0 + j];
        continue;
      }
      float acc[kStrip];
      for (int64_t j = 0; j < kStrip; ++j) acc[j] = c[j];
      for (int64_t k = 0; k < K; ++k) {
        const float ak = a[k];
        const float* b = B + k * N + j0;
        for (int64_t j = 0; j < kStrip; ++j) acc[j] += ak * b[j];
      }
      for (int64_t j = 0; j < kStrip; ++j) c[j] = acc[j];
    }
  }
}

}  // namespace

void gated_delta_rule_recurrent(const DeltaRuleArgs& a, const int64_t* rows, int64_t n, float* state,
                                ThreadPool& pool) {
  const int64_t dk = a.dk, dv = a.dv;
  pool.parallel_for(a.v_heads, [&](int64_t h0, int64_t h1) {
    std::vector<float> q(static_cast<size_t>(dk)), k(static_cast<size_t>(dk)), u(static_cast<size_t>(dv));
    for (int64_t h = h0; h < h1; ++h) {
      const HeadInputs in(a, h);
      float* S = state + h * dk * dv;  // [dk, dv], rows walked in order so the inner loops are contiguous
      for (int64_t t = 0; t < n; ++t) {
        const int64_t r = rows[t];
        in.qk(r, q.data(), k.data());
        const float decay = std::exp(in.g(r)), beta = in.beta(r);
        const float* v = in.v(r);
        // Decay, and u = S^T k: what the state already predicts for this key.
        std::fill(u.begin(), u.end(), 0.f);
        for (int64_t i = 0; i < dk; ++i) {
          float* Si = S + i * dv;
          for (int64_t j = 0; j < dv; ++j) {
            Si[j] *= decay;
            u[size_t(j)] += Si[j] * k[size_t(i)];
          }
        }
        for (int64_t j = 0; j < dv; ++j) u[size_t(j)] = (v[j] - u[size_t(j)]) * beta;
        // S += k u^T, and the output S^T q.
        float* o = in.out(r);
        std::fill(o, o + dv, 0.f);
        for (int64_t i = 0; i < dk; ++i) {
          float* Si = S + i * dv;
          for (int64_t j = 0; j < dv; ++j) {
            Si[j] += k[size_t(i)] * u[size_t(j)];
            o[j] += Si[j] * q[size_t(i)];
          }
        }
      }
    }
  });
}

void gated_delta_rule_chunked(const DeltaRuleArgs& a, const int64_t* rows, int64_t n, float* state, ThreadPool& pool) {
  const int64_t dk = a.dk, dv = a.dv, L0 = kChunk;
  pool.parallel_for(a.v_heads, [&](int64_t h0, int64_t h1) {
    auto buffer = [](int64_t size) { return std::vector<float>(static_cast<size_t>(size)); };
    std::vector<float> Q = buffer(L0 * dk), K = buffer(L0 * dk), V = buffer(L0 * dv), U = buffer(L0 * dv);
    std::vector<float> KS = buffer(L0 * dv), O = buffer(L0 * dv), KdT = buffer(dk * L0), KT = buffer(dk * L0);
    std::vector<float> KK = buffer(L0 * L0), QK = buffer(L0 * L0);
    std::vector<float> cum = buffer(L0), beta = buffer(L0), S0 = buffer(dk * dv);
    for (int64_t h = h0; h < h1; ++h) {
      const HeadInputs in(a, h);
      float* S = state + h * dk * dv;  // [dk, dv]
      for (int64_t c0 = 0; c0 < n; c0 += kChunk) {
        const int64_t L = std::min(kChunk, n - c0);
        const int64_t* cr = rows + c0;
        float running = 0;
        for (int64_t t = 0; t < L; ++t) {
          in.qk(cr[t], &Q[size_t(t * dk)], &K[size_t(t * dk)]);
          std::copy(in.v(cr[t]), in.v(cr[t]) + dv, &V[size_t(t * dv)]);
          running += in.g(cr[t]);
          cum[size_t(t)] = running;
          beta[size_t(t)] = in.beta(cr[t]);
        }
        S0.assign(S, S + dk * dv);
        // The chunk's keys and queries read against the starting state, K S0 and Q S0 [L, dv], and
        // against each other, K K^T and Q K^T [L, L].
        for (int64_t t = 0; t < L; ++t)
          for (int64_t i = 0; i < dk; ++i) KT[size_t(i * L + t)] = K[size_t(t * dk + i)];
        for (auto* m : {&KS, &O, &KK, &QK}) std::fill(m->begin(), m->end(), 0.f);
        matmul_acc(K.data(), S0.data(), KS.data(), L, dk, dv);
        matmul_acc(Q.data(), S0.data(), O.data(), L, dk, dv);
        matmul_acc(K.data(), KT.data(), KK.data(), L, dk, L);
        matmul_acc(Q.data(), KT.data(), QK.data(), L, dk, L);
        // u_t by forward substitution, earlier u_s already known.
        for (int64_t t = 0; t < L; ++t) {
          const float b = beta[size_t(t)], decay = std::exp(cum[size_t(t)]);
          float* ut = &U[size_t(t * dv)];
          for (int64_t j = 0; j < dv; ++j) ut[j] = b * V[size_t(t * dv + j)] - b * decay * KS[size_t(t * dv + j)];
          for (int64_t s = 0; s < t; ++s) {
            const float coef = b * std::exp(cum[size_t(t)] - cum[size_t(s)]) * KK[size_t(t * L + s)];
            const float* us = &U[size_t(s * dv)];
            for (int64_t j = 0; j < dv; ++j) ut[j] -= coef * us[j];
          }
        }
        // Outputs: the decayed read of the starting state plus the intra-chunk terms Att U, with
        // Att[t][s] = exp(c_t - c_s) (q_t . k_s) for s <= t, 0 above (QK turned into Att in place).
        for (int64_t t = 0; t < L; ++t) {
          const float decay = std::exp(cum[size_t(t)]);
          for (int64_t j = 0; j < dv; ++j) O[size_t(t * dv + j)] *= decay;
          for (int64_t s = 0; s < L; ++s)
            QK[size_t(t * L + s)] = s <= t ? std::exp(cum[size_t(t)] - cum[size_t(s)]) * QK[size_t(t * L + s)] : 0.f;
        }
        matmul_acc(QK.data(), U.data(), O.data(), L, L, dv);
        for (int64_t t = 0; t < L; ++t) std::copy(&O[size_t(t * dv)], &O[size_t(t * dv)] + dv, in.out(cr[t]));
        // The state after the chunk: S = exp(c_L) S0 + sum_s exp(c_L - c_s) k_s u_s^T.
        const float last = cum[size_t(L - 1)], total = std::exp(last);
        for (int64_t i = 0; i < dk * dv; ++i) S[i] = total * S0[size_t(i)];
        for (int64_t s = 0; s < L; ++s) {
          const float decay = std::exp(last - cum[size_t(s)]);
          for (int64_t i = 0; i < dk; ++i) KdT[size_t(i * L + s)] = decay * K[size_t(s * dk + i)];
        }
        matmul_acc(KdT.data(), U.data(), S, dk, L, dv);
      }
    }
  });
}

}  // namespace elm::cpu
