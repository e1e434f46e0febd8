// warpfuse benchmarks — the fused optimizer step (include/warpfuse/optimizer.h; the method of
// measuring is in bench_common.h).
//
// adam/<dtype>/<impl>/<cols>: one Adam step over a list of `rows` parameter tensors of `cols`
// elements each (cols = 2048, 65536, 1048576: a model's biases and small layers up to a large
// layer), rows such that a step moves >= --min-mib. dtype is the parameters' and gradients'
// storage; f16 and bf16 carry fp32 master weights. Bytes moved per element: read the weights
// (fp32 params, or the master), the gradient, m and v; write the weights, m, v and (16-bit) the
// rounded params: 28 bytes for f32, 30 for f16 / bf16. Implementations:
//   automatic  warpfuse::optimizer_step over the whole list (one launch per 64 tensors);
//              compare_torch.py times torch.optim.Adam(fused=True) on the same list (f32)
//   flat    the same elements as one tensor (a trainer's contiguous parameter buffer)
//   clip    automatic with max_grad_norm (the norm kernel reads the gradients once more)
//   naive   per tensor, three elementwise kernels as an unfused optimizer loop runs them: m, then
//           v, then the weights (reading m and v again), a launch each
// Inputs: weights uniform in [-1, 1), gradients in [-1, 1), m in [-0.1, 0.1), v in [1e-4, 1e-2);
// the master copy is the params widened. Correctness before timing: the weights and m, v of
// sampled tensors after one step against warpfuse::ref::optimizer_step in double.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "bench/bench_common.h"
#include "warpfuse/memory.h"
#include "warpfuse/optimizer.h"
#include "warpfuse/ref/optimizer.h"

namespace warpfuse::bench {
namespace {

enum class Impl { automatic, flat, clip, naive };
constexpr Impl kImpls[] = {Impl::automatic, Impl::flat, Impl::clip, Impl::naive};

const char* impl_name(Impl impl) {
  switch (impl) {
    case Impl::automatic:
      return "automatic";
    case Impl::flat:
      return "flat";
    case Impl::clip:
      return "clip";
    case Impl::naive:
      return "naive";
  }
  return "unknown";
}

// --- the naive baseline ----------------------------------------------------------------------

/// Grid-stride: m = m + (1 - beta_1) (g - m).
template <class T>
__global__ void naive_first_moment_kernel(const T* __restrict__ g, float* __restrict__ m,
                                          std::int64_t n, float beta_1) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    m[i] += (to_float(g[i]) - m[i]) * (1.0f - beta_1);
  }
}

/// Grid-stride: v = v + (1 - beta_2) (g^2 - v).
template <class T>
__global__ void naive_second_moment_kernel(const T* __restrict__ g, float* __restrict__ v,
                                           std::int64_t n, float beta_2) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const float grad = to_float(g[i]);
    v[i] += (grad * grad - v[i]) * (1.0f - beta_2);
  }
}

/// Grid-stride: w -= step_size m / (sqrt(v) + epsilon) on the master (when given) or the params.
template <class T>
__global__ void naive_weights_kernel(T* __restrict__ params, float* __restrict__ master,
                                     const float* __restrict__ m, const float* __restrict__ v,
                                     std::int64_t n, float step_size, float epsilon) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const float w = (master != nullptr ? master[i] : to_float(params[i])) -
                    step_size * m[i] / (sqrtf(v[i]) + epsilon);
    if (master != nullptr) master[i] = w;
    params[i] = from_float<T>(w);
  }
}

/// master[i] = params[i] widened.
template <class T>
__global__ void widen_kernel(const T* __restrict__ params, float* __restrict__ master,
                             std::int64_t n) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    master[i] = to_float(params[i]);
  }
}

// --- one case --------------------------------------------------------------------------------

/// Arrays of one rotation set, each rows x cols elements (4-byte slots, so one carve-out holds
/// every type): 0 params (T), 1 grads (T), 2 master, 3 m, 4 v.
template <class T>
void run_case(benchmark::State& state, Impl impl, std::int64_t cols) {
  constexpr bool kMaster = !std::is_same_v<T, float>;
  const double bytes_per_element = kMaster ? 30.0 : 28.0;
  const std::int64_t rows = rows_for(static_cast<std::size_t>(cols * bytes_per_element));
  const auto elements = static_cast<std::size_t>(rows * cols);
  RotatingTensors<float> data(5, elements);
  const int sets = data.sets();
  const auto params = [&](int set) { return reinterpret_cast<T*>(data.at(set, 0)); };
  const auto grads = [&](int set) { return reinterpret_cast<T*>(data.at(set, 1)); };
  const std::uint64_t seed = (static_cast<std::uint64_t>(dtype_of<T>()) + 1) * (1ull << 40) +
                             static_cast<std::uint64_t>(cols) * 64;
  for (int set = 0; set < sets; ++set) {
    fill_uniform(params(set), elements, -1.0f, 1.0f, seed + 8 * set);
    fill_uniform(grads(set), elements, -1.0f, 1.0f, seed + 8 * set + 1);
    fill_uniform(data.at(set, 3), elements, -0.1f, 0.1f, seed + 8 * set + 2);
    fill_uniform(data.at(set, 4), elements, 1e-4f, 1e-2f, seed + 8 * set + 3);
    detail::launch(elementwise_config(static_cast<std::int64_t>(elements)), "widen_kernel",
                   widen_kernel<T>, params(set), data.at(set, 2),
                   static_cast<std::int64_t>(elements));
  }

  OptimizerOptions options;
  options.learning_rate = 1e-3f;
  options.step = 10;
  if (impl == Impl::clip) options.max_grad_norm = 1.0f;
  // The list of each set: `rows` tensors (flat: one of rows x cols elements). A tensor's state is
  // m then v, contiguous (the op's layout): tensor i takes floats [2 i size, 2 (i + 1) size) of the
  // set's state region, arrays 3 and 4 taken together (adjacent in the carve-out, so the region
  // holds at least 2 rows x cols floats).
  std::vector<std::vector<OptimizerTensor<T>>> lists(static_cast<std::size_t>(sets));
  for (int set = 0; set < sets; ++set) {
    const std::int64_t count = impl == Impl::flat ? 1 : rows;
    const std::int64_t size = impl == Impl::flat ? rows * cols : cols;
    for (std::int64_t i = 0; i < count; ++i) {
      OptimizerTensor<T> t;
      t.params = params(set) + i * size;
      t.grads = grads(set) + i * size;
      t.master = kMaster ? data.at(set, 2) + i * size : nullptr;
      t.state = data.at(set, 3) + 2 * i * size;
      t.size = size;
      lists[static_cast<std::size_t>(set)].push_back(t);
    }
  }
  DeviceBuffer<unsigned char> workspace_memory(
      optimizer_workspace_bytes(static_cast<std::size_t>(rows)));
  const Workspace workspace{workspace_memory.data(), workspace_memory.size()};
  const float step_size = static_cast<float>(
      1e-3 * std::sqrt(1.0 - std::pow(static_cast<double>(options.beta_2), 10.0)) /
      (1.0 - std::pow(static_cast<double>(options.beta_1), 10.0)));
  const std::function<void(int)> launch = [&](int set) {
    const std::vector<OptimizerTensor<T>>& list = lists[static_cast<std::size_t>(set)];
    if (impl != Impl::naive) {
      optimizer_step(list.data(), list.size(), options, {}, workspace, stream());
      return;
    }
    for (const OptimizerTensor<T>& t : list) {
      const detail::LaunchConfig config = elementwise_config(t.size);
      detail::launch(config, "naive_first_moment_kernel", naive_first_moment_kernel<T>, t.grads,
                     t.state, t.size, options.beta_1);
      detail::launch(config, "naive_second_moment_kernel", naive_second_moment_kernel<T>, t.grads,
                     t.state + t.size, t.size, options.beta_2);
      detail::launch(config, "naive_weights_kernel", naive_weights_kernel<T>, t.params, t.master,
                     t.state, t.state + t.size, t.size, step_size, options.epsilon);
    }
  };

  // Correctness: sampled tensors (rows of the weights) of set 0 before and after one step.
  // The m and v of row r are rows 2r and 2r + 1 of the 2 rows x cols state region for a list
  // (tensor r's state), rows r and rows + r for the flat tensor (all of m, then all of v).
  const std::vector<std::int64_t> checked = sample_rows(rows, cols);
  std::vector<std::int64_t> state_rows;
  for (std::int64_t row : checked) {
    state_rows.push_back(impl == Impl::flat ? row : 2 * row);
    state_rows.push_back(impl == Impl::flat ? rows + row : 2 * row + 1);
  }
  float* const weights = kMaster ? data.at(0, 2) : reinterpret_cast<float*>(params(0));
  std::vector<double> w =
      kMaster ? copy_rows(weights, cols, checked) : copy_rows(params(0), cols, checked);
  const std::vector<double> g = copy_rows(grads(0), cols, checked);
  std::vector<double> s = copy_rows(data.at(0, 3), cols, state_rows);
  launch(0);
  std::vector<ref::OptimizerTensor<double>> expected;
  for (std::size_t i = 0; i < checked.size(); ++i) {
    expected.push_back({w.data() + i * cols, g.data() + i * cols, s.data() + 2 * i * cols, cols});
  }
  ref::optimizer_step(expected, options);
  const std::vector<double> got_w =
      kMaster ? copy_rows(weights, cols, checked) : copy_rows(params(0), cols, checked);
  const std::vector<double> got_s = copy_rows(data.at(0, 3), cols, state_rows);
  constexpr Tolerance kOptimizerTolerance{1e-6, 1e-5};  // fp32 master and state, one step
  std::string mismatch = compare_rows(got_w, w, cols, checked, kOptimizerTolerance);
  if (!mismatch.empty()) mismatch = "weights: " + mismatch;
  if (mismatch.empty()) {
    mismatch = compare_rows(got_s, s, cols, state_rows, kOptimizerTolerance);
    if (!mismatch.empty()) mismatch = "state: " + mismatch;
  }
  if (!mismatch.empty()) {
    state.SkipWithError(mismatch.c_str());
    return;
  }

  set_shape_counters(state, rows, cols, sets, checked.size());
  time_case(state, sets, bytes_per_element * static_cast<double>(elements), launch);
}

void register_optimizer_cases() {
  for (Impl impl : kImpls) {
    for (std::int64_t cols : {std::int64_t{2048}, std::int64_t{65536}, std::int64_t{1048576}}) {
      add_case(case_name("adam", DType::f32, impl_name(impl), cols),
               [impl, cols](benchmark::State& state) { run_case<float>(state, impl, cols); });
      add_case(case_name("adam", DType::f16, impl_name(impl), cols),
               [impl, cols](benchmark::State& state) { run_case<__half>(state, impl, cols); });
      add_case(
          case_name("adam", DType::bf16, impl_name(impl), cols),
          [impl, cols](benchmark::State& state) { run_case<__nv_bfloat16>(state, impl, cols); });
    }
  }
}

}  // namespace
}  // namespace warpfuse::bench

int main(int argc, char** argv) {
  return warpfuse::bench::bench_main(argc, argv, "optimizer_bench",
                                     warpfuse::bench::register_optimizer_cases);
}
