#include "util.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

namespace elm::test {

std::string shared_dir() {
  if (const char* e = std::getenv("ELM_SHARED_DIR")) return e;
  return ELM_SHARED_DIR;
}
std::string shared(const std::string& rel) { return shared_dir() + "/" + rel; }
bool have_shared(const std::string& rel) { return std::filesystem::exists(shared(rel)); }
std::string source_dir() { return ELM_SOURCE_DIR; }
std::string binary_dir() { return ELM_BINARY_DIR; }

std::string temp_dir() {
  static std::string dir = [] {
    auto p = std::filesystem::temp_directory_path() / ("elm-test-" + std::to_string(getpid()));
    std::filesystem::create_directories(p);
    return p.string();
  }();
  return dir;
}

double rel_max_err(const float* a, const float* ref, size_t n) {
  double mx = 0, scale = 0;
  for (size_t i = 0; i < n; ++i) {
    mx = std::max(mx, std::fabs(double(a[i]) - double(ref[i])));
    scale = std::max(scale, std::fabs(double(ref[i])));
  }
  return scale > 0 ? mx / scale : mx;
}

}  // namespace elm::test
