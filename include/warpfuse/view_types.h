// warpfuse — non-owning views of memory: the ops' device matrices and vectors, and the CPU
// reference's host ones. No CUDA needed (the reference library includes this alone).
//
// A MatrixView is a rows x cols row-major matrix whose rows start ld elements apart (ld >= cols),
// so element (row, col) lives at data[row * ld + col]. Sizes are 64-bit: rows * ld may pass 2^31.
// Views never own memory; they are passed by value.
#pragma once

#include <cstdint>
#include <type_traits>

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

}  // namespace warpfuse
