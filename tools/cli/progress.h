// Progress reporting for long commands: a redrawn bar on a terminal, a plain line per 10% otherwise
// (logs and CI output stay readable).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace elm::cli {

class Progress {
 public:
  // unit: "" counts bytes (shown as KiB, MiB...); any other word is printed after plain counts.
  explicit Progress(std::string what, std::string unit = "");
  void update(uint64_t done, uint64_t total, const std::string& item);
  void finish();
  double seconds() const;

 private:
  std::string amount(uint64_t n) const;
  std::string what_, unit_;
  bool tty_;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

std::string human_bytes(uint64_t n);  // "1.23 GiB"

}  // namespace elm::cli
