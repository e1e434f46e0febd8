// warpfuse::nn — the CUDA backend: the training step on one stream through warpfuse's public ops
// (bias_activation_forward / backward, softmax, cross_entropy, the elementwise losses) and cuBLAS
// GEMMs through one wrapper (gemm.h); gather_rows and accumulate_metrics keep the bookkeeping on
// the device. It includes only the public headers, like any user.
//
// One step, all on stream_ and with no host synchronisation:
//   gather      x, y (or class indices) rows order[cursor .. cursor + count) with gather_rows
//   forward     z = a W (GEMM); then bias_activation_forward(z + b) -> a (pre kept in z), or for
//               linear / softmax a rank-1 GEMM adding the bias (and softmax for a softmax output)
//   loss        softmax output + (sparse) categorical CE: cross_entropy on the logits, its fused
//               kernel writing dL/dz in the same pass; sigmoid + binary CE:
//               binary_cross_entropy_with_logits; else mse / mae / huber / binary_cross_entropy on
//               the activations, each writing its gradient in the same pass
//   bookkeeping accumulate_metrics: running loss and metric sums, step counters, the cursor
//   backward    bias_activation_backward (deterministic dbias and PReLU dslope), softmax_backward,
//               or a ones^T dz GEMM for the bias; dW = a^T dz and da = dz W^T (GEMMs)
//   optimizer   warpfuse::optimizer_step (the public op): one launch over the parameter buffer
// From the second step of a batch shape on, the step runs as a CUDA Graph captured from it; the
// emulated build captures and replays it too (its cudart shim records graphs, and the GEMMs,
// host work there, are recorded in stream order). WARPFUSE_CUDA_GRAPHS=0 in the
// environment runs every step eagerly (debugging, profiling single kernels).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "host/nn/backend.h"
#include "host/nn/gemm.h"
#include "warpfuse/activation.h"
#include "warpfuse/cross_entropy.h"
#include "warpfuse/device.h"
#include "warpfuse/elementwise_loss.h"
#include "warpfuse/error.h"
#include "warpfuse/memory.h"
#include "warpfuse/optimizer.h"
#include "warpfuse/softmax.h"
#include "warpfuse/training.h"

namespace warpfuse::nn::detail {
namespace {

template <class T>
void upload(DeviceBuffer<T>& buffer, const T* host, std::size_t count, cudaStream_t stream) {
  if (buffer.size() < count) buffer = DeviceBuffer<T>(count);
  if (count > 0) {
    WARPFUSE_CUDA_CHECK(
        cudaMemcpyAsync(buffer.data(), host, count * sizeof(T), cudaMemcpyHostToDevice, stream));
  }
}

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const ModelSpec& spec) : spec_(spec) {
    const LayerSlots& out = spec.layout.layers.back();
    const bool categorical = spec.loss.kind == LossKind::categorical_crossentropy ||
                             spec.loss.kind == LossKind::sparse_categorical_crossentropy;
    if (categorical && !spec.loss_reads_logits) {
      throw Unsupported(
          "nn::Sequential::compile",
          "on Device::cuda a categorical crossentropy needs a softmax output layer "
          "or from_logits (warpfuse has no crossentropy op on probabilities); got a " +
              to_string(out.activation.kind) + " output");
    }
    WARPFUSE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    gemm_ = std::make_unique<Gemm>(stream_);
    params_ = DeviceBuffer<float>(spec.layout.total);
    grads_ = DeviceBuffer<float>(spec.layout.total);
    state_ = DeviceBuffer<float>(optimizer_state_floats(spec.optimizer, spec.layout.total));
    optimizer_workspace_ = DeviceBuffer<unsigned char>(optimizer_workspace_bytes(1));
    state_.fill_bytes(0, stream_);
    totals_ = DeviceBuffer<TrainingTotals>(1);
    eval_totals_ = DeviceBuffer<TrainingTotals>(1);
    loss_value_ = DeviceBuffer<float>(1);
    reset_device_totals(totals_, true);
  }

  ~CudaBackend() override {
    for (auto& [count, exec] : graphs_) release_graph(exec);
    if (stream_ != nullptr) static_cast<void>(cudaStreamDestroy(stream_));
  }

  Device device() const override { return Device::cuda; }
  // Captured steps hold the GEMMs they were recorded with: drop them when the precision changes.
  void set_matmul_precision(MatmulPrecision precision) override {
    if (precision == precision_) return;
    sync();
    for (auto& [rows, exec] : graphs_) release_graph(exec);
    graphs_.clear();
    precision_ = precision;
  }

  void set_parameters(const std::vector<float>& parameters) override {
    upload(params_, parameters.data(), parameters.size(), stream_);
    sync();
  }
  std::vector<float> parameters() override {
    sync();
    return params_.to_host();
  }
  void set_optimizer_state(const std::vector<float>& state, std::int64_t step) override {
    upload(state_, state.data(), state.size(), stream_);
    const TrainingTotals t = read_totals(totals_);
    TrainingTotals updated = t;
    updated.global_step = step;
    write_totals(totals_, updated);
  }
  std::vector<float> optimizer_state(std::int64_t* step) override {
    const TrainingTotals t = read_totals(totals_);
    if (step != nullptr) *step = t.global_step;
    std::vector<float> state(state_.size());
    state_.copy_to_host(state.data(), state.size());
    return state;
  }

  void set_training_data(const Matrix& x, const Matrix& y) override {
    rows_ = x.rows;
    x_cols_ = x.cols;
    y_cols_ = y.cols;
    upload(x_train_, x.data.data(), x.data.size(), stream_);
    upload(y_train_, y.data.data(), y.data.size(), stream_);
    if (sparse()) {
      const std::vector<int> labels = to_labels(y.data.data(), y.rows);
      upload(labels_train_, labels.data(), labels.size(), stream_);
    }
    sync();  // the host vectors above may go away
  }

  void set_order(const std::vector<std::int64_t>& order) override {
    upload(order_, order.data(), order.size(), stream_);
    order_rows_ = static_cast<std::int64_t>(order.size());
    sync();
  }

  void reset_totals() override { reset_device_totals(totals_, false); }
  bool cheap_totals() const override { return false; }
  Totals totals() override { return to_totals(read_totals(totals_)); }

  void train_step(std::int64_t begin, std::int64_t count, std::int64_t) override {
    static_cast<void>(begin);  // the device-side cursor tracks it, so graphs replay unchanged
    ensure_workspace(count);
    if (!use_graphs_) {
      enqueue_step(count);
      return;
    }
    const auto graph = graphs_.find(count);
    if (graph != graphs_.end()) {
      WARPFUSE_CUDA_CHECK(cudaGraphLaunch(graph->second, stream_));
      return;
    }
    if (warmed_.count(count) == 0) {
      // The first step of a shape runs eagerly: cuBLAS picks and loads its kernels then.
      enqueue_step(count);
      warmed_.insert(count);
      return;
    }
    cudaGraph_t captured = nullptr;
    WARPFUSE_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    try {
      enqueue_step(count);
    } catch (...) {
      static_cast<void>(cudaStreamEndCapture(stream_, &captured));
      if (captured != nullptr) static_cast<void>(cudaGraphDestroy(captured));
      throw;
    }
    WARPFUSE_CUDA_CHECK(cudaStreamEndCapture(stream_, &captured));
    cudaGraphExec_t exec = nullptr;
    const cudaError_t status = cudaGraphInstantiate(&exec, captured, 0);
    static_cast<void>(cudaGraphDestroy(captured));
    WARPFUSE_CUDA_CHECK(status);
    graphs_[count] = exec;
    WARPFUSE_CUDA_CHECK(cudaGraphLaunch(exec, stream_));
  }

  // Uploads x and y once (one copy each, then one wait for the pageable host memory), then
  // evaluates from device memory.
  Totals evaluate(const Matrix& x, const Matrix& y, std::int64_t batch_size) override {
    upload_matrices(x, y, eval_data_);
    return evaluate_device(eval_data_, batch_size);
  }

  // The validation data stays on the device for the whole fit: each epoch's validation pass
  // reads it there, with no upload and no wait but the totals' read at the end.
  void set_validation_data(const Matrix& x, const Matrix& y) override {
    upload_matrices(x, y, validation_data_);
  }
  Totals evaluate_validation(std::int64_t batch_size) override {
    return evaluate_device(validation_data_, batch_size);
  }

  void predict(const Matrix& x, std::int64_t batch_size, float* out) override {
    const LayerSlots& last = spec_.layout.layers.back();
    for (std::int64_t begin = 0; begin < x.rows; begin += batch_size) {
      const std::int64_t count = std::min(batch_size, x.rows - begin);
      ensure_workspace(count);
      upload(xb_, x.row(begin), static_cast<std::size_t>(count * x.cols), stream_);
      forward(xb_.data(), count, true);
      WARPFUSE_CUDA_CHECK(cudaMemcpyAsync(out + begin * last.units, activation_of(last_layer()),
                                          count * last.units * sizeof(float),
                                          cudaMemcpyDeviceToHost, stream_));
      sync();
    }
  }

 private:
  // Samples in device memory: x, and y (or its class indices for a sparse loss).
  struct DeviceData {
    DeviceBuffer<float> x, y;
    DeviceBuffer<int> labels;
    std::int64_t rows = 0, x_cols = 0, y_cols = 0;
  };

  void upload_matrices(const Matrix& x, const Matrix& y, DeviceData& d) {
    d.rows = x.rows;
    d.x_cols = x.cols;
    d.y_cols = y.cols;
    upload(d.x, x.data.data(), x.data.size(), stream_);
    if (sparse()) {
      const std::vector<int> labels = to_labels(y.data.data(), y.rows);
      upload(d.labels, labels.data(), labels.size(), stream_);
      sync();  // `labels` is about to go away
    } else {
      upload(d.y, y.data.data(), y.data.size(), stream_);
      sync();  // pageable host memory: the copies are done once this returns anyway
    }
  }

  // Loss and metrics of every batch of `d` into the evaluation totals, from device memory; the
  // host waits once, to read the totals.
  Totals evaluate_device(const DeviceData& d, std::int64_t batch_size) {
    reset_device_totals(eval_totals_, true);
    for (std::int64_t begin = 0; begin < d.rows; begin += batch_size) {
      const std::int64_t count = std::min(batch_size, d.rows - begin);
      ensure_workspace(count);
      const float* y = sparse() ? nullptr : d.y.data() + begin * d.y_cols;
      const int* labels = sparse() ? d.labels.data() + begin : nullptr;
      forward(d.x.data() + begin * d.x_cols, count, !spec_.metrics_on_logits);
      loss_and_gradient(count, false, y, labels);
      accumulate(count, eval_totals_.data(), false, y, labels);
    }
    return to_totals(read_totals(eval_totals_));
  }

  std::size_t last_layer() const { return spec_.layout.layers.size() - 1; }
  bool sparse() const { return spec_.loss.kind == LossKind::sparse_categorical_crossentropy; }

  static std::vector<int> to_labels(const float* y, std::int64_t rows) {
    std::vector<int> labels(static_cast<std::size_t>(rows));
    for (std::int64_t r = 0; r < rows; ++r) labels[r] = static_cast<int>(y[r]);
    return labels;
  }

  void sync() { WARPFUSE_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

  TrainingTotals read_totals(DeviceBuffer<TrainingTotals>& buffer) {
    TrainingTotals t;
    WARPFUSE_CUDA_CHECK(
        cudaMemcpyAsync(&t, buffer.data(), sizeof t, cudaMemcpyDeviceToHost, stream_));
    sync();
    return t;
  }
  void write_totals(DeviceBuffer<TrainingTotals>& buffer, const TrainingTotals& t) {
    WARPFUSE_CUDA_CHECK(
        cudaMemcpyAsync(buffer.data(), &t, sizeof t, cudaMemcpyHostToDevice, stream_));
    sync();
  }
  // Zeroes the sums and the epoch's counters on the stream; the optimizer's step count survives
  // unless `all`. No host round trip.
  void reset_device_totals(DeviceBuffer<TrainingTotals>& buffer, bool all) {
    reset_training_totals(buffer.data(), !all, stream_);
  }

  static Totals to_totals(const TrainingTotals& d) { return d; }

  // Buffers sized for `count` rows; growing them invalidates captured graphs (their pointers).
  void ensure_workspace(std::int64_t count) {
    if (count <= capacity_) return;
    sync();
    for (auto& [rows, exec] : graphs_) release_graph(exec);
    graphs_.clear();
    warmed_.clear();
    capacity_ = count;
    const auto& layers = spec_.layout.layers;
    const std::int64_t in_cols = layers.front().inputs;
    const std::int64_t out_cols = layers.back().units;
    xb_ = DeviceBuffer<float>(count * in_cols);
    yb_ = DeviceBuffer<float>(count * std::max<std::int64_t>(out_cols, 1));
    labels_b_ = DeviceBuffer<int>(count);
    z_.clear();
    a_.clear();
    std::size_t activation_workspace = 0;
    for (const LayerSlots& s : layers) {
      z_.emplace_back(count * s.units);
      a_.emplace_back(count * s.units);
      if (s.activation.elementwise()) {
        activation_workspace = std::max(
            activation_workspace,
            bias_activation_backward_workspace_bytes(count, s.units, s.activation.params().kind));
      }
    }
    delta_ = DeviceBuffer<float>(count * spec_.layout.widest);
    delta_prev_ = DeviceBuffer<float>(count * spec_.layout.widest);
    activation_workspace_ = DeviceBuffer<unsigned char>(
        std::max<std::size_t>(activation_workspace, kWorkspaceAlignment));
    metrics_workspace_ = DeviceBuffer<unsigned char>(metrics_workspace_bytes(count));
    loss_workspace_ = DeviceBuffer<unsigned char>(
        std::max(cross_entropy_workspace_bytes(count), elementwise_loss_workspace_bytes(count)));
    ones_ = DeviceBuffer<float>(count);
    const std::vector<float> ones(static_cast<std::size_t>(count), 1.0f);
    ones_.copy_from_host(ones);
  }

  void release_graph(cudaGraphExec_t exec) {
    if (exec != nullptr) static_cast<void>(cudaGraphExecDestroy(exec));
  }

  void enqueue_step(std::int64_t count) {
    gather(count);
    forward(xb_.data(), count, !spec_.metrics_on_logits);
    loss_and_gradient(count, true, yb_.data(), labels_b_.data());
    accumulate(count, totals_.data(), true, yb_.data(), labels_b_.data());
    backward(xb_.data(), count);
    // The public op, like any user: one tensor (the contiguous parameter buffer), Adam's step
    // number read on the device from the totals, which accumulate() advanced.
    OptimizerTensor<float> tensor;
    tensor.params = params_.data();
    tensor.grads = grads_.data();
    tensor.state = state_.data();
    tensor.size = spec_.layout.total;
    OptimizerExtras extras;
    extras.step = &totals_.data()->global_step;
    optimizer_step(tensor, spec_.optimizer, extras,
                   Workspace{optimizer_workspace_.data(), optimizer_workspace_.size()}, stream_);
  }

  // The mini-batch's rows of x, y (and the class indices) at the device-side cursor into the
  // epoch's order, which accumulate_metrics advances: a captured step gathers the next batch.
  void gather(std::int64_t count) {
    const VectorView<const std::int64_t> order(order_.data(), order_rows_);
    const std::int64_t* cursor = &totals_.data()->cursor;
    gather_rows<float>(MatrixView<const float>(x_train_.data(), rows_, x_cols_), order, cursor,
                       MatrixView<float>(xb_.data(), count, x_cols_), stream_);
    if (sparse()) {
      gather_rows<int>(MatrixView<const int>(labels_train_.data(), rows_, 1), order, cursor,
                       MatrixView<int>(labels_b_.data(), count, 1), stream_);
    } else {
      gather_rows<float>(MatrixView<const float>(y_train_.data(), rows_, y_cols_), order, cursor,
                         MatrixView<float>(yb_.data(), count, y_cols_), stream_);
    }
  }

  // Adds the bias row to every row of z: z += ones(count x 1) bias(1 x units).
  void add_bias_by_gemm(const LayerSlots& s, std::int64_t count, float* z) {
    (*gemm_)(false, false, count, s.units, 1, 1.0f, ones_.data(), 1, params_.data() + s.bias,
             s.units, 1.0f, z, s.units);
  }

  // Layer l's activation: a_[l], or z_[l] for a linear layer (the same values; no copy).
  float* activation_of(std::size_t l) {
    return spec_.layout.layers[l].activation.kind == ActivationKind::linear ? z_[l].data()
                                                                            : a_[l].data();
  }

  // `outputs`: compute the last layer's activation even when the loss reads its logits.
  void forward(const float* x, std::int64_t count, bool outputs) {
    const auto& layers = spec_.layout.layers;
    const float* input = x;
    for (std::size_t l = 0; l < layers.size(); ++l) {
      const LayerSlots& s = layers[l];
      float* z = z_[l].data();
      float* a = a_[l].data();
      (*gemm_)(false, false, count, s.units, s.inputs, 1.0f, input, s.inputs,
               params_.data() + s.kernel, s.units, 0.0f, z, s.units, precision_);
      const MatrixView<float> zv(z, count, s.units, s.units);
      const MatrixView<float> av(a, count, s.units, s.units);
      const bool last = l + 1 == layers.size();
      const ActivationKind kind = s.activation.kind;
      if (s.activation.elementwise()) {
        const VectorView<const float> slope =
            s.prelu >= 0 ? VectorView<const float>(params_.data() + s.prelu, s.units)
                         : VectorView<const float>();
        const ActivationParams params = s.activation.params();
        if (last && spec_.fused_output && !outputs) {
          // sigmoid + binary CE: the loss reads z (with the bias), not the activation.
          if (s.bias >= 0) add_bias_by_gemm(s, count, z);
        } else if (s.bias >= 0) {
          bias_activation_forward(zv, VectorView<const float>(params_.data() + s.bias, s.units),
                                  BiasActivationOutputs<float>{av, zv}, params, slope, stream_);
        } else {
          activation_forward(zv, av, params, slope, stream_);
        }
      } else {
        if (s.bias >= 0) add_bias_by_gemm(s, count, z);
        // A linear layer's activation is z itself (activation_of), so nothing is copied; a fused
        // softmax output's probabilities are computed only when asked for.
        if (kind == ActivationKind::softmax && (!last || !spec_.fused_output || outputs)) {
          softmax(MatrixView<const float>(zv), av, SoftmaxOptions{}, stream_);
        }
      }
      input = activation_of(l);
    }
  }

  // The loss into loss_value_ and, when `gradient`, dL/d(what the loss reads) into delta_, for
  // `count` rows of targets y (or class indices `labels`, sparse) in device memory.
  void loss_and_gradient(std::int64_t count, bool gradient, const float* y, const int* labels) {
    const LayerSlots& s = spec_.layout.layers.back();
    const std::int64_t cols = s.units;
    const float* input = spec_.fused_output ? z_.back().data() : activation_of(last_layer());
    const MatrixView<const float> pred(input, count, cols, cols);
    const MatrixView<float> grad =
        gradient ? MatrixView<float>(delta_.data(), count, cols, cols) : MatrixView<float>();
    const Workspace workspace{loss_workspace_.data(), loss_workspace_.size()};
    const MatrixView<float> loss(loss_value_.data(), 1, 1, 1);
    const MatrixView<const float> target(y, count, cols, cols);
    switch (spec_.loss.kind) {
      case LossKind::sparse_categorical_crossentropy: {
        CrossEntropyOutputs<float> out;
        out.loss = VectorView<float>(loss_value_.data(), 1);
        out.dlogits = grad;
        cross_entropy(pred, VectorView<const int>(labels, count), out, workspace,
                      CrossEntropyOptions{}, VectorView<const float>(), stream_);
        return;
      }
      case LossKind::categorical_crossentropy: {
        CrossEntropyOutputs<float> out;
        out.loss = VectorView<float>(loss_value_.data(), 1);
        out.dlogits = grad;
        cross_entropy(pred, target, out, workspace, CrossEntropyOptions{},
                      VectorView<const float>(), stream_);
        return;
      }
      case LossKind::binary_crossentropy:
        if (spec_.loss_reads_logits) {
          binary_cross_entropy_with_logits(pred, target, ElementwiseLossOutputs<float>{loss, grad},
                                           workspace, ElementwiseLossOptions{},
                                           VectorView<const float>(), stream_);
        } else {
          binary_cross_entropy(pred, target, ElementwiseLossOutputs<float>{loss, grad}, workspace,
                               BinaryCrossEntropyOptions{}, stream_);
        }
        return;
      case LossKind::mean_squared_error:
        mse_loss(pred, target, ElementwiseLossOutputs<float>{loss, grad}, workspace,
                 ElementwiseLossOptions{}, stream_);
        return;
      case LossKind::mean_absolute_error:
        mae_loss(pred, target, ElementwiseLossOutputs<float>{loss, grad}, workspace,
                 ElementwiseLossOptions{}, stream_);
        return;
      case LossKind::huber: {
        HuberLossOptions options;
        options.delta = spec_.loss.delta;
        huber_loss(pred, target, ElementwiseLossOutputs<float>{loss, grad}, workspace, options,
                   stream_);
        return;
      }
    }
  }

  // The batch's loss and metrics into `totals` through the public op (advancing the counters and
  // the cursor for a training step).
  void accumulate(std::int64_t count, TrainingTotals* totals, bool advance, const float* y,
                  const int* labels) {
    const LayerSlots& s = spec_.layout.layers.back();
    const std::int64_t cols = s.units;
    MetricInputs<float, int> inputs;
    const float* out = spec_.metrics_on_logits ? z_.back().data() : activation_of(last_layer());
    inputs.outputs = MatrixView<const float>(out, count, cols, cols);
    if (sparse()) {
      inputs.labels = VectorView<const int>(labels, count);
    } else {
      inputs.targets = MatrixView<const float>(y, count, cols, cols);
    }
    inputs.batch_loss = loss_value_.data();
    MetricOptions options = spec_.metrics;
    options.advance = advance;
    accumulate_metrics(inputs, options, totals,
                       Workspace{metrics_workspace_.data(), metrics_workspace_.size()}, stream_);
  }

  void backward(const float* x, std::int64_t count) {
    const auto& layers = spec_.layout.layers;
    float* delta = delta_.data();  // dL/da of layer l on entry (dL/dz for a fused output)
    for (std::size_t i = layers.size(); i-- > 0;) {
      const LayerSlots& s = layers[i];
      const MatrixView<float> dv(delta, count, s.units, s.units);
      const bool fused = spec_.fused_output && i + 1 == layers.size();
      const ActivationKind kind = s.activation.kind;
      bool bias_done = false;
      if (!fused && s.activation.elementwise()) {
        const ActivationParams params = s.activation.params();
        const bool from_output = activation_backward_from(params.kind) == BackwardFrom::output;
        const float* saved = from_output ? a_[i].data() : z_[i].data();
        const VectorView<const float> slope =
            s.prelu >= 0 ? VectorView<const float>(params_.data() + s.prelu, s.units)
                         : VectorView<const float>();
        const VectorView<float> dslope = s.prelu >= 0
                                             ? VectorView<float>(grads_.data() + s.prelu, s.units)
                                             : VectorView<float>();
        const VectorView<float> dbias =
            s.bias >= 0 ? VectorView<float>(grads_.data() + s.bias, s.units) : VectorView<float>();
        bias_activation_backward(
            MatrixView<const float>(saved, count, s.units, s.units), MatrixView<const float>(dv),
            BiasActivationBackwardOutputs<float>{dv, dbias, dslope},
            Workspace{activation_workspace_.data(), activation_workspace_.size()}, params, slope,
            stream_);
        bias_done = true;
      } else if (!fused && kind == ActivationKind::softmax) {
        softmax_backward(MatrixView<const float>(a_[i].data(), count, s.units, s.units),
                         MatrixView<const float>(dv), dv, SoftmaxOptions{}, stream_);
      }
      if (s.bias >= 0 && !bias_done) {
        // db = ones^T dz: a 1 x units GEMM, deterministic as every cuBLAS GEMM is run to run.
        (*gemm_)(false, false, 1, s.units, count, 1.0f, ones_.data(), count, delta, s.units, 0.0f,
                 grads_.data() + s.bias, s.units);
      }
      const float* input = i == 0 ? x : activation_of(i - 1);
      (*gemm_)(true, false, s.inputs, s.units, count, 1.0f, input, s.inputs, delta, s.units, 0.0f,
               grads_.data() + s.kernel, s.units, precision_);
      if (i > 0) {
        float* prev = delta == delta_.data() ? delta_prev_.data() : delta_.data();
        (*gemm_)(false, true, count, s.inputs, s.units, 1.0f, delta, s.units,
                 params_.data() + s.kernel, s.units, 0.0f, prev, s.inputs, precision_);
        delta = prev;
      }
    }
  }

  ModelSpec spec_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<Gemm> gemm_;
  MatmulPrecision precision_ = MatmulPrecision::fp32;
  DeviceBuffer<float> params_, grads_, state_;
  DeviceBuffer<TrainingTotals> totals_, eval_totals_;
  DeviceBuffer<unsigned char> optimizer_workspace_, metrics_workspace_;
  DeviceData eval_data_, validation_data_;
  DeviceBuffer<float> loss_value_;
  DeviceBuffer<float> x_train_, y_train_;
  DeviceBuffer<int> labels_train_;
  DeviceBuffer<std::int64_t> order_;
  std::int64_t order_rows_ = 0;
  std::int64_t rows_ = 0, x_cols_ = 0, y_cols_ = 0;
  std::int64_t capacity_ = 0;
  DeviceBuffer<float> xb_, yb_, delta_, delta_prev_, ones_;
  DeviceBuffer<int> labels_b_;
  std::vector<DeviceBuffer<float>> z_, a_;
  DeviceBuffer<unsigned char> activation_workspace_, loss_workspace_;
  std::map<std::int64_t, cudaGraphExec_t> graphs_;
  const bool use_graphs_ = [] {
    const char* setting = std::getenv("WARPFUSE_CUDA_GRAPHS");
    return setting == nullptr || std::strcmp(setting, "0") != 0;
  }();
  std::set<std::int64_t> warmed_;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(const ModelSpec& spec) {
  std::string reason;
  if (!cuda_device_available(&reason)) {
    throw Unsupported("nn::Sequential::compile", "Device::cuda: no CUDA device (" + reason + ")");
  }
  return std::make_unique<CudaBackend>(spec);
}

}  // namespace warpfuse::nn::detail
