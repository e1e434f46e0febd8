// warpfuse::nn — the CPU backend: Dense forward / backward, losses, metrics and optimizer steps
// through warpfuse::ref: the reference ops instantiated for float (activations with their bias,
// softmax, the optimizer, the metrics: one definition each, shared with the CUDA path's oracle),
// plus the trainer's float helpers of warpfuse/ref/nn_cpu.h (GEMMs through CBLAS, the loss).
//
// Per layer l with input a[l-1] (batch x inputs), kernel W (inputs x units):
//   forward   z[l] = a[l-1] W + b,  a[l] = f(z[l])
//   backward  dz[l] = da[l] f'(z[l]),  dW = a[l-1]^T dz[l],  db = colsum dz[l],
//             da[l-1] = dz[l] W^T  (skipped for the first layer: nobody needs dx)
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "host/nn/backend.h"
#include "warpfuse/error.h"
#include "warpfuse/ref/activation.h"
#include "warpfuse/ref/nn_cpu.h"
#include "warpfuse/ref/optimizer.h"
#include "warpfuse/ref/softmax.h"
#include "warpfuse/ref/training.h"

namespace warpfuse::nn::detail {
namespace {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const ModelSpec& spec)
      : spec_(spec),
        params_(spec.layout.total, 0.0f),
        grads_(spec.layout.total, 0.0f),
        state_(static_cast<std::size_t>(optimizer_state_floats(spec.optimizer, spec.layout.total)),
               0.0f) {}

  Device device() const override { return Device::cpu; }
  void set_matmul_precision(MatmulPrecision precision) override { precision_ = precision; }

  void set_parameters(const std::vector<float>& parameters) override { params_ = parameters; }
  std::vector<float> parameters() override { return params_; }
  void set_optimizer_state(const std::vector<float>& state, std::int64_t step) override {
    state_ = state;
    step_ = step;
  }
  std::vector<float> optimizer_state(std::int64_t* step) override {
    if (step != nullptr) *step = step_;
    return state_;
  }

  void set_training_data(const Matrix& x, const Matrix& y) override {
    x_ = &x;
    y_ = &y;
  }
  void set_order(const std::vector<std::int64_t>& order) override { order_ = order; }
  void reset_totals() override { totals_ = empty_training_totals(); }
  bool cheap_totals() const override { return true; }
  Totals totals() override { return totals_; }

  void train_step(std::int64_t begin, std::int64_t count, std::int64_t step) override {
    const std::int64_t in_cols = x_->cols;
    const std::int64_t y_cols = y_->cols;
    xb_.resize(static_cast<std::size_t>(count * in_cols));
    yb_.resize(static_cast<std::size_t>(count * y_cols));
    for (std::int64_t r = 0; r < count; ++r) {
      const std::int64_t sample = order_[begin + r];
      std::copy_n(x_->row(sample), in_cols, xb_.data() + r * in_cols);
      std::copy_n(y_->row(sample), y_cols, yb_.data() + r * y_cols);
    }
    forward(xb_.data(), count);
    const auto& layers = spec_.layout.layers;
    const LayerSlots& last = layers.back();
    const std::vector<float>& out = a_.back();
    const float* loss_input = spec_.fused_output ? z_.back().data() : out.data();
    std::vector<float>& grad = da_;
    grad.resize(static_cast<std::size_t>(count * last.units));
    const double loss_sum = ref::nn_loss(spec_.loss, spec_.loss_reads_logits, loss_input,
                                         yb_.data(), count, last.units, grad.data());
    static_cast<void>(step);  // totals_.steps numbers the epoch's steps, as on the device
    add_metrics(out.data(), yb_.data(), count, loss_sum, true, totals_);
    backward(xb_.data(), count);
    ++step_;
    // The reference's formula with float arithmetic, as the CUDA backend's fused op computes it
    // (the fp64 reference's sqrt and divide cost more than the step's GEMMs on a wide network).
    Optimizer options = spec_.optimizer;
    options.step = step_;
    optimizer_tensors_.assign(
        1, {params_.data(), grads_.data(), state_.data(), spec_.layout.total});  // no allocation
    ref::optimizer_step_fp32(optimizer_tensors_, options);
  }

  Totals evaluate(const Matrix& x, const Matrix& y, std::int64_t batch_size) override {
    Totals t = empty_training_totals();
    const std::int64_t units = spec_.layout.layers.back().units;
    for (std::int64_t begin = 0; begin < x.rows; begin += batch_size) {
      const std::int64_t count = std::min(batch_size, x.rows - begin);
      forward(x.row(begin), count);
      const float* loss_input = spec_.fused_output ? z_.back().data() : a_.back().data();
      const double loss_sum = ref::nn_loss(spec_.loss, spec_.loss_reads_logits, loss_input,
                                           y.row(begin), count, units, nullptr);
      add_metrics(a_.back().data(), y.row(begin), count, loss_sum, false, t);
    }
    return t;
  }

  void set_validation_data(const Matrix& x, const Matrix& y) override {
    val_x_ = &x;
    val_y_ = &y;
  }
  Totals evaluate_validation(std::int64_t batch_size) override {
    return evaluate(*val_x_, *val_y_, batch_size);
  }

  void predict(const Matrix& x, std::int64_t batch_size, float* out) override {
    const std::int64_t units = spec_.layout.layers.back().units;
    for (std::int64_t begin = 0; begin < x.rows; begin += batch_size) {
      const std::int64_t count = std::min(batch_size, x.rows - begin);
      forward(x.row(begin), count);
      std::copy_n(a_.back().data(), count * units, out + begin * units);
    }
  }

 private:
  // One batch into `t` through the reference op the CUDA backend's device op mirrors: the same
  // accuracy, threshold and error sums (on the logits where the spec says the device reads them).
  void add_metrics(const float* out, const float* y, std::int64_t count, double loss_sum,
                   bool advance, Totals& t) {
    const std::int64_t units = spec_.layout.layers.back().units;
    const bool sparse = spec_.metrics.accuracy == AccuracyKind::argmax_index;
    const std::int64_t y_cols = sparse ? 1 : units;
    if (sparse) {
      labels_.resize(static_cast<std::size_t>(count));
      for (std::int64_t r = 0; r < count; ++r) labels_[r] = static_cast<std::int32_t>(y[r]);
    }
    MetricOptions options = spec_.metrics;
    options.advance = advance;
    const float* read = spec_.metrics_on_logits ? z_.back().data() : out;
    const double loss_mean = count > 0 ? loss_sum / static_cast<double>(count) : 0.0;
    ref::accumulate_metrics<float, std::int32_t>(
        MatrixView<const float>(read, count, units, units),
        sparse ? MatrixView<const float>() : MatrixView<const float>(y, count, y_cols, y_cols),
        VectorView<const std::int32_t>(labels_.data(), sparse ? count : 0), &loss_mean, options, t);
  }

  // The library's reference ops instantiated for float, the same definitions the CUDA kernels
  // are checked against: an elementwise activation fused with its bias (ref::activation_forward,
  // pre = z + b kept in z), softmax (ref::softmax), or the bias alone for a linear layer.
  void forward(const float* x, std::int64_t count) {
    const auto& layers = spec_.layout.layers;
    z_.resize(layers.size());
    a_.resize(layers.size());
    const float* input = x;
    for (std::size_t l = 0; l < layers.size(); ++l) {
      const LayerSlots& s = layers[l];
      z_[l].resize(static_cast<std::size_t>(count * s.units));
      a_[l].resize(static_cast<std::size_t>(count * s.units));
      float* z = z_[l].data();
      float* a = a_[l].data();
      ref::sgemm(false, false, count, s.units, s.inputs, 1.0f, input, s.inputs,
                 params_.data() + s.kernel, s.units, 0.0f, z, s.units, precision_);
      const MatrixView<float> zv(z, count, s.units, s.units);
      const MatrixView<float> av(a, count, s.units, s.units);
      const VectorView<const float> bias = vector_at(s.bias, s.units);
      if (s.activation.elementwise()) {
        ref::activation_forward<float>(zv, bias, vector_at(s.prelu, s.units), av, zv,
                                       s.activation.params());
      } else {
        if (s.bias >= 0) ref::nn_add_bias(z, count, s.units, bias.data);
        if (s.activation.kind == ActivationKind::softmax) {
          ref::softmax<float>(zv, av, 1.0);
        } else {
          std::copy_n(z, count * s.units, a);
        }
      }
      input = a;
    }
  }

  // Expects da_ to hold the loss gradient (w.r.t. z of the last layer when the output is fused,
  // else w.r.t. its activation). The activation's backward writes dz over da in place and, fused
  // with it, the bias and PReLU slope gradients (ref::activation_backward).
  void backward(const float* x, std::int64_t count) {
    const auto& layers = spec_.layout.layers;
    for (std::size_t i = layers.size(); i-- > 0;) {
      const LayerSlots& s = layers[i];
      const bool fused = spec_.fused_output && i + 1 == layers.size();
      const MatrixView<float> dv(da_.data(), count, s.units, s.units);
      bool bias_done = false;
      if (!fused && s.activation.elementwise()) {
        const ActivationParams params = s.activation.params();
        const float* saved = activation_backward_from(params.kind) == BackwardFrom::output
                                 ? a_[i].data()
                                 : z_[i].data();
        ref::activation_backward<float>(MatrixView<const float>(saved, count, s.units, s.units), dv,
                                        vector_at(s.prelu, s.units), dv,
                                        mutable_vector_at(s.bias, s.units),
                                        mutable_vector_at(s.prelu, s.units), params);
        bias_done = true;
      } else if (!fused && s.activation.kind == ActivationKind::softmax) {
        ref::softmax_backward<float>(MatrixView<const float>(a_[i].data(), count, s.units, s.units),
                                     dv, dv, 1.0);
      }
      const float* dz = da_.data();
      if (s.bias >= 0 && !bias_done) {
        ref::nn_column_sums(dz, count, s.units, grads_.data() + s.bias);
      }
      const float* input = i == 0 ? x : a_[i - 1].data();
      ref::sgemm(true, false, s.inputs, s.units, count, 1.0f, input, s.inputs, dz, s.units, 0.0f,
                 grads_.data() + s.kernel, s.units, precision_);
      if (i > 0) {
        dprev_.resize(static_cast<std::size_t>(count * s.inputs));
        ref::sgemm(false, true, count, s.inputs, s.units, 1.0f, dz, s.units,
                   params_.data() + s.kernel, s.units, 0.0f, dprev_.data(), s.inputs, precision_);
        da_.swap(dprev_);
      }
    }
  }

  // The parameters at `offset` (-1: absent, an empty view) as a vector of `size`.
  VectorView<const float> vector_at(std::int64_t offset, std::int64_t size) const {
    return offset >= 0 ? VectorView<const float>(params_.data() + offset, size)
                       : VectorView<const float>();
  }
  // The gradients at `offset`, likewise.
  VectorView<float> mutable_vector_at(std::int64_t offset, std::int64_t size) {
    return offset >= 0 ? VectorView<float>(grads_.data() + offset, size) : VectorView<float>();
  }

  ModelSpec spec_;
  MatmulPrecision precision_ = MatmulPrecision::fp32;
  std::vector<float> params_;
  std::vector<float> grads_;
  std::vector<float> state_;
  std::int64_t step_ = 0;
  const Matrix* x_ = nullptr;
  const Matrix* y_ = nullptr;
  const Matrix* val_x_ = nullptr;
  const Matrix* val_y_ = nullptr;
  std::vector<std::int64_t> order_;
  Totals totals_ = empty_training_totals();
  std::vector<std::int32_t> labels_;
  std::vector<ref::OptimizerTensor<float>> optimizer_tensors_;
  std::vector<float> xb_, yb_, da_, dprev_;
  std::vector<std::vector<float>> z_, a_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const ModelSpec& spec) {
  return std::make_unique<CpuBackend>(spec);
}

}  // namespace warpfuse::nn::detail
