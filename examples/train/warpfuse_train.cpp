// warpfuse-train — trains a Dense network with warpfuse::nn from CSV files or Fashion-MNIST.
//
//   warpfuse-train --dataset fashion-mnist --standardize --layers 256:relu,128:relu,10:softmax
//                  --epochs 5 --batch-size 64
//   warpfuse-train --train train.csv --test test.csv --label-column species --standardize
//                  --layers 16:relu,3:softmax --loss sparse_categorical_crossentropy --json
//
// Exit codes: 0 done; 2 bad arguments or data (one line on stderr naming the flag, or the file,
// line and column); 1 an internal error (a bug: the message says so); 128 + the signal when
// interrupted (SIGINT 130, SIGTERM 143), after removing a half-written checkpoint.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "warpfuse/device.h"
#include "warpfuse/error.h"
#include "warpfuse/nn/nn.h"
#include "warpfuse/ref/nn_cpu.h"

namespace nn = warpfuse::nn;

namespace {

constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

constexpr const char* kUsage =
    "usage: warpfuse-train (--train FILE | --train-idx FILE --train-labels-idx FILE |\n"
    "                       --dataset fashion-mnist | --load PATH) [options]\n"
    "data\n"
    "  --test FILE                      CSV test data (or --test-idx FILE --test-labels-idx FILE)\n"
    "  --label-column NAME|INDEX|last   CSV label column (default last; INDEX from 0)\n"
    "  --header auto|yes|no             CSV first line is a header (auto: when no cell of it is\n"
    "                                   empty or a number)\n"
    "  --delimiter CHAR|tab             CSV field delimiter (default ,); fields may be quoted\n"
    "                                   (RFC 4180)\n"
    "  --standardize                    standardise features with the training statistics\n"
    "                                   (saved with --save; a --load checkpoint that holds\n"
    "                                   them standardises the data even without this flag)\n"
    "model (not with --load: the checkpoint fixes them)\n"
    "  --layers SPEC                    e.g. 256:relu,128:relu,10:softmax (units:activation;\n"
    "                                   at most 16777216 units per layer)\n"
    "  --loss NAME                      default: from the output activation (softmax: sparse CE,\n"
    "                                   sigmoid: binary CE, else mean_squared_error)\n"
    "  --optimizer sgd|adam|adamw       default adam\n"
    "  --lr RATE                        default: the optimizer's Keras default\n"
    "training\n"
    "  --epochs N                       default 10 (0 with --load: evaluate only)\n"
    "  --batch-size N                   default 32\n"
    "  --validation-split F             hold out the last fraction F of the training data\n"
    "  --early-stopping MONITOR         stop when MONITOR (loss, val_loss, accuracy, ...) stops\n"
    "  --patience N                       improving for N epochs (default 0)\n"
    "  --restore-best                     and go back to the best epoch's weights\n"
    "  --checkpoint PATH                save the model after every epoch\n"
    "  --save-best-only                   only when val_loss improved\n"
    "  --seed N                         weights and shuffling (default 0)\n"
    "  --device auto|cuda|cpu           default auto: cuda when a device exists\n"
    "  --matmul-precision fp32|bf16     Dense GEMMs in fp32 (default) or with bf16 operands and\n"
    "                                   fp32 sums (AMX tiles on a CPU that has them)\n"
    "output\n"
    "  --save PATH                      save the trained model (its directory is checked first)\n"
    "  --verbose 0|1|2                  default 1 (progress bar)\n"
    "  --json                           print a final one-line JSON summary on stdout\n"
    "exit codes: 0 done, 2 bad arguments or data, 1 internal error, 130/143 interrupted\n";

// Bad input from the user: exit code 2.
struct UsageError {
  std::string message;
};

struct Args {
  std::string train, test, dataset, label_column = "last", layers, loss, optimizer = "adam";
  std::string train_idx, train_labels_idx, test_idx, test_labels_idx;
  std::string header = "auto";
  char delimiter = ',';
  std::string save, load, device = "auto", matmul_precision = "fp32";
  std::string early_stopping, checkpoint;
  int patience = 0;
  bool restore_best = false, save_best_only = false;
  bool standardize = false, json = false;
  std::optional<float> lr;
  std::optional<int> epochs;
  std::int64_t batch_size = 32;
  double validation_split = 0.0;
  std::uint64_t seed = 0;
  int verbose = 1;
};

/// A user's text as a message shows it: quoted, at most 60 characters.
std::string shown(const std::string& text) {
  return "'" + (text.size() > 60 ? text.substr(0, 57) + "..." : text) + "'";
}

template <class T>
T parse_number(const std::string& flag, const std::string& text) {
  std::istringstream in(text);
  T value{};
  in >> value;
  if (in.fail() || !in.eof())
    throw UsageError{flag + ": " + shown(text) + " is not a valid number"};
  return value;
}

/// Throws UsageError when `path` cannot be written: its directory must exist and be writable and
/// the path must not be a directory. Checked before training, so a typo does not throw a run away.
void check_output_path(const std::string& flag, const std::string& path) {
  if (path.empty()) throw UsageError{flag + ": the path is empty"};
  struct stat info {};
  if (stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode)) {
    throw UsageError{flag + ": " + shown(path) + " is a directory"};
  }
  const auto slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : path.substr(0, slash);
  if (stat(dir.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    throw UsageError{flag + ": the directory " + shown(dir) + " does not exist"};
  }
  if (access(dir.c_str(), W_OK) != 0) {
    throw UsageError{flag + ": the directory " + shown(dir) + " is not writable"};
  }
}

Args parse_args(int argc, char** argv) {
  Args a;
  std::set<std::string> seen;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::cout << kUsage;
      std::exit(0);
    }
    if (flag.compare(0, 2, "--") == 0 && !seen.insert(flag).second) {
      throw UsageError{flag + " is given twice"};
    }
    // A value never starts with "--": "--save --json" is a missing value, not a file "--json".
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError{flag + " needs a value"};
      const std::string v = argv[i + 1];
      if (v.size() > 2 && v.compare(0, 2, "--") == 0) {
        throw UsageError{flag + " needs a value (got the flag " + shown(v) + ")"};
      }
      ++i;
      return v;
    };
    if (flag == "--train") {
      a.train = value();
    } else if (flag == "--test") {
      a.test = value();
    } else if (flag == "--train-idx") {
      a.train_idx = value();
    } else if (flag == "--train-labels-idx") {
      a.train_labels_idx = value();
    } else if (flag == "--test-idx") {
      a.test_idx = value();
    } else if (flag == "--test-labels-idx") {
      a.test_labels_idx = value();
    } else if (flag == "--dataset") {
      a.dataset = value();
      if (a.dataset != "fashion-mnist") {
        throw UsageError{"--dataset: " + shown(a.dataset) + " is not known (fashion-mnist)"};
      }
    } else if (flag == "--label-column") {
      a.label_column = value();
    } else if (flag == "--header") {
      a.header = value();
      if (a.header != "auto" && a.header != "yes" && a.header != "no") {
        throw UsageError{"--header: " + shown(a.header) + " is not auto, yes or no"};
      }
    } else if (flag == "--delimiter") {
      const std::string d = value();
      if (d == "tab" || d == "\\t") {
        a.delimiter = '\t';
      } else if (d.size() == 1 && d != "\"" && d != "\n" && d != "\r") {
        a.delimiter = d[0];
      } else {
        throw UsageError{"--delimiter: " + shown(d) +
                         " is not one character (or tab); a quote or line break cannot be one"};
      }
    } else if (flag == "--standardize") {
      a.standardize = true;
    } else if (flag == "--layers") {
      a.layers = value();
    } else if (flag == "--loss") {
      a.loss = value();
    } else if (flag == "--optimizer") {
      a.optimizer = value();
    } else if (flag == "--lr") {
      a.lr = parse_number<float>(flag, value());
      if (!(*a.lr > 0.0f) || !std::isfinite(*a.lr)) throw UsageError{"--lr must be positive"};
    } else if (flag == "--epochs") {
      a.epochs = parse_number<int>(flag, value());
      if (*a.epochs < 0) throw UsageError{"--epochs must not be negative"};
    } else if (flag == "--batch-size") {
      a.batch_size = parse_number<std::int64_t>(flag, value());
      if (a.batch_size <= 0) throw UsageError{"--batch-size must be positive"};
    } else if (flag == "--validation-split") {
      a.validation_split = parse_number<double>(flag, value());
      if (!(a.validation_split >= 0.0 && a.validation_split < 1.0)) {
        throw UsageError{"--validation-split must be in [0, 1)"};
      }
    } else if (flag == "--early-stopping") {
      a.early_stopping = value();
      static const std::set<std::string> monitors = {"loss",         "val_loss", "accuracy",
                                                     "val_accuracy", "mae",      "val_mae"};
      if (monitors.count(a.early_stopping) == 0) {
        throw UsageError{"--early-stopping: " + shown(a.early_stopping) +
                         " is not loss, val_loss, accuracy, val_accuracy, mae or val_mae"};
      }
    } else if (flag == "--patience") {
      a.patience = parse_number<int>(flag, value());
      if (a.patience < 0) throw UsageError{"--patience must not be negative"};
    } else if (flag == "--restore-best") {
      a.restore_best = true;
    } else if (flag == "--checkpoint") {
      a.checkpoint = value();
    } else if (flag == "--save-best-only") {
      a.save_best_only = true;
    } else if (flag == "--seed") {
      a.seed = parse_number<std::uint64_t>(flag, value());
    } else if (flag == "--device") {
      a.device = value();
      if (a.device != "auto" && a.device != "cuda" && a.device != "cpu") {
        throw UsageError{"--device: " + shown(a.device) + " is not auto, cuda or cpu"};
      }
    } else if (flag == "--matmul-precision") {
      a.matmul_precision = value();
      if (a.matmul_precision != "fp32" && a.matmul_precision != "bf16") {
        throw UsageError{"--matmul-precision: " + shown(a.matmul_precision) +
                         " is not fp32 or bf16"};
      }
    } else if (flag == "--save") {
      a.save = value();
    } else if (flag == "--load") {
      a.load = value();
    } else if (flag == "--verbose") {
      a.verbose = parse_number<int>(flag, value());
      if (a.verbose < 0 || a.verbose > 2) throw UsageError{"--verbose must be 0, 1 or 2"};
    } else if (flag == "--json") {
      a.json = true;
    } else {
      throw UsageError{"unknown argument " + shown(flag) + " (see --help)"};
    }
  }
  // Sources: one of them for training (or a checkpoint), IDX files in pairs.
  const bool train_idx = !a.train_idx.empty() || !a.train_labels_idx.empty();
  const bool test_idx = !a.test_idx.empty() || !a.test_labels_idx.empty();
  if (train_idx && (a.train_idx.empty() || a.train_labels_idx.empty())) {
    throw UsageError{"--train-idx and --train-labels-idx go together"};
  }
  if (test_idx && (a.test_idx.empty() || a.test_labels_idx.empty())) {
    throw UsageError{"--test-idx and --test-labels-idx go together"};
  }
  if ((!a.train.empty()) + (!a.dataset.empty()) + train_idx > 1) {
    throw UsageError{"--train, --train-idx and --dataset are exclusive"};
  }
  if (test_idx && !a.test.empty()) throw UsageError{"--test and --test-idx are exclusive"};
  if (!a.dataset.empty() && (test_idx || !a.test.empty())) {
    throw UsageError{"--dataset fashion-mnist brings its own test data (no --test)"};
  }
  if (a.train.empty() && a.dataset.empty() && !train_idx && a.load.empty()) {
    throw UsageError{
        "nothing to train on: give --train FILE, --train-idx FILE --train-labels-idx FILE or "
        "--dataset fashion-mnist"};
  }
  // A checkpoint fixes the architecture, loss and optimizer: flags that would change them are
  // errors, not silently ignored.
  if (!a.load.empty()) {
    for (const auto& [flag, given] : {std::pair<const char*, bool>{"--layers", !a.layers.empty()},
                                      {"--loss", !a.loss.empty()},
                                      {"--optimizer", seen.count("--optimizer") > 0},
                                      {"--lr", a.lr.has_value()}}) {
      if (given) {
        throw UsageError{std::string(flag) +
                         " cannot be combined with --load (the checkpoint fixes the "
                         "architecture, loss and optimizer)"};
      }
    }
  }
  if (a.load.empty() && a.layers.empty() && a.dataset.empty()) {
    throw UsageError{"--layers is required with --train (e.g. --layers 64:relu,3:softmax)"};
  }
  if (seen.count("--patience") != 0 && a.early_stopping.empty()) {
    throw UsageError{"--patience needs --early-stopping MONITOR"};
  }
  if (a.restore_best && a.early_stopping.empty()) {
    throw UsageError{"--restore-best needs --early-stopping MONITOR"};
  }
  if (a.save_best_only && a.checkpoint.empty()) {
    throw UsageError{"--save-best-only needs --checkpoint PATH"};
  }
  const bool validating = a.validation_split > 0.0;
  if (a.early_stopping.compare(0, 4, "val_") == 0 && !validating) {
    throw UsageError{"--early-stopping " + a.early_stopping +
                     " needs validation data (--validation-split F)"};
  }
  if (a.save_best_only && !validating) {
    throw UsageError{"--save-best-only compares val_loss: it needs --validation-split F"};
  }
  // Output paths before any work.
  if (!a.save.empty()) check_output_path("--save", a.save);
  if (!a.checkpoint.empty()) check_output_path("--checkpoint", a.checkpoint);
  return a;
}

std::vector<nn::Dense> parse_layers(const std::string& spec, std::int64_t input_dim) {
  std::vector<nn::Dense> layers;
  std::stringstream list(spec);
  std::string item;
  while (std::getline(list, item, ',')) {
    const auto colon = item.find(':');
    const std::string units_text = item.substr(0, colon);
    const std::string activation = colon == std::string::npos ? "linear" : item.substr(colon + 1);
    std::int64_t units = 0;
    try {
      units = parse_number<std::int64_t>("--layers", units_text);
    } catch (const UsageError&) {
      throw UsageError{"--layers: " + shown(item) + " is not units:activation"};
    }
    if (units <= 0) throw UsageError{"--layers: " + shown(item) + " needs positive units"};
    if (units > nn::kMaxUnits) {
      throw UsageError{"--layers: " + shown(item) + " has more than 16777216 (2^24) units"};
    }
    try {
      layers.emplace_back(units, nn::Activation(activation), layers.empty() ? input_dim : 0);
    } catch (const warpfuse::InvalidArgument& e) {
      throw UsageError{"--layers: " + std::string(e.what())};
    }
  }
  if (layers.empty()) throw UsageError{"--layers: no layers in " + shown(spec)};
  return layers;
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", v);
  return text;
}

int run(int argc, char** argv) {
  const Args args = parse_args(argc, argv);
  // OpenBLAS threads: warpfuse::ref::sgemm uses them for large products only (one thread for a
  // small mini-batch GEMM), up to OPENBLAS_NUM_THREADS or one per core.

  // --- data ---
  nn::Dataset train, test;
  bool have_train = false, have_test = false;
  std::string train_name, test_name;  // the files errors about the data name
  const auto scaled_idx = [](const std::string& images, const std::string& labels) {
    nn::Dataset d = nn::load_idx(images, labels);
    for (float& v : d.x.data) v /= 255.0f;  // pixels to [0, 1], as every Keras tutorial does
    return d;
  };
  if (args.dataset == "fashion-mnist") {
    const std::string dir = kFashionMnistDir;
    train = scaled_idx(dir + "/train-images-idx3-ubyte.gz", dir + "/train-labels-idx1-ubyte.gz");
    test = scaled_idx(dir + "/t10k-images-idx3-ubyte.gz", dir + "/t10k-labels-idx1-ubyte.gz");
    train_name = dir + "/train-labels-idx1-ubyte.gz";
    test_name = dir + "/t10k-labels-idx1-ubyte.gz";
    have_train = have_test = true;
  }
  if (!args.train_idx.empty()) {
    train = scaled_idx(args.train_idx, args.train_labels_idx);
    train_name = args.train_labels_idx;
    have_train = true;
  }
  if (!args.test_idx.empty()) {
    test = scaled_idx(args.test_idx, args.test_labels_idx);
    test_name = args.test_labels_idx;
    have_test = true;
  }
  nn::CsvOptions csv;
  csv.label_column = args.label_column;
  csv.delimiter = args.delimiter;
  csv.header = args.header == "yes"  ? nn::CsvHeader::present
               : args.header == "no" ? nn::CsvHeader::absent
                                     : nn::CsvHeader::automatic;
  if (!args.train.empty()) {
    train = nn::load_csv(args.train, csv);
    train_name = args.train;
    have_train = true;
  }
  if (!args.test.empty()) {
    test = nn::load_csv(args.test, csv);
    test_name = args.test;
    have_test = true;
  }
  if (have_train && have_test && train.x.cols != test.x.cols) {
    throw UsageError{test_name + ": the test data has " + std::to_string(test.x.cols) +
                     " features, the training data " + std::to_string(train.x.cols)};
  }
  // --- model ---
  const nn::Device device = args.device == "cpu"    ? nn::Device::cpu
                            : args.device == "cuda" ? nn::Device::cuda
                                                    : nn::default_device();
  if (device == nn::Device::cuda && !warpfuse::cuda_device_available()) {
    throw UsageError{"--device cuda: no CUDA device is available"};
  }
  nn::Sequential model;
  const int epochs = args.epochs.value_or(args.load.empty() ? 10 : 0);
  if (!args.load.empty()) {
    model = nn::Sequential::load(args.load, device);
    if (have_train && train.x.cols != model.input_dim()) {
      throw UsageError{train_name + ": " + std::to_string(train.x.cols) + " features, but " +
                       args.load + " takes " + std::to_string(model.input_dim())};
    }
  } else {
    std::string layer_spec = args.layers;
    if (layer_spec.empty()) layer_spec = "256:relu,128:relu,10:softmax";
    try {
      for (const nn::Dense& d : parse_layers(layer_spec, train.x.cols)) model.add(d);
    } catch (const warpfuse::InvalidArgument& e) {
      throw UsageError{"--layers: " + std::string(e.what())};
    }
    nn::Loss loss;
    const nn::ActivationKind out = model.layers().back().activation.kind;
    try {
      loss = !args.loss.empty() ? nn::Loss(args.loss)
             : out == nn::ActivationKind::softmax
                 ? nn::Loss(nn::LossKind::sparse_categorical_crossentropy)
             : out == nn::ActivationKind::sigmoid ? nn::Loss(nn::LossKind::binary_crossentropy)
                                                  : nn::Loss(nn::LossKind::mean_squared_error);
      nn::Optimizer optimizer = nn::optimizer_from_string(args.optimizer, args.lr.value_or(-1.0f));
      const std::vector<std::string> metrics = {loss.is_crossentropy() ? "accuracy" : "mae"};
      model.compile(optimizer, loss, metrics, device, args.seed);
    } catch (const warpfuse::InvalidArgument& e) {
      // The size limits (widths, the training state against memory) name --layers.
      throw UsageError{(e.argument() == "layers" ? "--layers: " : "") + std::string(e.what())};
    }
  }
  model.set_matmul_precision(nn::matmul_precision_from_string(args.matmul_precision));
  // Standardisation: the statistics saved with a loaded model win (the data must be transformed
  // exactly as during its training); otherwise --standardize fits them on the training data,
  // never on the test data, and stores them in the model for --save.
  std::optional<nn::Standardizer> standardizer = model.standardizer();
  if (!standardizer && args.standardize) {
    if (!have_train) {
      throw UsageError{"--standardize: " + args.load +
                       " holds no standardizer and there is no training data to fit one on "
                       "(give --train, or a model saved with --standardize)"};
    }
    standardizer = nn::Standardizer::fit(train.x);
    try {
      model.set_standardizer(standardizer);
    } catch (const warpfuse::InvalidArgument& e) {
      throw UsageError{e.what()};
    }
  } else if (standardizer && args.verbose > 0) {
    std::cout << "standardizing with the statistics saved in " << args.load << "\n";
  }
  if (standardizer) {
    try {
      if (have_train) standardizer->transform(train.x);
      if (have_test) standardizer->transform(test.x);
    } catch (const warpfuse::InvalidArgument& e) {
      throw UsageError{"the data does not fit the model's standardizer: " + std::string(e.what())};
    }
  }
  const bool classifying = model.loss().is_crossentropy();
  // Categorical crossentropy wants one-hot rows; a CSV holds class indices.
  auto prepare = [&](nn::Matrix& y) {
    if (model.loss().kind == nn::LossKind::categorical_crossentropy && y.cols == 1 &&
        model.output_dim() > 1) {
      y = nn::one_hot(y, static_cast<int>(model.output_dim()));
    }
  };
  // Class labels are checked here, where the file is known: 1-based data rows, and the fix.
  const auto check_labels = [&](const nn::Matrix& y, const std::string& file) {
    const nn::LossKind kind = model.loss().kind;
    const bool indices = kind == nn::LossKind::sparse_categorical_crossentropy ||
                         (kind == nn::LossKind::categorical_crossentropy && y.cols == 1);
    if (!indices) return;
    const std::int64_t units = model.output_dim();
    for (std::int64_t r = 0; r < y.rows; ++r) {
      const float v = y(r, 0);
      if (v >= 0.0f && v < static_cast<float>(units) && v == std::floor(v)) continue;
      std::string fix;
      if (v == std::floor(v) && v >= static_cast<float>(units) && v < 16777216.0f) {
        fix = "; for " + std::to_string(static_cast<std::int64_t>(v) + 1) +
              " classes give the last layer of --layers that many units";
      }
      const std::string value = warpfuse::detail::format_number(v);
      throw UsageError{file + ": data row " + std::to_string(r + 1) + ": label " + value +
                       " is not a class index 0.." + std::to_string(units - 1) +
                       " (the output layer has " + std::to_string(units) + " units" + fix + ")"};
    }
  };
  if (have_train) check_labels(train.y, train_name);
  if (have_test) check_labels(test.y, test_name);
  if (have_train) prepare(train.y);
  if (have_test) prepare(test.y);
  if (args.verbose > 0) {
    std::cout << model.summary();
    if (model.device() == nn::Device::cpu && args.device == "auto") {
      std::cout << "no CUDA device found: training on the CPU\n";
    }
  }

  // --- train ---
  std::map<std::string, double> last;
  double seconds = 0.0;
  int epochs_run = 0;
  // Wall time of each epoch (training and its validation), for --json: benchmarks compare the
  // steady epochs, not the first one's warm-up.
  struct EpochClock : nn::Callback {
    std::chrono::steady_clock::time_point mark;
    std::vector<double> seconds;
    void on_train_begin(nn::Sequential&) override { mark = std::chrono::steady_clock::now(); }
    void on_epoch_end(int, const std::map<std::string, double>&, nn::Sequential&, bool&) override {
      const auto now = std::chrono::steady_clock::now();
      seconds.push_back(std::chrono::duration<double>(now - mark).count());
      mark = now;
    }
  };
  const auto epoch_clock = std::make_shared<EpochClock>();
  if (epochs > 0) {
    if (!have_train)
      throw UsageError{"--epochs " + std::to_string(epochs) + " needs training data"};
    nn::FitOptions fit;
    fit.epochs = epochs;
    fit.batch_size = args.batch_size;
    fit.validation_split = args.validation_split;
    fit.seed = args.seed;
    fit.verbose = args.verbose;
    fit.callbacks.push_back(epoch_clock);
    if (!args.early_stopping.empty()) {
      fit.callbacks.push_back(std::make_shared<nn::EarlyStopping>(
          args.early_stopping, 0.0, args.patience, args.restore_best));
    }
    if (!args.checkpoint.empty()) {
      fit.callbacks.push_back(
          std::make_shared<nn::ModelCheckpoint>(args.checkpoint, "val_loss", args.save_best_only));
    }
    const auto start = std::chrono::steady_clock::now();
    nn::History history;
    try {
      history = model.fit(train.x, train.y, fit);
    } catch (const warpfuse::InvalidArgument& e) {
      throw UsageError{"training on " + train_name + ": " + e.what()};
    }
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    epochs_run = static_cast<int>(history.epoch.size());
    for (const auto& [name, values] : history.history) last[name] = values.back();
  }
  std::map<std::string, double> tested;
  if (have_test) {
    try {
      tested = model.evaluate(test.x, test.y, std::max<std::int64_t>(args.batch_size, 256));
    } catch (const warpfuse::InvalidArgument& e) {
      throw UsageError{"evaluating " + test_name + ": " + e.what()};
    }
    if (args.verbose > 0) {
      std::printf("test loss: %.4f", tested["loss"]);
      if (classifying) std::printf(" - test accuracy: %.4f", tested["accuracy"]);
      if (tested.count("mae")) std::printf(" - test mae: %.4f", tested["mae"]);
      std::printf("\n");
    }
  }
  if (!args.save.empty()) model.save(args.save);

  if (args.json) {
    auto value = [](const std::map<std::string, double>& m, const std::string& key) {
      const auto it = m.find(key);
      return it == m.end() ? std::string("null") : json_number(it->second);
    };
    std::string line = "{\"loss\": " + value(last, "loss");
    if (classifying) line += ", \"accuracy\": " + value(last, "accuracy");
    line += ", \"val_loss\": " + value(last, "val_loss");
    if (classifying) line += ", \"val_accuracy\": " + value(last, "val_accuracy");
    line += ", \"test_loss\": " + value(tested, "loss");
    if (classifying) {
      line += ", \"test_accuracy\": " + value(tested, "accuracy");
    } else {
      line += ", \"test_mae\": " + value(tested, "mae");
    }
    std::string epoch_seconds;
    for (double t : epoch_clock->seconds) {
      epoch_seconds += (epoch_seconds.empty() ? "" : ", ") + json_number(t);
    }
    line += ", \"epochs\": " + std::to_string(epochs_run) +
            ", \"seconds\": " + json_number(seconds) + ", \"epoch_seconds\": [" + epoch_seconds +
            "], \"device\": \"" + nn::to_string(model.device()) + "\", \"matmul_precision\": \"" +
            nn::to_string(model.matmul_precision()) + "\"}";
    std::cout << line << std::endl;
  }
  return 0;
}

}  // namespace

/// SIGINT / SIGTERM: remove a half-written checkpoint, then die of the signal (exit 128 + n).
extern "C" void on_signal(int signal_number) {
  const char* temp = nn::pending_checkpoint_temp();
  if (temp[0] != '\0') unlink(temp);
  std::signal(signal_number, SIG_DFL);
  std::raise(signal_number);
}

/// One line on stderr, at most 500 characters.
void report(const std::string& message) {
  constexpr std::size_t kMax = 500;
  std::string line = message.size() > kMax ? message.substr(0, kMax - 3) + "..." : message;
  for (char& c : line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  std::cerr << "warpfuse-train: " << line << "\n";
}

int main(int argc, char** argv) {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  const std::string bug = "internal error (a bug: please report it with the command line): ";
  try {
    return run(argc, argv);
  } catch (const UsageError& e) {
    report(e.message);
    return 2;
  } catch (const warpfuse::Error& e) {
    // Invalid arguments and unreadable or malformed data are the user's to fix: exit 2.
    const bool users =
        e.kind() == warpfuse::ErrorKind::invalid_argument || e.kind() == warpfuse::ErrorKind::io;
    report(users ? e.what() : bug + e.what());
    return users ? 2 : 1;
  } catch (const std::bad_alloc&) {
    report(bug + "out of memory after the size checks passed");
    return 1;
  } catch (const std::exception& e) {
    report(bug + e.what());
    return 1;
  }
}
