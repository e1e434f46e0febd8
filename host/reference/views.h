// warpfuse::ref — the reference's own shape checks of its view arguments (it needs no CUDA, so it
// throws std::invalid_argument rather than warpfuse::InvalidArgument).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "warpfuse/view_types.h"

namespace warpfuse::ref::detail {

/// Throws std::invalid_argument naming `op` and `arg` unless `view` is rows x cols.
template <class T>
void require_shape(const char* op, const char* arg, const MatrixView<T>& view, std::int64_t rows,
                   std::int64_t cols) {
  if (view.rows != rows || view.cols != cols || view.ld < view.cols) {
    throw std::invalid_argument(std::string("warpfuse::ref::") + op + ": " + arg + " is " +
                                std::to_string(view.rows) + " x " + std::to_string(view.cols) +
                                " (ld " + std::to_string(view.ld) + "), not " +
                                std::to_string(rows) + " x " + std::to_string(cols));
  }
}

/// Throws std::invalid_argument naming `op` and `arg` unless `view` holds `size` elements.
template <class T>
void require_size(const char* op, const char* arg, const VectorView<T>& view, std::int64_t size) {
  if (view.size != size) {
    throw std::invalid_argument(std::string("warpfuse::ref::") + op + ": " + arg + " has " +
                                std::to_string(view.size) + " elements, not " +
                                std::to_string(size));
  }
}

}  // namespace warpfuse::ref::detail
