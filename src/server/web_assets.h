// The web GUI's files (web/), compiled into the binary by cmake/embed_files.cmake so `elm serve`
// needs nothing beside itself.
#pragma once
#include <cstddef>
#include <span>

namespace elm::server {

struct WebAsset {
  const char* path;  // "/index.html"
  const char* mime;
  const unsigned char* data;
  size_t size;
};

std::span<const WebAsset> web_assets();

}  // namespace elm::server
