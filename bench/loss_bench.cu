// warpfuse benchmarks — losses: cross-entropy from logits fused with its gradient, and the
// elementwise MSE and BCE-with-logits (the method of measuring is in bench_common.h).
//
// cross_entropy/<dtype>/<impl>/<C>: forward + backward of the mean cross-entropy with int64 class
// targets over rows x C logits, C = 8, 10, 1000, 32000, 50257, 50304, 128256, 256000, rows such
// that a launch moves >= --min-mib. Bytes moved = logits read once + dlogits written once, 2 rows C
// sizeof(T) (the rows int64 targets and the fp32 loss are not counted). Implementations:
//   warp, block, online  warpfuse with that strategy forced, where it can hold the row (warp up
//                        to kSoftmaxWarpMaxCols, block up to cross_entropy_block_max_cols)
//   automatic            warpfuse's own choice; dlogits a separate buffer
//   inplace              warpfuse's own choice with dlogits == logits (no logits-sized buffer
//                        besides the logits themselves)
//   naive                the unfused baseline below, PyTorch's structure: warpfuse::log_softmax
//                        into a logits-sized temporary, an NLL kernel (one thread per row, then
//                        one block for the mean) and a gradient kernel (exp(log p) - onehot,
//                        elementwise): the logits-sized data crosses memory four times instead
//                        of twice. (log_softmax, not softmax: at vocabulary sizes fp16 and bf16
//                        probabilities underflow to 0 and the NLL of such a row would be inf.)
// cross_entropy_softcap/<dtype>/automatic/<C>: the same with logit_softcap = 30 (Gemma 2's): the
// goal is the bandwidth of cross_entropy/<dtype>/automatic/<C> (the tanh and the chain rule's
// factor ride on the same pass); compare_torch.py times F.cross_entropy(30 tanh(x / 30)).
// grad_scale = rows, so that dlogits = softmax - onehot (g = 1 per row, as under a loss scaler):
// the mean's 1 / rows would push fp16 gradients of millions of rows into subnormals.
//
// mse_loss/<dtype>/automatic/<cols> and bce_with_logits_loss/<dtype>/automatic/<cols>: the mean
// loss and its gradient dpred over rows x cols, cols = 32, 2048, 65536 (2048 with --quick); bytes =
// pred and target read, dpred written, 3 rows cols sizeof(T); grad_scale = rows cols for the same
// reason.
//
// --rows-sweep replaces these cases with the long-row sweep: cross_entropy/bf16/<impl>/<C>/rows=<R>
// at every (C, R) of rows_sweep_shapes() (16384..262144 classes x 1..16384 rows), impl cluster,
// online or automatic, every one with dlogits in place (the form a training step runs; the same
// bytes moved, half the memory, so 16384 x 262144 fits).
//
// Inputs: logits and predictions uniform in [-4, 4); class targets from a fixed hash, uniform in
// [0, C); MSE targets in [-4, 4), BCE targets (soft labels) in [0, 1). Correctness before timing:
// the per-row losses (Reduction::none, per_sample for the elementwise losses) of sampled rows
// against warpfuse::ref, the mean against the host mean of all per-row losses, and sampled rows of
// the gradient of the timed (mean) configuration against the reference gradient.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "bench/bench_common.h"
#include "warpfuse/cross_entropy.h"
#include "warpfuse/elementwise_loss.h"
#include "warpfuse/loss.h"
#include "warpfuse/memory.h"
#include "warpfuse/ref/cross_entropy.h"
#include "warpfuse/ref/elementwise_loss.h"
#include "warpfuse/softmax.h"

namespace warpfuse::bench {
namespace {

enum class Impl { warp, block, online, cluster, automatic, inplace, naive };
constexpr Impl kImpls[] = {Impl::warp,      Impl::block,   Impl::cluster, Impl::online,
                           Impl::automatic, Impl::inplace, Impl::naive};

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
    case Impl::inplace:
      return "inplace";
    case Impl::naive:
      return "naive";
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

constexpr std::int64_t kClasses[] = {8, 10, 1000, 32000, 50257, 50304, 128256, 256000};

/// The loss values are fp32 whatever the dtype; the row sums run over up to 2^18 classes.
constexpr Tolerance kLossTolerance = tolerance_for<float>();

// --- the naive baseline ----------------------------------------------------------------------

struct SumOp {
  __device__ float operator()(float a, float b) const { return a + b; }
};

/// Grid-stride over rows, a thread per row: row_loss[row] = -log_p[row, target[row]].
template <class T>
__global__ void naive_nll_kernel(const T* __restrict__ log_probabilities,
                                 const std::int64_t* __restrict__ targets, std::int64_t rows,
                                 std::int64_t classes, float* __restrict__ row_loss) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       row < rows; row += stride) {
    row_loss[row] = -to_float(log_probabilities[row * classes + targets[row]]);
  }
}

/// One block of kNaiveThreads: loss[0] = (sum of row_loss) / rows, in a fixed order.
__global__ void naive_mean_kernel(const float* __restrict__ row_loss, std::int64_t rows,
                                  float* __restrict__ loss) {
  float value = 0.0f;
  for (std::int64_t row = threadIdx.x; row < rows; row += blockDim.x) value += row_loss[row];
  value = naive_block_reduce(value, SumOp{});
  if (threadIdx.x == 0) loss[0] = value / static_cast<float>(rows);
}

/// Grid-stride over all elements: dlogits = scale (exp(log_p) - [col == target]).
template <class T>
__global__ void naive_gradient_kernel(const T* __restrict__ log_probabilities,
                                      const std::int64_t* __restrict__ targets,
                                      std::int64_t elements, std::int64_t classes, float scale,
                                      T* __restrict__ dlogits) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < elements; i += stride) {
    const std::int64_t row = i / classes;
    const float onehot = i - row * classes == targets[row] ? 1.0f : 0.0f;
    dlogits[i] = from_float<T>(scale * (expf(to_float(log_probabilities[i])) - onehot));
  }
}

// --- helpers -----------------------------------------------------------------------------------

/// All n floats of a device array, widened to double. Waits for stream() first.
std::vector<double> copy_floats(const float* data, std::int64_t n) {
  WARPFUSE_CUDA_CHECK(cudaStreamSynchronize(stream()));
  std::vector<float> staged(static_cast<std::size_t>(n));
  WARPFUSE_CUDA_CHECK(
      cudaMemcpy(staged.data(), data, staged.size() * sizeof(float), cudaMemcpyDeviceToHost));
  return std::vector<double>(staged.begin(), staged.end());
}

double host_mean(const std::vector<double>& values) {
  double sum = 0.0;
  for (double v : values) sum += v;
  return values.empty() ? 0.0 : sum / static_cast<double>(values.size());
}

/// "" when |actual - expected| <= 1e-4 |expected| (+ 1e-6), else a message naming `what`.
std::string compare_scalar(const char* what, double actual, double expected) {
  if (std::isfinite(actual) && std::fabs(actual - expected) <= 1e-4 * std::fabs(expected) + 1e-6) {
    return "";
  }
  return std::string(what) + ": got " + std::to_string(actual) + ", expected " +
         std::to_string(expected);
}

template <class T>
std::vector<double> sampled(const std::vector<T>& all, const std::vector<std::int64_t>& rows) {
  std::vector<double> picked;
  picked.reserve(rows.size());
  for (std::int64_t row : rows) picked.push_back(static_cast<double>(all[row]));
  return picked;
}

// --- cross-entropy -----------------------------------------------------------------------------

/// Tensors of one rotation set: 0 logits, 1 dlogits (unused in place), 2 the naive's temporary.
/// `swept_rows` > 0 fixes the row count and writes dlogits in place whatever the strategy (the rows
/// x cols sweep); 0 sizes the rows by --min-mib.
template <class T>
void run_cross_entropy(benchmark::State& state, Impl impl, std::int64_t classes,
                       std::int64_t swept_rows = 0, float softcap = 0.0f) {
  const bool in_place = impl == Impl::inplace || swept_rows > 0;
  const int tensors = impl == Impl::naive ? 3 : (in_place ? 1 : 2);
  const std::int64_t rows = rows_or(swept_rows, static_cast<std::size_t>(classes) * sizeof(T) * 2);
  const auto elements = static_cast<std::size_t>(rows * classes);
  RotatingTensors<T> data(tensors, elements);
  const int sets = data.sets();

  // Targets, the same for every set: a fixed hash of the row.
  std::vector<std::int64_t> targets_host(static_cast<std::size_t>(rows));
  for (std::int64_t row = 0; row < rows; ++row) {
    std::uint64_t h = static_cast<std::uint64_t>(row) * 0x9E3779B97F4A7C15ull + 12345u;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    targets_host[static_cast<std::size_t>(row)] = static_cast<std::int64_t>(h % classes);
  }
  DeviceBuffer<std::int64_t> targets(static_cast<std::size_t>(rows));
  WARPFUSE_CUDA_CHECK(cudaMemcpy(targets.data(), targets_host.data(),
                                 targets_host.size() * sizeof(std::int64_t),
                                 cudaMemcpyHostToDevice));
  DeviceBuffer<float> row_loss(static_cast<std::size_t>(rows));
  DeviceBuffer<float> loss(1);
  DeviceBuffer<unsigned char> workspace_memory(cross_entropy_workspace_bytes(rows));
  const Workspace workspace{workspace_memory.data(), workspace_memory.size()};

  const std::uint64_t seed =
      (static_cast<std::uint64_t>(dtype_of<T>()) + 1) * (std::uint64_t{1} << 40) +
      static_cast<std::uint64_t>(classes) * 64;
  for (int set = 0; set < sets; ++set)
    fill_uniform(data.at(set, 0), elements, -4.0f, 4.0f, seed + set);

  CrossEntropyOptions options;
  options.strategy = strategy_of(impl);
  options.grad_scale = static_cast<float>(rows);
  options.logit_softcap = softcap;
  const VectorView<const std::int64_t> target_view(targets.data(), rows);
  const auto logits = [&](int set) { return MatrixView<const T>(data.at(set, 0), rows, classes); };
  const auto dlogits = [&](int set) {
    return MatrixView<T>(data.at(set, in_place ? 0 : 1), rows, classes);
  };
  const auto naive = [&](int set) {
    T* probabilities = data.at(set, 2);
    log_softmax(logits(set), MatrixView<T>(probabilities, rows, classes), SoftmaxOptions{},
                stream());
    detail::launch(elementwise_config(rows), "naive_nll_kernel", naive_nll_kernel<T>, probabilities,
                   targets.data(), rows, classes, row_loss.data());
    detail::launch(detail::LaunchConfig{dim3(1), dim3(kNaiveThreads), 0, stream()},
                   "naive_mean_kernel", naive_mean_kernel, row_loss.data(), rows, loss.data());
    detail::launch(elementwise_config(rows * classes), "naive_gradient_kernel",
                   naive_gradient_kernel<T>, probabilities, targets.data(), rows * classes, classes,
                   options.grad_scale / static_cast<float>(rows), data.at(set, 1));
  };
  const std::function<void(int)> launch = [&](int set) {
    if (impl == Impl::naive) {
      naive(set);
      return;
    }
    CrossEntropyOutputs<T> outputs;
    outputs.loss = VectorView<float>(loss.data(), 1);
    outputs.dlogits = dlogits(set);
    cross_entropy(logits(set), target_view, outputs, workspace, options, {}, stream());
  };

  // Correctness: per-row losses (Reduction::none, no gradient; the naive keeps them anyway) of the
  // sampled rows, then the timed configuration's mean and gradient.
  const std::vector<std::int64_t> checked = sample_rows(rows, classes);
  const auto checked_rows = static_cast<std::int64_t>(checked.size());
  const std::vector<double> in = copy_rows(data.at(0, 0), classes, checked);
  poison(row_loss.data(), static_cast<std::size_t>(rows) * sizeof(float));
  poison(loss.data(), sizeof(float));
  poison(dlogits(0).data, elements * sizeof(T));
  if (in_place) fill_uniform(data.at(0, 0), elements, -4.0f, 4.0f, seed);
  if (impl != Impl::naive) {
    CrossEntropyOptions per_row = options;
    per_row.reduction = CrossEntropyReduction::none;
    CrossEntropyOutputs<T> outputs;
    outputs.loss = VectorView<float>(row_loss.data(), rows);
    cross_entropy(logits(0), target_view, outputs, workspace, per_row, {}, stream());
  }
  launch(0);
  const std::vector<double> device_rows = copy_floats(row_loss.data(), rows);
  const std::vector<std::int64_t> checked_targets = [&] {
    std::vector<std::int64_t> picked;
    for (std::int64_t row : checked) picked.push_back(targets_host[static_cast<std::size_t>(row)]);
    return picked;
  }();
  std::vector<double> expected_loss(checked.size());
  std::vector<double> expected_grad(in.size());
  ref::CrossEntropyParams params;
  params.logit_softcap = softcap;
  ref::cross_entropy(MatrixView<const double>(in.data(), checked_rows, classes),
                     VectorView<const std::int64_t>(checked_targets.data(), checked_rows), params,
                     VectorView<double>(expected_loss.data(), checked_rows), {},
                     MatrixView<double>(expected_grad.data(), checked_rows, classes));
  // grad_scale = rows cancels the mean's 1 / rows: the gradient is the per-row one.
  // The naive's losses come from log-probabilities rounded to T.
  std::string mismatch = compare_rows(sampled(device_rows, checked), expected_loss, 1, checked,
                                      impl == Impl::naive ? tolerance_for<T>() : kLossTolerance);
  if (!mismatch.empty()) mismatch = "per-row loss: " + mismatch;
  if (mismatch.empty()) {
    mismatch = compare_scalar("mean loss", copy_floats(loss.data(), 1)[0], host_mean(device_rows));
  }
  if (mismatch.empty()) {
    mismatch = compare_rows(copy_rows(dlogits(0).data, classes, checked), expected_grad, classes,
                            checked, tolerance_for<T>());
    if (!mismatch.empty()) mismatch = "dlogits: " + mismatch;
  }
  if (!mismatch.empty()) {
    state.SkipWithError(mismatch.c_str());
    return;
  }

  set_shape_counters(state, rows, classes, sets, checked.size());
  if (impl == Impl::automatic || impl == Impl::inplace) {
    state.SetLabel(std::string("picks ") +
                   to_string(cross_entropy_strategy_for(classes, dtype_of<T>(),
                                                        CrossEntropyTargets::index, rows)));
  }
  time_case(state, sets, 2.0 * static_cast<double>(elements) * sizeof(T), launch);
}

/// Whether this device has thread-block clusters (false without a device: nothing registers).
bool has_clusters() {
  try {
    return device_info().compute_major >= 9;
  } catch (const std::exception&) {
    return false;
  }
}

/// Whether `impl` can run rows of `classes` for T on this build.
template <class T>
bool applicable(Impl impl, std::int64_t classes) {
  switch (impl) {
    case Impl::warp:
      return classes <= kSoftmaxWarpMaxCols;
    case Impl::block:
      return classes <= cross_entropy_block_max_cols(dtype_of<T>());
    case Impl::cluster:
      return classes >= 16384 && has_clusters();
    default:
      return true;
  }
}

// --- elementwise losses ------------------------------------------------------------------------

enum class Elementwise { mse, bce_with_logits };

const char* elementwise_name(Elementwise loss) {
  return loss == Elementwise::mse ? "mse_loss" : "bce_with_logits_loss";
}

/// Tensors of one rotation set: 0 pred, 1 target, 2 dpred.
template <class T>
void run_elementwise(benchmark::State& state, Elementwise kind, std::int64_t cols) {
  const std::int64_t rows = rows_for(static_cast<std::size_t>(cols) * sizeof(T) * 3);
  const auto elements = static_cast<std::size_t>(rows * cols);
  RotatingTensors<T> data(3, elements);
  const int sets = data.sets();
  DeviceBuffer<float> row_loss(static_cast<std::size_t>(rows));
  DeviceBuffer<float> loss(1);
  DeviceBuffer<unsigned char> workspace_memory(elementwise_loss_workspace_bytes(rows));
  const Workspace workspace{workspace_memory.data(), workspace_memory.size()};
  const std::uint64_t seed =
      (static_cast<std::uint64_t>(kind) * 8 + static_cast<std::uint64_t>(dtype_of<T>()) + 77) *
          (std::uint64_t{1} << 36) +
      static_cast<std::uint64_t>(cols) * 64;
  for (int set = 0; set < sets; ++set) {
    fill_uniform(data.at(set, 0), elements, -4.0f, 4.0f, seed + set);
    if (kind == Elementwise::mse) {
      fill_uniform(data.at(set, 1), elements, -4.0f, 4.0f, seed + 32 + set);
    } else {
      fill_uniform(data.at(set, 1), elements, 0.0f, 1.0f, seed + 32 + set);
    }
  }
  const auto run = [&](int set, Reduction reduction, MatrixView<float> out, MatrixView<T> dpred) {
    ElementwiseLossOptions options;
    options.reduction = reduction;
    options.grad_scale = static_cast<float>(rows * cols);
    const MatrixView<const T> pred(data.at(set, 0), rows, cols);
    const MatrixView<const T> target(data.at(set, 1), rows, cols);
    const ElementwiseLossOutputs<T> outputs{out, dpred};
    if (kind == Elementwise::mse) {
      mse_loss(pred, target, outputs, workspace, options, stream());
    } else {
      binary_cross_entropy_with_logits(pred, target, outputs, workspace, options, {}, stream());
    }
  };
  const std::function<void(int)> launch = [&](int set) {
    run(set, Reduction::mean, MatrixView<float>(loss.data(), 1, 1),
        MatrixView<T>(data.at(set, 2), rows, cols));
  };

  // Correctness: the per-sample means (every row) and sampled rows of the timed launch's dpred.
  poison(row_loss.data(), static_cast<std::size_t>(rows) * sizeof(float));
  poison(loss.data(), sizeof(float));
  poison(data.at(0, 2), elements * sizeof(T));
  run(0, Reduction::per_sample, MatrixView<float>(row_loss.data(), rows, 1), MatrixView<T>());
  launch(0);
  const std::vector<std::int64_t> checked = sample_rows(rows, cols);
  const auto checked_rows = static_cast<std::int64_t>(checked.size());
  const std::vector<double> pred = copy_rows(data.at(0, 0), cols, checked);
  const std::vector<double> target = copy_rows(data.at(0, 1), cols, checked);
  std::vector<double> element_loss(pred.size());
  std::vector<double> expected_grad(pred.size());
  if (kind == Elementwise::mse) {
    ref::mse_loss<double>(MatrixView<const double>(pred.data(), checked_rows, cols),
                          MatrixView<const double>(target.data(), checked_rows, cols),
                          MatrixView<double>(element_loss.data(), checked_rows, cols),
                          MatrixView<double>(expected_grad.data(), checked_rows, cols));
  } else {
    ref::binary_cross_entropy_with_logits<double>(
        MatrixView<const double>(pred.data(), checked_rows, cols),
        MatrixView<const double>(target.data(), checked_rows, cols), VectorView<const double>(),
        MatrixView<double>(element_loss.data(), checked_rows, cols),
        MatrixView<double>(expected_grad.data(), checked_rows, cols));
  }
  std::vector<double> expected_rows(checked.size());
  for (std::size_t r = 0; r < checked.size(); ++r) {
    double sum = 0.0;
    for (std::int64_t c = 0; c < cols; ++c) sum += element_loss[r * cols + c];
    expected_rows[r] = sum / static_cast<double>(cols);
  }
  const std::vector<double> device_rows = copy_floats(row_loss.data(), rows);
  std::string mismatch =
      compare_rows(sampled(device_rows, checked), expected_rows, 1, checked, kLossTolerance);
  if (!mismatch.empty()) mismatch = "per-sample loss: " + mismatch;
  if (mismatch.empty()) {
    mismatch = compare_scalar("mean loss", copy_floats(loss.data(), 1)[0], host_mean(device_rows));
  }
  if (mismatch.empty()) {
    // grad_scale = rows cols cancels the mean's 1 / (rows cols).
    mismatch = compare_rows(copy_rows(data.at(0, 2), cols, checked), expected_grad, cols, checked,
                            tolerance_for<T>());
    if (!mismatch.empty()) mismatch = "dpred: " + mismatch;
  }
  if (!mismatch.empty()) {
    state.SkipWithError(mismatch.c_str());
    return;
  }

  set_shape_counters(state, rows, cols, sets, checked.size());
  time_case(state, sets, 3.0 * static_cast<double>(elements) * sizeof(T), launch);
}

// --- registration --------------------------------------------------------------------------------

template <class T>
void register_dtype() {
  for (Impl impl : kImpls) {
    for (std::int64_t classes : kClasses) {
      if (!applicable<T>(impl, classes)) continue;
      add_case(
          case_name("cross_entropy", dtype_of<T>(), impl_name(impl), classes),
          [impl, classes](benchmark::State& state) { run_cross_entropy<T>(state, impl, classes); });
    }
  }
  for (std::int64_t classes : kClasses) {
    add_case(case_name("cross_entropy_softcap", dtype_of<T>(), impl_name(Impl::automatic), classes),
             [classes](benchmark::State& state) {
               run_cross_entropy<T>(state, Impl::automatic, classes, 0, 30.0f);
             });
  }
  const std::vector<std::int64_t> sweep =
      config().quick ? std::vector<std::int64_t>{2048} : std::vector<std::int64_t>{32, 2048, 65536};
  for (Elementwise kind : {Elementwise::mse, Elementwise::bce_with_logits}) {
    for (std::int64_t cols : sweep) {
      add_case(case_name(elementwise_name(kind), dtype_of<T>(), "automatic", cols),
               [kind, cols](benchmark::State& state) { run_elementwise<T>(state, kind, cols); });
    }
  }
}

/// The rows x cols sweep (--rows-sweep): cross-entropy forward + backward in bf16 at every
/// (classes, rows) of rows_sweep_shapes(), cluster vs online vs automatic, dlogits in place as a
/// training step runs it (compare_torch.py times PyTorch on the automatic cases' shapes).
void register_rows_sweep() {
  using T = __nv_bfloat16;
  for (Impl impl : {Impl::cluster, Impl::online, Impl::automatic}) {
    for (const auto& [classes, rows] : rows_sweep_shapes()) {
      if (!applicable<T>(impl, classes)) continue;
      add_case(case_name("cross_entropy", dtype_of<T>(), impl_name(impl), classes, rows),
               [impl, classes = classes, rows = rows](benchmark::State& state) {
                 run_cross_entropy<T>(state, impl, classes, rows);
               });
    }
  }
}

void register_loss_cases() {
  if (config().rows_sweep) {
    register_rows_sweep();
    return;
  }
  register_dtype<float>();
  register_dtype<__half>();
  register_dtype<__nv_bfloat16>();
}

}  // namespace
}  // namespace warpfuse::bench

int main(int argc, char** argv) {
  return warpfuse::bench::bench_main(argc, argv, "loss_bench",
                                     warpfuse::bench::register_loss_cases);
}
