// warpfuse benchmarks — softmax and log-softmax, forward and backward (the method of measuring is
// in bench_common.h).
//
// Cases: op x dtype (f32, f16, bf16) x implementation x cols = 32, 64, ..., 262144, where op is
// softmax, log_softmax, softmax_backward or log_softmax_backward and the implementation is
//   warp, block, online  warpfuse with that strategy forced, where it can hold the row (warp up to
//                        kSoftmaxWarpMaxCols; block up to softmax_block_max_cols, half that for
//                        the backward, which caches two rows)
//   cluster              the cluster strategy forced, from 16384 columns on compute capability 9.0
//                        (on the emulator too, which models a Hopper's clusters)
//   automatic            warpfuse's own choice (the forward's label names it)
//   naive                the unfused baseline below: row max, row exp-sum and normalise kernels
//                        (forward, 3 reads of x), or row dot and elementwise kernels (backward,
//                        2 reads of y and dy); fp32 arithmetic, one block per row
//   cudnn                cudnnSoftmaxForward / cudnnSoftmaxBackward with CUDNN_SOFTMAX_ACCURATE
//                        (softmax) or CUDNN_SOFTMAX_LOG (log_softmax), instance mode over an
//                        N = rows, C = cols, H = W = 1 tensor; only when cuDNN was found at
//                        configure time (WARPFUSE_BENCH_HAVE_CUDNN)
// Bytes moved per launch: forward reads x and writes y, 2 x rows x cols x sizeof(T); backward
// reads y and dy and writes dx, 3 x rows x cols x sizeof(T). Inputs: x uniform in [-4, 4); for
// the backward y = softmax(x) or log_softmax(x) (naive forward) and dy uniform in [-1, 1). Every
// implementation of one (op, dtype, cols) sees the same inputs. scale = 1 (cuDNN has none).
//
// --rows-sweep replaces all of this with the long-row sweep: softmax and softmax_backward in bf16,
// cluster vs online vs automatic, at every (cols, rows) of rows_sweep_shapes() (16384..262144
// columns x 1..16384 rows), named "<op>/bf16/<impl>/<cols>/rows=<rows>".
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "bench/bench_common.h"
#include "warpfuse/memory.h"
#include "warpfuse/ref/softmax.h"
#include "warpfuse/softmax.h"

#if defined(WARPFUSE_BENCH_HAVE_CUDNN)
#include <cudnn.h>
#endif

namespace warpfuse::bench {
namespace {

enum class Op { softmax, log_softmax, softmax_backward, log_softmax_backward };
constexpr Op kOps[] = {Op::softmax, Op::log_softmax, Op::softmax_backward,
                       Op::log_softmax_backward};

const char* op_name(Op op) {
  switch (op) {
    case Op::softmax:
      return "softmax";
    case Op::log_softmax:
      return "log_softmax";
    case Op::softmax_backward:
      return "softmax_backward";
    case Op::log_softmax_backward:
      return "log_softmax_backward";
  }
  return "unknown";
}
bool is_backward(Op op) {
  return op == Op::softmax_backward || op == Op::log_softmax_backward;
}
bool is_log(Op op) {
  return op == Op::log_softmax || op == Op::log_softmax_backward;
}

enum class Impl { warp, block, online, cluster, automatic, naive, cudnn };
constexpr Impl kImpls[] = {Impl::warp,      Impl::block, Impl::online, Impl::cluster,
                           Impl::automatic, Impl::naive, Impl::cudnn};

const char* impl_name(Impl impl) {
  switch (impl) {
    case Impl::warp:
      return "warp";
    case Impl::block:
      return "block";
    case Impl::online:
      return "online";
    case Impl::cluster:
      return "cluster";
    case Impl::automatic:
      return "automatic";
    case Impl::naive:
      return "naive";
    case Impl::cudnn:
      return "cudnn";
  }
  return "unknown";
}

SoftmaxStrategy strategy_of(Impl impl) {
  switch (impl) {
    case Impl::warp:
      return SoftmaxStrategy::warp;
    case Impl::block:
      return SoftmaxStrategy::block;
    case Impl::online:
      return SoftmaxStrategy::online;
    case Impl::cluster:
      return SoftmaxStrategy::cluster;
    default:
      return SoftmaxStrategy::automatic;
  }
}

// --- the naive baseline ----------------------------------------------------------------------

struct MaxOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct SumOp {
  __device__ float operator()(float a, float b) const { return a + b; }
};

/// Grid-stride over rows, a block of kNaiveThreads per row: row_max[row] = max_col x[row, col].
template <class T>
__global__ void naive_row_max_kernel(const T* __restrict__ x, std::int64_t rows, std::int64_t cols,
                                     float* __restrict__ row_max) {
  for (std::int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    float value = -INFINITY;
    for (std::int64_t col = threadIdx.x; col < cols; col += blockDim.x) {
      value = fmaxf(value, to_float(x[row * cols + col]));
    }
    value = naive_block_reduce(value, MaxOp{});
    if (threadIdx.x == 0) row_max[row] = value;
  }
}

/// Grid-stride over rows, a block per row: row_sum[row] = sum_col exp(x[row, col] - row_max[row]).
template <class T>
__global__ void naive_row_exp_sum_kernel(const T* __restrict__ x, std::int64_t rows,
                                         std::int64_t cols, const float* __restrict__ row_max,
                                         float* __restrict__ row_sum) {
  for (std::int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float max = row_max[row];
    float value = 0.0f;
    for (std::int64_t col = threadIdx.x; col < cols; col += blockDim.x) {
      value += expf(to_float(x[row * cols + col]) - max);
    }
    value = naive_block_reduce(value, SumOp{});
    if (threadIdx.x == 0) row_sum[row] = value;
  }
}

/// Grid-stride over all elements: y = exp(x - max) / sum, or x - max - log(sum) (kLog).
template <class T, bool kLog>
__global__ void naive_normalise_kernel(const T* __restrict__ x, std::int64_t elements,
                                       std::int64_t cols, const float* __restrict__ row_max,
                                       const float* __restrict__ row_sum, T* __restrict__ y) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < elements; i += stride) {
    const std::int64_t row = i / cols;
    const float shifted = to_float(x[i]) - row_max[row];
    y[i] = from_float<T>(kLog ? shifted - logf(row_sum[row]) : expf(shifted) / row_sum[row]);
  }
}

/// Grid-stride over rows, a block per row: dot[row] = sum_col dy * y (softmax) or sum_col dy
/// (log_softmax).
template <class T, bool kLog>
__global__ void naive_row_dot_kernel(const T* __restrict__ y, const T* __restrict__ dy,
                                     std::int64_t rows, std::int64_t cols,
                                     float* __restrict__ dot) {
  for (std::int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    float value = 0.0f;
    for (std::int64_t col = threadIdx.x; col < cols; col += blockDim.x) {
      const std::int64_t i = row * cols + col;
      value += kLog ? to_float(dy[i]) : to_float(dy[i]) * to_float(y[i]);
    }
    value = naive_block_reduce(value, SumOp{});
    if (threadIdx.x == 0) dot[row] = value;
  }
}

/// Grid-stride over all elements: dx = y (dy - dot) (softmax) or dy - exp(y) dot (log_softmax).
template <class T, bool kLog>
__global__ void naive_backward_kernel(const T* __restrict__ y, const T* __restrict__ dy,
                                      std::int64_t elements, std::int64_t cols,
                                      const float* __restrict__ dot, T* __restrict__ dx) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < elements; i += stride) {
    const float out = to_float(y[i]);
    const float grad = to_float(dy[i]);
    const float row_dot = dot[i / cols];
    dx[i] = from_float<T>(kLog ? grad - expf(out) * row_dot : out * (grad - row_dot));
  }
}

/// The unfused softmax: one kernel per step, per-row statistics in fp32 device arrays.
template <class T>
class NaiveSoftmax {
 public:
  explicit NaiveSoftmax(std::int64_t rows)
      : rows_(rows),
        first_(static_cast<std::size_t>(rows)),
        second_(static_cast<std::size_t>(rows)) {}

  void forward(bool log, const T* x, T* y, std::int64_t cols) {
    const std::int64_t elements = rows_ * cols;
    detail::launch(naive_row_config(rows_), "naive_row_max_kernel", naive_row_max_kernel<T>, x,
                   rows_, cols, first_.data());
    detail::launch(naive_row_config(rows_), "naive_row_exp_sum_kernel", naive_row_exp_sum_kernel<T>,
                   x, rows_, cols, first_.data(), second_.data());
    detail::launch(elementwise_config(elements), "naive_normalise_kernel",
                   log ? naive_normalise_kernel<T, true> : naive_normalise_kernel<T, false>, x,
                   elements, cols, first_.data(), second_.data(), y);
  }

  void backward(bool log, const T* y, const T* dy, T* dx, std::int64_t cols) {
    const std::int64_t elements = rows_ * cols;
    detail::launch(naive_row_config(rows_), "naive_row_dot_kernel",
                   log ? naive_row_dot_kernel<T, true> : naive_row_dot_kernel<T, false>, y, dy,
                   rows_, cols, first_.data());
    detail::launch(elementwise_config(elements), "naive_backward_kernel",
                   log ? naive_backward_kernel<T, true> : naive_backward_kernel<T, false>, y, dy,
                   elements, cols, first_.data(), dx);
  }

 private:
  std::int64_t rows_;
  DeviceBuffer<float> first_;   // row max (forward) or row dot (backward)
  DeviceBuffer<float> second_;  // row exp-sum (forward)
};

// --- cuDNN -----------------------------------------------------------------------------------
#if defined(WARPFUSE_BENCH_HAVE_CUDNN)

/// Throws with the call and cuDNN's status name; a status saying cuDNN does not offer this
/// configuration (a dtype, on this GPU) makes the case "unsupported", not failed.
void check_cudnn(cudnnStatus_t status, const char* call) {
  if (status == CUDNN_STATUS_SUCCESS) return;
#if CUDNN_MAJOR >= 9
  const bool not_supported = status >= CUDNN_STATUS_NOT_SUPPORTED && status < 4000;
#else
  const bool not_supported = status == CUDNN_STATUS_NOT_SUPPORTED;
#endif
  throw std::runtime_error(std::string(not_supported ? kUnsupported : "") + "cuDNN: " + call +
                           " returned " + cudnnGetErrorString(status));
}
#define BENCH_CUDNN_CHECK(call) check_cudnn((call), #call)

cudnnHandle_t cudnn_handle() {
  static cudnnHandle_t handle = [] {
    cudnnHandle_t created = nullptr;
    BENCH_CUDNN_CHECK(cudnnCreate(&created));
    BENCH_CUDNN_CHECK(cudnnSetStream(created, stream()));
    return created;
  }();
  return handle;
}

template <class T>
cudnnDataType_t cudnn_type() {
  if constexpr (std::is_same_v<T, float>) {
    return CUDNN_DATA_FLOAT;
  } else if constexpr (std::is_same_v<T, __half>) {
    return CUDNN_DATA_HALF;
  } else {
    return CUDNN_DATA_BFLOAT16;
  }
}

/// A rows x cols matrix as an NCHW tensor with N = rows, C = cols, H = W = 1: instance mode then
/// normalises each row.
class CudnnMatrix {
 public:
  CudnnMatrix(cudnnDataType_t type, std::int64_t rows, std::int64_t cols) {
    BENCH_CUDNN_CHECK(cudnnCreateTensorDescriptor(&descriptor_));
    BENCH_CUDNN_CHECK(cudnnSetTensor4dDescriptor(descriptor_, CUDNN_TENSOR_NCHW, type,
                                                 static_cast<int>(rows), static_cast<int>(cols), 1,
                                                 1));
  }
  ~CudnnMatrix() { static_cast<void>(cudnnDestroyTensorDescriptor(descriptor_)); }
  CudnnMatrix(const CudnnMatrix&) = delete;
  CudnnMatrix& operator=(const CudnnMatrix&) = delete;
  cudnnTensorDescriptor_t get() const { return descriptor_; }

 private:
  cudnnTensorDescriptor_t descriptor_ = nullptr;
};

#endif

// --- one case --------------------------------------------------------------------------------

/// The double-precision reference of `op` on the sampled rows (inputs as copy_rows returns them).
std::vector<double> reference(Op op, const std::vector<double>& in0, const std::vector<double>& in1,
                              std::int64_t rows, std::int64_t cols) {
  std::vector<double> out(in0.size());
  switch (op) {
    case Op::softmax:
      ref::softmax(MatrixView<const double>(in0.data(), rows, cols, cols),
                   MatrixView<double>(out.data(), rows, cols, cols));
      break;
    case Op::log_softmax:
      ref::log_softmax(MatrixView<const double>(in0.data(), rows, cols, cols),
                       MatrixView<double>(out.data(), rows, cols, cols));
      break;
    case Op::softmax_backward:
      ref::softmax_backward(MatrixView<const double>(in0.data(), rows, cols, cols),
                            MatrixView<const double>(in1.data(), rows, cols, cols),
                            MatrixView<double>(out.data(), rows, cols, cols));
      break;
    case Op::log_softmax_backward:
      ref::log_softmax_backward(MatrixView<const double>(in0.data(), rows, cols, cols),
                                MatrixView<const double>(in1.data(), rows, cols, cols),
                                MatrixView<double>(out.data(), rows, cols, cols));
      break;
  }
  return out;
}

/// One case; `swept_rows` > 0 fixes the row count (the rows x cols sweep), 0 sizes it by --min-mib.
template <class T>
void run_case(benchmark::State& state, Op op, Impl impl, std::int64_t cols,
              std::int64_t swept_rows = 0) {
  const bool backward = is_backward(op);
  const int tensors = backward ? 3 : 2;  // forward: x, y; backward: y, dy, dx
  const std::int64_t rows =
      rows_or(swept_rows, static_cast<std::size_t>(cols) * sizeof(T) * tensors);
  const auto elements = static_cast<std::size_t>(rows * cols);
  RotatingTensors<T> data(tensors, elements);
  NaiveSoftmax<T> naive(rows);

  // Inputs, the same for every implementation of this (op, dtype, cols).
  const std::uint64_t seed =
      (static_cast<std::uint64_t>(op) * 8 + static_cast<std::uint64_t>(dtype_of<T>())) *
          (std::uint64_t{1} << 32) +
      static_cast<std::uint64_t>(cols) * 64;
  for (int set = 0; set < data.sets(); ++set) {
    if (backward) {
      T* x = data.at(set, 2);  // dx's place holds x until the case overwrites it
      fill_uniform(x, elements, -4.0f, 4.0f, seed + set);
      naive.forward(is_log(op), x, data.at(set, 0), cols);
      fill_uniform(data.at(set, 1), elements, -1.0f, 1.0f, seed + 32 + set);
    } else {
      fill_uniform(data.at(set, 0), elements, -4.0f, 4.0f, seed + set);
    }
  }

  std::function<void(int)> launch;
  const SoftmaxOptions options{1.0f, strategy_of(impl)};
#if defined(WARPFUSE_BENCH_HAVE_CUDNN)
  std::unique_ptr<CudnnMatrix> matrix;
#endif
  switch (impl) {
    case Impl::naive:
      launch = [&](int set) {
        if (backward) {
          naive.backward(is_log(op), data.at(set, 0), data.at(set, 1), data.at(set, 2), cols);
        } else {
          naive.forward(is_log(op), data.at(set, 0), data.at(set, 1), cols);
        }
      };
      break;
    case Impl::cudnn:
#if defined(WARPFUSE_BENCH_HAVE_CUDNN)
      matrix = std::make_unique<CudnnMatrix>(cudnn_type<T>(), rows, cols);
      launch = [&](int set) {
        const float one = 1.0f;
        const float zero = 0.0f;
        const cudnnSoftmaxAlgorithm_t algorithm =
            is_log(op) ? CUDNN_SOFTMAX_LOG : CUDNN_SOFTMAX_ACCURATE;
        const cudnnTensorDescriptor_t descriptor = matrix->get();
        if (backward) {
          BENCH_CUDNN_CHECK(cudnnSoftmaxBackward(
              cudnn_handle(), algorithm, CUDNN_SOFTMAX_MODE_INSTANCE, &one, descriptor,
              data.at(set, 0), descriptor, data.at(set, 1), &zero, descriptor, data.at(set, 2)));
        } else {
          BENCH_CUDNN_CHECK(
              cudnnSoftmaxForward(cudnn_handle(), algorithm, CUDNN_SOFTMAX_MODE_INSTANCE, &one,
                                  descriptor, data.at(set, 0), &zero, descriptor, data.at(set, 1)));
        }
      };
      break;
#else
      state.SkipWithError("built without cuDNN");
      return;
#endif
    default:
      launch = [&](int set) {
        const MatrixView<const T> in0(data.at(set, 0), rows, cols);
        switch (op) {
          case Op::softmax:
            softmax(in0, MatrixView<T>(data.at(set, 1), rows, cols), options, stream());
            break;
          case Op::log_softmax:
            log_softmax(in0, MatrixView<T>(data.at(set, 1), rows, cols), options, stream());
            break;
          case Op::softmax_backward:
            softmax_backward(in0, MatrixView<const T>(data.at(set, 1), rows, cols),
                             MatrixView<T>(data.at(set, 2), rows, cols), options, stream());
            break;
          case Op::log_softmax_backward:
            log_softmax_backward(in0, MatrixView<const T>(data.at(set, 1), rows, cols),
                                 MatrixView<T>(data.at(set, 2), rows, cols), options, stream());
            break;
        }
      };
      break;
  }

  // Correctness before timing: poisoned output of set 0, one launch, sampled rows vs the reference.
  T* out = data.at(0, tensors - 1);
  poison(out, elements * sizeof(T));
  launch(0);
  const std::vector<std::int64_t> checked = sample_rows(rows, cols);
  const std::vector<double> in0 = copy_rows(data.at(0, 0), cols, checked);
  const std::vector<double> in1 =
      backward ? copy_rows(data.at(0, 1), cols, checked) : std::vector<double>();
  const std::vector<double> expected =
      reference(op, in0, in1, static_cast<std::int64_t>(checked.size()), cols);
  const std::string mismatch =
      compare_rows(copy_rows(out, cols, checked), expected, cols, checked, tolerance_for<T>());
  if (!mismatch.empty()) {
    state.SkipWithError(mismatch.c_str());
    return;
  }

  set_shape_counters(state, rows, cols, data.sets(), checked.size());
  if (impl == Impl::automatic) {
    const SoftmaxPass pass = backward ? SoftmaxPass::backward : SoftmaxPass::forward;
    state.SetLabel(std::string("picks ") +
                   to_string(softmax_strategy_for(cols, dtype_of<T>(), pass, rows)));
  }
  time_case(state, data.sets(), static_cast<double>(tensors) * elements * sizeof(T), launch);
}

/// Whether this device has thread-block clusters (false without a device: nothing registers).
bool has_clusters() {
  try {
    return device_info().compute_major >= 9;
  } catch (const std::exception&) {
    return false;
  }
}

/// Whether `impl` can run rows of `cols` for `op` and T on this device and build.
template <class T>
bool applicable(Op op, Impl impl, std::int64_t cols) {
  switch (impl) {
    case Impl::warp:
      return cols <= kSoftmaxWarpMaxCols;
    case Impl::cluster:
      // Rows past a block's reach and the long rows below it (thread-block clusters: sm_90).
      return cols >= 16384 && has_clusters();
    case Impl::block: {
      return cols <= softmax_block_max_cols(dtype_of<T>(), is_backward(op) ? SoftmaxPass::backward
                                                                           : SoftmaxPass::forward);
    }
    case Impl::cudnn:
#if defined(WARPFUSE_BENCH_HAVE_CUDNN)
      return true;
#else
      return false;
#endif
    default:
      return true;
  }
}

template <class T>
void register_dtype(Op op) {
  for (Impl impl : kImpls) {
    for (std::int64_t cols : sweep_cols()) {
      if (!applicable<T>(op, impl, cols)) continue;
      add_case(case_name(op_name(op), dtype_of<T>(), impl_name(impl), cols),
               [op, impl, cols](benchmark::State& state) { run_case<T>(state, op, impl, cols); });
    }
  }
}

/// The rows x cols sweep (--rows-sweep): bf16, the dtype of the vocabulary rows the cluster
/// strategy is for; softmax and its backward; cluster vs online, and what automatic picks at each
/// row count (compare_torch.py times PyTorch on the automatic cases' shapes).
void register_rows_sweep() {
  using T = __nv_bfloat16;
  for (Op op : {Op::softmax, Op::softmax_backward}) {
    for (Impl impl : {Impl::cluster, Impl::online, Impl::automatic}) {
      for (const auto& [cols, rows] : rows_sweep_shapes()) {
        if (!applicable<T>(op, impl, cols)) continue;
        add_case(case_name(op_name(op), dtype_of<T>(), impl_name(impl), cols, rows),
                 [op, impl, cols = cols, rows = rows](benchmark::State& state) {
                   run_case<T>(state, op, impl, cols, rows);
                 });
      }
    }
  }
}

void register_softmax_cases() {
  if (config().rows_sweep) {
    register_rows_sweep();
    return;
  }
#if defined(WARPFUSE_BENCH_HAVE_CUDNN)
  const std::size_t version = cudnnGetVersion();
  add_context("cudnn_version", std::to_string(version / 10000) + "." +
                                   std::to_string(version % 10000 / 100) + "." +
                                   std::to_string(version % 100));
#else
  add_context("cudnn_version", "none (cuDNN not found at configure time)");
#endif
  for (Op op : kOps) {
    register_dtype<float>(op);
    register_dtype<__half>(op);
    register_dtype<__nv_bfloat16>(op);
  }
}

}  // namespace
}  // namespace warpfuse::bench

int main(int argc, char** argv) {
  return warpfuse::bench::bench_main(argc, argv, "softmax_bench",
                                     warpfuse::bench::register_softmax_cases);
}
