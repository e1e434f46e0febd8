// warpfuse::nn — the vocabulary of the trainer: activations, losses, optimizers, initialisers.
//
// Names and defaults follow Keras (keras.activations, keras.losses, keras.optimizers), so a model
// written as Dense(64, "relu") / compile(Adam(), "categorical_crossentropy", {"accuracy"}) means
// what it means in Keras. This header needs no CUDA: the CPU backend (warpfuse/ref/nn_cpu.h) uses
// it too.
#pragma once

#include <cstdint>
#include <string>

#include "warpfuse/gemm_types.h"
#include "warpfuse/optimizer_types.h"
#include "warpfuse/ref/activation.h"

namespace warpfuse::nn {

enum class ActivationKind {
  linear,
  relu,
  leaky_relu,  ///< x > 0 ? x : alpha x; alpha defaults to 0.2 (keras.activations.leaky_relu)
  prelu,       ///< x > 0 ? x : a[unit] x, a learnable per unit, initialised to 0 (Keras PReLU)
  elu,         ///< x > 0 ? x : alpha (e^x - 1); alpha defaults to 1
  selu,
  gelu,  ///< exact x Phi(x) (Keras' default approximate=False)
  silu,
  sigmoid,
  tanh,
  softmax,  ///< row-wise over the layer's units
};

/// An activation and its parameter; converts from its Keras name ("relu", "softmax", ...).
struct Activation {
  ActivationKind kind = ActivationKind::linear;
  float alpha = 0.0f;  ///< leaky_relu's slope, elu's alpha; unused otherwise

  Activation() = default;
  Activation(ActivationKind k);  // NOLINT: implicit, as Keras takes the name or the function
  Activation(const char* name);  // NOLINT
  Activation(const std::string& name) : Activation(name.c_str()) {}  // NOLINT
  static Activation leaky_relu(float alpha = 0.2f) { return {ActivationKind::leaky_relu, alpha}; }
  static Activation elu(float alpha = 1.0f) { return {ActivationKind::elu, alpha}; }

  /// An elementwise activation of the ops (every kind but linear and softmax): both backends run
  /// it through the library's one definition of it, params() below.
  bool elementwise() const {
    return kind != ActivationKind::linear && kind != ActivationKind::softmax;
  }
  /// The ops' parameters of an elementwise kind (<warpfuse/ref/activation.h>): the CUDA backend
  /// passes them to bias_activation_forward / _backward, the CPU backend to the reference's
  /// ref::activation_forward / _backward for float. Keras' defaults stay the trainer's (alpha
  /// is leaky_relu's slope, 0.2, where the ops default to PyTorch's 0.01).
  ActivationParams params() const;

 private:
  Activation(ActivationKind k, float a) : kind(k), alpha(a) {}
};

std::string to_string(ActivationKind kind);

enum class Initializer { glorot_uniform, he_normal, he_uniform, zeros };
Initializer initializer_from_string(const std::string& name);
std::string to_string(Initializer init);

enum class LossKind {
  mean_squared_error,
  mean_absolute_error,
  huber,
  binary_crossentropy,
  categorical_crossentropy,         ///< y: one-hot or probability rows, as many columns as outputs
  sparse_categorical_crossentropy,  ///< y: one column of class indices in [0, outputs)
};

/// A loss; converts from its Keras name ("mse", "categorical_crossentropy", ...).
struct Loss {
  LossKind kind = LossKind::mean_squared_error;
  bool from_logits = false;  ///< crossentropies: the outputs are logits (a linear output layer)
  float delta = 1.0f;        ///< huber's threshold

  Loss() = default;
  Loss(LossKind k, bool logits = false, float huber_delta = 1.0f)  // NOLINT
      : kind(k), from_logits(logits), delta(huber_delta) {}
  Loss(const char* name);                                // NOLINT
  Loss(const std::string& name) : Loss(name.c_str()) {}  // NOLINT
  bool is_crossentropy() const {
    return kind == LossKind::binary_crossentropy || kind == LossKind::categorical_crossentropy ||
           kind == LossKind::sparse_categorical_crossentropy;
  }
};

std::string to_string(LossKind kind);

/// How the Dense layers multiply (both devices; PyTorch's set_float32_matmul_precision):
///   fp32: fp32 products and sums (the default);
///   bf16: each GEMM operand rounded to bfloat16 (nearest even), exact products, fp32 sums.
///         Parameters, optimizer state, activations and losses stay fp32 (mixed precision). The
///         CPU runs it on AMX tiles where the CPU has them (Sapphire Rapids and later), several
///         times the fp32 GEMM rate; cuBLAS uses CUBLAS_COMPUTE_32F_FAST_16BF.
using MatmulPrecision = GemmPrecision;  // one enum: the library's GEMM takes it

std::string to_string(MatmulPrecision precision);
/// "fp32" or "bf16"; anything else throws InvalidArgument.
MatmulPrecision matmul_precision_from_string(const std::string& name);

/// Optimizer hyperparameters: the fused op's options (<warpfuse/optimizer_types.h>, one rule enum
/// for the library and the trainer). Build one with SGD(...), Adam(...) or AdamW(...) below. The
/// update rules are Keras':
///   sgd:   v = momentum v - lr g; p += nesterov ? momentum v - lr g : v   (plain p -= lr g)
///   adam:  m += (1 - b1)(g - m); v += (1 - b2)(g^2 - v);
///          p -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps)
///   adamw: adam after the decoupled decay p -= lr weight_decay p (which every rule applies when
///          weight_decay > 0, as Keras 3's optimizers do)
/// max_grad_norm (> 0) clips by the global gradient norm, Keras' global_clipnorm. Optimizer state
/// per parameter: optimizer_state_floats(o, 1).
using Optimizer = OptimizerOptions;

Optimizer optimizer_from_string(const std::string& name, float learning_rate = -1.0f);
inline Optimizer SGD(float learning_rate = 0.01f, float momentum = 0.0f, bool nesterov = false) {
  Optimizer o;
  o.rule = OptimizerRule::sgd;
  o.learning_rate = learning_rate;
  o.momentum = momentum;
  o.nesterov = nesterov;
  return o;
}
inline Optimizer Adam(float learning_rate = 1e-3f, float beta_1 = 0.9f, float beta_2 = 0.999f,
                      float epsilon = 1e-7f) {
  Optimizer o;
  o.rule = OptimizerRule::adam;
  o.learning_rate = learning_rate;
  o.beta_1 = beta_1;
  o.beta_2 = beta_2;
  o.epsilon = epsilon;
  return o;
}
/// Keras' AdamW defaults: weight_decay 0.004.
inline Optimizer AdamW(float learning_rate = 1e-3f, float weight_decay = 0.004f,
                       float beta_1 = 0.9f, float beta_2 = 0.999f, float epsilon = 1e-7f) {
  Optimizer o = Adam(learning_rate, beta_1, beta_2, epsilon);
  o.rule = OptimizerRule::adamw;
  o.weight_decay = weight_decay;
  return o;
}

}  // namespace warpfuse::nn
