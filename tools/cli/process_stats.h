// Memory of this process as the kernel counts it (Linux /proc/self/status; 0 elsewhere). Resident set
// size includes the pages of mapped model files that have been touched, which is what makes it the
// measure of "loading is a page-in".
#pragma once
#include <cstdint>

namespace elm::cli {

uint64_t rss_bytes();       // VmRSS: resident now
uint64_t peak_rss_bytes();  // VmHWM: the most resident so far

}  // namespace elm::cli
