// aarch64 Advanced SIMD instantiation of the float-weight kernels (fgemm_impl.h).
#include "backend/cpu/fgemm.h"
#include "backend/cpu/fgemm_impl.h"
#include "backend/cpu/simd_neon.h"

namespace elm::cpu {

const FKernels kFKernelsNeon = {FloatGemm<neon::Simd>::gemv, FloatGemm<neon::Simd>::gemm, nullptr, nullptr};

}  // namespace elm::cpu
