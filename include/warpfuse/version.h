// warpfuse — library version. CMake's project(VERSION) must agree; a test checks that it does.
#pragma once

#define WARPFUSE_VERSION_MAJOR 0
#define WARPFUSE_VERSION_MINOR 1
#define WARPFUSE_VERSION_PATCH 0
#define WARPFUSE_VERSION_STRING "0.1.0"

namespace warpfuse {

/// The version this header belongs to, "major.minor.patch".
constexpr const char* kVersion = WARPFUSE_VERSION_STRING;

}  // namespace warpfuse
