// warpfuse host — optimizer_step (include/warpfuse/optimizer.h, kernels/optimizer.cuh): validation,
// the list split into launches of kOptimizerTensorsPerLaunch tensors, the norm's partials in the
// workspace, and the explicit instantiations.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "host/cuda/common.h"
#include "host/cuda/launch.h"
#include "kernels/optimizer.cuh"
#include "warpfuse/error.h"
#include "warpfuse/optimizer.h"

namespace warpfuse {

std::size_t optimizer_workspace_bytes(std::size_t tensors) {
  const std::size_t launches = std::max<std::size_t>(
      1, (tensors + kOptimizerTensorsPerLaunch - 1) / kOptimizerTensorsPerLaunch);
  const std::size_t bytes = launches * detail::kOptimizerNormBlocks * sizeof(double);
  return std::max<std::size_t>(
      512, (bytes + kWorkspaceAlignment - 1) / kWorkspaceAlignment * kWorkspaceAlignment);
}

namespace {

constexpr const char* kOp = "optimizer_step";

void check_options(const OptimizerOptions& o, bool device_step) {
  const auto require = [](bool ok, const char* argument, const std::string& problem) {
    if (!ok) throw InvalidArgument(kOp, argument, problem);
  };
  require(o.rule == OptimizerRule::sgd || o.rule == OptimizerRule::adam ||
              o.rule == OptimizerRule::adamw,
          "options.rule", "is not an OptimizerRule");
  require(std::isfinite(o.learning_rate) && o.learning_rate >= 0.0f, "options.learning_rate",
          "must be finite and >= 0 (is " + detail::format_number(o.learning_rate) + ")");
  require(o.momentum >= 0.0f && o.momentum < 1.0f, "options.momentum",
          "must be in [0, 1) (is " + detail::format_number(o.momentum) + ")");
  require(!o.nesterov || o.rule != OptimizerRule::sgd || o.momentum > 0.0f, "options.nesterov",
          "needs momentum > 0");
  require(o.beta_1 >= 0.0f && o.beta_1 < 1.0f, "options.beta_1",
          "must be in [0, 1) (is " + detail::format_number(o.beta_1) + ")");
  require(o.beta_2 >= 0.0f && o.beta_2 < 1.0f, "options.beta_2",
          "must be in [0, 1) (is " + detail::format_number(o.beta_2) + ")");
  require(std::isfinite(o.epsilon) && o.epsilon > 0.0f, "options.epsilon",
          "must be finite and > 0 (is " + detail::format_number(o.epsilon) + ")");
  require(std::isfinite(o.weight_decay) && o.weight_decay >= 0.0f, "options.weight_decay",
          "must be finite and >= 0 (is " + detail::format_number(o.weight_decay) + ")");
  require(std::isfinite(o.grad_scale), "options.grad_scale",
          "must be finite (is " + detail::format_number(o.grad_scale) + ")");
  require(std::isfinite(o.max_grad_norm) && o.max_grad_norm >= 0.0f, "options.max_grad_norm",
          "must be finite and >= 0 (is " + detail::format_number(o.max_grad_norm) + ")");
  require(o.rule == OptimizerRule::sgd || device_step || o.step >= 1, "options.step",
          "must be >= 1 (is " + std::to_string(o.step) + ")");
}

/// A byte range of one argument, for the overlap check: tensors[tensor].member, or `member` alone
/// (tensor -1). The name is formed only for an error, so a step's check allocates no strings.
struct NamedSpan {
  detail::ByteSpan span;
  std::int64_t tensor;
  const char* member;
  bool input;  ///< read only (grads): the other side of an overlap is the one named
  std::string name() const {
    return tensor < 0 ? std::string(member) : "tensors[" + std::to_string(tensor) + "]." + member;
  }
};

template <class V>
NamedSpan span_of(const V* data, std::int64_t count, std::int64_t tensor, const char* member) {
  if (data == nullptr || count <= 0) return {{}, tensor, member, false};
  const auto begin = reinterpret_cast<std::uintptr_t>(data);
  return {{begin, begin + static_cast<std::uintptr_t>(count) * sizeof(V)}, tensor, member, false};
}

template <class T, class G>
void check_tensors(const OptimizerTensor<T, G>* tensors, std::size_t count,
                   const OptimizerOptions& options, const OptimizerExtras& extras,
                   const Workspace& workspace, bool norm) {
  if (count > 0 && tensors == nullptr) {
    throw InvalidArgument(kOp, "tensors", "is null for a list of " + std::to_string(count));
  }
  constexpr bool kLowPrecision = !std::is_same_v<T, float>;
  std::vector<NamedSpan> spans;
  spans.reserve(4 * count + 4);
  for (std::size_t i = 0; i < count; ++i) {
    const OptimizerTensor<T, G>& t = tensors[i];
    const auto index = static_cast<std::int64_t>(i);
    const auto require = [&](bool ok, const char* member, const auto& problem) {
      if (!ok) throw InvalidArgument(kOp, NamedSpan{{}, index, member, false}.name(), problem());
    };
    require(t.size >= 0, "size", [&] { return "is negative (" + std::to_string(t.size) + ")"; });
    if (t.size == 0) continue;
    require(t.params != nullptr, "params", [] { return std::string("is null"); });
    require(t.grads != nullptr, "grads", [] { return std::string("is null"); });
    require(!kLowPrecision || t.master != nullptr, "master",
            [] { return std::string("is null: 16-bit parameters need an fp32 master copy"); });
    require(kLowPrecision || t.master == nullptr, "master", [] {
      return std::string("is set for fp32 parameters, which are their own master copy");
    });
    const std::int64_t state_floats = optimizer_state_floats(options, t.size);
    require(state_floats == 0 || t.state != nullptr, "state",
            [&] { return "is null; this rule needs " + std::to_string(state_floats) + " floats"; });
    require(t.size <= std::numeric_limits<std::int64_t>::max() / 8, "size",
            [&] { return "is too large (" + std::to_string(t.size) + ")"; });
    spans.push_back(span_of(t.params, t.size, index, "params"));
    NamedSpan grads = span_of(t.grads, t.size, index, "grads");
    grads.input = true;
    spans.push_back(grads);
    spans.push_back(span_of(t.master, t.size, index, "master"));
    if (state_floats > 0) spans.push_back(span_of(t.state, state_floats, index, "state"));
  }
  spans.push_back(span_of(extras.grad_norm, 1, -1, "extras.grad_norm"));
  spans.push_back(span_of(extras.skipped, 1, -1, "extras.skipped"));
  spans.push_back(span_of(extras.step, 1, -1, "extras.step"));
  if (norm) {
    detail::check_workspace(kOp, workspace, optimizer_workspace_bytes(count),
                            "optimizer_workspace_bytes(tensors)");
    spans.push_back({detail::span_of(workspace), -1, "workspace", false});
  }
  // Every array of every tensor is disjoint from every other (sorted: n log n for long lists).
  spans.erase(std::remove_if(spans.begin(), spans.end(),
                             [](const NamedSpan& s) { return s.span.begin == s.span.end; }),
              spans.end());
  std::sort(spans.begin(), spans.end(),
            [](const NamedSpan& a, const NamedSpan& b) { return a.span.begin < b.span.begin; });
  for (std::size_t i = 1; i < spans.size(); ++i) {
    if (spans[i].span.begin < spans[i - 1].span.end) {
      const bool later_is_output = !spans[i].input;
      const NamedSpan& out = later_is_output ? spans[i] : spans[i - 1];
      const NamedSpan& other = later_is_output ? spans[i - 1] : spans[i];
      throw InvalidArgument(kOp, out.name(), "overlaps " + other.name());
    }
  }
}

}  // namespace

template <class T, class G>
void optimizer_step(const OptimizerTensor<T, G>* tensors, std::size_t count,
                    const OptimizerOptions& options, const OptimizerExtras& extras,
                    const Workspace& workspace, cudaStream_t stream) {
  check_options(options, extras.step != nullptr);
  const bool norm = options.max_grad_norm > 0.0f || options.skip_nonfinite ||
                    extras.grad_norm != nullptr || extras.skipped != nullptr;
  check_tensors(tensors, count, options, extras, workspace, norm);

  using Batch = detail::OptimizerBatch<T, G>;
  const std::size_t launches = std::max<std::size_t>(
      1, (count + kOptimizerTensorsPerLaunch - 1) / kOptimizerTensorsPerLaunch);
  std::vector<Batch> batches(launches);
  std::vector<std::int64_t> pieces(launches, 0);
  for (std::size_t i = 0; i < count; ++i) {
    Batch& batch = batches[i / kOptimizerTensorsPerLaunch];
    const OptimizerTensor<T, G>& t = tensors[i];
    batch.tensors[batch.count++] = {t.params, t.grads, t.master, t.state, t.size};
    pieces[i / kOptimizerTensorsPerLaunch] += t.size / detail::kOptimizerPack + 1;
  }

  double* const partials = norm ? static_cast<double*>(workspace.data) : nullptr;
  if (norm) {
    const auto kernel = detail::optimizer_norm_kernel<T, G>;
    for (std::size_t l = 0; l < launches; ++l) {
      detail::launch(
          {dim3(detail::kOptimizerNormBlocks), dim3(detail::kOptimizerThreads), 0, stream},
          "optimizer_norm_kernel", kernel, batches[l], options.grad_scale,
          partials + l * detail::kOptimizerNormBlocks);
    }
  }

  detail::OptimizerParams params{};
  params.rule = options.rule;
  params.learning_rate = options.learning_rate;
  params.momentum = options.momentum;
  params.nesterov = options.nesterov ? 1 : 0;
  params.beta_1 = options.beta_1;
  params.beta_2 = options.beta_2;
  params.epsilon = options.epsilon;
  params.weight_decay = options.weight_decay;
  params.grad_scale = options.grad_scale;
  params.max_grad_norm = options.max_grad_norm;
  params.skip_nonfinite = options.skip_nonfinite ? 1 : 0;
  params.step = options.step;
  params.device_step = extras.step;
  params.partials = partials;
  params.partial_count = norm ? static_cast<int>(launches) * detail::kOptimizerNormBlocks : 0;
  params.grad_norm = extras.grad_norm;
  params.skipped = extras.skipped;
  const auto kernel = detail::optimizer_update_kernel<T, G, detail::kOptimizerPack>;
  for (std::size_t l = 0; l < launches; ++l) {
    params.write_extras = l == 0 ? 1 : 0;
    const std::int64_t work_blocks = std::max<std::int64_t>(
        1, (pieces[l] + detail::kOptimizerThreads - 1) / detail::kOptimizerThreads);
    detail::launch(
        detail::wave_config(kernel, work_blocks, dim3(detail::kOptimizerThreads), 0, stream),
        "optimizer_update_kernel", kernel, batches[l], params);
  }
}

#define WARPFUSE_INSTANTIATE_OPTIMIZER(T, G)                                          \
  template void optimizer_step<T, G>(const OptimizerTensor<T, G>*, std::size_t,       \
                                     const OptimizerOptions&, const OptimizerExtras&, \
                                     const Workspace&, cudaStream_t);
WARPFUSE_INSTANTIATE_OPTIMIZER(float, float)
WARPFUSE_INSTANTIATE_OPTIMIZER(__half, __half)
WARPFUSE_INSTANTIATE_OPTIMIZER(__nv_bfloat16, __nv_bfloat16)
WARPFUSE_INSTANTIATE_OPTIMIZER(__half, float)
WARPFUSE_INSTANTIATE_OPTIMIZER(__nv_bfloat16, float)
#undef WARPFUSE_INSTANTIATE_OPTIMIZER

}  // namespace warpfuse
