// warpfuse — RAII device memory and copies between host and device.
//
// DeviceBuffer<T> owns count elements from cudaMalloc; it is move-only and frees in its destructor.
// The copy helpers are synchronous unless they take a stream; they throw warpfuse::CudaError.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "warpfuse/error.h"
#include "warpfuse/view.h"

namespace warpfuse {

template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  /// Allocates count elements (nothing for count == 0). The contents are unspecified.
  explicit DeviceBuffer(std::size_t count) : size_(count) {
    if (count > 0) {
      void* ptr = nullptr;
      WARPFUSE_CUDA_CHECK(cudaMalloc(&ptr, count * sizeof(T)));
      data_ = static_cast<T*>(ptr);
    }
  }
  ~DeviceBuffer() { reset(); }

  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      reset();
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }

  T* data() noexcept { return data_; }
  const T* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  std::size_t bytes() const noexcept { return size_ * sizeof(T); }
  bool empty() const noexcept { return size_ == 0; }

  /// Frees the memory now. Errors from cudaFree are ignored: a destructor must not throw, and the
  /// only failures left at this point are a context that is already broken.
  void reset() noexcept {
    if (data_ != nullptr) static_cast<void>(cudaFree(data_));
    data_ = nullptr;
    size_ = 0;
  }

  /// The buffer as a rows x cols matrix with row stride ld (default cols); throws InvalidArgument
  /// when that matrix does not fit in the buffer.
  MatrixView<T> view(std::int64_t rows, std::int64_t cols, std::int64_t ld = -1) {
    return make_view<T>(data_, rows, cols, ld);
  }
  MatrixView<const T> view(std::int64_t rows, std::int64_t cols, std::int64_t ld = -1) const {
    return make_view<const T>(data_, rows, cols, ld);
  }
  VectorView<T> vector() { return {data_, static_cast<std::int64_t>(size_)}; }
  VectorView<const T> vector() const { return {data_, static_cast<std::int64_t>(size_)}; }

  /// Sets every byte to `value` (0xFF makes every float, half and bfloat16 element a NaN).
  void fill_bytes(int value, cudaStream_t stream = nullptr) {
    if (size_ > 0) WARPFUSE_CUDA_CHECK(cudaMemsetAsync(data_, value, bytes(), stream));
  }
  /// Copies host[0, count) to the start of the buffer and waits for the copy.
  void copy_from_host(const T* host, std::size_t count) {
    check_count("copy_from_host", count);
    if (count > 0) {
      WARPFUSE_CUDA_CHECK(cudaMemcpy(data_, host, count * sizeof(T), cudaMemcpyHostToDevice));
    }
  }
  void copy_from_host(const std::vector<T>& host) { copy_from_host(host.data(), host.size()); }
  /// Copies the start of the buffer to host[0, count) and waits for the copy.
  void copy_to_host(T* host, std::size_t count) const {
    check_count("copy_to_host", count);
    if (count > 0) {
      WARPFUSE_CUDA_CHECK(cudaMemcpy(host, data_, count * sizeof(T), cudaMemcpyDeviceToHost));
    }
  }
  /// The whole buffer, copied to the host.
  std::vector<T> to_host() const {
    std::vector<T> host(size_);
    copy_to_host(host.data(), size_);
    return host;
  }

 private:
  template <class V>
  MatrixView<V> make_view(V* data, std::int64_t rows, std::int64_t cols, std::int64_t ld) const {
    if (ld < 0) ld = cols;
    MatrixView<V> result(data, rows, cols, ld);
    detail::check_view("DeviceBuffer::view", "view", result);
    const std::int64_t needed = rows == 0 ? 0 : (rows - 1) * ld + cols;
    if (needed > static_cast<std::int64_t>(size_)) {
      throw InvalidArgument("DeviceBuffer::view", "view",
                            "a " + std::to_string(rows) + " x " + std::to_string(cols) +
                                " matrix with ld = " + std::to_string(ld) + " needs " +
                                std::to_string(needed) + " elements but the buffer holds " +
                                std::to_string(size_));
    }
    return result;
  }
  void check_count(const char* op, std::size_t count) const {
    if (count > size_) {
      throw InvalidArgument(
          std::string("DeviceBuffer::") + op, "count",
          std::to_string(count) + " exceeds the buffer's " + std::to_string(size_) + " elements");
    }
  }

  T* data_ = nullptr;
  std::size_t size_ = 0;
};

/// A new device buffer holding a copy of `host`.
template <class T>
DeviceBuffer<T> to_device(const std::vector<T>& host) {
  DeviceBuffer<T> buffer(host.size());
  buffer.copy_from_host(host);
  return buffer;
}

}  // namespace warpfuse
