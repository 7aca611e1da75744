// Declarations every elm compute shader shares: the workgroup size (specialization constant 0) and the
// binding numbers of the one descriptor layout all pipelines use (vk_pipelines.h, enum Binding).
#extension GL_EXT_control_flow_attributes : enable

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;

#define B_W 0     // weight matrix (raw elm layout, read as 32-bit words)
#define B_X 1     // main input activation
#define B_Y 2     // output activation
#define B_Y1 3    // second output (fused matvec)
#define B_Y2 4    // third output (fused matvec)
#define B_R 5     // second input (residual, binary operand, v for the kv write)
#define B_V0 6    // float32 vector weight (norm weight, inv_freq, broadcast operand)
#define B_V1 7    // float32 vector weight (bias)
#define B_STEP 8  // the step: tokens, positions, seqs, output rows (int32, max_batch each)
#define B_KC 9    // key cache   [seqs][kv_heads][cap][head_dim]
#define B_VC 10   // value cache [seqs][kv_heads][cap][v_head_dim]
#define B_POS 11  // position of every cache slot [seqs][cap], -1 when empty

// tanh that stays finite for large |x| on every driver (tanh(10) is 1 in float32).
float tanh_safe(float x) { return tanh(clamp(x, -10.0, 10.0)); }
