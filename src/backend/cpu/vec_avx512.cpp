// AVX-512 instantiation of the vector math (vec_impl.h).
#if !defined(__clang__)  // GCC 12 and undefined intrinsic pass-throughs
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include "backend/cpu/simd_avx512.h"
#include "backend/cpu/vec_impl.h"

namespace elm::cpu {

const VecOps kVecOpsAvx512 = VecImpl<avx512::Simd>::table();

}  // namespace elm::cpu
