// The SPIR-V of every shader in shaders/, compiled by glslc at build time and embedded
// (shaders/embed_spirv.cmake generates the table).
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace elm::vk {

struct ShaderBlob {
  const char* name;  // file stem, plus "_sg" for the subgroup variant
  const uint32_t* words;
  size_t n_words;
};

std::span<const ShaderBlob> shader_table();

// The embedded SPIR-V named `name`; empty when there is none.
inline std::span<const uint32_t> builtin_shader(std::string_view name) {
  for (const ShaderBlob& b : shader_table())
    if (name == b.name) return {b.words, b.n_words};
  return {};
}

}  // namespace elm::vk
