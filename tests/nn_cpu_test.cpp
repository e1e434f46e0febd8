// warpfuse::nn on Device::cpu — training reaches the accuracy it should (XOR, a 3-class spiral, a
// teacher-network regression), checkpoints round-trip bitwise and reject damaged files, the data
// loaders reject bad files with line and column, progress output has Keras' shape, the same seed
// gives bitwise the same weights, and bad inputs are refused before training.
//
// No device here: these run in the emulated and the GPU binary alike, without a GPU.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "warpfuse/error.h"
#include "nn_files.h"
#include "warpfuse/nn/nn.h"

namespace warpfuse::nn {
namespace {

using test_files::read_file;
using test_files::reseal;
using test_files::write_file;

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "warpfuse_nn_" + std::to_string(getpid()) + "_" + name;
}

template <class Fn>
std::string io_error_message(Fn&& fn) {
  try {
    fn();
  } catch (const IoError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no IoError";
  return "";
}

FitOptions quiet(int epochs, std::int64_t batch = 32) {
  FitOptions fit;
  fit.epochs = epochs;
  fit.batch_size = batch;
  fit.verbose = 0;
  return fit;
}

// Three interleaved spiral arms, the classic non-linearly separable toy set.
Dataset spiral(int per_class, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.0f, 0.1f);
  Dataset d;
  d.x = Matrix(3 * per_class, 2);
  d.y = Matrix(3 * per_class, 1);
  for (int c = 0; c < 3; ++c) {
    for (int i = 0; i < per_class; ++i) {
      const float r = static_cast<float>(i) / per_class;
      const float t = c * 4.0f + r * 4.0f + noise(rng) * 0.5f;
      const int row = c * per_class + i;
      d.x(row, 0) = r * std::sin(t);
      d.x(row, 1) = r * std::cos(t);
      d.y(row, 0) = static_cast<float>(c);
    }
  }
  return d;
}

Sequential small_classifier(Device device = Device::cpu, std::uint64_t seed = 1) {
  Sequential model;
  model.add(Dense(16, "relu", 2));
  model.add(Dense(3, "softmax"));
  model.compile(Adam(0.01f), "sparse_categorical_crossentropy", {"accuracy"}, device, seed);
  return model;
}

TEST(NnCpuTrain, LearnsXor) {
  const Matrix x(4, 2, {0, 0, 0, 1, 1, 0, 1, 1});
  const Matrix y(4, 1, {0, 1, 1, 0});
  Sequential model;
  model.add(Dense(8, "tanh", 2));
  model.add(Dense(1, "sigmoid"));
  model.compile(Adam(0.05f), "binary_crossentropy", {"accuracy"}, Device::cpu, 3);
  model.fit(x, y, quiet(300, 4));
  EXPECT_GE(model.evaluate(x, y).at("accuracy"), 0.95);
  const Matrix p = model.predict(x);
  EXPECT_LT(p(0, 0), 0.5f);
  EXPECT_GT(p(1, 0), 0.5f);
}

TEST(NnCpuTrain, ClassifiesASpiral) {
  const Dataset d = spiral(100, 7);
  Sequential model;
  model.add(Dense(64, "relu", 2));
  model.add(Dense(3, "softmax"));
  model.compile(Adam(0.01f), "sparse_categorical_crossentropy", {"accuracy"}, Device::cpu, 5);
  FitOptions fit = quiet(150);
  fit.seed = 11;
  const History h = model.fit(d.x, d.y, fit);
  ASSERT_EQ(h.history.at("accuracy").size(), 150u);
  EXPECT_GE(model.evaluate(d.x, d.y).at("accuracy"), 0.95);
}

TEST(NnCpuTrain, OneHotCategoricalAndSgdMomentumAlsoLearn) {
  const Dataset d = spiral(60, 8);
  Sequential model;
  model.add(Dense(32, "tanh", 2));
  model.add(Dense(32, Activation::leaky_relu(0.1f)));
  model.add(Dense(3, "softmax"));
  model.compile(SGD(0.1f, 0.9f, true), "categorical_crossentropy", {"accuracy"}, Device::cpu, 2);
  const Matrix y = one_hot(d.y, 3);
  model.fit(d.x, y, quiet(150, 16));
  EXPECT_GE(model.evaluate(d.x, y).at("accuracy"), 0.9);
}

// A random teacher network labels the data; the student must cut its MSE tenfold.
TEST(NnCpuTrain, RegressesATeacherNetwork) {
  const int n = 1024, dim = 100;
  Sequential teacher;
  teacher.add(Dense(16, "tanh", dim));
  teacher.add(Dense(1));
  teacher.compile(Adam(), "mse", {}, Device::cpu, 99);
  std::mt19937 rng(4);
  std::normal_distribution<float> normal;
  Matrix x(n, dim);
  for (float& v : x.data) v = normal(rng);
  const Matrix y = teacher.predict(x);

  Sequential student;
  student.add(Dense(64, "relu", dim));
  student.add(Dense(1));
  student.compile(Adam(), "mean_squared_error", {"mae"}, Device::cpu, 1);
  const double before = student.evaluate(x, y).at("loss");
  student.fit(x, y, quiet(30));
  const double after = student.evaluate(x, y).at("loss");
  EXPECT_LT(after, before / 10.0) << "before " << before << ", after " << after;
}

TEST(NnCpuTrain, EveryActivationTrainsWithoutNan) {
  const Dataset d = spiral(30, 9);
  for (const char* act : {"relu", "leaky_relu", "prelu", "elu", "selu", "gelu", "silu", "sigmoid",
                          "tanh", "linear"}) {
    Sequential model;
    model.add(Dense(8, act, 2));
    model.add(Dense(3, "softmax"));
    model.compile(Adam(0.01f), "sparse_categorical_crossentropy", {"accuracy"}, Device::cpu);
    const History h = model.fit(d.x, d.y, quiet(5));
    EXPECT_LT(h.history.at("loss").back(), h.history.at("loss").front()) << act;
  }
}

TEST(NnCpuTrain, SameSeedGivesBitwiseEqualWeights) {
  const Dataset d = spiral(40, 10);
  std::vector<float> weights[2];
  for (auto& w : weights) {
    Sequential model = small_classifier(Device::cpu, 21);
    FitOptions fit = quiet(3, 8);
    fit.seed = 5;
    model.fit(d.x, d.y, fit);
    w = model.get_weights();
  }
  ASSERT_EQ(weights[0].size(), weights[1].size());
  EXPECT_EQ(0, std::memcmp(weights[0].data(), weights[1].data(), weights[0].size() * 4));
  Sequential other = small_classifier(Device::cpu, 22);
  EXPECT_NE(other.get_weights(), small_classifier(Device::cpu, 21).get_weights());
}

TEST(NnCpuTrain, ValidationSplitAndHistory) {
  const Dataset d = spiral(40, 11);
  Sequential model = small_classifier();
  FitOptions fit = quiet(2);
  fit.validation_split = 0.25;
  const History h = model.fit(d.x, d.y, fit);
  EXPECT_EQ(h.epoch, (std::vector<int>{0, 1}));
  for (const char* key : {"loss", "accuracy", "val_loss", "val_accuracy"}) {
    ASSERT_EQ(h.history.count(key), 1u) << key;
    EXPECT_EQ(h.history.at(key).size(), 2u) << key;
  }
}

TEST(NnCpuTrain, EarlyStoppingStopsAndRestoresTheBest) {
  const Dataset d = spiral(40, 12);
  Sequential model = small_classifier();
  FitOptions fit = quiet(50);
  // Nothing can improve by 10 units of loss: stops after `patience` epochs.
  auto stopper = std::make_shared<EarlyStopping>("loss", 10.0, 2, true);
  fit.callbacks = {stopper};
  const History h = model.fit(d.x, d.y, fit);
  EXPECT_EQ(h.epoch.size(), 3u);
  EXPECT_EQ(stopper->best_epoch(), 0);
  EXPECT_EQ(stopper->stopped_epoch(), 2);
}

TEST(NnCpuTrain, ModelCheckpointSavesTheBest) {
  const Dataset d = spiral(40, 13);
  Sequential model = small_classifier();
  const std::string path = temp_path("best.wfnn");
  FitOptions fit = quiet(3);
  fit.validation_split = 0.2;
  fit.callbacks = {std::make_shared<ModelCheckpoint>(path, "val_loss", true)};
  model.fit(d.x, d.y, fit);
  Sequential restored = Sequential::load(path, Device::cpu);
  EXPECT_EQ(restored.parameter_count(), model.parameter_count());
  std::remove(path.c_str());
}

TEST(NnCpuTrain, RejectsBadShapesAndLabelsBeforeTraining) {
  Sequential model = small_classifier();
  const std::vector<float> before = model.get_weights();
  const Matrix x(4, 2, 0.5f);
  EXPECT_THROW(model.fit(Matrix(4, 3), Matrix(4, 1), quiet(1)), InvalidArgument);  // x cols
  EXPECT_THROW(model.fit(x, Matrix(3, 1), quiet(1)), InvalidArgument);             // y rows
  EXPECT_THROW(model.fit(x, Matrix(4, 3), quiet(1)), InvalidArgument);             // y cols
  EXPECT_THROW(model.fit(x, Matrix(4, 1, 3.0f), quiet(1)), InvalidArgument);       // label 3
  EXPECT_THROW(model.fit(x, Matrix(4, 1, 0.5f), quiet(1)), InvalidArgument);       // label 0.5
  EXPECT_THROW(model.fit(Matrix(), Matrix(), quiet(1)), InvalidArgument);          // empty
  EXPECT_THROW(model.fit(x, Matrix(4, 1), quiet(1, 0)), InvalidArgument);          // batch 0
  EXPECT_EQ(model.get_weights(), before);
  Sequential unbuilt;
  EXPECT_THROW(unbuilt.add(Dense(3, "relu")), InvalidArgument);  // no input_dim
  EXPECT_THROW(Activation("swoosh"), InvalidArgument);
  EXPECT_THROW(Loss("hinge"), InvalidArgument);
  try {
    model.fit(Matrix(4, 3), Matrix(4, 1), quiet(1));
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("input_dim is 2"), std::string::npos) << e.what();
  }
}

TEST(NnCpuTrain, NonFiniteLossNamesEpochAndStep) {
  Sequential model = small_classifier();
  std::vector<float> w = model.get_weights();
  w[0] = INFINITY;
  model.set_weights(w);
  const Dataset d = spiral(10, 14);
  try {
    model.fit(d.x, d.y, quiet(2));
    FAIL() << "no error";
  } catch (const InvalidArgument& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("epoch 1, step 1 of"), std::string::npos) << message;
  }
}

TEST(NnCpuProgress, NonTerminalFormat) {
  const Dataset d = spiral(20, 15);
  Sequential model = small_classifier();
  std::ostringstream out;
  FitOptions fit;
  fit.epochs = 2;
  fit.batch_size = 16;
  fit.validation_split = 0.25;
  fit.out = &out;
  fit.verbose = 1;
  model.fit(d.x, d.y, fit);
  const std::regex line1(
      "Epoch 1/2\n3/3 \\[={30}\\] - \\d+s \\d+(us|ms|s)/step - loss: \\d+\\.\\d{4} - "
      "accuracy: \\d\\.\\d{4} - val_loss: \\d+\\.\\d{4} - val_accuracy: \\d\\.\\d{4}\n"
      "Epoch 2/2\n3/3 .*\n");
  EXPECT_TRUE(std::regex_match(out.str(), line1)) << out.str();
  EXPECT_EQ(out.str().find('\r'), std::string::npos);

  std::ostringstream out2;
  fit.verbose = 2;
  fit.out = &out2;
  model.fit(d.x, d.y, fit);
  const std::regex line2("(Epoch \\d/2 - \\d+s - \\d+(us|ms|s)/step - loss: [^\n]*\n){2}");
  EXPECT_TRUE(std::regex_match(out2.str(), line2)) << out2.str();

  std::ostringstream terminal;
  fit.verbose = 1;
  fit.out = &terminal;
  fit.terminal = true;
  model.fit(d.x, d.y, fit);
  EXPECT_NE(terminal.str().find("\r3/3 [="), std::string::npos) << terminal.str();
}

TEST(NnCpuModel, SummaryListsLayersAndTotals) {
  Sequential model;
  model.add(Dense(64, "relu", 100));
  model.add(Dense(10, "prelu"));
  const std::string s = model.summary();
  EXPECT_NE(s.find("(None, 64)"), std::string::npos) << s;
  EXPECT_NE(s.find("6,464"), std::string::npos) << s;  // 100 x 64 + 64
  EXPECT_NE(s.find("660"), std::string::npos) << s;    // 64 x 10 + 10 + 10 slopes
  EXPECT_NE(s.find("Total params: 7,124"), std::string::npos) << s;
}

// --- checkpoints --------------------------------------------------------------------------------

TEST(NnCpuCheckpoint, RoundTripIsBitwiseIncludingOptimizerState) {
  const Dataset d = spiral(20, 16);
  Sequential model = small_classifier();
  model.fit(d.x, d.y, quiet(2, 16));
  const std::string path = temp_path("roundtrip.wfnn");
  model.save(path);
  Sequential loaded = Sequential::load(path, Device::cpu);
  EXPECT_EQ(loaded.get_weights(), model.get_weights());
  EXPECT_EQ(loaded.loss().kind, LossKind::sparse_categorical_crossentropy);
  // The same next step from the same Adam moments: still bitwise equal.
  FitOptions fit = quiet(1, 16);
  fit.seed = 3;
  model.fit(d.x, d.y, fit);
  loaded.fit(d.x, d.y, fit);
  EXPECT_EQ(loaded.get_weights(), model.get_weights());
  std::remove(path.c_str());
}

TEST(NnCpuCheckpoint, DamagedFilesThrowAndLeaveTheModelUnchanged) {
  Sequential model = small_classifier();
  const std::string path = temp_path("damaged.wfnn");
  model.save(path);
  const std::string good = read_file(path);
  Sequential target = small_classifier(Device::cpu, 77);
  const std::vector<float> before = target.get_weights();

  write_file(path, good.substr(0, good.size() / 2));
  EXPECT_NE(io_error_message([&] { target.load_weights(path); }).find("truncated"),
            std::string::npos);
  std::string corrupt = good;
  corrupt[corrupt.size() / 2] ^= 0x40;
  write_file(path, corrupt);
  EXPECT_NE(io_error_message([&] { target.load_weights(path); }).find("checksum"),
            std::string::npos);
  write_file(path, "XXXX" + good.substr(4));
  EXPECT_NE(io_error_message([&] { target.load_weights(path); }).find("magic"), std::string::npos);
  EXPECT_NE(
      io_error_message([&] { target.load_weights(temp_path("absent.wfnn")); }).find("cannot open"),
      std::string::npos);

  Sequential wider;
  wider.add(Dense(17, "relu", 2));
  wider.add(Dense(3, "softmax"));
  wider.compile(Adam(), "sparse_categorical_crossentropy", {}, Device::cpu);
  wider.save(path);
  EXPECT_NE(io_error_message([&] { target.load_weights(path); }).find("architecture mismatch"),
            std::string::npos);
  EXPECT_EQ(target.get_weights(), before);
  std::remove(path.c_str());
}

Standardizer odd_standardizer() {
  Standardizer s;
  s.mean = {0.1f, -3.3333333f};
  s.scale = {1.0f / 3.0f, 7.123456e-5f};
  return s;
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(NnCpuCheckpoint, StandardizerRoundTripsBitwise) {
  Sequential model = small_classifier();
  EXPECT_FALSE(model.standardizer().has_value());
  model.set_standardizer(odd_standardizer());
  const std::string path = temp_path("standardizer.wfnn");
  model.save(path);
  Sequential loaded = Sequential::load(path, Device::cpu);
  ASSERT_TRUE(loaded.standardizer().has_value());
  EXPECT_TRUE(bitwise_equal(loaded.standardizer()->mean, odd_standardizer().mean));
  EXPECT_TRUE(bitwise_equal(loaded.standardizer()->scale, odd_standardizer().scale));
  EXPECT_EQ(loaded.get_weights(), model.get_weights());

  // load_weights takes the file's standardizer, and a file without one clears it.
  Sequential target = small_classifier(Device::cpu, 77);
  target.load_weights(path);
  ASSERT_TRUE(target.standardizer().has_value());
  EXPECT_TRUE(bitwise_equal(target.standardizer()->scale, odd_standardizer().scale));
  small_classifier().save(path);
  EXPECT_FALSE(Sequential::load(path, Device::cpu).standardizer().has_value());
  target.load_weights(path);
  EXPECT_FALSE(target.standardizer().has_value());

  Standardizer wrong = odd_standardizer();
  wrong.scale.push_back(1.0f);
  EXPECT_THROW(model.set_standardizer(wrong), InvalidArgument);
  wrong.mean.push_back(0.0f);  // 3 features for a 2-input model
  EXPECT_THROW(model.set_standardizer(wrong), InvalidArgument);
  wrong = odd_standardizer();
  wrong.scale[1] = 0.0f;
  EXPECT_THROW(model.set_standardizer(wrong), InvalidArgument);
  model.set_standardizer(std::nullopt);
  EXPECT_FALSE(model.standardizer().has_value());
  std::remove(path.c_str());
}

TEST(NnCpuCheckpoint, VersionOneFilesStillLoad) {
  const Dataset d = spiral(20, 16);
  Sequential model = small_classifier();
  model.fit(d.x, d.y, quiet(1, 16));
  const std::string path = temp_path("version1.wfnn");
  model.save(path);
  // Version 1 is version 2 without the preprocessing byte (0 here) before the checksum.
  std::string bytes = read_file(path);
  ASSERT_EQ(bytes[bytes.size() - 9], '\0');
  bytes.erase(bytes.size() - 9, 1);
  const std::uint32_t version = 1;
  std::memcpy(&bytes[4], &version, 4);
  reseal(bytes);
  write_file(path, bytes);
  Sequential loaded = Sequential::load(path, Device::cpu);
  EXPECT_EQ(loaded.get_weights(), model.get_weights());
  EXPECT_FALSE(loaded.standardizer().has_value());
  FitOptions fit = quiet(1, 16);
  model.fit(d.x, d.y, fit);
  loaded.fit(d.x, d.y, fit);  // the Adam state came along too
  EXPECT_EQ(loaded.get_weights(), model.get_weights());

  const std::uint32_t future = 3;
  std::memcpy(&bytes[4], &future, 4);
  reseal(bytes);
  write_file(path, bytes);
  EXPECT_NE(io_error_message([&] { Sequential::load(path, Device::cpu); }).find("format version 3"),
            std::string::npos);
  std::remove(path.c_str());
}

TEST(NnCpuCheckpoint, CorruptPreprocessingSectionThrowsAndLeavesTheModelUnchanged) {
  Sequential model = small_classifier();
  model.set_standardizer(odd_standardizer());
  const std::string path = temp_path("bad_preprocessing.wfnn");
  model.save(path);
  const std::string good = read_file(path);
  // Before the checksum: u32 kind, u64 2, 2 x f32 mean, u64 2, 2 x f32 scale.
  const std::size_t scale_end = good.size() - 8;
  const std::size_t kind_at = scale_end - 2 * (8 + 2 * 4) - 4;

  Sequential target = small_classifier(Device::cpu, 77);
  Standardizer mine;
  mine.mean = {1.0f, 2.0f};
  mine.scale = {3.0f, 4.0f};
  target.set_standardizer(mine);
  const std::vector<float> before = target.get_weights();
  auto expect_rejected = [&](std::string bytes, const std::string& needle) {
    reseal(bytes);
    write_file(path, bytes);
    const std::string message = io_error_message([&] { target.load_weights(path); });
    EXPECT_NE(message.find(needle), std::string::npos) << message;
    EXPECT_NE(io_error_message([&] { Sequential::load(path, Device::cpu); }), "");
    EXPECT_EQ(target.get_weights(), before);
    ASSERT_TRUE(target.standardizer().has_value());
    EXPECT_EQ(target.standardizer()->mean, mine.mean);
    EXPECT_EQ(target.standardizer()->scale, mine.scale);
  };

  std::string zero_scale = good;
  const float zero = 0.0f;
  std::memcpy(&zero_scale[scale_end - 4], &zero, 4);
  expect_rejected(zero_scale, "standardizer scale 1");
  std::string nan_mean = good;
  const float nan = std::nanf("");
  std::memcpy(&nan_mean[kind_at + 4 + 8], &nan, 4);
  expect_rejected(nan_mean, "standardizer mean 0");
  std::string bad_kind = good;
  const std::uint32_t kind = 7;
  std::memcpy(&bad_kind[kind_at], &kind, 4);
  expect_rejected(bad_kind, "preprocessing kind 7");
  std::string bad_count = good;
  const std::uint64_t count = 3;
  std::memcpy(&bad_count[kind_at + 4], &count, 8);
  expect_rejected(bad_count, "standardizer mean");
  expect_rejected(good.substr(0, kind_at + 4 + 8 + 4) + good.substr(scale_end), "runs past");
  std::remove(path.c_str());
}

// --- data ---------------------------------------------------------------------------------------

TEST(NnCpuData, CsvWithHeaderAndNamedLabel) {
  const std::string path = temp_path("good.csv");
  write_file(path, "a, label ,b\n1,0,2.5\n-3,2,4e1\n\n");
  CsvOptions options;
  options.label_column = "label";
  const Dataset d = load_csv(path, options);
  EXPECT_EQ(d.x.rows, 2);
  EXPECT_EQ(d.x.cols, 2);
  EXPECT_EQ(d.x.data, (std::vector<float>{1, 2.5f, -3, 40}));
  EXPECT_EQ(d.y.data, (std::vector<float>{0, 2}));
  EXPECT_EQ(d.label_name, "label");
  options.label_column = "0";
  EXPECT_EQ(load_csv(path, options).y.data, (std::vector<float>{1, -3}));
  std::remove(path.c_str());
}

TEST(NnCpuData, BadCsvCellsNameLineAndColumn) {
  const std::string path = temp_path("bad.csv");
  const std::pair<std::string, std::string> cases[] = {
      {"a,b,c\n1,2,3\n4,5\n", ":3:3: ragged row"},
      {"a,b,c\n1,,3\n", ":2:2: empty cell"},
      {"a,b,c\n1,2,3\n1,x2,3\n", ":3:2: 'x2' is not a number"},
      {"1,2,3\n1,2,nan\n", ":2:3: 'nan' is NaN or infinite"},
  };
  for (const auto& [text, expected] : cases) {
    write_file(path, text);
    const std::string message = io_error_message([&] { load_csv(path); });
    EXPECT_NE(message.find(expected), std::string::npos) << message;
  }
  write_file(path, "a,b\n1,2\n");
  CsvOptions options;
  options.label_column = "zzz";
  EXPECT_NE(io_error_message([&] { load_csv(path, options); }).find("no column named"),
            std::string::npos);
  std::remove(path.c_str());
}

// An unsigned-byte IDX file: header and values.
std::string idx_bytes(const std::vector<std::uint32_t>& shape,
                      const std::vector<std::uint8_t>& values) {
  return test_files::idx_header(0x08, shape) + std::string(values.begin(), values.end());
}

TEST(NnCpuData, IdxRawAndGzipped) {
  const std::string images = temp_path("images.idx");
  const std::string labels = temp_path("labels.idx.gz");
  write_file(images, idx_bytes({2, 2, 2}, {0, 1, 2, 3, 4, 5, 6, 255}));
  ASSERT_TRUE(test_files::write_gzip(labels, idx_bytes({2}, {7, 9})));
  const Dataset d = load_idx(images, labels);
  EXPECT_EQ(d.x.rows, 2);
  EXPECT_EQ(d.x.cols, 4);
  EXPECT_EQ(d.x(1, 3), 255.0f);
  EXPECT_EQ(d.y.data, (std::vector<float>{7, 9}));

  write_file(images, idx_bytes({2, 2, 2}, {0, 1, 2}));
  EXPECT_NE(io_error_message([&] { read_idx(images); }).find("truncated"), std::string::npos);
  write_file(images, "\x01\x02\x08\x01" + std::string(8, '\0'));
  EXPECT_NE(io_error_message([&] { read_idx(images); }).find("magic"), std::string::npos);
  const std::string gz = idx_bytes({1000}, std::vector<std::uint8_t>(1000, 1));
  ASSERT_TRUE(test_files::write_gzip(labels, gz));
  const std::string compressed = read_file(labels);
  write_file(labels, compressed.substr(0, compressed.size() / 2));
  EXPECT_NE(io_error_message([&] { read_idx(labels); }).find("truncated"), std::string::npos);
  std::remove(images.c_str());
  std::remove(labels.c_str());
}

TEST(NnCpuData, StandardizeOneHotAndSplit) {
  Matrix x(4, 2, {1, 5, 3, 5, 5, 5, 7, 5});
  const Standardizer s = Standardizer::fit(x);
  s.transform(x);
  EXPECT_NEAR(x(0, 0) + x(1, 0) + x(2, 0) + x(3, 0), 0.0f, 1e-6);
  EXPECT_EQ(x(0, 1), 0.0f);  // a constant feature
  const Matrix h = one_hot(Matrix(2, 1, {2, 0}), 3);
  EXPECT_EQ(h.data, (std::vector<float>{0, 0, 1, 1, 0, 0}));
  EXPECT_THROW(one_hot(Matrix(1, 1, {3}), 3), InvalidArgument);
  Dataset d;
  d.x = Matrix(10, 1);
  d.y = Matrix(10, 1);
  for (int i = 0; i < 10; ++i) d.x(i, 0) = d.y(i, 0) = static_cast<float>(i);
  const auto [train, test] = train_test_split(d, 0.3, 1);
  EXPECT_EQ(train.x.rows, 7);
  EXPECT_EQ(test.x.rows, 3);
  EXPECT_EQ(test.x.data, test.y.data);
}

}  // namespace
}  // namespace warpfuse::nn
