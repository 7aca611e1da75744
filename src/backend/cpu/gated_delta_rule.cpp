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

float dot(const float* x, const float* y, int64_t n) {
  float acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += x[i] * y[i];
  return acc;
}

}  // namespace

void gated_delta_rule_recurrent(const DeltaRuleArgs& a, const int64_t* rows, int64_t n, float* state,
                                ThreadPool& pool) {
  const int64_t dk = a.dk, dv = a.dv;
  pool.parallel_for(a.v_heads, [&](int64_t h0, int64_t h1) {
    std::vector<float> q(static_cast<size_t>(dk)), k(static_cast<size_t>(dk)), u(static_cast<size_t>(dv));
    for (int64_t h = h0; h < h1; ++h) {
      const HeadInputs in(a, h);
      float* S = state + h * dk * dv;  // [dk, dv]
      for (int64_t t = 0; t < n; ++t) {
        const int64_t r = rows[t];
        in.qk(r, q.data(), k.data());
        const float decay = std::exp(in.g(r)), beta = in.beta(r);
        const float* v = in.v(r);
        for (int64_t i = 0; i < dk * dv; ++i) S[i] *= decay;
        for (int64_t j = 0; j < dv; ++j) {
          float kv = 0;  // (S^T k)_j: what the state already predicts for this key
          for (int64_t i = 0; i < dk; ++i) kv += S[i * dv + j] * k[size_t(i)];
          u[size_t(j)] = (v[j] - kv) * beta;
        }
        for (int64_t i = 0; i < dk; ++i)
          for (int64_t j = 0; j < dv; ++j) S[i * dv + j] += k[size_t(i)] * u[size_t(j)];
        float* o = in.out(r);
        for (int64_t j = 0; j < dv; ++j) {
          float acc = 0;
          for (int64_t i = 0; i < dk; ++i) acc += S[i * dv + j] * q[size_t(i)];
          o[j] = acc;
        }
      }
    }
  });
}

void gated_delta_rule_chunked(const DeltaRuleArgs& a, const int64_t* rows, int64_t n, float* state, ThreadPool& pool) {
  const int64_t dk = a.dk, dv = a.dv;
  pool.parallel_for(a.v_heads, [&](int64_t h0, int64_t h1) {
    std::vector<float> Q(static_cast<size_t>(kChunk * dk)), K(static_cast<size_t>(kChunk * dk));
    std::vector<float> U(static_cast<size_t>(kChunk * dv)), cum(static_cast<size_t>(kChunk));
    std::vector<float> S0(static_cast<size_t>(dk * dv)), x(static_cast<size_t>(dv));
    for (int64_t h = h0; h < h1; ++h) {
      const HeadInputs in(a, h);
      float* S = state + h * dk * dv;  // [dk, dv]
      for (int64_t c0 = 0; c0 < n; c0 += kChunk) {
        const int64_t L = std::min(kChunk, n - c0);
        const int64_t* cr = rows + c0;
        float running = 0;
        for (int64_t t = 0; t < L; ++t) {
          in.qk(cr[t], &Q[size_t(t * dk)], &K[size_t(t * dk)]);
          running += in.g(cr[t]);
          cum[size_t(t)] = running;
        }
        S0.assign(S, S + dk * dv);
        // u_t by forward substitution, earlier u_s already known.
        for (int64_t t = 0; t < L; ++t) {
          const float* kt = &K[size_t(t * dk)];
          const float beta = in.beta(cr[t]), decay = std::exp(cum[size_t(t)]);
          const float* v = in.v(cr[t]);
          float* ut = &U[size_t(t * dv)];
          for (int64_t j = 0; j < dv; ++j) {
            float kS = 0;
            for (int64_t i = 0; i < dk; ++i) kS += kt[i] * S0[size_t(i * dv + j)];
            ut[j] = beta * v[j] - beta * decay * kS;
          }
          for (int64_t s = 0; s < t; ++s) {
            const float coef = beta * std::exp(cum[size_t(t)] - cum[size_t(s)]) * dot(kt, &K[size_t(s * dk)], dk);
            const float* us = &U[size_t(s * dv)];
            for (int64_t j = 0; j < dv; ++j) ut[j] -= coef * us[j];
          }
        }
        // Outputs: the decayed read of the chunk's starting state plus the intra-chunk terms.
        for (int64_t t = 0; t < L; ++t) {
          const float* qt = &Q[size_t(t * dk)];
          const float decay = std::exp(cum[size_t(t)]);
          for (int64_t j = 0; j < dv; ++j) {
            float qS = 0;
            for (int64_t i = 0; i < dk; ++i) qS += qt[i] * S0[size_t(i * dv + j)];
            x[size_t(j)] = decay * qS;
          }
          for (int64_t s = 0; s <= t; ++s) {
            const float coef = std::exp(cum[size_t(t)] - cum[size_t(s)]) * dot(qt, &K[size_t(s * dk)], dk);
            const float* us = &U[size_t(s * dv)];
            for (int64_t j = 0; j < dv; ++j) x[size_t(j)] += coef * us[j];
          }
          float* o = in.out(cr[t]);
          for (int64_t j = 0; j < dv; ++j) o[j] = x[size_t(j)];
        }
        // The state after the chunk.
        const float last = cum[size_t(L - 1)], total = std::exp(last);
        for (int64_t i = 0; i < dk * dv; ++i) S[i] = total * S0[size_t(i)];
        for (int64_t s = 0; s < L; ++s) {
          const float decay = std::exp(last - cum[size_t(s)]);
          const float* ks = &K[size_t(s * dk)];
          const float* us = &U[size_t(s * dv)];
          for (int64_t i = 0; i < dk; ++i) {
            const float ki = decay * ks[i];
            for (int64_t j = 0; j < dv; ++j) S[i * dv + j] += ki * us[j];
          }
        }
      }
    }
  });
}

}  // namespace elm::cpu
