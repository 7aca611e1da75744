// What `elm compile --backends cpu` stores for a CPU segment: every quantized matmul weight of the
// segment in the packed layout of qgemm.h, so that loading uses it in place (the artifact is a span
// of the mapped model file) and never repacks.
//
// Layout (little-endian):
//   "ELMCPUPK"  u32 version  u32 count
//   count entries: u32 name_len, name bytes, u8 dtype, u8 f32_scales, u16 0, u32 group, i64 n, i64 k,
//                  u64 offset, u64 size      (offset from the artifact's first byte)
//   packed weights, each starting at a multiple of 64 bytes from the artifact's start.
// The layout is the same for every ISA (AVX2, AVX-512, NEON read it), so one artifact serves all
// CPUs; the version changes whenever the packed layout does.
#pragma once
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/qgemm.h"
#include "core/thread_pool.h"

namespace elm::cpu {

constexpr uint32_t kArtifactVersion = 1;

// The quantized weights that matmul nodes of the segment read (each once, however many nodes share it).
std::vector<std::string> packable_weights(const SegmentSpec& spec);

std::vector<uint8_t> build_artifact(const SegmentSpec& spec, ThreadPool& pool);

bool is_artifact(std::span<const uint8_t> artifact);
// Tensor name -> packed view into `artifact`. Throws elm::Error when the artifact is damaged or does
// not describe the segment's weights (names, types, shapes, sizes).
std::map<std::string, PackedQ> read_artifact(std::span<const uint8_t> artifact, const WeightStore& weights);

// Packs `w` (all panels) with the active ISA's packer, on the pool.
void pack_weight(const QMatrix& w, uint8_t* out, ThreadPool& pool);
// Panels [p0, p1) only (out is still the whole packed buffer).
void pack_weight(const QMatrix& w, uint8_t* out, ThreadPool& pool, int64_t p0, int64_t p1);

}  // namespace elm::cpu
