// warpfuse-train — trains a Dense network with warpfuse::nn from CSV files or Fashion-MNIST.
//
//   warpfuse-train --dataset fashion-mnist --standardize --layers 256:relu,128:relu,10:softmax
//                  --epochs 5 --batch-size 64
//   warpfuse-train --train train.csv --test test.csv --label-column species --standardize
//                  --layers 16:relu,3:softmax --loss sparse_categorical_crossentropy --json
//
// Bad arguments or data: one line on stderr and exit code 2. Other failures (CUDA, disk): exit 1.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
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
    "usage: warpfuse-train (--train FILE [--test FILE] | --dataset fashion-mnist | --load PATH)\n"
    "  --label-column NAME|INDEX|last   CSV label column (default last)\n"
    "  --standardize                    standardise features with the training statistics\n"
    "                                   (saved with --save; a --load checkpoint that holds\n"
    "                                   them standardises the data even without this flag)\n"
    "  --layers SPEC                    e.g. 256:relu,128:relu,10:softmax (units:activation)\n"
    "  --loss NAME                      default: from the output activation (softmax: sparse CE,\n"
    "                                   sigmoid: binary CE, else mean_squared_error)\n"
    "  --optimizer sgd|adam|adamw       default adam\n"
    "  --lr RATE                        default: the optimizer's Keras default\n"
    "  --epochs N                       default 10 (0 with --load: evaluate only)\n"
    "  --batch-size N                   default 32\n"
    "  --validation-split F             hold out the last fraction F of the training data\n"
    "  --seed N                         weights and shuffling (default 0)\n"
    "  --device auto|cuda|cpu           default auto: cuda when a device exists\n"
    "  --matmul-precision fp32|bf16     Dense GEMMs in fp32 (default) or with bf16 operands and\n"
    "                                   fp32 sums (AMX tiles on a CPU that has them)\n"
    "  --save PATH                      save the trained model\n"
    "  --load PATH                      start from a saved model (its layers, loss, optimizer)\n"
    "  --verbose 0|1|2                  default 1 (progress bar)\n"
    "  --json                           print a final one-line JSON summary on stdout\n";

// Bad input from the user: exit code 2.
struct UsageError {
  std::string message;
};

struct Args {
  std::string train, test, dataset, label_column = "last", layers, loss, optimizer = "adam";
  std::string save, load, device = "auto", matmul_precision = "fp32";
  bool standardize = false, json = false;
  std::optional<float> lr;
  std::optional<int> epochs;
  std::int64_t batch_size = 32;
  double validation_split = 0.0;
  std::uint64_t seed = 0;
  int verbose = 1;
};

template <class T>
T parse_number(const std::string& flag, const std::string& text) {
  std::istringstream in(text);
  T value{};
  in >> value;
  if (in.fail() || !in.eof()) throw UsageError{flag + ": '" + text + "' is not a valid number"};
  return value;
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::cout << kUsage;
      std::exit(0);
    }
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError{flag + " needs a value"};
      return argv[++i];
    };
    if (flag == "--train") {
      a.train = value();
    } else if (flag == "--test") {
      a.test = value();
    } else if (flag == "--dataset") {
      a.dataset = value();
      if (a.dataset != "fashion-mnist") {
        throw UsageError{"--dataset: '" + a.dataset + "' is not known (fashion-mnist)"};
      }
    } else if (flag == "--label-column") {
      a.label_column = value();
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
    } else if (flag == "--seed") {
      a.seed = parse_number<std::uint64_t>(flag, value());
    } else if (flag == "--device") {
      a.device = value();
      if (a.device != "auto" && a.device != "cuda" && a.device != "cpu") {
        throw UsageError{"--device: '" + a.device + "' is not auto, cuda or cpu"};
      }
    } else if (flag == "--matmul-precision") {
      a.matmul_precision = value();
      if (a.matmul_precision != "fp32" && a.matmul_precision != "bf16") {
        throw UsageError{"--matmul-precision: '" + a.matmul_precision + "' is not fp32 or bf16"};
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
      throw UsageError{"unknown argument '" + flag + "' (see --help)"};
    }
  }
  if (!a.train.empty() && !a.dataset.empty()) {
    throw UsageError{"--train and --dataset are exclusive"};
  }
  if (a.train.empty() && a.dataset.empty() && a.load.empty()) {
    throw UsageError{"nothing to train on: give --train FILE or --dataset fashion-mnist"};
  }
  if (a.load.empty() && a.layers.empty() && a.dataset.empty()) {
    throw UsageError{"--layers is required with --train (e.g. --layers 64:relu,3:softmax)"};
  }
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
      throw UsageError{"--layers: '" + item + "' is not units:activation"};
    }
    if (units <= 0) throw UsageError{"--layers: '" + item + "' needs positive units"};
    try {
      layers.emplace_back(units, nn::Activation(activation), layers.empty() ? input_dim : 0);
    } catch (const warpfuse::InvalidArgument& e) {
      throw UsageError{"--layers: " + std::string(e.what())};
    }
  }
  if (layers.empty()) throw UsageError{"--layers: no layers in '" + spec + "'"};
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
  if (args.dataset == "fashion-mnist") {
    const std::string dir = kFashionMnistDir;
    train = nn::load_idx(dir + "/train-images-idx3-ubyte.gz", dir + "/train-labels-idx1-ubyte.gz");
    test = nn::load_idx(dir + "/t10k-images-idx3-ubyte.gz", dir + "/t10k-labels-idx1-ubyte.gz");
    // Pixels to [0, 1], as every Keras tutorial does before (optionally) standardising.
    for (auto* m : {&train.x, &test.x}) {
      for (float& v : m->data) v /= 255.0f;
    }
    have_train = have_test = true;
  } else {
    nn::CsvOptions csv;
    csv.label_column = args.label_column;
    if (!args.train.empty()) {
      train = nn::load_csv(args.train, csv);
      have_train = true;
    }
    if (!args.test.empty()) {
      test = nn::load_csv(args.test, csv);
      have_test = true;
    }
  }
  if (have_train && have_test && train.x.cols != test.x.cols) {
    throw UsageError{"the test data has " + std::to_string(test.x.cols) +
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
  } else {
    std::string layer_spec = args.layers;
    if (layer_spec.empty()) layer_spec = "256:relu,128:relu,10:softmax";
    for (const nn::Dense& d : parse_layers(layer_spec, train.x.cols)) model.add(d);
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
      throw UsageError{e.what()};
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
  if (have_train) prepare(train.y);
  if (have_test) prepare(test.y);
  if (args.verbose > 0) std::cout << model.summary();

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
    const auto start = std::chrono::steady_clock::now();
    const nn::History history = model.fit(train.x, train.y, fit);
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    epochs_run = static_cast<int>(history.epoch.size());
    for (const auto& [name, values] : history.history) last[name] = values.back();
  }
  std::map<std::string, double> tested;
  if (have_test) {
    tested = model.evaluate(test.x, test.y, std::max<std::int64_t>(args.batch_size, 256));
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

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const UsageError& e) {
    std::cerr << "warpfuse-train: " << e.message << "\n";
    return 2;
  } catch (const warpfuse::Error& e) {
    // Invalid arguments and unreadable or malformed data are the user's to fix: exit 2.
    const bool users =
        e.kind() == warpfuse::ErrorKind::invalid_argument || e.kind() == warpfuse::ErrorKind::io;
    std::cerr << "warpfuse-train: " << e.what() << "\n";
    return users ? 2 : 1;
  } catch (const std::exception& e) {
    std::cerr << "warpfuse-train: " << e.what() << "\n";
    return 1;
  }
}
