// Workgroup-wide sum and max. USE_SUBGROUP: subgroup arithmetic, then one shared-memory step across
// subgroups; otherwise a shared-memory tree (WG must be a power of two). Every invocation of the
// workgroup must call these (they contain barriers) and gets the result.
#ifdef USE_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif

shared float red_scratch[WG];

float wg_sum(float v) {
#ifdef USE_SUBGROUP
  v = subgroupAdd(v);
  if (gl_NumSubgroups == 1) return v;
  barrier();  // red_scratch may still be read by the previous call
  if (subgroupElect()) red_scratch[gl_SubgroupID] = v;
  barrier();
  float s = 0.0;
  for (uint i = 0; i < gl_NumSubgroups; ++i) s += red_scratch[i];
  return s;
#else
  const uint tid = gl_LocalInvocationID.x;
  barrier();
  red_scratch[tid] = v;
  barrier();
  for (uint s = WG / 2; s > 0; s >>= 1) {
    if (tid < s) red_scratch[tid] += red_scratch[tid + s];
    barrier();
  }
  return red_scratch[0];
#endif
}

float wg_max(float v) {
#ifdef USE_SUBGROUP
  v = subgroupMax(v);
  if (gl_NumSubgroups == 1) return v;
  barrier();
  if (subgroupElect()) red_scratch[gl_SubgroupID] = v;
  barrier();
  float m = red_scratch[0];
  for (uint i = 1; i < gl_NumSubgroups; ++i) m = max(m, red_scratch[i]);
  return m;
#else
  const uint tid = gl_LocalInvocationID.x;
  barrier();
  red_scratch[tid] = v;
  barrier();
  for (uint s = WG / 2; s > 0; s >>= 1) {
    if (tid < s) red_scratch[tid] = max(red_scratch[tid], red_scratch[tid + s]);
    barrier();
  }
  return red_scratch[0];
#endif
}
