// warpfuse::nn — Sequential: compile, the training loop (epochs, validation, callbacks, Keras-style
// progress), evaluate, predict, summary. The arithmetic is the backend's (cpu_backend.cpp,
// cuda_backend.cu); this file only decides what runs when.
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "host/nn/backend.h"
#include "warpfuse/device.h"
#include "warpfuse/error.h"
#include "warpfuse/nn/model.h"

namespace warpfuse::nn {
namespace {

/// Throws InvalidArgument naming the first NaN or infinite value of m (1-based row and column).
void check_finite(const char* op, const char* name, const Matrix& m) {
  for (std::size_t i = 0; i < m.data.size(); ++i) {
    if (!std::isfinite(m.data[i])) {
      const std::size_t cols = m.cols > 0 ? static_cast<std::size_t>(m.cols) : 1;
      throw InvalidArgument(op, name,
                            "holds a NaN or infinite value (row " + std::to_string(i / cols + 1) +
                                ", column " + std::to_string(i % cols + 1) + ")");
    }
  }
}

using Clock = std::chrono::steady_clock;
using Logs = std::map<std::string, double>;

std::string format_duration(double seconds) {
  char text[32];
  const long s = std::lround(seconds);
  if (s >= 3600) {
    std::snprintf(text, sizeof text, "%ld:%02ld:%02ld", s / 3600, (s % 3600) / 60, s % 60);
  } else if (s >= 60) {
    std::snprintf(text, sizeof text, "%ld:%02ld", s / 60, s % 60);
  } else {
    std::snprintf(text, sizeof text, "%lds", s);
  }
  return text;
}

std::string format_per_step(double seconds) {
  char text[32];
  if (seconds >= 1.0) {
    std::snprintf(text, sizeof text, "%.0fs/step", seconds);
  } else if (seconds >= 1e-3) {
    std::snprintf(text, sizeof text, "%.0fms/step", seconds * 1e3);
  } else {
    std::snprintf(text, sizeof text, "%.0fus/step", seconds * 1e6);
  }
  return text;
}

std::string format_logs(const std::vector<std::pair<std::string, double>>& values) {
  std::string text;
  char number[48];
  for (const auto& [name, value] : values) {
    if (std::fabs(value) >= 1e-3 || value == 0.0) {
      std::snprintf(number, sizeof number, "%.4f", value);
    } else {
      std::snprintf(number, sizeof number, "%.4e", value);
    }
    text += " - " + name + ": " + number;
  }
  return text;
}

/// The width of stdout's terminal (TIOCGWINSZ), else $COLUMNS, else 80.
int terminal_columns() {
  winsize size{};
  if (ioctl(fileno(stdout), TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  if (const char* columns = std::getenv("COLUMNS")) {
    const int v = std::atoi(columns);
    if (v > 0) return v;
  }
  return 80;
}

// Keras' progress bar (the tf.keras 2 layout):
//   Epoch 3/10
//    512/1875 [=======>......................] - ETA: 2s - loss: 0.5321 - accuracy: 0.8123
//   1875/1875 [==============================] - 3s 2ms/step - loss: 0.4 - accuracy: 0.85 - ...
// On a terminal the line is redrawn in place with '\r'; otherwise only the final line is written.
// verbose 2 writes one line per epoch: "Epoch 3/10 - 3s - 2ms/step - loss: ... - val_loss: ...".
class Progress {
 public:
  Progress(std::ostream& out, int verbose, bool terminal, int columns, int epochs,
           std::int64_t steps)
      : out_(out),
        verbose_(verbose),
        terminal_(terminal),
        columns_(std::max(columns, 20)),
        epochs_(epochs),
        steps_(steps) {}

  void begin_epoch(int epoch) {
    epoch_ = epoch;
    start_ = Clock::now();
    width_ = 0;
    if (verbose_ == 1) out_ << "Epoch " << epoch + 1 << "/" << epochs_ << "\n" << std::flush;
  }

  bool wants_update() const { return verbose_ == 1 && terminal_; }

  void update(std::int64_t step, const std::vector<std::pair<std::string, double>>& values) {
    if (!wants_update()) return;
    const double elapsed = seconds();
    const double eta = step > 0 ? elapsed / step * (steps_ - step) : 0.0;
    draw(bar(step) + " - ETA: " + format_duration(eta) + format_logs(values), false);
  }

  void end_epoch(const std::vector<std::pair<std::string, double>>& values) {
    const double elapsed = seconds();
    const std::string per_step = format_per_step(elapsed / std::max<std::int64_t>(steps_, 1));
    if (verbose_ == 1) {
      draw(bar(steps_) + " - " + format_duration(elapsed) + " " + per_step + format_logs(values),
           true);
    } else if (verbose_ == 2) {
      out_ << "Epoch " << epoch_ + 1 << "/" << epochs_ << " - " << format_duration(elapsed) << " - "
           << per_step << format_logs(values) << "\n"
           << std::flush;
    }
  }

  double seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

 private:
  std::string bar(std::int64_t step) const {
    // Keras' 30 characters, fewer on a narrow terminal.
    const int kWidth = std::clamp(columns_ - 50, 10, 30);
    const std::string total = std::to_string(steps_);
    std::string counter = std::to_string(step);
    counter = std::string(total.size() - std::min(total.size(), counter.size()), ' ') + counter;
    const int filled = static_cast<int>(kWidth * step / std::max<std::int64_t>(steps_, 1));
    std::string body(kWidth, '.');
    for (int i = 0; i < filled; ++i) body[i] = '=';
    if (step < steps_ && filled < kWidth) body[filled] = '>';
    return counter + "/" + total + " [" + body + "]";
  }

  void draw(std::string line, bool final) {
    if (terminal_ && final) {
      // The epoch's last line in full (it may wrap: nothing redraws it), over a cleared line.
      out_ << "\r" << std::string(width_, ' ') << "\r" << line << "\n" << std::flush;
      width_ = 0;
    } else if (terminal_) {
      // A redrawn line stays within the terminal's width: one that wraps cannot be redrawn in
      // place and leaves a new line behind at every update.
      const auto room = static_cast<std::size_t>(columns_ - 1);
      if (line.size() > room) line.resize(room);
      // Pad over the previous, possibly longer, line.
      out_ << "\r" << line;
      if (line.size() < width_) out_ << std::string(width_ - line.size(), ' ');
      width_ = line.size();
      out_ << std::flush;
    } else if (final) {
      out_ << line << "\n" << std::flush;
    }
  }

  std::ostream& out_;
  int verbose_;
  bool terminal_;
  int columns_;
  int epochs_;
  std::int64_t steps_;
  int epoch_ = 0;
  Clock::time_point start_;
  std::size_t width_ = 0;
};

std::vector<std::pair<std::string, double>> metric_values(const detail::ModelSpec& spec,
                                                          const std::vector<std::string>& metrics,
                                                          const detail::Totals& t,
                                                          const std::string& prefix = "") {
  std::vector<std::pair<std::string, double>> values;
  const double samples = std::max(t.samples, 1.0);
  values.emplace_back(prefix + "loss", t.loss_sum / samples);
  for (const std::string& m : metrics) {
    if (m == "accuracy" || m == "acc") {
      values.emplace_back(prefix + "accuracy", t.correct / std::max(t.accuracy_count, 1.0));
    } else if (m == "mse" || m == "mean_squared_error") {
      values.emplace_back(prefix + m, t.squared_error_sum / std::max(t.elements, 1.0));
    } else if (m == "mae" || m == "mean_absolute_error") {
      values.emplace_back(prefix + m, t.abs_error_sum / std::max(t.elements, 1.0));
    }
  }
  static_cast<void>(spec);
  return values;
}

detail::ModelSpec make_spec(const std::vector<Dense>& layers, const Optimizer& optimizer,
                            const Loss& loss, const std::vector<std::string>& metrics) {
  detail::ModelSpec spec;
  spec.layout = detail::make_layout(layers);
  spec.loss = loss;
  spec.optimizer = optimizer;
  const ActivationKind out = layers.back().activation.kind;
  const std::int64_t units = layers.back().units;
  for (const std::string& m : metrics) {
    if (m == "accuracy" || m == "acc") {
      switch (loss.kind) {
        case LossKind::categorical_crossentropy:
          spec.metrics.accuracy = AccuracyKind::argmax_onehot;
          break;
        case LossKind::sparse_categorical_crossentropy:
          spec.metrics.accuracy = AccuracyKind::argmax_index;
          break;
        case LossKind::binary_crossentropy:
          spec.metrics.accuracy = AccuracyKind::threshold;
          break;
        default:  // Keras: one output unit means binary, several categorical
          spec.metrics.accuracy =
              units == 1 ? AccuracyKind::threshold : AccuracyKind::argmax_onehot;
      }
    } else if (m == "mse" || m == "mean_squared_error" || m == "mae" ||
               m == "mean_absolute_error") {
      if (loss.kind == LossKind::sparse_categorical_crossentropy) {
        throw InvalidArgument("nn::Sequential::compile", "metrics",
                              "'" + m +
                                  "' needs targets shaped like the outputs; "
                                  "sparse_categorical_crossentropy has class indices");
      }
      spec.metrics.errors = true;
    } else {
      throw InvalidArgument("nn::Sequential::compile", "metrics",
                            "unknown metric '" + m + "' (one of accuracy, mse, mae)");
    }
  }
  const bool categorical = loss.kind == LossKind::categorical_crossentropy ||
                           loss.kind == LossKind::sparse_categorical_crossentropy;
  if (!loss.from_logits &&
      ((categorical && out == ActivationKind::softmax) ||
       (loss.kind == LossKind::binary_crossentropy && out == ActivationKind::sigmoid))) {
    spec.fused_output = true;
  }
  spec.loss_reads_logits = spec.fused_output || (loss.is_crossentropy() && loss.from_logits);
  // Metrics read the logits of a fused output unless mse / mae need its activation; Keras'
  // binary_accuracy thresholds probabilities at 0.5, which is logits at 0.
  spec.metrics_on_logits = spec.fused_output && !spec.metrics.errors;
  spec.metrics.threshold = spec.metrics_on_logits || loss.from_logits ? 0.0f : 0.5f;
  return spec;
}

bool maximise_for(const std::string& monitor) {
  return monitor.find("acc") != std::string::npos;
}

}  // namespace

Matrix::Matrix(std::int64_t r, std::int64_t c, std::vector<float> values)
    : rows(r), cols(c), data(std::move(values)) {
  if (r < 0 || c < 0 || static_cast<std::int64_t>(data.size()) != r * c) {
    throw InvalidArgument("nn::Matrix", "values",
                          "holds " + std::to_string(data.size()) + " values, a " +
                              std::to_string(r) + " x " + std::to_string(c) + " matrix needs " +
                              std::to_string(r * c));
  }
}

Matrix Matrix::slice_rows(std::int64_t begin, std::int64_t count) const {
  Matrix m(count, cols);
  std::copy_n(data.begin() + begin * cols, count * cols, m.data.begin());
  return m;
}

Device default_device() {
  return cuda_device_available() ? Device::cuda : Device::cpu;
}

Sequential::Sequential(std::string name) : name_(std::move(name)) {}
Sequential::Sequential(std::vector<Dense> layers, std::string name) : name_(std::move(name)) {
  for (const Dense& d : layers) add(d);
}
Sequential::~Sequential() = default;
Sequential::Sequential(Sequential&&) noexcept = default;
Sequential& Sequential::operator=(Sequential&&) noexcept = default;

void Sequential::add(const Dense& layer) {
  const char* op = "nn::Sequential::add";
  if (backend_ != nullptr) throw InvalidArgument(op, "layer", "the model is already compiled");
  if (layer.units <= 0) {
    throw InvalidArgument(op, "units", std::to_string(layer.units) + " is not positive");
  }
  if (layer.units > kMaxUnits) {
    throw InvalidArgument(op, "units",
                          std::to_string(layer.units) + " exceeds the limit of 16777216 (2^24)");
  }
  if (layer.input_dim > kMaxUnits) {
    throw InvalidArgument(
        op, "input_dim", std::to_string(layer.input_dim) + " exceeds the limit of 16777216 (2^24)");
  }
  Dense d = layer;
  if (layers_.empty()) {
    if (d.input_dim <= 0) {
      throw InvalidArgument(
          op, "input_dim",
          "the first layer needs input_dim > 0 (got " + std::to_string(d.input_dim) + ")");
    }
  } else {
    if (d.input_dim > 0 && d.input_dim != layers_.back().units) {
      throw InvalidArgument(op, "input_dim",
                            std::to_string(d.input_dim) + " does not match the previous layer's " +
                                std::to_string(layers_.back().units) + " units");
    }
    d.input_dim = layers_.back().units;
  }
  layers_.push_back(d);
}

std::int64_t Sequential::parameter_count() const {
  return detail::make_layout(layers_).total;
}

void Sequential::set_matmul_precision(MatmulPrecision precision) {
  if (precision != MatmulPrecision::fp32 && precision != MatmulPrecision::bf16) {
    throw InvalidArgument("nn::Sequential::set_matmul_precision", "precision",
                          "is not a MatmulPrecision");
  }
  matmul_precision_ = precision;
  if (backend_ != nullptr) backend_->set_matmul_precision(precision);
}

void Sequential::compile(const Optimizer& optimizer, const Loss& loss,
                         const std::vector<std::string>& metrics, Device device,
                         std::uint64_t seed) {
  const char* op = "nn::Sequential::compile";
  if (layers_.empty()) throw InvalidArgument(op, "model", "has no layers");
  if (!(optimizer.learning_rate > 0.0f) || !std::isfinite(optimizer.learning_rate)) {
    throw InvalidArgument(op, "optimizer.learning_rate",
                          std::to_string(optimizer.learning_rate) + " is not positive and finite");
  }
  if (loss.kind == LossKind::huber && !(loss.delta > 0.0f)) {
    throw InvalidArgument(op, "loss.delta", std::to_string(loss.delta) + " is not positive");
  }
  detail::ModelSpec spec = make_spec(layers_, optimizer, loss, metrics);
  if (device == Device::automatic) device = default_device();
  std::vector<float> weights = backend_ != nullptr
                                   ? backend_->parameters()
                                   : detail::initial_parameters(layers_, spec.layout, seed);
  std::unique_ptr<detail::Backend> backend =
      device == Device::cuda ? detail::make_cuda_backend(spec) : detail::make_cpu_backend(spec);
  backend->set_parameters(weights);
  backend->set_matmul_precision(matmul_precision_);
  backend_ = std::move(backend);
  device_ = device;
  optimizer_ = optimizer;
  loss_ = loss;
  metrics_ = metrics;
}

void Sequential::check_compiled(const char* op) const {
  if (backend_ == nullptr) throw InvalidArgument(op, "model", "is not compiled: call compile()");
}

void Sequential::check_data(const char* op, const Matrix& x, const Matrix& y) const {
  if (x.rows == 0 || x.cols == 0) throw InvalidArgument(op, "x", "is empty");
  if (static_cast<std::int64_t>(x.data.size()) != x.rows * x.cols) {
    throw InvalidArgument(op, "x", "holds a different number of values than rows x cols");
  }
  if (x.cols != input_dim()) {
    throw InvalidArgument(op, "x",
                          "has " + std::to_string(x.cols) +
                              " columns but the model's input_dim is " +
                              std::to_string(input_dim()));
  }
  check_finite(op, "x", x);
  if (y.rows != x.rows) {
    throw InvalidArgument(
        op, "y", "has " + std::to_string(y.rows) + " rows but x has " + std::to_string(x.rows));
  }
  if (static_cast<std::int64_t>(y.data.size()) != y.rows * y.cols) {
    throw InvalidArgument(op, "y", "holds a different number of values than rows x cols");
  }
  check_finite(op, "y", y);
  const std::int64_t units = output_dim();
  const std::string loss_name = to_string(loss_.kind);
  if (loss_.kind == LossKind::sparse_categorical_crossentropy) {
    if (y.cols != 1) {
      throw InvalidArgument(op, "y",
                            "has " + std::to_string(y.cols) + " columns; " + loss_name +
                                " takes one column of class indices");
    }
    for (std::int64_t r = 0; r < y.rows; ++r) {
      const float label = y.data[r];
      if (!(label >= 0.0f) || label >= static_cast<float>(units) || label != std::floor(label)) {
        throw InvalidArgument(
            op, "y",
            "row " + std::to_string(r + 1) + " (1-based) holds label " +
                warpfuse::detail::format_number(label) + ", not a class index in [0, " +
                std::to_string(units) + ")" +
                (label == std::floor(label) && label >= static_cast<float>(units)
                     ? "; the output layer needs at least " +
                           warpfuse::detail::format_number(label + 1.0f) + " units"
                     : ""));
      }
    }
    return;
  }
  if (y.cols != units) {
    throw InvalidArgument(op, "y",
                          "has " + std::to_string(y.cols) + " columns but the output layer has " +
                              std::to_string(units) + " units (" + loss_name + ")" +
                              (y.cols == 1 && loss_.kind == LossKind::categorical_crossentropy
                                   ? "; use one-hot rows or sparse_categorical_crossentropy"
                                   : ""));
  }
  for (std::size_t i = 0; i < y.data.size(); ++i) {
    const float v = y.data[i];
    if (!std::isfinite(v)) {
      throw InvalidArgument(op, "y",
                            "row " + std::to_string(i / y.cols + 1) + " (1-based) holds " +
                                warpfuse::detail::format_number(v));
    }
    if (loss_.is_crossentropy() && (v < 0.0f || v > 1.0f)) {
      throw InvalidArgument(op, "y",
                            "row " + std::to_string(i / y.cols + 1) + " (1-based) holds " +
                                warpfuse::detail::format_number(v) + "; " + loss_name +
                                " takes targets in [0, 1]");
    }
  }
}

History Sequential::fit(const Matrix& x, const Matrix& y, const FitOptions& options) {
  const char* op = "nn::Sequential::fit";
  check_compiled(op);
  check_data(op, x, y);
  if (options.epochs < 0) throw InvalidArgument(op, "epochs", "is negative");
  if (options.batch_size <= 0) {
    throw InvalidArgument(op, "batch_size",
                          std::to_string(options.batch_size) + " is not positive");
  }
  if (!(options.validation_split >= 0.0 && options.validation_split < 1.0)) {
    throw InvalidArgument(op, "validation_split",
                          std::to_string(options.validation_split) + " is not in [0, 1)");
  }
  if (!(options.redraw_seconds >= 0.0)) {
    throw InvalidArgument(op, "redraw_seconds", "is negative or NaN");
  }
  if (options.verbose < 0 || options.verbose > 2) {
    throw InvalidArgument(op, "verbose", std::to_string(options.verbose) + " is not 0, 1 or 2");
  }

  // Keras takes the validation samples from the END of x and y, before any shuffling.
  Matrix train_x_storage, train_y_storage, val_x, val_y;
  const Matrix* train_x = &x;
  const Matrix* train_y = &y;
  bool have_validation = false;
  if (options.validation_data) {
    val_x = options.validation_data->first;
    val_y = options.validation_data->second;
    check_data(op, val_x, val_y);
    have_validation = true;
  } else if (options.validation_split > 0.0) {
    const auto keep =
        static_cast<std::int64_t>(static_cast<double>(x.rows) * (1.0 - options.validation_split));
    if (keep == 0 || keep == x.rows) {
      throw InvalidArgument(op, "validation_split",
                            std::to_string(options.validation_split) + " of " +
                                std::to_string(x.rows) + " samples leaves " +
                                (keep == 0 ? "no training" : "no validation") + " samples");
    }
    train_x_storage = x.slice_rows(0, keep);
    train_y_storage = y.slice_rows(0, keep);
    val_x = x.slice_rows(keep, x.rows - keep);
    val_y = y.slice_rows(keep, y.rows - keep);
    train_x = &train_x_storage;
    train_y = &train_y_storage;
    have_validation = true;
  }

  const detail::ModelSpec spec = make_spec(layers_, optimizer_, loss_, metrics_);
  const std::int64_t n = train_x->rows;
  // A batch larger than the data is the whole data (no overflow in the step count either).
  const std::int64_t batch = std::min(options.batch_size, n);
  const std::int64_t steps = n / batch + (n % batch != 0 ? 1 : 0);
  std::ostream& out = options.out != nullptr ? *options.out : std::cout;
  const bool terminal = options.terminal.has_value()
                            ? *options.terminal
                            : (options.out == nullptr && isatty(fileno(stdout)) != 0);
  Progress progress(out, options.verbose, terminal,
                    options.terminal_columns > 0 ? options.terminal_columns : terminal_columns(),
                    options.epochs, steps);

  History history;
  backend_->set_training_data(*train_x, *train_y);
  if (have_validation) backend_->set_validation_data(val_x, val_y);  // once: CUDA keeps it there
  for (const auto& cb : options.callbacks) cb->on_train_begin(*this);
  for (int epoch = 0; epoch < options.epochs; ++epoch) {
    backend_->set_order(detail::epoch_order(n, options.shuffle, options.seed, epoch));
    backend_->reset_totals();
    progress.begin_epoch(epoch);
    auto last_draw = Clock::now();
    for (std::int64_t step = 0; step < steps; ++step) {
      const std::int64_t begin = step * batch;
      backend_->train_step(begin, std::min(batch, n - begin), step);
      const bool redraw =
          progress.wants_update() &&
          std::chrono::duration<double>(Clock::now() - last_draw).count() >= options.redraw_seconds;
      if (backend_->cheap_totals() || redraw) {
        const detail::Totals t = backend_->totals();
        if (t.first_nonfinite_step >= 0) {
          throw InvalidArgument(
              op, "loss",
              "became " + std::string(std::isnan(t.loss_sum) ? "NaN" : "infinite") + " at epoch " +
                  std::to_string(epoch + 1) + ", step " +
                  std::to_string(t.first_nonfinite_step + 1) + " of " + std::to_string(steps) +
                  "; lower the learning rate or check the data");
        }
        if (redraw) {
          progress.update(step + 1, metric_values(spec, metrics_, t));
          last_draw = Clock::now();
        }
      }
    }
    const detail::Totals t = backend_->totals();
    if (t.first_nonfinite_step >= 0) {
      throw InvalidArgument(op, "loss",
                            "became NaN or infinite at epoch " + std::to_string(epoch + 1) +
                                ", step " + std::to_string(t.first_nonfinite_step + 1) + " of " +
                                std::to_string(steps) +
                                "; lower the learning rate or check the data");
    }
    auto values = metric_values(spec, metrics_, t);
    if (have_validation) {
      const detail::Totals v = backend_->evaluate_validation(std::max<std::int64_t>(batch, 256));
      for (auto& entry : metric_values(spec, metrics_, v, "val_")) values.push_back(entry);
    }
    progress.end_epoch(values);
    Logs logs(values.begin(), values.end());
    history.epoch.push_back(epoch);
    for (const auto& [name, value] : values) history.history[name].push_back(value);
    bool stop = false;
    for (const auto& cb : options.callbacks) cb->on_epoch_end(epoch, logs, *this, stop);
    if (stop) break;
  }
  for (const auto& cb : options.callbacks) cb->on_train_end(*this);
  return history;
}

std::map<std::string, double> Sequential::evaluate(const Matrix& x, const Matrix& y,
                                                   std::int64_t batch_size) {
  const char* op = "nn::Sequential::evaluate";
  check_compiled(op);
  check_data(op, x, y);
  if (batch_size <= 0) throw InvalidArgument(op, "batch_size", "is not positive");
  batch_size = std::min(batch_size, x.rows);
  const detail::ModelSpec spec = make_spec(layers_, optimizer_, loss_, metrics_);
  const auto values = metric_values(spec, metrics_, backend_->evaluate(x, y, batch_size));
  return {values.begin(), values.end()};
}

Matrix Sequential::predict(const Matrix& x, std::int64_t batch_size) {
  const char* op = "nn::Sequential::predict";
  check_compiled(op);
  if (x.rows == 0 || x.cols == 0) throw InvalidArgument(op, "x", "is empty");
  if (x.cols != input_dim()) {
    throw InvalidArgument(op, "x",
                          "has " + std::to_string(x.cols) +
                              " columns but the model's input_dim is " +
                              std::to_string(input_dim()));
  }
  if (batch_size <= 0) throw InvalidArgument(op, "batch_size", "is not positive");
  check_finite(op, "x", x);
  batch_size = std::min(batch_size, x.rows);
  Matrix out(x.rows, output_dim());
  backend_->predict(x, batch_size, out.data.data());
  return out;
}

std::vector<float> Sequential::get_weights() {
  check_compiled("nn::Sequential::get_weights");
  return backend_->parameters();
}

void Sequential::set_weights(const std::vector<float>& weights) {
  const char* op = "nn::Sequential::set_weights";
  check_compiled(op);
  if (static_cast<std::int64_t>(weights.size()) != parameter_count()) {
    throw InvalidArgument(op, "weights",
                          "holds " + std::to_string(weights.size()) + " values, the model has " +
                              std::to_string(parameter_count()) + " parameters");
  }
  backend_->set_parameters(weights);
}

namespace detail {
std::string standardizer_problem(const Standardizer& s, std::int64_t input_dim) {
  if (s.mean.size() != s.scale.size()) {
    return "has " + std::to_string(s.mean.size()) + " means but " + std::to_string(s.scale.size()) +
           " scales";
  }
  if (s.mean.empty()) return "is empty";
  if (input_dim > 0 && static_cast<std::int64_t>(s.mean.size()) != input_dim) {
    return "has " + std::to_string(s.mean.size()) + " features, the model's input has " +
           std::to_string(input_dim);
  }
  for (std::size_t i = 0; i < s.mean.size(); ++i) {
    if (!std::isfinite(s.mean[i])) return "mean " + std::to_string(i) + " is not finite";
    if (!std::isfinite(s.scale[i]) || s.scale[i] == 0.0f) {
      return "scale " + std::to_string(i) + " is not finite and nonzero";
    }
  }
  return "";
}
}  // namespace detail

void Sequential::set_standardizer(std::optional<Standardizer> standardizer) {
  if (standardizer) {
    const std::string problem = detail::standardizer_problem(*standardizer, input_dim());
    if (!problem.empty()) {
      throw InvalidArgument("nn::Sequential::set_standardizer", "standardizer", problem);
    }
  }
  standardizer_ = std::move(standardizer);
}

std::string Sequential::summary() const {
  std::ostringstream s;
  auto with_commas = [](std::int64_t v) {
    std::string digits = std::to_string(v);
    for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) digits.insert(i, ",");
    return digits;
  };
  auto pad = [](std::string text, std::size_t width) {
    if (text.size() < width) text += std::string(width - text.size(), ' ');
    return text;
  };
  const std::string rule(65, '_');
  const std::string double_rule(65, '=');
  s << "Model: \"" << name_ << "\"\n" << rule << "\n";
  s << pad(" Layer (type)", 29) << pad("Output Shape", 26) << "Param #\n" << double_rule << "\n";
  const detail::Layout layout = detail::make_layout(layers_);
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    const auto& slot = layout.layers[l];
    const std::int64_t params = slot.inputs * slot.units + (slot.bias >= 0 ? slot.units : 0) +
                                (slot.prelu >= 0 ? slot.units : 0);
    const std::string name = l == 0 ? "dense" : "dense_" + std::to_string(l);
    s << pad(" " + name + " (Dense, " + to_string(slot.activation.kind) + ")", 29)
      << pad("(None, " + std::to_string(slot.units) + ")", 26) << with_commas(params) << "\n";
    if (l + 1 < layers_.size()) s << "\n";
  }
  s << double_rule << "\n";
  s << "Total params: " << with_commas(layout.total) << "\n";
  s << "Trainable params: " << with_commas(layout.total) << "\n";
  s << "Non-trainable params: 0\n" << rule << "\n";
  return s.str();
}

// --- callbacks
// -------------------------------------------------------------------------------------

EarlyStopping::EarlyStopping(std::string monitor, double min_delta, int patience,
                             bool restore_best_weights)
    : monitor_(std::move(monitor)),
      min_delta_(std::fabs(min_delta)),
      patience_(patience),
      restore_(restore_best_weights),
      maximise_(maximise_for(monitor_)) {}

void EarlyStopping::on_train_begin(Sequential&) {
  best_ = maximise_ ? -INFINITY : INFINITY;
  best_epoch_ = -1;
  wait_ = 0;
  stopped_epoch_ = -1;
  best_weights_.clear();
}

void EarlyStopping::on_epoch_end(int epoch, const std::map<std::string, double>& logs,
                                 Sequential& model, bool& stop) {
  const auto it = logs.find(monitor_);
  if (it == logs.end()) {
    throw InvalidArgument("nn::EarlyStopping", "monitor",
                          "'" + monitor_ + "' is not among this epoch's values");
  }
  const double value = it->second;
  const bool improved = maximise_ ? value > best_ + min_delta_ : value < best_ - min_delta_;
  if (improved) {
    best_ = value;
    best_epoch_ = epoch;
    wait_ = 0;
    if (restore_) best_weights_ = model.get_weights();
    return;
  }
  // Keras counts the epochs without improvement and stops once they reach patience.
  if (++wait_ >= patience_ && epoch > 0) {
    stopped_epoch_ = epoch;
    stop = true;
  }
}

void EarlyStopping::on_train_end(Sequential& model) {
  if (restore_ && stopped_epoch_ >= 0 && !best_weights_.empty()) model.set_weights(best_weights_);
}

ModelCheckpoint::ModelCheckpoint(std::string path, std::string monitor, bool save_best_only)
    : path_(std::move(path)),
      monitor_(std::move(monitor)),
      save_best_only_(save_best_only),
      maximise_(maximise_for(monitor_)) {}

void ModelCheckpoint::on_train_begin(Sequential&) {
  have_best_ = false;
}

void ModelCheckpoint::on_epoch_end(int, const std::map<std::string, double>& logs,
                                   Sequential& model, bool&) {
  if (!save_best_only_) {
    model.save(path_);
    return;
  }
  const auto it = logs.find(monitor_);
  if (it == logs.end()) {
    throw InvalidArgument("nn::ModelCheckpoint", "monitor",
                          "'" + monitor_ + "' is not among this epoch's values");
  }
  const double value = it->second;
  if (!have_best_ || (maximise_ ? value > best_ : value < best_)) {
    have_best_ = true;
    best_ = value;
    model.save(path_);
  }
}

}  // namespace warpfuse::nn
