// warpfuse::nn — CSV and IDX loaders, standardisation, one-hot, train/test split (data.h).
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>

#include "warpfuse/error.h"
#include "warpfuse/nn/data.h"

namespace warpfuse::nn {
namespace {

enum class Cell { number, empty, not_number, not_finite, out_of_range };

Cell parse_cell(const std::string& text, float* value) {
  if (text.empty()) return Cell::empty;
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) return Cell::not_number;
  if (!std::isfinite(v)) return Cell::not_finite;  // "nan", "inf", or a double overflow
  if (std::fabs(v) > 3.4028234663852886e38) return Cell::out_of_range;  // finite, not a float
  *value = static_cast<float>(v);
  return Cell::number;
}

/// A cell as an error message shows it: quoted, at most 40 characters (a 50 MB cell once made a
/// 52 MB error line), control characters as '?'.
std::string shown(const std::string& cell) {
  constexpr std::size_t kShown = 40;
  std::string t = cell.size() > kShown ? cell.substr(0, kShown - 3) + "..." : cell;
  for (char& c : t) {
    if (static_cast<unsigned char>(c) < 0x20) c = '?';
  }
  return "'" + t + "'";
}

[[noreturn]] void csv_error(const std::string& path, std::int64_t line, std::int64_t column,
                            const std::string& problem) {
  throw IoError("warpfuse::nn::load_csv: " + path + ":" + std::to_string(line) + ":" +
                std::to_string(column) + ": " + problem);
}

/// One record of an RFC 4180 file: cells (unquoted, "" inside quotes read as "), the line it
/// starts on.
struct Record {
  std::vector<std::string> cells;
  std::int64_t line = 0;
};

/// Reads records from the text of a CSV file: fields split by the delimiter; a field that starts
/// with a quote runs to the matching quote (delimiters, newlines and doubled quotes inside it);
/// spaces and tabs around unquoted fields and around quoted ones are dropped; CRLF or LF ends a
/// record. A quote inside an unquoted field, text after a closing quote and an unterminated quote
/// are errors naming line and column.
class CsvReader {
 public:
  CsvReader(const std::string& path, const std::string& text, char delimiter)
      : path_(path), text_(text), delimiter_(delimiter) {}

  bool next(Record& record) {
    record.cells.clear();
    if (pos_ >= text_.size()) return false;
    record.line = line_;
    for (;;) {
      std::string cell;
      const bool more = field(cell, static_cast<std::int64_t>(record.cells.size()) + 1);
      record.cells.push_back(std::move(cell));
      if (!more) break;
    }
    return true;
  }

 private:
  bool blank(char c) const { return (c == ' ' || c == '\t') && c != delimiter_; }

  // Reads one field into `cell`; true when another field of the same record follows.
  bool field(std::string& cell, std::int64_t column) {
    while (pos_ < text_.size() && blank(text_[pos_])) ++pos_;
    if (pos_ < text_.size() && text_[pos_] == '"') {
      const std::int64_t opened = line_;
      ++pos_;
      for (;;) {
        if (pos_ >= text_.size()) {
          csv_error(path_, opened, column, "a quoted field is never closed");
        }
        const char c = text_[pos_++];
        if (c == '"') {
          if (pos_ < text_.size() && text_[pos_] == '"') {
            cell += '"';
            ++pos_;
            continue;
          }
          break;
        }
        if (c == '\n') ++line_;
        cell += c;
      }
      while (pos_ < text_.size() && blank(text_[pos_])) ++pos_;
      return end_of_field(column, "text after the closing quote");
    }
    const std::size_t start = pos_;
    while (pos_ < text_.size() && text_[pos_] != delimiter_ && text_[pos_] != '\n') {
      if (text_[pos_] == '"') {
        csv_error(path_, line_, column, "a quote inside an unquoted field (quote the whole field)");
      }
      ++pos_;
    }
    std::size_t end = pos_;
    while (end > start && (blank(text_[end - 1]) || text_[end - 1] == '\r')) --end;
    cell.assign(text_, start, end - start);
    return end_of_field(column, "");
  }

  // After a field: the delimiter (true), or the end of the record or file (false).
  bool end_of_field(std::int64_t column, const char* problem) {
    if (pos_ >= text_.size()) return false;
    const char c = text_[pos_];
    if (c == delimiter_) {
      ++pos_;
      return true;
    }
    if (c == '\r' && pos_ + 1 < text_.size() && text_[pos_ + 1] == '\n') ++pos_;
    if (text_[pos_] == '\n') {
      ++pos_;
      ++line_;
      return false;
    }
    if (c == '\r' && pos_ + 1 == text_.size()) {
      ++pos_;
      return false;
    }
    csv_error(path_, line_, column, problem);
  }

  const std::string& path_;
  const std::string& text_;
  char delimiter_;
  std::size_t pos_ = 0;
  std::int64_t line_ = 1;
};

/// The text of a file (a UTF-8 byte-order mark dropped); IoError when it is not a readable
/// regular file.
std::string read_text(const std::string& op, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(op + ": cannot open " + path + ": " + std::strerror(errno));
  std::string text;
  try {
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  } catch (const std::exception&) {
    throw IoError(op + ": cannot read " + path + " (is it a directory?)");
  }
  if (in.bad()) throw IoError(op + ": reading " + path + " failed");
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) text.erase(0, 3);
  return text;
}

/// A 0-based column index written in decimal, or -1 when `spec` is not all digits; out of range
/// values (any count of digits) give `limit`.
std::int64_t column_index(const std::string& spec, std::int64_t limit) {
  if (spec.empty() ||
      !std::all_of(spec.begin(), spec.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return -1;
  }
  std::int64_t v = 0;
  for (const char c : spec) {
    v = v * 10 + (c - '0');
    if (v >= limit) return limit;
  }
  return v;
}

}  // namespace

Dataset load_csv(const std::string& path, const CsvOptions& options) {
  const std::string op = "warpfuse::nn::load_csv";
  if (options.delimiter == '"' || options.delimiter == '\n' || options.delimiter == '\r' ||
      options.delimiter == '\0') {
    throw InvalidArgument(op, "delimiter", "cannot be a quote, a line break or NUL");
  }
  const std::string text = read_text(op, path);
  CsvReader reader(path, text, options.delimiter);
  Record record;
  std::vector<std::string> header;
  std::vector<std::vector<float>> rows;
  std::size_t columns = 0;
  bool first = true;
  while (reader.next(record)) {
    if (record.cells.size() == 1 && record.cells[0].empty()) continue;  // a blank line
    if (first) {
      first = false;
      columns = record.cells.size();
      // automatic: a header only when no cell of the first record is empty or a number, so a
      // headerless file's first row is never dropped (a bad cell in it is reported below).
      bool header_line = options.header == CsvHeader::present;
      if (options.header == CsvHeader::automatic) {
        header_line = true;
        float unused = 0.0f;
        for (const auto& cell : record.cells) {
          const Cell kind = parse_cell(cell, &unused);
          if (kind != Cell::not_number) header_line = false;
        }
      }
      if (header_line) {
        header = record.cells;
        continue;
      }
    }
    if (record.cells.size() != columns) {
      csv_error(path, record.line,
                static_cast<std::int64_t>(std::min(record.cells.size(), columns) + 1),
                "ragged row: " + std::to_string(record.cells.size()) + " cells, expected " +
                    std::to_string(columns));
    }
    std::vector<float> values(columns);
    for (std::size_t c = 0; c < columns; ++c) {
      const std::string& cell = record.cells[c];
      const auto column = static_cast<std::int64_t>(c + 1);
      switch (parse_cell(cell, &values[c])) {
        case Cell::number:
          break;
        case Cell::empty:
          csv_error(path, record.line, column, "empty cell");
        case Cell::not_number:
          csv_error(path, record.line, column,
                    shown(cell) + " is not a number" +
                        (rows.empty() && header.empty() && options.header != CsvHeader::absent
                             ? " (if this line is a header, pass --header yes / "
                               "CsvHeader::present)"
                             : ""));
        case Cell::not_finite:
          csv_error(path, record.line, column, shown(cell) + " is NaN or infinite");
        case Cell::out_of_range:
          csv_error(path, record.line, column,
                    shown(cell) + " is outside the float range (about +-3.4e38)");
      }
    }
    rows.push_back(std::move(values));
  }
  if (rows.empty()) throw IoError(op + ": " + path + ": no data rows");
  if (columns < 2) {
    throw IoError(op + ": " + path + ": needs at least two columns (features and a label)");
  }

  std::size_t label = columns - 1;
  const std::string& spec = options.label_column;
  const auto count = static_cast<std::int64_t>(columns);
  const std::int64_t index = column_index(spec, count);
  if (spec.empty() || spec == "last") {
    label = columns - 1;
  } else if (index >= 0) {
    if (index >= count) {
      throw IoError(op + ": " + path + ": label column " + shown(spec) +
                    " is out of range (the file has " + std::to_string(columns) +
                    " columns, indexed from 0)");
    }
    label = static_cast<std::size_t>(index);
  } else {
    const auto it = std::find(header.begin(), header.end(), spec);
    if (it == header.end()) {
      throw IoError(op + ": " + path + ": no column named " + shown(spec) +
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
  // gzread reads plain files as they are, so one path handles both. The header is read first and
  // the data inflated only up to the size it announces (plus one byte to catch trailing data): a
  // small gzip bomb cannot make this allocate more than its header claims, and that claim is
  // checked against the machine's memory first.
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) fail(std::string("cannot open: ") + std::strerror(errno));
  struct Closer {
    gzFile f;
    ~Closer() { gzclose(f); }
  } closer{file};
  const auto read = [&](std::uint8_t* into, std::size_t want) -> std::size_t {
    std::size_t have = 0;
    while (have < want) {
      const auto ask = static_cast<unsigned>(std::min<std::size_t>(want - have, 1u << 30));
      const int got = gzread(file, into + have, ask);
      int status = Z_OK;
      const char* message = gzerror(file, &status);
      if (got < 0 || (status != Z_OK && status != Z_STREAM_END)) {
        fail("truncated or corrupt gzip stream (" +
             std::string(message != nullptr ? message : "?") + ")");
      }
      if (got == 0) break;
      have += static_cast<std::size_t>(got);
    }
    return have;
  };
  std::uint8_t magic[4] = {};
  const std::size_t magic_bytes = read(magic, 4);
  if (magic_bytes < 4) fail("truncated: " + std::to_string(magic_bytes) + " bytes");
  if (magic[0] != 0 || magic[1] != 0) fail("not an IDX file (bad magic)");
  std::size_t element = 0;
  switch (magic[2]) {
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
    default: {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned>(magic[2]));
      fail(std::string("unknown element type ") + hex +
           " (IDX has 0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E)");
    }
  }
  const int ndims = magic[3];
  if (ndims == 0) fail("no dimensions");
  std::vector<std::uint8_t> dim_bytes(4 * static_cast<std::size_t>(ndims));
  if (read(dim_bytes.data(), dim_bytes.size()) < dim_bytes.size()) fail("truncated header");
  const std::size_t header = 4 + dim_bytes.size();
  IdxArray a;
  std::uint64_t count = 1;
  for (int i = 0; i < ndims; ++i) {
    const std::uint8_t* p = dim_bytes.data() + 4 * i;
    const std::uint32_t dim = (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
                              (std::uint32_t{p[2]} << 8) | p[3];
    if (dim == 0) fail("dimension " + std::to_string(i) + " is 0");
    a.dims.push_back(dim);
    count *= dim;
    if (count > (std::uint64_t{1} << 40)) fail("dimensions too large");
  }
  // The bytes to inflate plus the floats to hold them, against physical memory.
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  const double memory = pages > 0 && page > 0 ? static_cast<double>(pages) * page : 1e300;
  if (static_cast<double>(count) * static_cast<double>(element + sizeof(float)) > memory) {
    fail("its header announces " + std::to_string(count) + " values, more than this machine's " +
         std::to_string(static_cast<long long>(memory / (1 << 20))) + " MiB hold");
  }
  // Grown as the data arrives (16 MiB at a time), so a short file that announces a large array
  // costs what it holds, not what it claims.
  const auto expected = static_cast<std::size_t>(count * element);
  std::vector<std::uint8_t> bytes;
  while (bytes.size() < expected) {
    const std::size_t before = bytes.size();
    bytes.resize(std::min(expected, before + (std::size_t{16} << 20)));
    const std::size_t got = read(bytes.data() + before, bytes.size() - before);
    if (before + got < bytes.size()) {
      fail("truncated: " + std::to_string(header + before + got) + " of " +
           std::to_string(header + expected) + " bytes");
    }
  }
  std::uint8_t extra = 0;
  if (read(&extra, 1) != 0) fail("corrupt: trailing bytes after the data");
  a.values.resize(count);
  const std::uint8_t* data = bytes.data();
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::uint8_t* p = data + i * element;
    std::uint64_t raw = 0;  // IDX is big-endian
    for (std::size_t b = 0; b < element; ++b) raw = (raw << 8) | p[b];
    switch (magic[2]) {
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
