// warpfuse::nn — names of the vocabulary (config.h), and the pieces both backends share
// (backend.h): parameter layout, initialisation, epoch order, metric sums.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "host/nn/backend.h"
#include "warpfuse/error.h"

namespace warpfuse::nn {
namespace {

struct ActivationName {
  const char* name;
  ActivationKind kind;
};
constexpr ActivationName kActivationNames[] = {
    {"linear", ActivationKind::linear},
    {"relu", ActivationKind::relu},
    {"leaky_relu", ActivationKind::leaky_relu},
    {"prelu", ActivationKind::prelu},
    {"elu", ActivationKind::elu},
    {"selu", ActivationKind::selu},
    {"gelu", ActivationKind::gelu},
    {"silu", ActivationKind::silu},
    {"sigmoid", ActivationKind::sigmoid},
    {"tanh", ActivationKind::tanh},
    {"softmax", ActivationKind::softmax},
};

std::string activation_names() {
  std::string all;
  for (const auto& entry : kActivationNames)
    all += std::string(all.empty() ? "" : ", ") + entry.name;
  return all;
}

}  // namespace

Activation::Activation(ActivationKind k) : kind(k) {
  if (k == ActivationKind::leaky_relu) alpha = 0.2f;
  if (k == ActivationKind::elu) alpha = 1.0f;
}

Activation::Activation(const char* name) {
  const std::string n = name == nullptr ? "" : name;
  if (n.empty() || n == "None") {
    *this = Activation(ActivationKind::linear);
    return;
  }
  if (n == "swish") {
    *this = Activation(ActivationKind::silu);
    return;
  }
  for (const auto& entry : kActivationNames) {
    if (n == entry.name) {
      *this = Activation(entry.kind);
      return;
    }
  }
  throw InvalidArgument("nn::Activation", "name",
                        "unknown activation '" + n + "' (one of " + activation_names() + ")");
}

ActivationParams Activation::params() const {
  ActivationParams p;
  switch (kind) {
    case ActivationKind::relu:
      p.kind = warpfuse::Activation::relu;
      break;
    case ActivationKind::leaky_relu:
      p.kind = warpfuse::Activation::leaky_relu;
      p.negative_slope = alpha;
      break;
    case ActivationKind::prelu:
      p.kind = warpfuse::Activation::prelu;
      break;
    case ActivationKind::elu:
      p.kind = warpfuse::Activation::elu;
      p.alpha = alpha;
      break;
    case ActivationKind::selu:
      p.kind = warpfuse::Activation::selu;
      break;
    case ActivationKind::gelu:
      p.kind = warpfuse::Activation::gelu;
      break;
    case ActivationKind::silu:
      p.kind = warpfuse::Activation::silu;
      break;
    case ActivationKind::sigmoid:
      p.kind = warpfuse::Activation::sigmoid;
      break;
    case ActivationKind::tanh:
      p.kind = warpfuse::Activation::tanh;
      break;
    case ActivationKind::linear:
    case ActivationKind::softmax:
      throw InvalidArgument("nn::Activation::params", "kind",
                            to_string(kind) + " is not an elementwise activation of the ops");
  }
  return p;
}

std::string to_string(ActivationKind kind) {
  for (const auto& entry : kActivationNames) {
    if (entry.kind == kind) return entry.name;
  }
  return "unknown";
}

Initializer initializer_from_string(const std::string& name) {
  if (name == "glorot_uniform") return Initializer::glorot_uniform;
  if (name == "he_normal") return Initializer::he_normal;
  if (name == "he_uniform") return Initializer::he_uniform;
  if (name == "zeros") return Initializer::zeros;
  throw InvalidArgument(
      "nn::Initializer", "name",
      "unknown initializer '" + name + "' (one of glorot_uniform, he_normal, he_uniform, zeros)");
}

std::string to_string(Initializer init) {
  switch (init) {
    case Initializer::glorot_uniform:
      return "glorot_uniform";
    case Initializer::he_normal:
      return "he_normal";
    case Initializer::he_uniform:
      return "he_uniform";
    case Initializer::zeros:
      return "zeros";
  }
  return "unknown";
}

Loss::Loss(const char* name) {
  const std::string n = name == nullptr ? "" : name;
  if (n == "mean_squared_error" || n == "mse") {
    kind = LossKind::mean_squared_error;
  } else if (n == "mean_absolute_error" || n == "mae") {
    kind = LossKind::mean_absolute_error;
  } else if (n == "huber" || n == "huber_loss") {
    kind = LossKind::huber;
  } else if (n == "binary_crossentropy") {
    kind = LossKind::binary_crossentropy;
  } else if (n == "categorical_crossentropy") {
    kind = LossKind::categorical_crossentropy;
  } else if (n == "sparse_categorical_crossentropy") {
    kind = LossKind::sparse_categorical_crossentropy;
  } else {
    throw InvalidArgument("nn::Loss", "name",
                          "unknown loss '" + n +
                              "' (one of mean_squared_error, mean_absolute_error, huber, "
                              "binary_crossentropy, categorical_crossentropy, "
                              "sparse_categorical_crossentropy)");
  }
}

std::string to_string(LossKind kind) {
  switch (kind) {
    case LossKind::mean_squared_error:
      return "mean_squared_error";
    case LossKind::mean_absolute_error:
      return "mean_absolute_error";
    case LossKind::huber:
      return "huber";
    case LossKind::binary_crossentropy:
      return "binary_crossentropy";
    case LossKind::categorical_crossentropy:
      return "categorical_crossentropy";
    case LossKind::sparse_categorical_crossentropy:
      return "sparse_categorical_crossentropy";
  }
  return "unknown";
}

std::string to_string(MatmulPrecision precision) {
  return precision == MatmulPrecision::bf16 ? "bf16" : "fp32";
}

MatmulPrecision matmul_precision_from_string(const std::string& name) {
  if (name == "fp32") return MatmulPrecision::fp32;
  if (name == "bf16") return MatmulPrecision::bf16;
  throw InvalidArgument("nn::MatmulPrecision", "name",
                        "unknown matmul precision '" + name + "' (one of fp32, bf16)");
}

Optimizer optimizer_from_string(const std::string& name, float learning_rate) {
  Optimizer o;
  if (name == "sgd") {
    o = SGD();
  } else if (name == "adam") {
    o = Adam();
  } else if (name == "adamw") {
    o = AdamW();
  } else {
    throw InvalidArgument("nn::Optimizer", "name",
                          "unknown optimizer '" + name + "' (one of sgd, adam, adamw)");
  }
  if (learning_rate > 0.0f) o.learning_rate = learning_rate;
  return o;
}

std::string to_string(Device device) {
  switch (device) {
    case Device::automatic:
      return "auto";
    case Device::cpu:
      return "cpu";
    case Device::cuda:
      return "cuda";
  }
  return "unknown";
}

namespace detail {
namespace {

// Uniform in [0, 1) from the top 24 bits: exactly representable, the same on every platform.
float uniform01(std::mt19937_64& rng) {
  return static_cast<float>(rng() >> 40) * 0x1.0p-24f;
}

// A standard normal by Box-Muller (std::normal_distribution's algorithm is unspecified).
float normal01(std::mt19937_64& rng) {
  const double u1 = (static_cast<double>(rng() >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]
  const double u2 = static_cast<double>(rng() >> 11) * 0x1.0p-53;
  return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

// Unbiased integer in [0, bound) by rejection.
std::uint64_t below(std::mt19937_64& rng, std::uint64_t bound) {
  const std::uint64_t limit = ~std::uint64_t{0} - (~std::uint64_t{0} % bound);
  std::uint64_t value = rng();
  while (value >= limit) value = rng();
  return value % bound;
}

std::uint64_t mix(std::uint64_t x) {  // splitmix64's finaliser: decorrelates nearby seeds
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

void fill(std::vector<float>& p, std::int64_t offset, std::int64_t count, Initializer init,
          std::int64_t fan_in, std::int64_t fan_out, std::mt19937_64& rng) {
  float* out = p.data() + offset;
  switch (init) {
    case Initializer::zeros:
      std::fill(out, out + count, 0.0f);
      return;
    case Initializer::glorot_uniform:
    case Initializer::he_uniform: {
      const double denom = init == Initializer::glorot_uniform ? 0.5 * (fan_in + fan_out) : fan_in;
      const float limit = static_cast<float>(std::sqrt(3.0 / denom));
      for (std::int64_t i = 0; i < count; ++i) out[i] = (2.0f * uniform01(rng) - 1.0f) * limit;
      return;
    }
    case Initializer::he_normal: {
      // Keras: a normal truncated at two standard deviations, rescaled (0.8796...) so the
      // variance is still 2 / fan_in.
      const float stddev = static_cast<float>(std::sqrt(2.0 / fan_in) / 0.87962566103423978);
      for (std::int64_t i = 0; i < count; ++i) {
        float z = normal01(rng);
        while (std::fabs(z) > 2.0f) z = normal01(rng);
        out[i] = z * stddev;
      }
      return;
    }
  }
}

}  // namespace

std::int64_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  std::int64_t bytes = 0;
  if (pages <= 0 || page <= 0 ||
      __builtin_mul_overflow(static_cast<std::int64_t>(pages), static_cast<std::int64_t>(page),
                             &bytes)) {
    return std::numeric_limits<std::int64_t>::max();
  }
  return bytes;
}

Layout make_layout(const std::vector<Dense>& layers) {
  const char* op = "nn::Sequential";
  Layout layout;
  std::int64_t inputs = layers.empty() ? 0 : layers.front().input_dim;
  std::int64_t offset = 0;
  layout.widest = inputs;
  // Every size from a caller or a file is checked before it is used: widths in [1, 2^24], the
  // parameter count in 64 bits without overflow, the training state within physical memory.
  const auto add = [&](std::int64_t count) {
    if (__builtin_add_overflow(offset, count, &offset)) {
      throw InvalidArgument(op, "layers", "the parameter count overflows 64 bits");
    }
  };
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const Dense& d = layers[l];
    for (const std::int64_t width : {inputs, d.units}) {
      if (width <= 0 || width > kMaxUnits) {
        throw InvalidArgument(op, "layers",
                              "layer " + std::to_string(l + 1) + " has a width of " +
                                  std::to_string(width) + " (allowed: 1 to 16777216, 2^24)");
      }
    }
    LayerSlots s;
    s.inputs = inputs;
    s.units = d.units;
    s.activation = d.activation;
    s.kernel = offset;
    add(inputs * d.units);  // both <= 2^24: the product fits
    if (d.use_bias) {
      s.bias = offset;
      add(d.units);
    }
    if (d.activation.kind == ActivationKind::prelu) {
      s.prelu = offset;
      add(d.units);
    }
    layout.layers.push_back(s);
    layout.widest = std::max(layout.widest, d.units);
    inputs = d.units;
  }
  constexpr std::int64_t kTrainingBytesPerParameter = 16;  // parameter, gradient, Adam's m and v
  const std::int64_t memory = physical_memory_bytes();
  if (offset > memory / kTrainingBytesPerParameter) {
    throw InvalidArgument(op, "layers",
                          std::to_string(offset) + " parameters need " +
                              std::to_string(offset / (1 << 20) * kTrainingBytesPerParameter) +
                              " MiB to train; this machine has " + std::to_string(memory >> 20) +
                              " MiB");
  }
  layout.total = offset;
  return layout;
}

std::vector<float> initial_parameters(const std::vector<Dense>& layers, const Layout& layout,
                                      std::uint64_t seed) {
  std::vector<float> p(static_cast<std::size_t>(layout.total), 0.0f);
  std::mt19937_64 rng(mix(seed));
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const LayerSlots& s = layout.layers[l];
    fill(p, s.kernel, s.inputs * s.units, layers[l].kernel_initializer, s.inputs, s.units, rng);
    if (s.bias >= 0) fill(p, s.bias, s.units, layers[l].bias_initializer, s.inputs, s.units, rng);
    // PReLU slopes start at 0 (Keras' alpha_initializer "zeros"): the layer begins as a relu.
  }
  return p;
}

std::vector<std::int64_t> epoch_order(std::int64_t n, bool shuffle, std::uint64_t seed, int epoch) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) order[i] = i;
  if (!shuffle) return order;
  std::mt19937_64 rng(mix(seed ^ mix(0x5eedull + static_cast<std::uint64_t>(epoch))));
  for (std::int64_t i = n - 1; i > 0; --i) {
    std::swap(order[i], order[below(rng, static_cast<std::uint64_t>(i) + 1)]);
  }
  return order;
}

}  // namespace detail
}  // namespace warpfuse::nn
