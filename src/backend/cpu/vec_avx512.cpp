// AVX-512 instantiation of the vector math (vec_impl.h).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12 and undefined intrinsic pass-throughs
#include "backend/cpu/simd_avx512.h"
#include "backend/cpu/vec_impl.h"

namespace elm::cpu {

const VecOps kVecOpsAvx512 = VecImpl<avx512::Simd>::table();

}  // namespace elm::cpu
