// warpfuse::nn — a Keras-like Sequential model of Dense layers, trained on the GPU through
// warpfuse's own ops plus cuBLAS, or on the CPU through warpfuse::ref (CBLAS).
//
//   Keras                                          warpfuse::nn
//   model = Sequential()                           nn::Sequential model;
//   model.add(Dense(64, activation='relu',         model.add(nn::Dense(64, "relu", 100));
//                   input_dim=100))
//   model.add(Dense(10, activation='softmax'))     model.add(nn::Dense(10, "softmax"));
//   model.compile(optimizer=Adam(),                model.compile(nn::Adam(),
//       loss='categorical_crossentropy',                         "categorical_crossentropy",
//       metrics=['accuracy'])                                    {"accuracy"});
//   model.fit(x, y, epochs=10, batch_size=32)      nn::FitOptions fit; fit.epochs = 10;
//                                                  auto history = model.fit(x, y, fit);
//
// Parameters live in one contiguous buffer, layer after layer: kernel (inputs x units, row-major),
// then bias (units) when use_bias, then the PReLU slopes (units). Gradients and optimizer state
// mirror that layout, so an optimizer step is one pass over one buffer.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "warpfuse/nn/config.h"
#include "warpfuse/nn/data.h"

namespace warpfuse::nn {

enum class Device { automatic, cpu, cuda };

/// Device::cuda when a CUDA device is present, else Device::cpu.
Device default_device();
std::string to_string(Device device);

/// The widest layer (units or input_dim) a model takes: 2^24. A model whose training state
/// (parameters, gradients, Adam's two moments: 16 bytes per parameter) exceeds the machine's
/// physical memory is refused too, before anything is allocated.
inline constexpr std::int64_t kMaxUnits = std::int64_t{1} << 24;

/// The temporary file (PATH.tmp.PID) that a save() in progress is writing, or "" when none is:
/// async-signal-safe, for a SIGINT / SIGTERM handler to unlink before the process dies (save()
/// itself removes it on every error).
const char* pending_checkpoint_temp() noexcept;

/// A fully connected layer: y = activation(x W + b).
struct Dense {
  std::int64_t units = 0;
  Activation activation;
  std::int64_t input_dim = 0;  ///< required on the first layer only (0: taken from the previous)
  bool use_bias = true;
  Initializer kernel_initializer = Initializer::glorot_uniform;
  Initializer bias_initializer = Initializer::zeros;

  Dense(std::int64_t units_, Activation activation_ = Activation(), std::int64_t input_dim_ = 0)
      : units(units_), activation(activation_), input_dim(input_dim_) {}
};

/// Per-epoch values by name: "loss", metric names, and "val_" + each of them.
struct History {
  std::vector<int> epoch;
  std::map<std::string, std::vector<double>> history;
};

class Sequential;

/// Epoch hooks, as keras.callbacks.Callback. `logs` holds this epoch's values.
class Callback {
 public:
  virtual ~Callback() = default;
  virtual void on_train_begin(Sequential& /*model*/) {}
  /// Set `stop` to end training after this epoch.
  virtual void on_epoch_end(int /*epoch*/, const std::map<std::string, double>& /*logs*/,
                            Sequential& /*model*/, bool& /*stop*/) {}
  virtual void on_train_end(Sequential& /*model*/) {}
};

/// Stops when `monitor` has not improved by more than min_delta for `patience` epochs. The mode is
/// Keras' "auto": maximise names containing "acc", minimise the rest.
class EarlyStopping : public Callback {
 public:
  explicit EarlyStopping(std::string monitor = "val_loss", double min_delta = 0.0, int patience = 0,
                         bool restore_best_weights = false);
  void on_train_begin(Sequential& model) override;
  void on_epoch_end(int epoch, const std::map<std::string, double>& logs, Sequential& model,
                    bool& stop) override;
  void on_train_end(Sequential& model) override;
  int stopped_epoch() const { return stopped_epoch_; }  ///< 0-based; -1 when it did not stop
  int best_epoch() const { return best_epoch_; }

 private:
  std::string monitor_;
  double min_delta_;
  int patience_;
  bool restore_;
  bool maximise_;
  double best_ = 0.0;
  int best_epoch_ = -1;
  int wait_ = 0;
  int stopped_epoch_ = -1;
  std::vector<float> best_weights_;
};

/// Saves the model (save()) after every epoch, or only when `monitor` improves.
class ModelCheckpoint : public Callback {
 public:
  explicit ModelCheckpoint(std::string path, std::string monitor = "val_loss",
                           bool save_best_only = false);
  void on_train_begin(Sequential& model) override;
  void on_epoch_end(int epoch, const std::map<std::string, double>& logs, Sequential& model,
                    bool& stop) override;

 private:
  std::string path_;
  std::string monitor_;
  bool save_best_only_;
  bool maximise_;
  bool have_best_ = false;
  double best_ = 0.0;
};

struct FitOptions {
  int epochs = 1;
  std::int64_t batch_size = 32;
  /// Holds out the LAST fraction of x and y (before shuffling), as Keras.
  double validation_split = 0.0;
  /// Used instead of validation_split when set.
  std::optional<std::pair<Matrix, Matrix>> validation_data;
  bool shuffle = true;
  std::uint64_t seed = 0;  ///< shuffling order; the same seed gives bitwise the same weights
  std::vector<std::shared_ptr<Callback>> callbacks;
  /// 0 silent, 1 a progress bar per epoch, 2 one line per epoch.
  int verbose = 1;
  /// Where progress goes (std::cout when null); `terminal` decides redrawing in place with '\r'
  /// (automatic: isatty of stdout when writing to std::cout, else no).
  std::ostream* out = nullptr;
  std::optional<bool> terminal;
  /// The terminal's width for the redrawn line (0: asked of stdout's terminal, else $COLUMNS,
  /// else 80). A redrawn line stays within columns - 1 characters, so it never wraps (a wrapped
  /// line leaves a new line behind at every redraw).
  int terminal_columns = 0;
  /// Seconds between redraws of the bar on a terminal (the CUDA backend synchronises for each).
  double redraw_seconds = 0.1;
};

namespace detail {
class Backend;
}

class Sequential {
 public:
  explicit Sequential(std::string name = "sequential");
  Sequential(std::vector<Dense> layers, std::string name = "sequential");
  ~Sequential();
  Sequential(Sequential&&) noexcept;
  Sequential& operator=(Sequential&&) noexcept;

  void add(const Dense& layer);

  /// Fixes the architecture, initialises the weights from `seed` and picks the device. Later calls
  /// keep the weights and only change optimizer, loss and metrics (the optimizer state resets).
  void compile(const Optimizer& optimizer, const Loss& loss,
               const std::vector<std::string>& metrics = {}, Device device = Device::automatic,
               std::uint64_t seed = 0);

  /// Trains; throws InvalidArgument before training on shapes or labels that do not fit the
  /// model and loss, and warpfuse::Error naming the epoch and step when the loss turns NaN or inf.
  History fit(const Matrix& x, const Matrix& y, const FitOptions& options = {});

  /// "loss" and each metric over (x, y), evaluated in batches.
  std::map<std::string, double> evaluate(const Matrix& x, const Matrix& y,
                                         std::int64_t batch_size = 32);
  Matrix predict(const Matrix& x, std::int64_t batch_size = 32);

  /// The Keras-style table: layer, output shape, parameter count, totals.
  std::string summary() const;

  /// Writes the architecture, loss, parameters, (when `include_optimizer`) the optimizer and its
  /// state, and the standardizer when set, to `path` atomically (a temporary file renamed over
  /// it). Format version 2, little-endian:
  ///   "WFNN" | u32 version | u32 dtype (0 = fp32) | architecture | compile config |
  ///   u64 n, n floats (parameters) | u8 has optimizer [optimizer, u64 step, u64 m, m floats] |
  ///   u8 has preprocessing [u32 kind (0 = standardizer), u64 d, d floats (mean),
  ///   u64 d, d floats (scale)] | u64 FNV-1a checksum of everything before it
  /// Version 1 files (no preprocessing byte) still load, without a standardizer.
  void save(const std::string& path, bool include_optimizer = true);
  /// Reads a file written by save() into a new compiled model (on `device`).
  static Sequential load(const std::string& path, Device device = Device::automatic);
  /// Replaces this model's parameters (and optimizer state, when the file has it and the
  /// optimizer matches) and its standardizer (the file's, none when the file has none) with the
  /// file's. Throws IoError on a missing, truncated or corrupt file or a different architecture;
  /// the model is unchanged then.
  void load_weights(const std::string& path);

  /// The feature standardisation the model was trained with, saved and loaded with it. The model
  /// only carries it: fit, evaluate and predict take x as given, so apply it to the data first
  /// (`model.standardizer()->transform(x)`). Throws InvalidArgument when mean and scale differ
  /// in length, a scale is not finite and nonzero, a mean is not finite, or (once layers are
  /// added) the length is not input_dim(). std::nullopt clears it.
  void set_standardizer(std::optional<Standardizer> standardizer);
  const std::optional<Standardizer>& standardizer() const { return standardizer_; }

  std::vector<float> get_weights();  ///< the whole contiguous parameter buffer
  void set_weights(const std::vector<float>& weights);

  const std::vector<Dense>& layers() const { return layers_; }
  std::int64_t input_dim() const { return layers_.empty() ? 0 : layers_.front().input_dim; }
  std::int64_t output_dim() const { return layers_.empty() ? 0 : layers_.back().units; }
  std::int64_t parameter_count() const;
  bool compiled() const { return backend_ != nullptr; }
  Device device() const { return device_; }
  /// How the Dense layers' GEMMs multiply from now on (config.h: fp32, the default, or bf16
  /// operands with fp32 sums); a runtime setting like the device, not saved with the model.
  void set_matmul_precision(MatmulPrecision precision);
  MatmulPrecision matmul_precision() const { return matmul_precision_; }
  const Loss& loss() const { return loss_; }
  const Optimizer& optimizer() const { return optimizer_; }
  const std::vector<std::string>& metrics() const { return metrics_; }
  const std::string& name() const { return name_; }

 private:
  void check_data(const char* op, const Matrix& x, const Matrix& y) const;
  void check_compiled(const char* op) const;

  std::string name_;
  std::vector<Dense> layers_;
  Optimizer optimizer_;
  Loss loss_;
  std::vector<std::string> metrics_;
  Device device_ = Device::cpu;
  MatmulPrecision matmul_precision_ = MatmulPrecision::fp32;
  std::unique_ptr<detail::Backend> backend_;
  std::optional<Standardizer> standardizer_;
};

}  // namespace warpfuse::nn
