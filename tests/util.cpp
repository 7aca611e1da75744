#include "util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

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

std::vector<GreedyRef> ref28m_greedy() {
  std::ifstream f(shared("models/ref-28m/reference.json"));
  const nlohmann::json j = nlohmann::json::parse(f);
  std::vector<GreedyRef> refs;
  for (const auto& g : j["greedy"])
    refs.push_back({g["prompt_ids"].get<std::vector<int32_t>>(), g["greedy_ids"].get<std::vector<int32_t>>()});
  return refs;
}

CliResult run_elm(const std::string& args) {
  CliResult r;
  FILE* p = popen((binary_dir() + "/bin/elm " + args + " 2>&1").c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int st = pclose(p);
  r.signaled = WIFSIGNALED(st);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

}  // namespace elm::test
