// warpfuse — non-owning views of device memory, and the one argument check every op uses.
//
// A MatrixView is a rows x cols row-major matrix whose rows start ld elements apart (ld >= cols),
// so element (row, col) lives at data[row * ld + col]. Sizes are 64-bit: rows * ld may pass 2^31.
// Views never own memory; they are passed by value.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>

#include "warpfuse/error.h"

namespace warpfuse {

template <class T>
struct MatrixView {
  T* data = nullptr;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::int64_t ld = 0;  ///< row stride in elements

  constexpr MatrixView() = default;
  /// A densely packed matrix (ld = cols).
  constexpr MatrixView(T* data_, std::int64_t rows_, std::int64_t cols_)
      : data(data_), rows(rows_), cols(cols_), ld(cols_) {}
  constexpr MatrixView(T* data_, std::int64_t rows_, std::int64_t cols_, std::int64_t ld_)
      : data(data_), rows(rows_), cols(cols_), ld(ld_) {}

  /// A view of T converts to a view of const T.
  template <class U, class = std::enable_if_t<std::is_same_v<const U, T> && !std::is_same_v<U, T>>>
  constexpr MatrixView(const MatrixView<U>& other)  // NOLINT(google-explicit-constructor)
      : data(other.data), rows(other.rows), cols(other.cols), ld(other.ld) {}

  constexpr std::int64_t size() const { return rows * cols; }
  constexpr bool empty() const { return rows == 0 || cols == 0; }
  /// Rows follow each other without gaps, so the matrix is one array of size() elements.
  constexpr bool contiguous() const { return ld == cols || rows <= 1; }
};

/// A contiguous array of size elements.
template <class T>
struct VectorView {
  T* data = nullptr;
  std::int64_t size = 0;

  constexpr VectorView() = default;
  constexpr VectorView(T* data_, std::int64_t size_) : data(data_), size(size_) {}
  template <class U, class = std::enable_if_t<std::is_same_v<const U, T> && !std::is_same_v<U, T>>>
  constexpr VectorView(const VectorView<U>& other)  // NOLINT(google-explicit-constructor)
      : data(other.data), size(other.size) {}
  constexpr bool empty() const { return size == 0; }
};

/// T in a context that takes no part in template argument deduction. Every op deduces its
/// storage type from its outputs (mutable views of exactly T) and takes its inputs as
/// nondeduced_t<MatrixView<const T>>, so a view of T converts to a view of const T as an ordinary
/// parameter: one declaration per op serves const and mutable inputs alike (an in-place call
/// passes one view twice).
template <class T>
struct nondeduced {
  using type = T;
};
template <class T>
using nondeduced_t = typename nondeduced<T>::type;

namespace detail {

/// The single argument check of every op: non-negative sizes, ld >= cols, rows * ld addressable in
/// 64 bits, and a non-null pointer whenever the matrix holds an element. Throws InvalidArgument
/// naming `op` and `arg` with the offending values.
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
