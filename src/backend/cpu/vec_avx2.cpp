// AVX2 instantiation of the vector math (vec_impl.h).
#include "backend/cpu/simd_avx2.h"
#include "backend/cpu/vec_impl.h"

namespace elm::cpu {

const VecOps kVecOpsAvx2 = VecImpl<avx2::Simd>::table();

}  // namespace elm::cpu
