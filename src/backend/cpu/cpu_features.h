// What the CPU we run on can do, and which kernel family (ISA level) to use.
//
// Kernels come in families compiled with different instruction sets (files *_avx2.cpp, *_avx512.cpp,
// *_neon.cpp; see src/CMakeLists.txt). A family is only called when cpuid (and the OS, for the
// register state) says the CPU supports everything its files were compiled with.
#pragma once
#include <string_view>
#include <vector>

namespace elm::cpu {

struct CpuFeatures {
  // x86
  bool avx2 = false, fma = false, f16c = false, bmi2 = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512vnni = false, avx512bf16 = false;
  // ARM
  bool neon = false;
};

// Detected once (cpuid + xgetbv on x86; NEON is part of every aarch64 CPU).
const CpuFeatures& cpu_features();

enum class Isa {
  Generic,  // plain C++: the reference kernels
  Avx2,     // AVX2 + FMA + F16C (+ BMI2)
  Avx512,   // AVX-512 F/BW/VL/DQ + VNNI; BF16 dot products when avx512bf16 is also present
  Neon,     // aarch64 Advanced SIMD
};

std::string_view isa_name(Isa isa);
// Families compiled into this build that this CPU can run, best first; Generic is always last.
std::vector<Isa> available_isas();
// The family kernels use: the best available, unless the environment variable ELM_CPU_ISA names
// another available one (generic, avx2, avx512, neon), which benchmarks and tests use to compare.
Isa active_isa();

}  // namespace elm::cpu
