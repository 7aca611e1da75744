// The artifact `elm compile` stores for a Vulkan segment: the SPIR-V of every shader the segment uses
// (both the subgroup and the shared-memory variants, so it runs on any device). Layout, little-endian:
//   "ELMVKSPV", u32 abi, u32 count, count x { u32 name_len, name, u32 n_words, words }
// `abi` is the host/shader interface version (bindings, push constants, specialization constants):
// SPIR-V from another build is used only when it matches this one.
#pragma once
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace elm::vk {

constexpr uint32_t kShaderAbi = 1;

using ShaderSet = std::map<std::string, std::vector<uint32_t>>;

std::vector<uint8_t> write_artifact(const ShaderSet& shaders);
// Throws elm::Error when the bytes are not a well-formed artifact of this ABI, or a shader in it is not
// valid SPIR-V for Vulkan 1.2 (checked with SPIRV-Tools: drivers assume valid modules).
ShaderSet read_artifact(std::span<const uint8_t> bytes);
void validate_spirv(const std::string& name, std::span<const uint32_t> words);

}  // namespace elm::vk
