// warpfuse::nn — save / load of a Sequential model in warpfuse's checkpoint format.
//
// Layout (little-endian; see Sequential::save in model.h):
//   "WFNN" | u32 version (2; 1 is read too) | u64 total file size | u32 dtype (0 = fp32)
//   architecture: u64 input_dim, u32 layers, per layer u64 units, u32 activation, f32 alpha,
//                 u8 use_bias, u32 kernel initializer, u32 bias initializer
//   compile:      u32 loss, u8 from_logits, f32 delta, u32 metrics, per metric u32 length + bytes
//   parameters:   u64 count, count x f32
//   optimizer:    u8 present; when 1: u32 kind, f32 lr, f32 momentum, u8 nesterov, f32 beta_1,
//                 f32 beta_2, f32 epsilon, f32 weight_decay, u64 step, u64 count, count x f32
//   preprocessing (version 2 on): u8 present; when 1: u32 kind (0 = standardizer),
//                 u64 input_dim, input_dim x f32 mean, u64 input_dim, input_dim x f32 scale
//   u64 FNV-1a 64 of every byte before it
// The file size in the header tells a truncated file from a corrupt one. Loading parses the whole
// file into temporaries before touching the model, so a bad file leaves the model as it was.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <utility>

#include "host/nn/backend.h"
#include "warpfuse/error.h"
#include "warpfuse/nn/model.h"

namespace warpfuse::nn {
namespace {

constexpr char kMagic[4] = {'W', 'F', 'N', 'N'};
constexpr std::uint32_t kVersion = 2;
constexpr std::uint32_t kOldestVersion = 1;  // version 1: no preprocessing section
constexpr std::uint32_t kPreprocessingStandardizer = 0;
constexpr std::uint32_t kDtypeFloat32 = 0;
constexpr std::size_t kHeaderBytes = 4 + 4 + 8 + 4;

std::uint64_t fnv1a(const std::uint8_t* data, std::size_t size) {
  std::uint64_t hash = 0xcbf29ce484222325ull;
  for (std::size_t i = 0; i < size; ++i) {
    hash ^= data[i];
    hash *= 0x100000001b3ull;
  }
  return hash;
}

class Writer {
 public:
  template <class T>
  void put(T value) {
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(&value);
    buffer.insert(buffer.end(), bytes, bytes + sizeof(T));
  }
  void put_floats(const std::vector<float>& values) {
    put<std::uint64_t>(values.size());
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(values.data());
    buffer.insert(buffer.end(), bytes, bytes + values.size() * sizeof(float));
  }
  void put_string(const std::string& s) {
    put<std::uint32_t>(static_cast<std::uint32_t>(s.size()));
    buffer.insert(buffer.end(), s.begin(), s.end());
  }
  std::vector<std::uint8_t> buffer;
};

class Reader {
 public:
  Reader(const std::string& path, const std::vector<std::uint8_t>& data, std::size_t end)
      : path_(path), data_(data), end_(end) {}
  template <class T>
  T get(const char* what) {
    need(sizeof(T), what);
    T value;
    std::memcpy(&value, data_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }
  std::vector<float> get_floats(const char* what, std::uint64_t expected) {
    const auto count = get<std::uint64_t>(what);
    if (count != expected) {
      fail(std::string(what) + ": holds " + std::to_string(count) + " values, expected " +
           std::to_string(expected));
    }
    need(count * sizeof(float), what);
    std::vector<float> values(count);
    // An empty vector's data() may be null, and memcpy(null, _, 0) is undefined (UBSan, found
    // by tests/fuzz on a checkpoint whose optimizer keeps no state).
    if (count > 0) std::memcpy(values.data(), data_.data() + pos_, count * sizeof(float));
    pos_ += count * sizeof(float);
    return values;
  }
  std::string get_string(const char* what) {
    const auto length = get<std::uint32_t>(what);
    need(length, what);
    std::string s(data_.begin() + pos_, data_.begin() + pos_ + length);
    pos_ += length;
    return s;
  }
  std::size_t position() const { return pos_; }
  [[noreturn]] void fail(const std::string& problem) const {
    throw IoError("warpfuse::nn::load: " + path_ + ": " + problem);
  }

 private:
  void need(std::uint64_t bytes, const char* what) const {
    if (bytes > end_ - pos_) fail(std::string("corrupt: ") + what + " runs past the end");
  }
  const std::string& path_;
  const std::vector<std::uint8_t>& data_;
  std::size_t pos_ = kHeaderBytes;
  std::size_t end_;
};

// Everything a checkpoint holds, parsed and validated.
struct Checkpoint {
  std::vector<Dense> layers;
  Loss loss;
  std::vector<std::string> metrics;
  std::vector<float> parameters;
  bool has_optimizer = false;
  Optimizer optimizer;
  std::uint64_t step = 0;
  std::vector<float> state;
  std::optional<Standardizer> standardizer;
};

template <class Enum>
Enum checked_enum(Reader& r, const char* what, std::uint32_t count) {
  const auto value = r.get<std::uint32_t>(what);
  if (value >= count) r.fail(std::string("corrupt: ") + what + " " + std::to_string(value));
  return static_cast<Enum>(value);
}

// The temporary file of the save() in progress, for pending_checkpoint_temp(): a fixed buffer a
// signal handler can read (no allocation, no lock); empty when no save runs or the path is too
// long to record.
char g_pending_temp[4096] = {};

struct PendingTemp {
  explicit PendingTemp(const std::string& temp) {
    if (temp.size() < sizeof g_pending_temp) {
      std::memcpy(g_pending_temp, temp.c_str(), temp.size() + 1);
    }
  }
  ~PendingTemp() { g_pending_temp[0] = '\0'; }
  PendingTemp(const PendingTemp&) = delete;
  PendingTemp& operator=(const PendingTemp&) = delete;
};

Checkpoint read_checkpoint(const std::string& path) {
  auto fail = [&](const std::string& problem) {
    throw IoError("warpfuse::nn::load: " + path + ": " + problem);
  };
  // Only a regular file, read to its size (a directory, /dev/zero or a pipe once hung, crashed or
  // threw raw library text).
  struct stat info {};
  if (stat(path.c_str(), &info) != 0) fail(std::string("cannot open: ") + std::strerror(errno));
  if (S_ISDIR(info.st_mode)) fail("is a directory, not a model file");
  if (!S_ISREG(info.st_mode)) fail("is not a regular file (a device, pipe or socket)");
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) fail(std::string("cannot open: ") + std::strerror(errno));
  std::vector<std::uint8_t> data(static_cast<std::size_t>(info.st_size));
  const std::size_t got = data.empty() ? 0 : std::fread(data.data(), 1, data.size(), file);
  std::fclose(file);
  if (got != data.size())
    fail("reading failed (" + std::to_string(got) + " of " + std::to_string(data.size()) +
         " bytes)");
  if (data.size() < 4 || std::memcmp(data.data(), kMagic, 4) != 0) {
    fail("not a warpfuse model file (bad magic)");
  }
  if (data.size() < kHeaderBytes + 8) fail("truncated: " + std::to_string(data.size()) + " bytes");
  std::uint32_t version = 0;
  std::uint64_t size = 0;
  std::uint32_t dtype = 0;
  std::memcpy(&version, data.data() + 4, 4);
  std::memcpy(&size, data.data() + 8, 8);
  std::memcpy(&dtype, data.data() + 16, 4);
  if (version < kOldestVersion || version > kVersion) {
    fail("format version " + std::to_string(version) + " is not supported (this build reads " +
         std::to_string(kOldestVersion) + " to " + std::to_string(kVersion) + ")");
  }
  if (data.size() < size) {
    fail("truncated: " + std::to_string(data.size()) + " of " + std::to_string(size) + " bytes");
  }
  if (data.size() > size) fail("corrupt: trailing bytes after the checksum");
  std::uint64_t stored = 0;
  std::memcpy(&stored, data.data() + size - 8, 8);
  if (stored != fnv1a(data.data(), size - 8)) fail("corrupt: checksum mismatch");
  if (dtype != kDtypeFloat32) fail("dtype " + std::to_string(dtype) + " is not supported (fp32)");

  Reader r(path, data, size - 8);
  Checkpoint c;
  const auto input_dim = r.get<std::uint64_t>("input_dim");
  if (input_dim == 0 || input_dim > static_cast<std::uint64_t>(kMaxUnits)) {
    r.fail("corrupt: input_dim " + std::to_string(input_dim) + " (allowed: 1 to 2^24)");
  }
  const auto layer_count = r.get<std::uint32_t>("layer count");
  for (std::uint32_t l = 0; l < layer_count; ++l) {
    const auto units = r.get<std::uint64_t>("units");
    if (units == 0 || units > static_cast<std::uint64_t>(kMaxUnits)) {
      r.fail("corrupt: a layer of " + std::to_string(units) + " units (allowed: 1 to 2^24)");
    }
    Activation act(checked_enum<ActivationKind>(r, "activation", 11));
    act.alpha = r.get<float>("activation alpha");
    // Later layers' inputs are the previous layer's units, as Sequential::add sets them (with 0
    // here, load_weights would call every multi-layer file an architecture mismatch).
    Dense d(static_cast<std::int64_t>(units), act,
            l == 0 ? static_cast<std::int64_t>(input_dim) : c.layers.back().units);
    d.use_bias = r.get<std::uint8_t>("use_bias") != 0;
    d.kernel_initializer = checked_enum<Initializer>(r, "kernel initializer", 4);
    d.bias_initializer = checked_enum<Initializer>(r, "bias initializer", 4);
    c.layers.push_back(d);
  }
  if (c.layers.empty() || input_dim == 0) r.fail("corrupt: no layers");
  c.loss.kind = checked_enum<LossKind>(r, "loss", 6);
  c.loss.from_logits = r.get<std::uint8_t>("from_logits") != 0;
  c.loss.delta = r.get<float>("huber delta");
  const auto metric_count = r.get<std::uint32_t>("metric count");
  for (std::uint32_t m = 0; m < metric_count; ++m) c.metrics.push_back(r.get_string("metric"));
  std::int64_t total = 0;
  try {
    total = detail::make_layout(c.layers).total;
  } catch (const InvalidArgument& e) {
    r.fail(std::string("the architecture is refused: ") + e.what());
  }
  c.parameters = r.get_floats("parameters", static_cast<std::uint64_t>(total));
  c.has_optimizer = r.get<std::uint8_t>("optimizer flag") != 0;
  if (c.has_optimizer) {
    Optimizer& o = c.optimizer;
    o.rule = checked_enum<OptimizerRule>(r, "optimizer", 3);
    o.learning_rate = r.get<float>("learning_rate");
    o.momentum = r.get<float>("momentum");
    o.nesterov = r.get<std::uint8_t>("nesterov") != 0;
    o.beta_1 = r.get<float>("beta_1");
    o.beta_2 = r.get<float>("beta_2");
    o.epsilon = r.get<float>("epsilon");
    o.weight_decay = r.get<float>("weight_decay");
    c.step = r.get<std::uint64_t>("step");
    c.state = r.get_floats("optimizer state",
                           static_cast<std::uint64_t>(optimizer_state_floats(o, total)));
  }
  if (version >= 2 && r.get<std::uint8_t>("preprocessing flag") != 0) {
    const auto kind = r.get<std::uint32_t>("preprocessing kind");
    if (kind != kPreprocessingStandardizer) {
      r.fail("corrupt: preprocessing kind " + std::to_string(kind));
    }
    Standardizer s;
    s.mean = r.get_floats("standardizer mean", input_dim);
    s.scale = r.get_floats("standardizer scale", input_dim);
    const std::string problem =
        detail::standardizer_problem(s, static_cast<std::int64_t>(input_dim));
    if (!problem.empty()) r.fail("corrupt: the standardizer " + problem);
    c.standardizer = std::move(s);
  }
  if (r.position() != size - 8) r.fail("corrupt: unexpected bytes before the checksum");
  return c;
}

bool same_architecture(const std::vector<Dense>& a, const std::vector<Dense>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].units != b[i].units || a[i].input_dim != b[i].input_dim ||
        a[i].use_bias != b[i].use_bias || a[i].activation.kind != b[i].activation.kind) {
      return false;
    }
  }
  return true;
}

std::string describe(const std::vector<Dense>& layers) {
  std::string text = std::to_string(layers.front().input_dim);
  for (const Dense& d : layers) {
    text += "-" + std::to_string(d.units) + ":" + to_string(d.activation.kind);
  }
  return text;
}

}  // namespace

const char* pending_checkpoint_temp() noexcept {
  return g_pending_temp;
}

void Sequential::save(const std::string& path, bool include_optimizer) {
  check_compiled("nn::Sequential::save");
  if (standardizer_) {
    const std::string problem = detail::standardizer_problem(*standardizer_, input_dim());
    if (!problem.empty()) throw InvalidArgument("nn::Sequential::save", "standardizer", problem);
  }
  Writer w;
  w.buffer.insert(w.buffer.end(), kMagic, kMagic + 4);
  w.put<std::uint32_t>(kVersion);
  w.put<std::uint64_t>(0);  // the file size, patched below
  w.put<std::uint32_t>(kDtypeFloat32);
  w.put<std::uint64_t>(static_cast<std::uint64_t>(input_dim()));
  w.put<std::uint32_t>(static_cast<std::uint32_t>(layers_.size()));
  for (const Dense& d : layers_) {
    w.put<std::uint64_t>(static_cast<std::uint64_t>(d.units));
    w.put<std::uint32_t>(static_cast<std::uint32_t>(d.activation.kind));
    w.put<float>(d.activation.alpha);
    w.put<std::uint8_t>(d.use_bias ? 1 : 0);
    w.put<std::uint32_t>(static_cast<std::uint32_t>(d.kernel_initializer));
    w.put<std::uint32_t>(static_cast<std::uint32_t>(d.bias_initializer));
  }
  w.put<std::uint32_t>(static_cast<std::uint32_t>(loss_.kind));
  w.put<std::uint8_t>(loss_.from_logits ? 1 : 0);
  w.put<float>(loss_.delta);
  w.put<std::uint32_t>(static_cast<std::uint32_t>(metrics_.size()));
  for (const std::string& m : metrics_) w.put_string(m);
  w.put_floats(backend_->parameters());
  w.put<std::uint8_t>(include_optimizer ? 1 : 0);
  if (include_optimizer) {
    const Optimizer& o = optimizer_;
    w.put<std::uint32_t>(static_cast<std::uint32_t>(o.rule));
    w.put<float>(o.learning_rate);
    w.put<float>(o.momentum);
    w.put<std::uint8_t>(o.nesterov ? 1 : 0);
    w.put<float>(o.beta_1);
    w.put<float>(o.beta_2);
    w.put<float>(o.epsilon);
    w.put<float>(o.weight_decay);
    std::int64_t step = 0;
    const std::vector<float> state = backend_->optimizer_state(&step);
    w.put<std::uint64_t>(static_cast<std::uint64_t>(step));
    w.put_floats(state);
  }
  w.put<std::uint8_t>(standardizer_ ? 1 : 0);
  if (standardizer_) {
    w.put<std::uint32_t>(kPreprocessingStandardizer);
    w.put_floats(standardizer_->mean);
    w.put_floats(standardizer_->scale);
  }
  const std::uint64_t size = w.buffer.size() + 8;
  std::memcpy(w.buffer.data() + 8, &size, 8);
  w.put<std::uint64_t>(fnv1a(w.buffer.data(), w.buffer.size()));

  // A crash or a full disk mid-write leaves the previous file intact: write a temporary file
  // beside it, then rename over it (atomic within a file system).
  const std::string temp = path + ".tmp." + std::to_string(getpid());
  PendingTemp pending(temp);  // a signal handler may remove it (pending_checkpoint_temp)
  std::FILE* file = std::fopen(temp.c_str(), "wb");
  if (file == nullptr) {
    throw IoError("warpfuse::nn::save: cannot create " + temp + ": " + std::strerror(errno));
  }
  const bool written = std::fwrite(w.buffer.data(), 1, w.buffer.size(), file) == w.buffer.size();
  const bool flushed = std::fflush(file) == 0 && fsync(fileno(file)) == 0;
  const bool closed = std::fclose(file) == 0;
  if (!written || !flushed || !closed) {
    const std::string reason = std::strerror(errno);
    std::remove(temp.c_str());
    throw IoError("warpfuse::nn::save: writing " + temp + " failed: " + reason);
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    std::remove(temp.c_str());
    throw IoError("warpfuse::nn::save: cannot rename " + temp + " to " + path + ": " + reason);
  }
}

Sequential Sequential::load(const std::string& path, Device device) {
  Checkpoint c = read_checkpoint(path);
  Sequential model;
  // Fields that read well but that compile refuses (a learning rate of 0, an unknown metric, a
  // Huber delta of -1) are the file's fault: say which file.
  try {
    for (const Dense& d : c.layers) model.add(d);
    model.compile(c.has_optimizer ? c.optimizer : Adam(), c.loss, c.metrics, device);
  } catch (const InvalidArgument& e) {
    throw IoError("warpfuse::nn::load: " + path + ": the saved model is invalid: " + e.what());
  }
  model.backend_->set_parameters(c.parameters);
  if (c.has_optimizer) {
    model.backend_->set_optimizer_state(c.state, static_cast<std::int64_t>(c.step));
  }
  model.standardizer_ = std::move(c.standardizer);
  return model;
}

void Sequential::load_weights(const std::string& path) {
  check_compiled("nn::Sequential::load_weights");
  Checkpoint c = read_checkpoint(path);
  if (!same_architecture(c.layers, layers_)) {
    throw IoError("warpfuse::nn::load: " + path + ": architecture mismatch: the file holds " +
                  describe(c.layers) + ", the model is " + describe(layers_));
  }
  backend_->set_parameters(c.parameters);
  if (c.has_optimizer && c.optimizer.rule == optimizer_.rule &&
      optimizer_state_floats(c.optimizer, 1) == optimizer_state_floats(optimizer_, 1)) {
    backend_->set_optimizer_state(c.state, static_cast<std::int64_t>(c.step));
  }
  standardizer_ = std::move(c.standardizer);
}

}  // namespace warpfuse::nn
