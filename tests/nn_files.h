// Test helpers for the trainer's file readers, shared by the CPU tests (nn_cpu_test.cpp), the
// bad-input tests (nn_input_test.cpp) and the fuzzer (fuzz/fuzz_readers.cpp): whole-file reads and
// writes, gzip, IDX headers, and resealing an edited checkpoint so its reader gets past the size
// field and the checksum to the field under test. No test framework needed.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace warpfuse::nn::test_files {

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Writes `bytes` gzipped (level 9) to `path`; false when the file cannot be created.
inline bool write_gzip(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb9");
  if (f == nullptr) return false;
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  return gzclose(f) == Z_OK;
}

/// An IDX header: magic 0 0, the element type, the dimension count, big-endian dimensions.
inline std::string idx_header(std::uint8_t type, const std::vector<std::uint32_t>& shape) {
  std::string s = {0, 0, static_cast<char>(type), static_cast<char>(shape.size())};
  for (const std::uint32_t d : shape) {
    for (int b = 3; b >= 0; --b) s.push_back(static_cast<char>((d >> (8 * b)) & 0xff));
  }
  return s;
}

/// Rewrites a checkpoint's size field (bytes 8-15) and trailing FNV-1a checksum after a test or
/// the fuzzer edited `bytes`.
inline void reseal(std::string& bytes) {
  if (bytes.size() < 28) return;
  const std::uint64_t size = bytes.size();
  std::memcpy(&bytes[8], &size, 8);
  std::uint64_t hash = 0xcbf29ce484222325ull;
  for (std::size_t i = 0; i + 8 < bytes.size(); ++i) {
    hash ^= static_cast<std::uint8_t>(bytes[i]);
    hash *= 0x100000001b3ull;
  }
  std::memcpy(&bytes[bytes.size() - 8], &hash, 8);
}

}  // namespace warpfuse::nn::test_files
