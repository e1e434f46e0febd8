// Tests of the fused optimizer step (include/warpfuse/optimizer.h) against the double-precision
// reference (include/warpfuse/ref/optimizer.h): every rule, every (parameter, gradient) dtype pair,
// lists of tensors at unaligned offsets and longer than one launch, gradient scaling, clipping by
// the global norm, skipped non-finite steps, the device step number under graph capture,
// determinism, and the argument checks. One body, in the emulated and the GPU binaries.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "test_util.h"
#include "warpfuse/optimizer.h"
#include "warpfuse/ref/optimizer.h"

namespace warpfuse::test {
namespace {

using ::testing::HasSubstr;

/// fp32 master weights and state against the double reference after a few steps: each step's
/// fp32 rounding (a few ulp of the weight, and of the update) accumulates, and Adam's
/// m / (sqrt(v) + eps) amplifies the state's relative error about twice.
constexpr Tolerance kMasterTolerance{3e-6, 3e-6};
constexpr Tolerance kStateTolerance{1e-8, 1e-5};

struct RuleCase {
  const char* name;
  OptimizerOptions options;
};

std::vector<RuleCase> rule_cases() {
  std::vector<RuleCase> cases;
  OptimizerOptions o;
  o.rule = OptimizerRule::sgd;
  o.learning_rate = 0.1f;
  cases.push_back({"sgd", o});
  o.momentum = 0.9f;
  cases.push_back({"sgd momentum", o});
  o.nesterov = true;
  o.weight_decay = 0.01f;
  cases.push_back({"sgd nesterov decay", o});
  o = OptimizerOptions{};
  o.learning_rate = 1e-2f;
  cases.push_back({"adam", o});
  o.rule = OptimizerRule::adamw;
  o.weight_decay = 0.05f;
  o.beta_1 = 0.8f;
  o.beta_2 = 0.99f;
  o.epsilon = 1e-6f;
  cases.push_back({"adamw", o});
  return cases;
}

/// A list of tensors laid out in four device buffers (params, grads, master, state) with `gap`
/// elements before each tensor, plus the same data in double for the reference.
template <class T, class G>
struct Problem {
  static constexpr bool kMaster = !std::is_same_v<T, float>;
  std::vector<std::int64_t> sizes;
  std::vector<std::int64_t> starts;       // element offset of each tensor in params and master
  std::vector<std::int64_t> grad_starts;  // in grads (a different phase makes the scalar path)
  std::vector<std::int64_t> state_starts;
  std::vector<T> params_host;
  std::vector<G> grads_host;
  std::vector<float> master_host;
  std::vector<float> state_host;
  DeviceBuffer<T> params;
  DeviceBuffer<G> grads;
  DeviceBuffer<float> master;
  DeviceBuffer<float> state;
  // The reference's copies (double), one vector per tensor.
  std::vector<std::vector<double>> ref_params, ref_grads, ref_state;

  Problem(const std::vector<std::int64_t>& tensor_sizes, const OptimizerOptions& options,
          std::uint64_t seed, int grad_shift = 0) {
    sizes = tensor_sizes;
    std::int64_t at = 0, grad_at = grad_shift, state_at = 0;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      const std::int64_t gap = static_cast<std::int64_t>(i % 4);  // 0..3 elements: any phase
      at += gap;
      grad_at += gap;
      state_at += gap;
      starts.push_back(at);
      grad_starts.push_back(grad_at);
      state_starts.push_back(state_at);
      at += sizes[i];
      grad_at += sizes[i];
      state_at += optimizer_state_floats(options, sizes[i]);
    }
    const auto total = static_cast<std::size_t>(at + 3);
    params_host = random_values<T>(total, seed, -1.0, 1.0);
    grads_host = random_values<G>(static_cast<std::size_t>(grad_at + 3), seed + 1, -1.0, 1.0);
    master_host.resize(total);
    for (std::size_t i = 0; i < total; ++i)
      master_host[i] = static_cast<float>(to_double(params_host[i]));
    state_host = random_values<float>(static_cast<std::size_t>(state_at + 3), seed + 2, 0.0, 0.01);
    // m may be negative: draw it apart from v, which must stay >= 0.
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      if (options.rule == OptimizerRule::sgd) continue;
      const std::vector<float> m =
          random_values<float>(static_cast<std::size_t>(sizes[i]), seed + 10 + i, -0.1, 0.1);
      std::copy(m.begin(), m.end(), state_host.begin() + state_starts[i]);
    }
    params = to_device(params_host);
    grads = to_device(grads_host);
    master = to_device(master_host);
    state = to_device(state_host);
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      ref_params.emplace_back(static_cast<std::size_t>(sizes[i]));
      ref_grads.emplace_back(static_cast<std::size_t>(sizes[i]));
      ref_state.emplace_back(static_cast<std::size_t>(optimizer_state_floats(options, sizes[i])));
      for (std::int64_t e = 0; e < sizes[i]; ++e) {
        ref_params[i][e] = master_host[starts[i] + e];
        ref_grads[i][e] = to_double(grads_host[grad_starts[i] + e]);
      }
      for (std::size_t e = 0; e < ref_state[i].size(); ++e)
        ref_state[i][e] = state_host[state_starts[i] + e];
    }
  }

  std::vector<OptimizerTensor<T, G>> tensors() {
    std::vector<OptimizerTensor<T, G>> list;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      OptimizerTensor<T, G> t;
      t.params = params.data() + starts[i];
      t.grads = grads.data() + grad_starts[i];
      t.master = kMaster ? master.data() + starts[i] : nullptr;
      t.state = state.data() + state_starts[i];
      t.size = sizes[i];
      list.push_back(t);
    }
    return list;
  }

  std::vector<ref::OptimizerTensor<double>> ref_tensors() {
    std::vector<ref::OptimizerTensor<double>> list;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      list.push_back({ref_params[i].data(), ref_grads[i].data(), ref_state[i].data(), sizes[i]});
    }
    return list;
  }

  /// Compares the device's weights (master, or the fp32 params), the params rounded to T and the
  /// state with the reference; every element outside the tensors must be unchanged.
  void expect_matches_reference(const std::string& what) {
    const std::vector<T> got_params = params.to_host();
    const std::vector<float> got_master = master.to_host();
    const std::vector<float> got_state = state.to_host();
    std::vector<bool> inside(got_params.size(), false), state_inside(got_state.size(), false);
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      std::vector<double> weights(static_cast<std::size_t>(sizes[i]));
      std::vector<T> stored(static_cast<std::size_t>(sizes[i]));
      for (std::int64_t e = 0; e < sizes[i]; ++e) {
        const std::size_t at = static_cast<std::size_t>(starts[i] + e);
        inside[at] = true;
        weights[e] = kMaster ? got_master[at] : to_double(got_params[at]);
        stored[e] = got_params[at];
      }
      EXPECT_TRUE(all_close(weights, ref_params[i], kMasterTolerance))
          << what << ": weights of tensor " << i << " (size " << sizes[i] << ")";
      if (kMaster) {
        // The stored parameter is the master rounded once: within half an ulp of T of it.
        std::vector<double> master_rounded(weights.size());
        for (std::size_t e = 0; e < weights.size(); ++e)
          master_rounded[e] = to_double(from_double<T>(weights[e]));
        EXPECT_TRUE(all_close(stored, master_rounded, Tolerance{0.0, 0.0}))
            << what << ": params of tensor " << i << " are not the master rounded to T";
      }
      std::vector<double> state_got(ref_state[i].size());
      for (std::size_t e = 0; e < state_got.size(); ++e) {
        const std::size_t at = static_cast<std::size_t>(state_starts[i]) + e;
        state_inside[at] = true;
        state_got[e] = got_state[at];
      }
      EXPECT_TRUE(all_close(state_got, ref_state[i], kStateTolerance))
          << what << ": state of tensor " << i;
    }
    std::size_t outside = 0;
    for (std::size_t e = 0; e < got_params.size(); ++e) {
      if (!inside[e] && std::memcmp(&got_params[e], &params_host[e], sizeof(T)) != 0) ++outside;
      if (!inside[e] && std::memcmp(&got_master[e], &master_host[e], sizeof(float)) != 0) ++outside;
    }
    for (std::size_t e = 0; e < got_state.size(); ++e) {
      if (!state_inside[e] && std::memcmp(&got_state[e], &state_host[e], sizeof(float)) != 0) {
        ++outside;
      }
    }
    EXPECT_EQ(outside, 0u) << what << ": elements written outside the tensors";
  }
};

/// Workspace memory for a list of `count` tensors.
DeviceBuffer<unsigned char> workspace_for(std::size_t count) {
  return DeviceBuffer<unsigned char>(optimizer_workspace_bytes(count));
}
Workspace view_of(DeviceBuffer<unsigned char>& memory) {
  return Workspace{memory.data(), memory.size()};
}

template <class Pair>
class Optimizer : public DeviceTest {};

template <class T, class G>
struct DtypePair {
  using Param = T;
  using Grad = G;
};
using DtypePairs = ::testing::Types<DtypePair<float, float>, DtypePair<__half, __half>,
                                    DtypePair<__nv_bfloat16, __nv_bfloat16>,
                                    DtypePair<__half, float>, DtypePair<__nv_bfloat16, float>>;
struct PairNames {
  template <class Pair>
  static std::string GetName(int) {
    return type_name<typename Pair::Param>() + "_" + type_name<typename Pair::Grad>();
  }
};
TYPED_TEST_SUITE(Optimizer, DtypePairs, PairNames);

const std::vector<std::int64_t> kAwkwardSizes = {1, 3, 4, 5, 33, 1000, 4099};

TYPED_TEST(Optimizer, EveryRuleMatchesTheReferenceOverSteps) {
  using T = typename TypeParam::Param;
  using G = typename TypeParam::Grad;
  for (const RuleCase& rule : rule_cases()) {
    for (int grad_shift : {0, 1}) {  // 1: grads out of phase with params, the scalar path
      OptimizerOptions options = rule.options;
      options.grad_scale = 0.5f;
      Problem<T, G> problem(kAwkwardSizes, options, 100 + grad_shift);
      const auto tensors = problem.tensors();
      auto ref_tensors = problem.ref_tensors();
      for (std::int64_t step = 1; step <= 3; ++step) {
        options.step = step;
        optimizer_step(tensors.data(), tensors.size(), options, {}, Workspace{});
        ref::optimizer_step(ref_tensors, options);
      }
      WARPFUSE_CUDA_CHECK(cudaDeviceSynchronize());
      problem.expect_matches_reference(std::string(rule.name) + (grad_shift ? " shifted" : ""));
    }
  }
}

TYPED_TEST(Optimizer, ClippingByTheGlobalNormAndItsValue) {
  using T = typename TypeParam::Param;
  using G = typename TypeParam::Grad;
  for (double fraction : {0.25, 10.0}) {                 // clipping active, then inactive
    OptimizerOptions options = rule_cases()[3].options;  // adam
    options.grad_scale = 0.25f;
    Problem<T, G> problem(kAwkwardSizes, options, 200);
    auto ref_tensors = problem.ref_tensors();
    const double norm = ref::gradient_norm(ref_tensors, options.grad_scale);
    ASSERT_GT(norm, 0.0);
    options.max_grad_norm = static_cast<float>(fraction * norm);
    const auto tensors = problem.tensors();
    auto memory = workspace_for(tensors.size());
    DeviceBuffer<float> grad_norm = poisoned_buffer<float>(1);
    DeviceBuffer<int> skipped = poisoned_buffer<int>(1);
    OptimizerExtras extras;
    extras.grad_norm = grad_norm.data();
    extras.skipped = skipped.data();
    optimizer_step(tensors.data(), tensors.size(), options, extras, view_of(memory));
    const ref::OptimizerResult result = ref::optimizer_step(ref_tensors, options);
    EXPECT_NEAR(grad_norm.to_host()[0], result.grad_norm, 1e-6 * result.grad_norm);
    EXPECT_EQ(skipped.to_host()[0], 0);
    problem.expect_matches_reference("max_grad_norm " + std::to_string(fraction) + " x norm");
  }
}

TYPED_TEST(Optimizer, ListsLongerThanOneLaunch) {
  using T = typename TypeParam::Param;
  using G = typename TypeParam::Grad;
  std::vector<std::int64_t> sizes;
  for (int i = 0; i < 150; ++i) sizes.push_back(1 + (i * 7) % 40);  // biases and small kernels
  sizes.push_back(0);                                               // an empty tensor in the list
  sizes.push_back(3001);
  OptimizerOptions options = rule_cases()[4].options;  // adamw
  options.max_grad_norm = 1.0f;                        // the norm spans all three launches
  Problem<T, G> problem(sizes, options, 300);
  const auto tensors = problem.tensors();
  auto memory = workspace_for(tensors.size());
  DeviceBuffer<float> grad_norm(1);
  OptimizerExtras extras;
  extras.grad_norm = grad_norm.data();
  auto ref_tensors = problem.ref_tensors();
  optimizer_step(tensors.data(), tensors.size(), options, extras, view_of(memory));
  const ref::OptimizerResult result = ref::optimizer_step(ref_tensors, options);
  ASSERT_GT(result.grad_norm, options.max_grad_norm);  // clipping is active
  EXPECT_NEAR(grad_norm.to_host()[0], result.grad_norm, 1e-6 * result.grad_norm);
  problem.expect_matches_reference("152 tensors");
}

TYPED_TEST(Optimizer, NonFiniteGradientsSkipTheStep) {
  using T = typename TypeParam::Param;
  using G = typename TypeParam::Grad;
  for (double bad : {std::numeric_limits<double>::infinity(), std::nan("")}) {
    OptimizerOptions options = rule_cases()[3].options;
    options.skip_nonfinite = true;
    options.grad_scale = 1.0f / 1024.0f;
    Problem<T, G> problem(kAwkwardSizes, options, 400);
    problem.grads_host[problem.grad_starts[5] + 17] = from_double<G>(bad);
    problem.grads.copy_from_host(problem.grads_host);
    const auto tensors = problem.tensors();
    auto memory = workspace_for(tensors.size());
    DeviceBuffer<int> skipped = poisoned_buffer<int>(1);
    OptimizerExtras extras;
    extras.skipped = skipped.data();
    optimizer_step(tensors.data(), tensors.size(), options, extras, view_of(memory));
    EXPECT_EQ(skipped.to_host()[0], 1);
    EXPECT_TRUE(bitwise_equal(problem.params.to_host(), problem.params_host)) << bad;
    EXPECT_TRUE(bitwise_equal(problem.master.to_host(), problem.master_host)) << bad;
    EXPECT_TRUE(bitwise_equal(problem.state.to_host(), problem.state_host)) << bad;
    // The reference agrees that the step is skipped.
    problem.ref_grads[5][17] = bad;
    auto ref_tensors = problem.ref_tensors();
    EXPECT_TRUE(ref::optimizer_step(ref_tensors, options).skipped);
  }
}

TYPED_TEST(Optimizer, DeviceStepIsReadWhenACapturedGraphRuns) {
  using T = typename TypeParam::Param;
  using G = typename TypeParam::Grad;
  OptimizerOptions options = rule_cases()[3].options;
  options.step = 1000;  // ignored: extras.step wins
  Problem<T, G> problem({5, 1000, 33}, options, 500);
  const auto tensors = problem.tensors();
  DeviceBuffer<std::int64_t> step(1);
  OptimizerExtras extras;
  extras.step = step.data();
  cudaStream_t stream = nullptr;
  WARPFUSE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  WARPFUSE_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  optimizer_step(tensors.data(), tensors.size(), options, extras, Workspace{}, stream);
  WARPFUSE_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  WARPFUSE_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  auto ref_tensors = problem.ref_tensors();
  for (std::int64_t t = 1; t <= 3; ++t) {
    step.copy_from_host(&t, 1);
    WARPFUSE_CUDA_CHECK(cudaGraphLaunch(exec, stream));
    WARPFUSE_CUDA_CHECK(cudaStreamSynchronize(stream));
    options.step = t;
    ref::optimizer_step(ref_tensors, options);
  }
  WARPFUSE_CUDA_CHECK(cudaGraphExecDestroy(exec));
  WARPFUSE_CUDA_CHECK(cudaGraphDestroy(graph));
  WARPFUSE_CUDA_CHECK(cudaStreamDestroy(stream));
  problem.expect_matches_reference("graph replays at t = 1, 2, 3");
}

TYPED_TEST(Optimizer, BitwiseReproducibleUnderEverySchedule) {
  using T = typename TypeParam::Param;
  using G = typename TypeParam::Grad;
  OptimizerOptions options = rule_cases()[4].options;
  options.max_grad_norm = 0.5f;
  std::vector<float> first_master, first_state;
  std::vector<T> first_params;
  for_each_schedule([&](const std::string& schedule) {
    Problem<T, G> problem({4099, 1, 257}, options, 600);
    const auto tensors = problem.tensors();
    auto memory = workspace_for(tensors.size());
    optimizer_step(tensors.data(), tensors.size(), options, {}, view_of(memory));
    if (first_params.empty()) {
      first_params = problem.params.to_host();
      first_master = problem.master.to_host();
      first_state = problem.state.to_host();
      return;
    }
    EXPECT_TRUE(bitwise_equal(problem.params.to_host(), first_params)) << schedule;
    EXPECT_TRUE(bitwise_equal(problem.master.to_host(), first_master)) << schedule;
    EXPECT_TRUE(bitwise_equal(problem.state.to_host(), first_state)) << schedule;
  });
}

class OptimizerErrors : public DeviceTest {};

TEST_F(OptimizerErrors, ArgumentsAreCheckedAndNamed) {
  OptimizerOptions options;
  DeviceBuffer<float> params(64), grads(64), state(128);
  DeviceBuffer<__half> half_params(64), half_grads(64);
  DeviceBuffer<float> master(64);
  params.fill_bytes(0);  // the one call expected to run reads them
  grads.fill_bytes(0);
  const auto fp32 = [&](std::int64_t size = 64) {
    OptimizerTensor<float> t;
    t.params = params.data();
    t.grads = grads.data();
    t.state = state.data();
    t.size = size;
    return t;
  };
  const auto call = [&](const OptimizerTensor<float>& t, const OptimizerOptions& o,
                        const Workspace& w = Workspace{}) { optimizer_step(t, o, {}, w); };
  {
    OptimizerTensor<float> t = fp32();
    t.params = nullptr;
    expect_invalid([&] { call(t, options); }, "optimizer_step", "tensors[0].params");
    t = fp32();
    t.grads = nullptr;
    expect_invalid([&] { call(t, options); }, "optimizer_step", "tensors[0].grads");
    t = fp32();
    t.state = nullptr;
    EXPECT_THAT(expect_invalid([&] { call(t, options); }, "optimizer_step", "tensors[0].state"),
                HasSubstr("128 floats"));
    t = fp32(-1);
    expect_invalid([&] { call(t, options); }, "optimizer_step", "tensors[0].size");
    t = fp32();
    t.master = master.data();
    expect_invalid([&] { call(t, options); }, "optimizer_step", "tensors[0].master");
    // Plain SGD needs no state: a null state is fine.
    OptimizerOptions sgd;
    sgd.rule = OptimizerRule::sgd;
    t = fp32();
    t.state = nullptr;
    EXPECT_NO_THROW(call(t, sgd));
  }
  {
    OptimizerTensor<__half> t;
    t.params = half_params.data();
    t.grads = half_grads.data();
    t.state = state.data();
    t.size = 64;
    expect_invalid([&] { optimizer_step(t, options, {}, Workspace{}); }, "optimizer_step",
                   "tensors[0].master");
  }
  {
    // Overlaps: grads inside params, a second tensor's params on the first's state.
    OptimizerTensor<float> t = fp32(32);
    t.grads = params.data() + 16;
    EXPECT_THAT(expect_invalid([&] { call(t, options); }, "optimizer_step", "tensors[0].params"),
                HasSubstr("tensors[0].grads"));
    OptimizerTensor<float> list[2] = {fp32(32), fp32(32)};
    list[1].params = state.data() + 60;
    list[1].grads = grads.data() + 32;
    list[1].state = state.data() + 64 + 32;  // unused by this error: the params overlap first
    EXPECT_THAT(expect_invalid([&] { optimizer_step(list, 2, options, {}, Workspace{}); },
                               "optimizer_step", "tensors[1].params"),
                HasSubstr("tensors[0].state"));
  }
  {
    const auto bad = [&](const char* argument, auto change) {
      OptimizerOptions o;
      change(o);
      expect_invalid([&] { call(fp32(), o); }, "optimizer_step", argument);
    };
    bad("options.learning_rate", [](OptimizerOptions& o) { o.learning_rate = -1.0f; });
    {
      OptimizerOptions tiny;
      tiny.learning_rate = -1e-9f;  // printed as %g, not std::to_string's -0.000000
      EXPECT_THAT(
          expect_invalid([&] { call(fp32(), tiny); }, "optimizer_step", "options.learning_rate"),
          HasSubstr("-1e-09"));
    }
    bad("options.learning_rate",
        [](OptimizerOptions& o) { o.learning_rate = std::numeric_limits<float>::infinity(); });
    bad("options.beta_1", [](OptimizerOptions& o) { o.beta_1 = 1.0f; });
    bad("options.beta_2", [](OptimizerOptions& o) { o.beta_2 = -0.1f; });
    bad("options.epsilon", [](OptimizerOptions& o) { o.epsilon = 0.0f; });
    bad("options.weight_decay", [](OptimizerOptions& o) { o.weight_decay = -0.5f; });
    bad("options.grad_scale", [](OptimizerOptions& o) { o.grad_scale = std::nanf(""); });
    bad("options.max_grad_norm", [](OptimizerOptions& o) { o.max_grad_norm = -1.0f; });
    bad("options.step", [](OptimizerOptions& o) { o.step = 0; });
    bad("options.momentum", [](OptimizerOptions& o) {
      o.rule = OptimizerRule::sgd;
      o.momentum = 1.0f;
    });
    bad("options.nesterov", [](OptimizerOptions& o) {
      o.rule = OptimizerRule::sgd;
      o.nesterov = true;
    });
  }
  {
    // The norm needs the workspace: none, or one too small.
    OptimizerOptions clip;
    clip.max_grad_norm = 1.0f;
    expect_invalid([&] { call(fp32(), clip); }, "optimizer_step", "workspace");
    DeviceBuffer<unsigned char> small(64);
    expect_invalid(
        [&] {
          call(fp32(), clip, Workspace{small.data(), small.size()});
        },
        "optimizer_step", "workspace");
  }
}

}  // namespace
}  // namespace warpfuse::test
