// warpfuse::nn on Device::cuda — the CUDA path (warpfuse ops, the GEMM wrapper, the fused
// optimizer kernel, Thrust gathers) trains a tiny network to the same weights as the CPU path
// within float tolerance, for each loss family, and is bitwise deterministic run to run.
//
// Runs on the SIMT emulator (GEMMs through CBLAS, Thrust on its CPP backend) and on a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "test_util.h"
#if defined(WARPFUSE_SIMT)
#include "simt/simt.h"
#endif
#include "warpfuse/nn/nn.h"

namespace warpfuse::nn {
namespace {

class NnCudaTest : public test::DeviceTest {};

struct Problem {
  const char* name;
  std::vector<Dense> layers;
  Loss loss;
  std::vector<std::string> metrics;
  Optimizer optimizer;
  int y_cols;  // 0: class indices
};

Matrix random_matrix(std::int64_t rows, std::int64_t cols, std::uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  Matrix m(rows, cols);
  for (float& v : m.data) v = dist(rng);
  return m;
}

std::vector<Problem> problems() {
  return {
      {"softmax_sparse_ce",
       {Dense(6, "relu", 4), Dense(5, "tanh"), Dense(3, "softmax")},
       Loss("sparse_categorical_crossentropy"),
       {"accuracy"},
       Adam(0.01f),
       0},
      {"softmax_categorical_ce_prelu_sgd",
       {Dense(6, "prelu", 4), Dense(3, "softmax")},
       Loss("categorical_crossentropy"),
       {"accuracy"},
       SGD(0.1f, 0.9f, true),
       3},
      {"sigmoid_bce_gelu",
       {Dense(5, "gelu", 4), Dense(2, "sigmoid")},
       Loss("binary_crossentropy"),
       {"accuracy"},
       AdamW(0.01f),
       2},
      {"linear_mse_elu_silu",
       {Dense(5, Activation::elu(0.5f), 4), Dense(4, "silu"), Dense(2)},
       Loss("mse"),
       {"mae"},
       Adam(0.01f),
       2},
      {"huber_selu_leaky",
       {Dense(5, "selu", 4), Dense(4, Activation::leaky_relu(0.1f)), Dense(1, "sigmoid")},
       Loss(LossKind::huber, false, 0.5f),
       {"mse"},
       Adam(0.01f),
       1},
  };
}

std::pair<std::vector<float>, History> train(const Problem& p, Device device, const Matrix& x,
                                             const Matrix& y,
                                             MatmulPrecision precision = MatmulPrecision::fp32) {
  Sequential model;
  for (const Dense& d : p.layers) model.add(d);
  model.compile(p.optimizer, p.loss, p.metrics, device, 7);
  model.set_matmul_precision(precision);
  FitOptions fit;
  fit.epochs = 3;
  fit.batch_size = 8;  // 20 samples: batches of 8, 8 and 4, so two batch shapes per epoch
  fit.seed = 3;
  fit.verbose = 0;
  fit.validation_split = 0.2;
  History h = model.fit(x, y, fit);
  return {model.get_weights(), h};
}

TEST_F(NnCudaTest, AgreesWithTheCpuPathAfterSeveralSteps) {
  for (const Problem& p : problems()) {
    SCOPED_TRACE(p.name);
    const Matrix x = random_matrix(25, 4, 1, -1.0f, 1.0f);
    Matrix y;
    if (p.y_cols == 0) {
      y = Matrix(25, 1);
      for (std::int64_t r = 0; r < 25; ++r) y(r, 0) = static_cast<float>(r % 3);
    } else if (p.loss.kind == LossKind::categorical_crossentropy) {
      Matrix labels(25, 1);
      for (std::int64_t r = 0; r < 25; ++r) labels(r, 0) = static_cast<float>(r % 3);
      y = one_hot(labels, 3);
    } else {
      y = random_matrix(25, p.y_cols, 2, 0.0f, 1.0f);
      if (p.loss.is_crossentropy()) {
        for (float& v : y.data) v = v > 0.5f ? 1.0f : 0.0f;
      }
    }
    const auto [cpu_weights, cpu_history] = train(p, Device::cpu, x, y);
    const auto [cuda_weights, cuda_history] = train(p, Device::cuda, x, y);
    ASSERT_EQ(cpu_weights.size(), cuda_weights.size());
    int bad = 0;
    for (std::size_t i = 0; i < cpu_weights.size(); ++i) {
      if (std::fabs(cpu_weights[i] - cuda_weights[i]) > 1e-4f + 1e-3f * std::fabs(cpu_weights[i])) {
        if (++bad <= 5) {
          ADD_FAILURE() << "weight " << i << ": cpu " << cpu_weights[i] << ", cuda "
                        << cuda_weights[i];
        }
      }
    }
    for (const auto& [name, values] : cpu_history.history) {
      ASSERT_EQ(cuda_history.history.count(name), 1u) << name;
      for (std::size_t e = 0; e < values.size(); ++e) {
        EXPECT_NEAR(cuda_history.history.at(name)[e], values[e], 1e-4 + 1e-3 * std::fabs(values[e]))
            << name << " epoch " << e;
      }
    }
  }
}

// bf16 GEMM operands (MatmulPrecision::bf16) on both devices: the emulated CUDA backend's GEMM
// wrapper and the CPU backend both reach ref::sgemm_bf16, so they agree as closely as in fp32;
// and the setting takes effect (the weights move away from the fp32 run's by more than the
// devices differ, but stay close to them).
TEST_F(NnCudaTest, Bf16MatmulAgreesAcrossDevicesAndDiffersFromFp32) {
  const Problem p = problems().front();
  const Matrix x = random_matrix(25, 4, 1, -1.0f, 1.0f);
  Matrix y(25, 1);
  for (std::int64_t r = 0; r < 25; ++r) y(r, 0) = static_cast<float>(r % 3);
  const auto cpu_bf16 = train(p, Device::cpu, x, y, MatmulPrecision::bf16).first;
  const auto cuda_bf16 = train(p, Device::cuda, x, y, MatmulPrecision::bf16).first;
  const auto cpu_fp32 = train(p, Device::cpu, x, y, MatmulPrecision::fp32).first;
  ASSERT_EQ(cpu_bf16.size(), cuda_bf16.size());
  double device_gap = 0.0, precision_gap = 0.0;
  for (std::size_t i = 0; i < cpu_bf16.size(); ++i) {
    EXPECT_NEAR(cuda_bf16[i], cpu_bf16[i], 1e-4f + 1e-3f * std::fabs(cpu_bf16[i]))
        << "weight " << i;
    device_gap = std::max(device_gap, static_cast<double>(std::fabs(cuda_bf16[i] - cpu_bf16[i])));
    precision_gap =
        std::max(precision_gap, static_cast<double>(std::fabs(cpu_fp32[i] - cpu_bf16[i])));
    // bf16 keeps 8 significant bits: after 9 Adam steps of lr 0.01 the runs stay within 0.05.
    EXPECT_NEAR(cpu_bf16[i], cpu_fp32[i], 0.05) << "weight " << i;
  }
  EXPECT_GT(precision_gap, 10.0 * device_gap + 1e-6) << "bf16 did not change the GEMMs";
}

TEST_F(NnCudaTest, SameSeedGivesBitwiseEqualWeights) {
  const Problem p = problems().front();
  const Matrix x = random_matrix(25, 4, 4, -1.0f, 1.0f);
  Matrix y(25, 1);
  for (std::int64_t r = 0; r < 25; ++r) y(r, 0) = static_cast<float>((r * 7) % 3);
  const auto first = train(p, Device::cuda, x, y).first;
  const auto second = train(p, Device::cuda, x, y).first;
  ASSERT_EQ(first.size(), second.size());
  EXPECT_EQ(0, std::memcmp(first.data(), second.data(), first.size() * sizeof(float)));
}

// From the second step of a batch shape on, the CUDA backend replays a captured CUDA Graph; with
// WARPFUSE_CUDA_GRAPHS=0 every step runs eagerly. The same training must give bitwise the same
// weights either way (and the emulated build captures and replays too).
TEST_F(NnCudaTest, CapturedStepsGiveBitwiseTheWeightsOfEagerSteps) {
  for (const Problem& p : problems()) {
    SCOPED_TRACE(p.name);
    const Matrix x = random_matrix(25, 4, 11, -1.0f, 1.0f);
    Matrix y(25, p.y_cols == 0 ? 1 : p.y_cols);
    for (std::int64_t r = 0; r < 25; ++r) {
      for (std::int64_t c = 0; c < y.cols; ++c) {
        y(r, c) = p.y_cols == 0 ? static_cast<float>(r % 3)
                                : static_cast<float>((r + c) % 2) * (c == 0 ? 1.0f : 0.5f);
      }
    }
    if (p.loss.kind == LossKind::categorical_crossentropy) {
      for (std::int64_t r = 0; r < 25; ++r) {
        for (std::int64_t c = 0; c < y.cols; ++c) y(r, c) = c == r % y.cols ? 1.0f : 0.0f;
      }
    }
    const auto captured = train(p, Device::cuda, x, y).first;
    ASSERT_EQ(setenv("WARPFUSE_CUDA_GRAPHS", "0", 1), 0);
    const auto eager = train(p, Device::cuda, x, y).first;
    unsetenv("WARPFUSE_CUDA_GRAPHS");
    ASSERT_EQ(captured.size(), eager.size());
    EXPECT_EQ(0, std::memcmp(captured.data(), eager.data(), eager.size() * sizeof(float)));
  }
}

TEST_F(NnCudaTest, PredictEvaluateAndCheckpointMatchTheCpuPath) {
  const Problem p = problems().front();
  const Matrix x = random_matrix(25, 4, 5, -1.0f, 1.0f);
  Matrix y(25, 1);
  for (std::int64_t r = 0; r < 25; ++r) y(r, 0) = static_cast<float>(r % 3);
  Sequential model;
  for (const Dense& d : p.layers) model.add(d);
  model.compile(p.optimizer, p.loss, p.metrics, Device::cuda, 9);
  FitOptions fit;
  fit.epochs = 2;
  fit.verbose = 0;
  fit.batch_size = 10;
  model.fit(x, y, fit);
  const std::string path = ::testing::TempDir() + "warpfuse_nn_cuda.wfnn";
  model.save(path);
  Sequential on_cpu = Sequential::load(path, Device::cpu);
  EXPECT_EQ(on_cpu.get_weights(), model.get_weights());
  const Matrix p_cuda = model.predict(x, 7);
  const Matrix p_cpu = on_cpu.predict(x, 7);
  for (std::size_t i = 0; i < p_cpu.data.size(); ++i) {
    EXPECT_NEAR(p_cuda.data[i], p_cpu.data[i], 1e-5f) << i;
  }
  const auto e_cuda = model.evaluate(x, y, 6);
  const auto e_cpu = on_cpu.evaluate(x, y, 6);
  EXPECT_NEAR(e_cuda.at("loss"), e_cpu.at("loss"), 1e-5);
  EXPECT_EQ(e_cuda.at("accuracy"), e_cpu.at("accuracy"));
  std::remove(path.c_str());
}

TEST_F(NnCudaTest, NonFiniteLossNamesEpochAndStep) {
  const Problem p = problems().front();
  Sequential model;
  for (const Dense& d : p.layers) model.add(d);
  model.compile(p.optimizer, p.loss, p.metrics, Device::cuda, 9);
  const Matrix x = random_matrix(24, 4, 6, -1.0f, 1.0f);
  const Matrix y(24, 1, 1.0f);
  FitOptions fit;
  fit.epochs = 2;
  fit.verbose = 0;
  fit.batch_size = 8;
  model.fit(x, y, fit);  // one good epoch, then poison the weights
  std::vector<float> w = model.get_weights();
  w[0] = NAN;
  model.set_weights(w);
  try {
    model.fit(x, y, fit);
    FAIL() << "no error";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("epoch 1, step 1 of 3"), std::string::npos) << e.what();
  }
}

// ELU and SELU below zero: f'(z) = alpha e^z must come from z, not from f(z) + alpha, which cancels
// (at z = -17 float f(z) + 1 is 44% off, at z = -20 it is 0). A first layer of one unit sees
// z = w1 x = -17 or -20 with x = 1e6, so dL/dw1 = x f'(z) w2 dL/dz2 moves w1 measurably after one
// SGD step; the move is checked against the formula in double on both devices.
TEST_F(NnCudaTest, EluAndSeluGradientsHoldFarBelowZero) {
  for (Device device : {Device::cpu, Device::cuda}) {
    for (const Activation& act : {Activation::elu(1.0f), Activation(ActivationKind::selu)}) {
      for (double target_z : {-17.0, -20.0}) {
        Sequential model;
        model.add(Dense(1, act, 1));
        model.add(Dense(1));
        const float lr = 1e-3f;
        model.compile(SGD(lr), "mse", {}, device, 1);
        const float x_value = 1e6f;
        const float w1 = static_cast<float>(target_z / 1e6);
        model.set_weights({w1, 0.0f, 1.0f, 0.0f});  // kernel, bias of each layer
        FitOptions fit;
        fit.epochs = 1;
        fit.batch_size = 1;
        fit.shuffle = false;
        fit.verbose = 0;
        model.fit(Matrix(1, 1, std::vector<float>{x_value}), Matrix(1, 1, std::vector<float>{0.0f}),
                  fit);
        const std::vector<float> after = model.get_weights();
        const double z = static_cast<double>(w1) * x_value;
        const bool selu = act.kind == ActivationKind::selu;
        const double alpha = selu ? 1.6732632423543772848170429916717 : 1.0;
        const double scale = selu ? 1.0507009873554804934193349852946 : 1.0;
        const double a = scale * alpha * std::expm1(z);
        const double dz1 = 2.0 * a * scale * alpha * std::exp(z);  // dL/dz2 = 2 a, w2 = 1
        const double expected = static_cast<double>(w1) - lr * x_value * dz1;
        EXPECT_NEAR(after[0], expected, 0.01 * std::fabs(lr * x_value * dz1))
            << to_string(device) << " " << to_string(act.kind) << " at z = " << target_z;
      }
    }
  }
}

// A NaN reaching any activation stays NaN through it and into predict (the CPU ReLU once mapped it
// to 0, so a poisoned model predicted confident probabilities). The NaN enters through a weight.
TEST_F(NnCudaTest, NanThroughEveryActivationIntoPredict) {
  const ActivationKind kinds[] = {
      ActivationKind::linear, ActivationKind::relu,   ActivationKind::leaky_relu,
      ActivationKind::prelu,  ActivationKind::elu,    ActivationKind::selu,
      ActivationKind::gelu,   ActivationKind::silu,   ActivationKind::sigmoid,
      ActivationKind::tanh,   ActivationKind::softmax};
  const Matrix x = random_matrix(4, 2, 8, -1.0f, 1.0f);
  for (Device device : {Device::cpu, Device::cuda}) {
    for (ActivationKind kind : kinds) {
      Sequential model;
      model.add(Dense(3, Activation(kind), 2));
      model.add(Dense(2, "softmax"));
      model.compile(Adam(), "categorical_crossentropy", {}, device, 3);
      std::vector<float> w = model.get_weights();
      w[0] = NAN;  // first layer's kernel [0][0]: unit 0's z is NaN for every row
      model.set_weights(w);
      const Matrix out = model.predict(x);
      for (std::size_t i = 0; i < out.data.size(); ++i) {
        EXPECT_TRUE(std::isnan(out.data[i])) << to_string(device) << " " << to_string(kind)
                                             << " output " << i << " = " << out.data[i];
      }
    }
  }
}

#if defined(WARPFUSE_SIMT)
// The CUDA backend's data flow, counted by the emulator's cudart shim: the validation data goes
// to the device once per fit, and the host waits per epoch, never per batch. Two fits that differ
// only in the batch count (4 and 16 steps per epoch) make the same number of host-to-device
// copies and host waits; a third epoch adds the same amount as the second (the epoch's sample
// order and the end-of-epoch reads), not a second upload of the validation data.
TEST_F(NnCudaTest, ValidationUploadedOnceAndNoWaitPerBatch) {
  const Problem p = problems().front();
  const Matrix x = random_matrix(64, 4, 21, -1.0f, 1.0f);
  Matrix y(64, 1);
  for (std::int64_t r = 0; r < 64; ++r) y.data[r] = static_cast<float>(r % 3);
  const Matrix val_x = random_matrix(40, 4, 22, -1.0f, 1.0f);
  Matrix val_y(40, 1);
  for (std::int64_t r = 0; r < 40; ++r) val_y.data[r] = static_cast<float>(r % 3);
  const auto run = [&](std::int64_t batch, int epochs) {
    Sequential model;
    for (const Dense& d : p.layers) model.add(d);
    model.compile(p.optimizer, p.loss, p.metrics, Device::cuda, 5);
    FitOptions fit;
    fit.epochs = epochs;
    fit.batch_size = batch;
    fit.verbose = 0;
    fit.validation_data = std::make_pair(val_x, val_y);
    // The first fit of a batch shape sizes the buffers and captures its graphs: count a second.
    model.fit(x, y, fit);
    const simt::Stats before = simt::stats();
    model.fit(x, y, fit);
    const simt::Stats after = simt::stats();
    return std::make_pair(after.host_to_device_copies - before.host_to_device_copies,
                          after.host_waits - before.host_waits);
  };
  const auto [copies_16, waits_16] = run(4, 2);  // 16 steps per epoch
  const auto [copies_4, waits_4] = run(16, 2);   // 4 steps per epoch
  EXPECT_EQ(copies_16, copies_4);
  EXPECT_EQ(waits_16, waits_4);
  const auto [copies_3, waits_3] = run(16, 3);
  const auto [copies_1, waits_1] = run(16, 1);
  EXPECT_EQ(copies_3 - copies_4, copies_4 - copies_1) << "an epoch re-uploads something";
  EXPECT_EQ(waits_3 - waits_4, waits_4 - waits_1);
  EXPECT_LE(copies_4 - copies_1, 1u) << "more than the sample order per epoch";
  EXPECT_LE(waits_4 - waits_1, 4u) << "more host waits per epoch than the epoch's reads";
}
#endif

}  // namespace
}  // namespace warpfuse::nn
