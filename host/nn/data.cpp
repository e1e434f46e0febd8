// warpfuse::nn — CSV and IDX loaders, standardisation, one-hot, train/test split (data.h).
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>

#include "warpfuse/error.h"
#include "warpfuse/nn/data.h"

namespace warpfuse::nn {
namespace {

std::string trim(const std::string& s) {
  std::size_t b = 0;
  std::size_t e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r')) --e;
  std::string t = s.substr(b, e - b);
  if (t.size() >= 2 && t.front() == '"' && t.back() == '"') t = t.substr(1, t.size() - 2);
  return t;
}

std::vector<std::string> split(const std::string& line, char delimiter) {
  std::vector<std::string> cells;
  std::size_t start = 0;
  while (true) {
    const std::size_t end = line.find(delimiter, start);
    cells.push_back(trim(line.substr(start, end == std::string::npos ? end : end - start)));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return cells;
}

enum class Cell { number, empty, not_number, not_finite };

Cell parse_cell(const std::string& text, float* value) {
  if (text.empty()) return Cell::empty;
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) return Cell::not_number;
  // strtod accepts "nan" and "inf"; a float that overflows is as unusable.
  if (!std::isfinite(v) || std::fabs(v) > 3.4028234663852886e38) return Cell::not_finite;
  *value = static_cast<float>(v);
  return Cell::number;
}

[[noreturn]] void csv_error(const std::string& path, std::int64_t line, std::int64_t column,
                            const std::string& problem) {
  throw IoError("warpfuse::nn::load_csv: " + path + ":" + std::to_string(line) + ":" +
                std::to_string(column) + ": " + problem);
}

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

Dataset load_csv(const std::string& path, const CsvOptions& options) {
  std::ifstream in(path);
  if (!in) {
    throw IoError("warpfuse::nn::load_csv: cannot open " + path + ": " + std::strerror(errno));
  }
  std::string line;
  std::int64_t line_number = 0;
  std::vector<std::string> header;
  std::vector<std::vector<float>> rows;
  std::size_t columns = 0;
  bool first = true;
  while (std::getline(in, line)) {
    ++line_number;
    if (trim(line).empty()) continue;
    const std::vector<std::string> cells = split(line, options.delimiter);
    if (first) {
      first = false;
      columns = cells.size();
      bool header_line = options.header == CsvHeader::present;
      if (options.header == CsvHeader::automatic) {
        float unused = 0.0f;
        for (const auto& cell : cells) {
          if (parse_cell(cell, &unused) == Cell::not_number) header_line = true;
        }
      }
      if (header_line) {
        header = cells;
        continue;
      }
    }
    if (cells.size() != columns) {
      csv_error(path, line_number, static_cast<std::int64_t>(std::min(cells.size(), columns) + 1),
                "ragged row: " + std::to_string(cells.size()) + " cells, expected " +
                    std::to_string(columns));
    }
    std::vector<float> values(columns);
    for (std::size_t c = 0; c < columns; ++c) {
      switch (parse_cell(cells[c], &values[c])) {
        case Cell::number:
          break;
        case Cell::empty:
          csv_error(path, line_number, static_cast<std::int64_t>(c + 1), "empty cell");
        case Cell::not_number:
          csv_error(path, line_number, static_cast<std::int64_t>(c + 1),
                    "'" + cells[c] + "' is not a number");
        case Cell::not_finite:
          csv_error(path, line_number, static_cast<std::int64_t>(c + 1),
                    "'" + cells[c] + "' is NaN or infinite");
      }
    }
    rows.push_back(std::move(values));
  }
  if (in.bad()) throw IoError("warpfuse::nn::load_csv: reading " + path + " failed");
  if (rows.empty()) throw IoError("warpfuse::nn::load_csv: " + path + ": no data rows");
  if (columns < 2) {
    throw IoError("warpfuse::nn::load_csv: " + path +
                  ": needs at least two columns (features and a label)");
  }

  std::size_t label = columns - 1;
  const std::string& spec = options.label_column;
  if (spec.empty() || spec == "last") {
    label = columns - 1;
  } else if (all_digits(spec)) {
    label = static_cast<std::size_t>(std::stoull(spec));
    if (label >= columns) {
      throw IoError("warpfuse::nn::load_csv: " + path + ": label column " + spec +
                    " is out of range (the file has " + std::to_string(columns) + " columns)");
    }
  } else {
    const auto it = std::find(header.begin(), header.end(), spec);
    if (it == header.end()) {
      throw IoError("warpfuse::nn::load_csv: " + path + ": no column named '" + spec + "'" +
                    (header.empty() ? " (the file has no header)" : ""));
    }
    label = static_cast<std::size_t>(it - header.begin());
  }

  Dataset d;
  const auto n = static_cast<std::int64_t>(rows.size());
  const auto features = static_cast<std::int64_t>(columns - 1);
  d.x = Matrix(n, features);
  d.y = Matrix(n, 1);
  for (std::int64_t r = 0; r < n; ++r) {
    std::int64_t f = 0;
    for (std::size_t c = 0; c < columns; ++c) {
      if (c == label) {
        d.y(r, 0) = rows[r][c];
      } else {
        d.x(r, f++) = rows[r][c];
      }
    }
  }
  if (!header.empty()) {
    for (std::size_t c = 0; c < columns; ++c) {
      (c == label ? d.label_name : d.feature_names.emplace_back()) = header[c];
    }
  }
  return d;
}

IdxArray read_idx(const std::string& path) {
  auto fail = [&](const std::string& problem) {
    throw IoError("warpfuse::nn::read_idx: " + path + ": " + problem);
  };
  // gzread reads plain files as they are, so one path handles both.
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) fail(std::string("cannot open: ") + std::strerror(errno));
  std::vector<std::uint8_t> bytes;
  std::uint8_t chunk[1 << 16];
  int got = 0;
  while ((got = gzread(file, chunk, sizeof chunk)) > 0)
    bytes.insert(bytes.end(), chunk, chunk + got);
  int status = Z_OK;
  const char* message = gzerror(file, &status);
  const std::string zlib_message = message != nullptr ? message : "";
  gzclose(file);
  if (got < 0 || (status != Z_OK && status != Z_STREAM_END)) {
    fail("truncated or corrupt gzip stream (" + zlib_message + ")");
  }
  if (bytes.size() < 4) fail("truncated: " + std::to_string(bytes.size()) + " bytes");
  if (bytes[0] != 0 || bytes[1] != 0) fail("not an IDX file (bad magic)");
  std::size_t element = 0;
  switch (bytes[2]) {
    case 0x08:  // unsigned byte
    case 0x09:  // signed byte
      element = 1;
      break;
    case 0x0B:  // short
      element = 2;
      break;
    case 0x0C:  // int
    case 0x0D:  // float
      element = 4;
      break;
    case 0x0E:  // double
      element = 8;
      break;
    default:
      fail("unknown element type 0x" + std::to_string(bytes[2]));
  }
  const int ndims = bytes[3];
  if (ndims == 0) fail("no dimensions");
  const std::size_t header = 4 + 4 * static_cast<std::size_t>(ndims);
  if (bytes.size() < header) fail("truncated header");
  IdxArray a;
  std::uint64_t count = 1;
  for (int i = 0; i < ndims; ++i) {
    const std::uint8_t* p = bytes.data() + 4 + 4 * i;
    const std::uint32_t dim = (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
                              (std::uint32_t{p[2]} << 8) | p[3];
    if (dim == 0) fail("dimension " + std::to_string(i) + " is 0");
    a.dims.push_back(dim);
    count *= dim;
    if (count > (std::uint64_t{1} << 40)) fail("dimensions too large");
  }
  const std::uint64_t expected = header + count * element;
  if (bytes.size() < expected) {
    fail("truncated: " + std::to_string(bytes.size()) + " of " + std::to_string(expected) +
         " bytes");
  }
  if (bytes.size() > expected) fail("corrupt: trailing bytes after the data");
  a.values.resize(count);
  const std::uint8_t* data = bytes.data() + header;
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::uint8_t* p = data + i * element;
    std::uint64_t raw = 0;  // IDX is big-endian
    for (std::size_t b = 0; b < element; ++b) raw = (raw << 8) | p[b];
    switch (bytes[2]) {
      case 0x08:
        a.values[i] = static_cast<float>(raw);
        break;
      case 0x09:
        a.values[i] = static_cast<float>(static_cast<std::int8_t>(raw));
        break;
      case 0x0B:
        a.values[i] = static_cast<float>(static_cast<std::int16_t>(raw));
        break;
      case 0x0C:
        a.values[i] = static_cast<float>(static_cast<std::int32_t>(raw));
        break;
      case 0x0D: {
        const auto bits = static_cast<std::uint32_t>(raw);
        std::memcpy(&a.values[i], &bits, 4);
        break;
      }
      default: {
        double v = 0.0;
        std::memcpy(&v, &raw, 8);
        a.values[i] = static_cast<float>(v);
      }
    }
  }
  return a;
}

Dataset load_idx(const std::string& images_path, const std::string& labels_path) {
  IdxArray images = read_idx(images_path);
  IdxArray labels = read_idx(labels_path);
  if (labels.dims.size() != 1) {
    throw IoError("warpfuse::nn::load_idx: " + labels_path + ": labels have " +
                  std::to_string(labels.dims.size()) + " dimensions, expected 1");
  }
  if (images.dims.front() != labels.dims.front()) {
    throw IoError("warpfuse::nn::load_idx: " + images_path + " holds " +
                  std::to_string(images.dims.front()) + " images but " + labels_path + " holds " +
                  std::to_string(labels.dims.front()) + " labels");
  }
  Dataset d;
  const std::int64_t n = images.dims.front();
  const auto features = static_cast<std::int64_t>(images.values.size()) / n;
  d.x = Matrix(n, features, std::move(images.values));
  d.y = Matrix(n, 1, std::move(labels.values));
  d.label_name = "label";
  return d;
}

Standardizer Standardizer::fit(const Matrix& x) {
  if (x.rows == 0) throw InvalidArgument("nn::Standardizer::fit", "x", "is empty");
  Standardizer s;
  std::vector<double> sum(x.cols, 0.0), sq(x.cols, 0.0);
  for (std::int64_t r = 0; r < x.rows; ++r) {
    for (std::int64_t c = 0; c < x.cols; ++c) sum[c] += x(r, c);
  }
  s.mean.resize(x.cols);
  for (std::int64_t c = 0; c < x.cols; ++c) s.mean[c] = static_cast<float>(sum[c] / x.rows);
  for (std::int64_t r = 0; r < x.rows; ++r) {
    for (std::int64_t c = 0; c < x.cols; ++c) {
      const double d = x(r, c) - static_cast<double>(s.mean[c]);
      sq[c] += d * d;
    }
  }
  s.scale.resize(x.cols);
  for (std::int64_t c = 0; c < x.cols; ++c) {
    const double sd = std::sqrt(sq[c] / x.rows);
    s.scale[c] = sd > 1e-12 ? static_cast<float>(sd) : 1.0f;  // a constant feature stays put
  }
  return s;
}

void Standardizer::transform(Matrix& x) const {
  if (static_cast<std::int64_t>(mean.size()) != x.cols) {
    throw InvalidArgument(
        "nn::Standardizer::transform", "x",
        "has " + std::to_string(x.cols) + " columns, fitted on " + std::to_string(mean.size()));
  }
  for (std::int64_t r = 0; r < x.rows; ++r) {
    for (std::int64_t c = 0; c < x.cols; ++c) x(r, c) = (x(r, c) - mean[c]) / scale[c];
  }
}

Matrix one_hot(const Matrix& labels, int classes) {
  const char* op = "nn::one_hot";
  if (classes <= 0)
    throw InvalidArgument(op, "classes", std::to_string(classes) + " is not positive");
  if (labels.cols != 1) {
    throw InvalidArgument(op, "labels", "has " + std::to_string(labels.cols) + " columns, not 1");
  }
  Matrix out(labels.rows, classes);
  for (std::int64_t r = 0; r < labels.rows; ++r) {
    const float v = labels(r, 0);
    if (!(v >= 0.0f) || v >= static_cast<float>(classes) || v != std::floor(v)) {
      throw InvalidArgument(op, "labels",
                            "row " + std::to_string(r) + " holds " + std::to_string(v) +
                                ", not a class index in [0, " + std::to_string(classes) + ")");
    }
    out(r, static_cast<std::int64_t>(v)) = 1.0f;
  }
  return out;
}

std::pair<Dataset, Dataset> train_test_split(const Dataset& data, double test_fraction,
                                             std::uint64_t seed, bool shuffle) {
  const char* op = "nn::train_test_split";
  if (!(test_fraction > 0.0 && test_fraction < 1.0)) {
    throw InvalidArgument(op, "test_fraction", std::to_string(test_fraction) + " is not in (0, 1)");
  }
  const std::int64_t n = data.x.rows;
  const auto test = static_cast<std::int64_t>(std::ceil(static_cast<double>(n) * test_fraction));
  if (test <= 0 || test >= n) {
    throw InvalidArgument(op, "data", std::to_string(n) + " samples are too few to split");
  }
  std::vector<std::int64_t> order(n);
  for (std::int64_t i = 0; i < n; ++i) order[i] = i;
  if (shuffle) {
    std::mt19937_64 rng(seed);
    for (std::int64_t i = n - 1; i > 0; --i) {
      std::swap(order[i], order[rng() % static_cast<std::uint64_t>(i + 1)]);
    }
  }
  auto take = [&](std::int64_t begin, std::int64_t count) {
    Dataset d;
    d.x = Matrix(count, data.x.cols);
    d.y = Matrix(count, data.y.cols);
    for (std::int64_t r = 0; r < count; ++r) {
      std::copy_n(data.x.row(order[begin + r]), data.x.cols, d.x.data.begin() + r * data.x.cols);
      std::copy_n(data.y.row(order[begin + r]), data.y.cols, d.y.data.begin() + r * data.y.cols);
    }
    d.feature_names = data.feature_names;
    d.label_name = data.label_name;
    return d;
  };
  return {take(0, n - test), take(n - test, test)};
}

}  // namespace warpfuse::nn
