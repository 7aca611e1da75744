// AVX-512 instantiation of the float-weight kernels (fgemm_impl.h).
// GCC 12 warns about the deliberately undefined pass-through operand inside AVX-512 intrinsics.
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include "backend/cpu/fgemm.h"
#include "backend/cpu/fgemm_impl.h"
#include "backend/cpu/simd_avx512.h"

namespace elm::cpu {

const FKernels kFKernelsAvx512 = {FloatGemm<avx512::Simd>::gemv, FloatGemm<avx512::Simd>::gemm, nullptr};

}  // namespace elm::cpu
