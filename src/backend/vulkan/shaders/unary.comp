#version 450
// y = f(x) elementwise over n values. op: 0 silu, 1 gelu (erf), 2 gelu (tanh), 3 sigmoid, 4 softplus,
// 5 tanh, 6 scale (x * param), 7 softcap (param * tanh(x / param)).
#include "common.glsl"
#include "erf.glsl"

layout(std430, binding = B_X) readonly buffer XS { float X[]; };
layout(std430, binding = B_Y) writeonly buffer YS { float Y[]; };

layout(push_constant) uniform Params {
  uint n, op;
  float param;
} p;

// log(1 + u) without losing u when it is tiny (Goldberg's correction).
float log1p_accurate(float u) {
  const float w = 1.0 + u;
  return w == 1.0 ? u : log(w) * u / (w - 1.0);
}

float f(float x) {
  switch (p.op) {
    case 0u: return x / (1.0 + exp(-x));
    case 1u: return 0.5 * x * (1.0 + erf_approx(x * 0.7071067811865476));
    case 2u: return 0.5 * x * (1.0 + tanh_safe(0.7978845608028654 * (x + 0.044715 * x * x * x)));
    case 3u: return 1.0 / (1.0 + exp(-x));
    case 4u: return x > 20.0 ? x : log1p_accurate(exp(x));  // torch's threshold
    case 5u: return tanh_safe(x);
    case 6u: return x * p.param;
    default: return p.param * tanh_safe(x / p.param);
  }
}

void main() {
  const uint stride = gl_NumWorkGroups.x * WG;
  for (uint i = gl_GlobalInvocationID.x; i < p.n; i += stride) Y[i] = f(X[i]);
}
