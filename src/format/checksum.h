// CRC-32C (Castagnoli), the checksum of .elm sections and tensors. Hardware-accelerated with SSE4.2
// where the CPU has it (about 10 GB/s), table-driven otherwise (about 1 GB/s).
#pragma once
#include <cstddef>
#include <cstdint>

namespace elm {

// crc32c(data, n, crc32c(prefix)) == crc32c(prefix + data): feed a stream in pieces starting from 0.
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);

}  // namespace elm
