// warpfuse host — the argument checks the op families share beyond a view's own (include/warpfuse/
// view.h): disjoint outputs and the caller's workspace.
#include <cstdint>
#include <cstdio>
#include <string>

#include "host/cuda/common.h"
#include "warpfuse/error.h"
#include "warpfuse/workspace.h"

namespace warpfuse::detail {

ByteSpan span_of(const Workspace& workspace) {
  if (workspace.data == nullptr || workspace.bytes == 0) return {};
  const auto begin = reinterpret_cast<std::uintptr_t>(workspace.data);
  return {begin, begin + workspace.bytes};
}

void check_disjoint(const char* op, const char* out_arg, ByteSpan out, const char* other_arg,
                    ByteSpan other) {
  if (out.begin == out.end || other.begin == other.end) return;
  if (out.begin < other.end && other.begin < out.end) {
    throw InvalidArgument(op, out_arg,
                          std::string("overlaps '") + other_arg + "' (it must not share memory)");
  }
}

void check_workspace(const char* op, const Workspace& workspace, std::size_t needed,
                     const char* query) {
  if (workspace.data == nullptr || workspace.bytes < needed) {
    throw InvalidArgument(op, "workspace",
                          "holds " + std::to_string(workspace.bytes) + " bytes" +
                              (workspace.data == nullptr ? " at a null pointer" : "") + " but " +
                              query + " = " + std::to_string(needed) + " are needed");
  }
  if (reinterpret_cast<std::uintptr_t>(workspace.data) % kWorkspaceAlignment != 0) {
    throw InvalidArgument(op, "workspace",
                          "data must be " + std::to_string(kWorkspaceAlignment) +
                              "-byte aligned (as cudaMalloc's is)");
  }
}

}  // namespace warpfuse::detail
