// warpfuse::nn — data for the trainer: a host matrix, CSV and IDX (MNIST / Fashion-MNIST) loaders,
// standardisation, one-hot encoding and a train/test split.
//
// Every loader validates what it reads and throws warpfuse::IoError naming the file and, for CSV,
// the line and column of the first bad cell; nothing is silently skipped or coerced.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace warpfuse::nn {

/// A row-major float matrix on the host: rows are samples.
struct Matrix {
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::vector<float> data;

  Matrix() = default;
  Matrix(std::int64_t r, std::int64_t c, float value = 0.0f)
      : rows(r), cols(c), data(static_cast<std::size_t>(r * c), value) {}
  Matrix(std::int64_t r, std::int64_t c, std::vector<float> values);
  float& operator()(std::int64_t r, std::int64_t c) { return data[r * cols + c]; }
  float operator()(std::int64_t r, std::int64_t c) const { return data[r * cols + c]; }
  const float* row(std::int64_t r) const { return data.data() + r * cols; }
  bool empty() const { return rows == 0 || cols == 0; }
  /// Rows [begin, begin + count) as a new matrix.
  Matrix slice_rows(std::int64_t begin, std::int64_t count) const;
};

/// Features and labels (y has one column for class indices or a single regression target).
struct Dataset {
  Matrix x;
  Matrix y;
  std::vector<std::string> feature_names;  ///< from the CSV header, empty without one
  std::string label_name;
};

enum class CsvHeader { automatic, present, absent };

struct CsvOptions {
  /// automatic: the first record is a header when none of its cells is empty or a number (so a
  /// headerless file's first row is never dropped: a bad cell in it is an error that suggests
  /// CsvHeader::present); present / absent say so.
  CsvHeader header = CsvHeader::automatic;
  /// "last" (the default), a 0-based column index, or a header name.
  std::string label_column = "last";
  /// Any character but a quote, a line break or NUL (InvalidArgument otherwise).
  char delimiter = ',';
};

/// Reads a numeric CSV file (RFC 4180: fields may be quoted, with delimiters, line breaks and
/// doubled quotes inside; CRLF or LF line ends; a UTF-8 byte-order mark is dropped; blank lines
/// are skipped). Ragged rows, empty or non-numeric cells, NaN or infinite values, values outside
/// the float range, a quote inside an unquoted field, an unclosed quote, a missing or unreadable
/// file and an unknown label column throw IoError ("file:line:column: problem", cells shown to
/// 40 characters).
Dataset load_csv(const std::string& path, const CsvOptions& options = {});

/// An IDX array (the MNIST format): dimensions and values converted to float.
struct IdxArray {
  std::vector<std::int64_t> dims;
  std::vector<float> values;
};

/// Reads an IDX file, raw or gzip-compressed (detected from the content). Validates the magic
/// (0x0000 then the element type and the number of dimensions), that the dimensions are positive
/// and that the file holds exactly their product of elements; throws IoError otherwise.
IdxArray read_idx(const std::string& path);

/// Images (n x rows x cols, as n rows of rows*cols pixel values 0..255) and labels (n x 1).
Dataset load_idx(const std::string& images_path, const std::string& labels_path);

/// Per-feature standardisation (x - mean) / std, fitted on training data and applied to any data
/// (the test set uses the training statistics). Constant features get a scale of 1.
struct Standardizer {
  std::vector<float> mean;
  std::vector<float> scale;

  static Standardizer fit(const Matrix& x);
  void transform(Matrix& x) const;
};

/// One-hot rows from a column of class indices in [0, classes); throws InvalidArgument otherwise.
Matrix one_hot(const Matrix& labels, int classes);

/// Splits off the last `test_fraction` of the samples (after a seeded shuffle when `shuffle`).
std::pair<Dataset, Dataset> train_test_split(const Dataset& data, double test_fraction,
                                             std::uint64_t seed = 0, bool shuffle = true);

}  // namespace warpfuse::nn
