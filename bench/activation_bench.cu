// warpfuse benchmarks — activations: every kind of <warpfuse/activation.h> in its four forms (the
// method of measuring is in bench_common.h).
//
// Cases "<kind>_<form>/<dtype>/<impl>/<cols>": kind x form x dtype (f32, f16, bf16) x impl x cols,
// over a dense rows x cols matrix, cols = 32, 2048, 65536 (2048 only with --quick: the forms are
// elementwise or per column, so the row length matters little once a row is a few vectors long).
// The forms and the bytes each launch moves (n = rows x cols elements of sizeof(T); bias, slope,
// dbias and dslope are cols elements each):
//   forward        y = f(x)                                  x read, y written: 2n
//   backward       dx = dy f'(.) from saved (x or y)          saved, dy read, dx written: 3n
//   bias_forward   y = f(x + bias), plus pre = x + bias when the backward reads x (every kind but
//                  relu, leaky_relu, sigmoid, tanh): 2n or 3n, + bias
//   bias_backward  dx as backward, dbias = column sums of dx, for prelu dslope = column sums of
//                  dy min(x, 0): 3n + dbias (+ dslope)
// prelu also reads its per-column slope (+ cols). Implementations:
//   automatic  warpfuse (its own choice of vector or scalar path)
//   naive      bias_forward only: the unfused Dense epilogue, a bias-add kernel writing x + bias to
//              pre (or to y when no pre is kept), then warpfuse's activation_forward over it (in
//              place for y); x + bias makes a round trip through memory
//   cudnn      forward of relu, elu (alpha 1) and silu (CUDNN_ACTIVATION_SWISH, beta 1) through
//              cudnnActivationForward over an N = rows, C = cols, H = W = 1 tensor, when cuDNN was
//              found at configure time (WARPFUSE_BENCH_HAVE_CUDNN)
// Inputs: x uniform in [-4, 4), bias and dy in [-1, 1), prelu's slope in [0.05, 0.3); for the
// backward of the kinds that read y, saved = f(x) from warpfuse's forward. Parameters are the
// defaults of ActivationParams. Correctness: sampled rows of y, pre and dx against warpfuse::ref;
// dbias and dslope (all rows) against column sums on the host of the device's own dx (checked
// above) and of dy min(x, 0), in double.
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
#include "warpfuse/activation.h"
#include "warpfuse/memory.h"
#include "warpfuse/ref/activation.h"

#if defined(WARPFUSE_BENCH_HAVE_CUDNN)
#include <cudnn.h>
#endif

namespace warpfuse::bench {
namespace {

enum class Form { forward, backward, bias_forward, bias_backward };
constexpr Form kForms[] = {Form::forward, Form::backward, Form::bias_forward, Form::bias_backward};

const char* form_name(Form form) {
  switch (form) {
    case Form::forward:
      return "forward";
    case Form::backward:
      return "backward";
    case Form::bias_forward:
      return "bias_forward";
    case Form::bias_backward:
      return "bias_backward";
  }
  return "unknown";
}

enum class Impl { automatic, naive, cudnn };

const char* impl_name(Impl impl) {
  switch (impl) {
    case Impl::automatic:
      return "automatic";
    case Impl::naive:
      return "naive";
    case Impl::cudnn:
      return "cudnn";
  }
  return "unknown";
}

bool reads_output(Activation kind) {
  return activation_backward_from(kind) == BackwardFrom::output;
}

/// The fused forward keeps the pre-activation only when the backward needs it.
bool keeps_pre(Form form, Activation kind) {
  return form == Form::bias_forward && !reads_output(kind);
}

// --- the naive baseline ----------------------------------------------------------------------

/// Grid-stride over all elements of a dense rows x cols matrix: out = x + bias[col].
template <class T>
__global__ void naive_bias_add_kernel(const T* __restrict__ x, const T* __restrict__ bias,
                                      std::int64_t elements, std::int64_t cols,
                                      T* __restrict__ out) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < elements; i += stride) {
    out[i] = from_float<T>(to_float(x[i]) + to_float(bias[i % cols]));
  }
}

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

/// A rows x cols matrix as an NCHW tensor (N = rows, C = cols, H = W = 1) and the activation.
class CudnnActivation {
 public:
  CudnnActivation(cudnnDataType_t type, std::int64_t rows, std::int64_t cols, Activation kind) {
    BENCH_CUDNN_CHECK(cudnnCreateTensorDescriptor(&tensor_));
    BENCH_CUDNN_CHECK(cudnnSetTensor4dDescriptor(
        tensor_, CUDNN_TENSOR_NCHW, type, static_cast<int>(rows), static_cast<int>(cols), 1, 1));
    BENCH_CUDNN_CHECK(cudnnCreateActivationDescriptor(&activation_));
    cudnnActivationMode_t mode = CUDNN_ACTIVATION_RELU;
    double coef = 0.0;  // elu's alpha (the relu ceiling is unused by CUDNN_ACTIVATION_RELU)
    if (kind == Activation::elu) {
      mode = CUDNN_ACTIVATION_ELU;
      coef = 1.0;
    } else if (kind == Activation::silu) {
      mode = CUDNN_ACTIVATION_SWISH;
    }
    BENCH_CUDNN_CHECK(
        cudnnSetActivationDescriptor(activation_, mode, CUDNN_NOT_PROPAGATE_NAN, coef));
    if (kind == Activation::silu) {
      BENCH_CUDNN_CHECK(cudnnSetActivationDescriptorSwishBeta(activation_, 1.0));
    }
  }
  ~CudnnActivation() {
    static_cast<void>(cudnnDestroyActivationDescriptor(activation_));
    static_cast<void>(cudnnDestroyTensorDescriptor(tensor_));
  }
  CudnnActivation(const CudnnActivation&) = delete;
  CudnnActivation& operator=(const CudnnActivation&) = delete;

  void forward(const void* x, void* y) const {
    const float one = 1.0f;
    const float zero = 0.0f;
    BENCH_CUDNN_CHECK(
        cudnnActivationForward(cudnn_handle(), activation_, &one, tensor_, x, &zero, tensor_, y));
  }

 private:
  cudnnTensorDescriptor_t tensor_ = nullptr;
  cudnnActivationDescriptor_t activation_ = nullptr;
};

#endif

bool cudnn_offers(Activation kind) {
  return kind == Activation::relu || kind == Activation::elu || kind == Activation::silu;
}

// --- one case --------------------------------------------------------------------------------

/// Column sums over all rows of a dense rows x cols device matrix, in double, reading `chunk`
/// rows at a time: sums[c] += term(a[r, c], b[r, c]) (b may be null). Waits for stream() first.
template <class T, class Term>
std::vector<double> column_sums(const T* a, const T* b, std::int64_t rows, std::int64_t cols,
                                Term term) {
  WARPFUSE_CUDA_CHECK(cudaStreamSynchronize(stream()));
  const std::int64_t chunk = std::max<std::int64_t>(1, (std::int64_t{1} << 20) / cols);
  std::vector<double> sums(static_cast<std::size_t>(cols), 0.0);
  std::vector<T> staged_a(static_cast<std::size_t>(chunk * cols));
  std::vector<T> staged_b(b != nullptr ? staged_a.size() : 0);
  for (std::int64_t begin = 0; begin < rows; begin += chunk) {
    const std::int64_t count = std::min(chunk, rows - begin);
    const std::size_t bytes = static_cast<std::size_t>(count * cols) * sizeof(T);
    WARPFUSE_CUDA_CHECK(
        cudaMemcpy(staged_a.data(), a + begin * cols, bytes, cudaMemcpyDeviceToHost));
    if (b != nullptr) {
      WARPFUSE_CUDA_CHECK(
          cudaMemcpy(staged_b.data(), b + begin * cols, bytes, cudaMemcpyDeviceToHost));
    }
    for (std::int64_t r = 0; r < count; ++r) {
      for (std::int64_t c = 0; c < cols; ++c) {
        const std::size_t i = static_cast<std::size_t>(r * cols + c);
        sums[static_cast<std::size_t>(c)] +=
            term(static_cast<double>(to_float(staged_a[i])),
                 b != nullptr ? static_cast<double>(to_float(staged_b[i])) : 0.0);
      }
    }
  }
  return sums;
}

/// Device vector of cols T widened to double.
template <class T>
std::vector<double> copy_vector(const T* data, std::int64_t cols) {
  return copy_rows(data, cols, {0});
}

/// Tensors of one rotation set, by form (n: rows x cols; c: cols):
///   forward        0 x (n), 1 y (n)
///   backward       0 saved (n), 1 dy (n), 2 dx (n)
///   bias_forward   0 x (n), 1 y (n), 2 pre (n)
///   bias_backward  0 saved (n), 1 dy (n), 2 dx (n)
/// and, in a separate small rotation, bias, slope, dbias, dslope (c each).
template <class T>
void run_case(benchmark::State& state, Activation kind, Form form, Impl impl, std::int64_t cols) {
  ActivationParams params;
  params.kind = kind;
  const bool prelu = kind == Activation::prelu;
  const bool pre_kept = keeps_pre(form, kind);
  const int big = form == Form::forward ? 2 : 3;
  // Tensors the fastest implementation moves per element (the naive one moves more).
  const int moved =
      form == Form::forward ? 2 : (form == Form::bias_forward ? (pre_kept ? 3 : 2) : 3);
  const std::int64_t rows = rows_for(static_cast<std::size_t>(cols) * sizeof(T) * moved);
  const auto elements = static_cast<std::size_t>(rows * cols);
  RotatingTensors<T> data(big, elements);
  const int sets = data.sets();
  DeviceBuffer<T> vectors(static_cast<std::size_t>(4 * cols) * static_cast<std::size_t>(sets));
  const auto vec = [&](int set, int which) {
    return vectors.data() + (static_cast<std::size_t>(set) * 4 + which) * cols;
  };  // 0 bias, 1 slope, 2 dbias, 3 dslope
  DeviceBuffer<unsigned char> workspace(
      std::max<std::size_t>(1, bias_activation_backward_workspace_bytes(rows, cols, kind)));

  const std::uint64_t seed =
      (static_cast<std::uint64_t>(kind) * 8 + static_cast<std::uint64_t>(form) * 2 +
       static_cast<std::uint64_t>(dtype_of<T>()) * 64) *
          (std::uint64_t{1} << 32) +
      static_cast<std::uint64_t>(cols) * 64;
  const bool backward = form == Form::backward || form == Form::bias_backward;
  for (int set = 0; set < sets; ++set) {
    fill_uniform(data.at(set, 0), elements, -4.0f, 4.0f, seed + set);
    fill_uniform(vec(set, 0), static_cast<std::size_t>(cols), -1.0f, 1.0f, seed + 16 + set);
    fill_uniform(vec(set, 1), static_cast<std::size_t>(cols), 0.05f, 0.3f, seed + 24 + set);
    if (backward) {
      fill_uniform(data.at(set, 1), elements, -1.0f, 1.0f, seed + 32 + set);
      if (reads_output(kind)) {  // saved = f(x), in place
        activation_forward(MatrixView<T>(data.at(set, 0), rows, cols),
                           MatrixView<T>(data.at(set, 0), rows, cols), params,
                           VectorView<const T>(vec(set, 1), cols), stream());
      }
    }
  }

  const auto matrix = [&](int set, int tensor) {
    return MatrixView<T>(data.at(set, tensor), rows, cols);
  };
  const auto slope = [&](int set) {
    return prelu ? VectorView<const T>(vec(set, 1), cols) : VectorView<const T>();
  };
  const std::size_t workspace_bytes = workspace.size();
  std::function<void(int)> launch;
#if defined(WARPFUSE_BENCH_HAVE_CUDNN)
  std::unique_ptr<CudnnActivation> cudnn;
#endif
  switch (impl) {
    case Impl::automatic:
      launch = [&](int set) {
        switch (form) {
          case Form::forward:
            activation_forward(MatrixView<const T>(matrix(set, 0)), matrix(set, 1), params,
                               slope(set), stream());
            break;
          case Form::backward:
            activation_backward(MatrixView<const T>(matrix(set, 0)), matrix(set, 1), matrix(set, 2),
                                params, slope(set), stream());
            break;
          case Form::bias_forward:
            bias_activation_forward(
                MatrixView<const T>(matrix(set, 0)), VectorView<const T>(vec(set, 0), cols),
                BiasActivationOutputs<T>{matrix(set, 1),
                                         pre_kept ? matrix(set, 2) : MatrixView<T>()},
                params, slope(set), stream());
            break;
          case Form::bias_backward:
            bias_activation_backward(
                MatrixView<const T>(matrix(set, 0)), matrix(set, 1),
                BiasActivationBackwardOutputs<T>{
                    matrix(set, 2), VectorView<T>(vec(set, 2), cols),
                    prelu ? VectorView<T>(vec(set, 3), cols) : VectorView<T>()},
                Workspace{workspace.data(), workspace_bytes}, params, slope(set), stream());
            break;
        }
      };
      break;
    case Impl::naive:
      launch = [&](int set) {
        T* sum = pre_kept ? data.at(set, 2) : data.at(set, 1);
        detail::launch(elementwise_config(rows * cols), "naive_bias_add_kernel",
                       naive_bias_add_kernel<T>, data.at(set, 0), vec(set, 0), rows * cols, cols,
                       sum);
        activation_forward(MatrixView<const T>(sum, rows, cols), matrix(set, 1), params, slope(set),
                           stream());
      };
      break;
    case Impl::cudnn:
#if defined(WARPFUSE_BENCH_HAVE_CUDNN)
      cudnn = std::make_unique<CudnnActivation>(cudnn_type<T>(), rows, cols, kind);
      launch = [&](int set) { cudnn->forward(data.at(set, 0), data.at(set, 1)); };
      break;
#else
      state.SkipWithError("built without cuDNN");
      return;
#endif
  }

  // Correctness before timing: poisoned outputs of set 0, one launch, sampled rows vs the
  // reference, then the column sums.
  const int out = form == Form::forward || form == Form::bias_forward ? 1 : 2;
  poison(data.at(0, out), elements * sizeof(T));
  if (form == Form::bias_forward) poison(data.at(0, 2), elements * sizeof(T));
  poison(vec(0, 2), static_cast<std::size_t>(2 * cols) * sizeof(T));
  launch(0);
  const std::vector<std::int64_t> checked = sample_rows(rows, cols);
  const auto checked_rows = static_cast<std::int64_t>(checked.size());
  const std::vector<double> in0 = copy_rows(data.at(0, 0), cols, checked);
  const std::vector<double> bias = copy_vector(vec(0, 0), cols);
  const std::vector<double> slope_host = copy_vector(vec(0, 1), cols);
  const double* slope_ref = prelu ? slope_host.data() : nullptr;
  std::vector<double> expected(in0.size());
  std::string mismatch;
  const Tolerance tolerance = tolerance_for<T>();
  if (backward) {
    const std::vector<double> dy = copy_rows(data.at(0, 1), cols, checked);
    ref::activation_backward<double>(
        MatrixView<const double>(in0.data(), checked_rows, cols),
        MatrixView<const double>(dy.data(), checked_rows, cols),
        VectorView<const double>(slope_ref, slope_ref != nullptr ? cols : 0),
        MatrixView<double>(expected.data(), checked_rows, cols), {}, {}, params);
    mismatch =
        compare_rows(copy_rows(data.at(0, 2), cols, checked), expected, cols, checked, tolerance);
    if (mismatch.empty() && form == Form::bias_backward) {
      // dbias against the column sums of the dx just checked; dslope against dy min(x, 0).
      const Tolerance sums{4 * tolerance.atol, tolerance.rtol};
      const std::vector<double> dbias =
          column_sums(data.at(0, 2), static_cast<const T*>(nullptr), rows, cols,
                      [](double dx, double) { return dx; });
      mismatch = compare_rows(copy_vector(vec(0, 2), cols), dbias, cols, {0}, sums);
      if (!mismatch.empty()) mismatch = "dbias: " + mismatch;
      if (mismatch.empty() && prelu) {
        const std::vector<double> dslope =
            column_sums(data.at(0, 0), data.at(0, 1), rows, cols,
                        [](double x, double dy) { return ref::prelu_slope_term(x, dy); });
        mismatch = compare_rows(copy_vector(vec(0, 3), cols), dslope, cols, {0}, sums);
        if (!mismatch.empty()) mismatch = "dslope: " + mismatch;
      }
    }
  } else {
    const bool with_bias = form == Form::bias_forward;
    std::vector<double> pre(with_bias ? in0.size() : 0);
    ref::activation_forward<double>(
        MatrixView<const double>(in0.data(), checked_rows, cols),
        with_bias ? VectorView<const double>(bias.data(), cols) : VectorView<const double>(),
        VectorView<const double>(slope_ref, slope_ref != nullptr ? cols : 0),
        MatrixView<double>(expected.data(), checked_rows, cols),
        with_bias ? MatrixView<double>(pre.data(), checked_rows, cols) : MatrixView<double>(),
        params);
    mismatch =
        compare_rows(copy_rows(data.at(0, 1), cols, checked), expected, cols, checked, tolerance);
    if (mismatch.empty() && pre_kept) {
      mismatch =
          compare_rows(copy_rows(data.at(0, 2), cols, checked), pre, cols, checked, tolerance);
      if (!mismatch.empty()) mismatch = "pre: " + mismatch;
    }
  }
  if (!mismatch.empty()) {
    state.SkipWithError(mismatch.c_str());
    return;
  }

  set_shape_counters(state, rows, cols, sets, checked.size());
  int vectors_moved = prelu ? 1 : 0;                                // slope
  if (form == Form::bias_forward) vectors_moved += 1;               // bias
  if (form == Form::bias_backward) vectors_moved += prelu ? 2 : 1;  // dbias, dslope
  const double bytes = (static_cast<double>(moved) * static_cast<double>(elements) +
                        static_cast<double>(vectors_moved) * static_cast<double>(cols)) *
                       sizeof(T);
  time_case(state, sets, bytes, launch);
}

template <class T>
void register_dtype(Activation kind, Form form, const std::vector<std::int64_t>& sweep) {
  std::vector<Impl> impls = {Impl::automatic};
  if (form == Form::bias_forward) impls.push_back(Impl::naive);
#if defined(WARPFUSE_BENCH_HAVE_CUDNN)
  if (form == Form::forward && cudnn_offers(kind)) impls.push_back(Impl::cudnn);
#endif
  const std::string op = std::string(to_string(kind)) + "_" + form_name(form);
  for (Impl impl : impls) {
    for (std::int64_t cols : sweep) {
      add_case(case_name(op, dtype_of<T>(), impl_name(impl), cols),
               [kind, form, impl, cols](benchmark::State& state) {
                 run_case<T>(state, kind, form, impl, cols);
               });
    }
  }
}

void register_activation_cases() {
#if defined(WARPFUSE_BENCH_HAVE_CUDNN)
  const std::size_t version = cudnnGetVersion();
  add_context("cudnn_version", std::to_string(version / 10000) + "." +
                                   std::to_string(version % 10000 / 100) + "." +
                                   std::to_string(version % 100));
#else
  add_context("cudnn_version", "none (cuDNN not found at configure time)");
#endif
  static_cast<void>(&cudnn_offers);
  const std::vector<std::int64_t> sweep =
      config().quick ? std::vector<std::int64_t>{2048} : std::vector<std::int64_t>{32, 2048, 65536};
  for (Activation kind : kAllActivations) {
    for (Form form : kForms) {
      register_dtype<float>(kind, form, sweep);
      register_dtype<__half>(kind, form, sweep);
      register_dtype<__nv_bfloat16>(kind, form, sweep);
    }
  }
}

}  // namespace
}  // namespace warpfuse::bench

int main(int argc, char** argv) {
  return warpfuse::bench::bench_main(argc, argv, "activation_bench",
                                     warpfuse::bench::register_activation_cases);
}
