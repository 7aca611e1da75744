#include "backend/cpu/cpu_features.h"

#include <cstdlib>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace elm::cpu {

namespace {

#if defined(__x86_64__) || defined(__i386__)
uint64_t xgetbv0() {
  uint32_t lo, hi;
  asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return uint64_t(hi) << 32 | lo;
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27), avx = c & (1u << 28);
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = xgetbv0();
  const bool os_avx = (xcr0 & 0x6) == 0x6;            // SSE and AVX register state
  const bool os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0;  // opmask, ZMM0-15 upper halves, ZMM16-31
  if (!os_avx) return f;
  f.fma = c & (1u << 12);
  f.f16c = c & (1u << 29);
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  f.avx2 = b & (1u << 5);
  f.bmi2 = b & (1u << 8);
  if (os_avx512) {
    f.avx512f = b & (1u << 16);
    f.avx512dq = b & (1u << 17);
    f.avx512bw = b & (1u << 30);
    f.avx512vl = b & (1u << 31);
    f.avx512vnni = c & (1u << 11);
    unsigned a1, b1, c1, d1;
    if (__get_cpuid_count(7, 1, &a1, &b1, &c1, &d1)) f.avx512bf16 = a1 & (1u << 5);
  }
  return f;
}
#else
CpuFeatures detect() {
  CpuFeatures f;
#if defined(__aarch64__)
  f.neon = true;
#endif
  return f;
}
#endif

bool compiled_in(Isa isa) {
  switch (isa) {
    case Isa::Generic: return true;
#if defined(__x86_64__)
    case Isa::Avx2:
    case Isa::Avx512: return true;
#endif
#if defined(__aarch64__)
    case Isa::Neon: return true;
#endif
    default: return false;
  }
}

bool supported(Isa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case Isa::Generic: return true;
    case Isa::Avx2: return f.avx2 && f.fma && f.f16c && f.bmi2;
    case Isa::Avx512:
      return f.avx2 && f.fma && f.f16c && f.bmi2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vnni;
    case Isa::Neon: return f.neon;
  }
  return false;
}

Isa choose() {
  const std::vector<Isa> isas = available_isas();
  if (const char* env = std::getenv("ELM_CPU_ISA")) {
    for (Isa i : isas)
      if (isa_name(i) == env) return i;
  }
  return isas.front();
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::Generic: return "generic";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
    case Isa::Neon: return "neon";
  }
  return "?";
}

std::vector<Isa> available_isas() {
  std::vector<Isa> out;
  for (Isa i : {Isa::Avx512, Isa::Avx2, Isa::Neon, Isa::Generic})
    if (compiled_in(i) && supported(i)) out.push_back(i);
  return out;
}

Isa active_isa() {
  static const Isa isa = choose();
  return isa;
}

}  // namespace elm::cpu
