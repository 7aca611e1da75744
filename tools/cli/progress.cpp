#include "progress.h"

#include <unistd.h>

#include <cstdio>

namespace elm::cli {

Progress::Progress(std::string what, std::string unit)
    : what_(std::move(what)), unit_(std::move(unit)), tty_(isatty(fileno(stderr)) != 0), start_(std::chrono::steady_clock::now()) {}

double Progress::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string Progress::amount(uint64_t n) const {
  return unit_.empty() ? human_bytes(n) : std::to_string(n) + " " + unit_;
}

void Progress::update(uint64_t done, uint64_t total, const std::string& item) {
  const double frac = total ? double(done) / double(total) : 1.0;
  if (tty_) {
    const auto now = std::chrono::steady_clock::now();
    if (done < total && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    constexpr int kWidth = 30;
    const int filled = int(frac * kWidth);
    std::string bar(size_t(filled), '#');
    bar.append(size_t(kWidth - filled), '.');
    std::string shown = item.size() > 40 ? "..." + item.substr(item.size() - 37) : item;
    std::fprintf(stderr, "\r%s [%s] %3d%% %s / %s %-40s", what_.c_str(), bar.c_str(), int(frac * 100),
                 amount(done).c_str(), amount(total).c_str(), shown.c_str());
    std::fflush(stderr);
    return;
  }
  const int decile = int(frac * 10);
  if (decile == last_decile_) return;
  last_decile_ = decile;
  std::fprintf(stderr, "%s: %3d%% (%s of %s, %.1f s)\n", what_.c_str(), decile * 10, amount(done).c_str(),
               amount(total).c_str(), seconds());
}

void Progress::finish() {
  if (tty_) std::fprintf(stderr, "\n");
}

std::string human_bytes(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = double(n);
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.2f %s" : "%.0f %s", v, units[u]);
  return buf;
}

}  // namespace elm::cli
