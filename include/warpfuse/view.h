// warpfuse — non-owning views of device memory (<warpfuse/view_types.h>), and the one argument
// check every op uses.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>

#include "warpfuse/error.h"
#include "warpfuse/view_types.h"

namespace warpfuse {

namespace detail {

/// Throws InvalidArgument unless `data` is aligned to its element type (a misaligned typed
/// pointer would fault on the GPU, cudaErrorMisalignedAddress, and poison the context).
template <class T>
void check_element_aligned(const char* op, const char* arg, const T* data) {
  if (reinterpret_cast<std::uintptr_t>(data) % alignof(T) != 0) {
    throw InvalidArgument(
        op, arg,
        "data is not aligned to its element size (" + std::to_string(alignof(T)) + " bytes)");
  }
}

/// The single argument check of every op: non-negative sizes, ld >= cols, rows * ld addressable in
/// 64 bits, a non-null pointer whenever the matrix holds an element, and element alignment.
/// Throws InvalidArgument naming `op` and `arg` with the offending values.
template <class T>
void check_view(const char* op, const char* arg, const MatrixView<T>& view) {
  const auto value = [](const char* name, std::int64_t v) {
    return std::string(name) + " = " + std::to_string(v);
  };
  if (view.rows < 0) throw InvalidArgument(op, arg, value("rows", view.rows) + " is negative");
  if (view.cols < 0) throw InvalidArgument(op, arg, value("cols", view.cols) + " is negative");
  if (view.ld < view.cols) {
    throw InvalidArgument(op, arg,
                          value("ld", view.ld) + " is less than " + value("cols", view.cols) +
                              " (the row stride must be at least the row length)");
  }
  if (view.rows > 0 && view.ld > 0 &&
      view.ld > std::numeric_limits<std::int64_t>::max() / view.rows) {
    throw InvalidArgument(
        op, arg,
        value("rows", view.rows) + " times " + value("ld", view.ld) + " overflows 64-bit indexing");
  }
  if (view.data == nullptr && !view.empty()) {
    throw InvalidArgument(op, arg,
                          "data is null but the matrix has " + value("rows", view.rows) + ", " +
                              value("cols", view.cols));
  }
  check_element_aligned(op, arg, view.data);
}

template <class T>
void check_view(const char* op, const char* arg, const VectorView<T>& view) {
  if (view.size < 0) {
    throw InvalidArgument(op, arg, "size = " + std::to_string(view.size) + " is negative");
  }
  if (view.data == nullptr && view.size > 0) {
    throw InvalidArgument(op, arg, "data is null but size = " + std::to_string(view.size));
  }
  check_element_aligned(op, arg, view.data);
}

/// Throws InvalidArgument naming `op` and `arg` unless `view` has the shape of `reference`.
template <class T, class U>
void check_same_shape(const char* op, const char* arg, const MatrixView<T>& view,
                      const char* reference_name, const MatrixView<U>& reference) {
  if (view.rows != reference.rows || view.cols != reference.cols) {
    throw InvalidArgument(op, arg,
                          "shape " + std::to_string(view.rows) + " x " + std::to_string(view.cols) +
                              " does not match " + reference_name + "'s " +
                              std::to_string(reference.rows) + " x " +
                              std::to_string(reference.cols));
  }
}

/// Throws InvalidArgument naming `op` and `out_arg` when the output `out` shares memory with the
/// input `in` other than as the very same matrix (same pointer, row stride and element size: an
/// in-place call). Column slices of one wider matrix (same ld, disjoint columns) are fine.
template <class T, class U>
void check_alias(const char* op, const char* out_arg, const MatrixView<T>& out, const char* in_arg,
                 const MatrixView<U>& in) {
  if (out.empty() || in.empty()) return;
  const auto begin = [](const auto& v) { return reinterpret_cast<std::uintptr_t>(v.data); };
  const auto end = [](const auto& v) {
    return reinterpret_cast<std::uintptr_t>(v.data + ((v.rows - 1) * v.ld + v.cols));
  };
  if (begin(out) >= end(in) || begin(in) >= end(out)) return;
  if (sizeof(T) == sizeof(U) && out.ld == in.ld) {
    if (begin(out) == begin(in)) return;
    const auto bytes = static_cast<std::intptr_t>(begin(out) - begin(in));
    if (bytes % static_cast<std::intptr_t>(sizeof(T)) == 0) {
      const std::int64_t shift = bytes / static_cast<std::intptr_t>(sizeof(T));
      const std::int64_t col_shift = ((shift % in.ld) + in.ld) % in.ld;
      if (col_shift >= in.cols && col_shift + out.cols <= in.ld) return;
    }
  }
  throw InvalidArgument(op, out_arg,
                        std::string("overlaps '") + in_arg +
                            "' without being the same matrix (an in-place call passes the same "
                            "pointer and ld for both)");
}

}  // namespace detail
}  // namespace warpfuse
