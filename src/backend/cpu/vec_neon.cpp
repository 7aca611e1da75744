// aarch64 Advanced SIMD instantiation of the vector math (vec_impl.h).
#include "backend/cpu/simd_neon.h"
#include "backend/cpu/vec_impl.h"

namespace elm::cpu {

const VecOps kVecOpsNeon = VecImpl<neon::Simd>::table();

}  // namespace elm::cpu
