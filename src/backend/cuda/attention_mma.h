// Prefill attention on the tensor cores (attention_mma.cu), tried by attention() before the float32
// tiled kernel.
#pragma once
#include "backend/cuda/kernels.h"

namespace elm::cuda {

// Runs the attention of a one-sequence step and returns true when it takes these arguments: an f16
// cache, a.tensor_cores, head_dim == v_head_dim in {64, 128}. Otherwise leaves it to the caller.
bool attention_prefill_mma(const AttnArgs& a, const KvView& kv, const int32_t* positions, const int32_t* seqs,
                           cudaStream_t s);

}  // namespace elm::cuda
