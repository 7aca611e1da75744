#include "process_stats.h"

#include <cstdio>
#include <cstring>

namespace elm::cli {

namespace {
uint64_t status_kib(const char* field) {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  uint64_t v = 0;
  const size_t n = std::strlen(field);
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, field, n) == 0 && line[n] == ':') {
      unsigned long long k = 0;
      if (std::sscanf(line + n + 1, "%llu", &k) == 1) v = k;
      break;
    }
  std::fclose(f);
  return v * 1024;
}
}  // namespace

uint64_t rss_bytes() { return status_kib("VmRSS"); }
uint64_t peak_rss_bytes() { return status_kib("VmHWM"); }

}  // namespace elm::cli
