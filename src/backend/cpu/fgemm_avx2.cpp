// AVX2 + FMA + F16C instantiation of the float-weight kernels (fgemm_impl.h).
#include "backend/cpu/fgemm.h"
#include "backend/cpu/fgemm_impl.h"
#include "backend/cpu/simd_avx2.h"

namespace elm::cpu {

const FKernels kFKernelsAvx2 = {FloatGemm<avx2::Simd>::gemv, FloatGemm<avx2::Simd>::gemm, nullptr, nullptr};

}  // namespace elm::cpu
