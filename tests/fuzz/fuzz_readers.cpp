// Mutation fuzzer for the trainer's file readers: nn::load_csv, nn::read_idx and
// nn::Sequential::load (checkpoints).
//
//   warpfuse_fuzz csv|idx|checkpoint [--seconds S] [--seed N] [--max-bytes B] [--out DIR]
//
// Starts from valid seed files built here (quoted and CRLF CSV with and without a BOM, raw and
// gzipped IDX of every element type, checkpoints with and without optimizer state and
// standardizer), and mutates them for S seconds (default 10): bit flips, interesting bytes and
// integers (0, -1, 2^31, 2^62, ...) over 1, 2, 4 and 8 bytes, inserted, deleted, duplicated and
// spliced ranges, truncation; a checkpoint is resealed (size field and checksum rewritten) half
// of the time so that mutations reach the fields behind the checksum. Every input is written to a
// file and read. A warpfuse::Error (the readers' contract for bad files) is expected; any other
// exception is a finding: the input is written to DIR/finding-<n>.bin and the program exits 1.
// Crashes, leaks and undefined behaviour are what the ASan + UBSan build (the asan preset) adds.
// ctest runs each reader for a minute under ASan + UBSan and a few seconds in the default build;
// run it longer by hand: build-asan/tests/warpfuse_fuzz csv --seconds 3600.
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "warpfuse/error.h"
#include "nn_files.h"
#include "warpfuse/nn/nn.h"

namespace nn = warpfuse::nn;

namespace {

using Bytes = std::string;
using warpfuse::nn::test_files::idx_header;
using warpfuse::nn::test_files::read_file;
using warpfuse::nn::test_files::reseal;
using warpfuse::nn::test_files::write_file;
using warpfuse::nn::test_files::write_gzip;

Bytes gzip(const std::string& scratch, const Bytes& bytes) {
  const std::string path = scratch + ".gz";
  if (!write_gzip(path, bytes)) throw std::runtime_error("cannot write " + path);
  Bytes out = read_file(path);
  std::remove(path.c_str());
  return out;
}

Bytes idx(std::uint8_t type, const std::vector<std::uint32_t>& shape, std::size_t element) {
  Bytes s = idx_header(type, shape);
  std::size_t count = 1;
  for (const std::uint32_t d : shape) count *= d;
  for (std::size_t i = 0; i < count * element; ++i) s.push_back(static_cast<char>(i * 37 % 251));
  return s;
}

std::vector<Bytes> seeds(const std::string& reader, const std::string& scratch) {
  std::vector<Bytes> s;
  if (reader == "csv") {
    s.push_back("a,b,label\n1,2,0\n3.5,-4e2,1\n");
    s.push_back("\xEF\xBB\xBF\"x, y\",\"q\"\"uote\",label\r\n\"1\",2,0\r\n3,\"4\",1\r\n");
    s.push_back("1;2;0\n3;4;1\n\n5;6;2\n");
    s.push_back("1\t2\t0\n3\t4\t1\n");
    s.push_back("\"f\n0\",f1,f2,y\n0.1,0.2,0.3,1\n\"1\",1,2,0\n");
    return s;
  }
  if (reader == "idx") {
    s.push_back(idx(0x08, {3, 2, 2}, 1));
    s.push_back(idx(0x09, {4}, 1));
    s.push_back(idx(0x0B, {2, 3}, 2));
    s.push_back(idx(0x0C, {2, 2}, 4));
    s.push_back(idx(0x0D, {5}, 4));
    s.push_back(idx(0x0E, {1, 3}, 8));
    s.push_back(gzip(scratch, idx(0x08, {2, 4, 4}, 1)));
    s.push_back(gzip(scratch, idx(0x0D, {6}, 4)));
    return s;
  }
  // checkpoints: with and without optimizer state, a standardizer, PReLU and no-bias layers.
  for (int variant = 0; variant < 3; ++variant) {
    nn::Sequential model;
    model.add(nn::Dense(3, variant == 1 ? "prelu" : "relu", 2));
    nn::Dense out(2, "softmax");
    out.use_bias = variant != 2;
    model.add(out);
    model.compile(variant == 0 ? nn::Adam() : nn::SGD(0.1f, 0.9f),
                  "sparse_categorical_crossentropy", {"accuracy"}, nn::Device::cpu, 1);
    if (variant == 1) {
      nn::Standardizer st;
      st.mean = {0.5f, -1.0f};
      st.scale = {2.0f, 0.25f};
      model.set_standardizer(st);
    }
    model.save(scratch, variant != 2);
    s.push_back(read_file(scratch));
  }
  return s;
}

class Mutator {
 public:
  explicit Mutator(std::uint64_t seed) : rng_(seed) {}

  Bytes mutate(Bytes b, const std::vector<Bytes>& pool, std::size_t max_bytes) {
    const int rounds = 1 + static_cast<int>(below(4));
    for (int r = 0; r < rounds; ++r) step(b, pool);
    if (b.size() > max_bytes) b.resize(max_bytes);
    return b;
  }
  std::uint64_t below(std::uint64_t n) { return n == 0 ? 0 : rng_() % n; }

 private:
  void step(Bytes& b, const std::vector<Bytes>& pool) {
    static const std::uint64_t interesting[] = {0,
                                                1,
                                                0x7f,
                                                0x80,
                                                0xff,
                                                0x7fff,
                                                0xffff,
                                                0x7fffffff,
                                                0x80000000,
                                                0xffffffff,
                                                std::uint64_t{1} << 32,
                                                std::uint64_t{1} << 40,
                                                std::uint64_t{1} << 62,
                                                ~std::uint64_t{0},
                                                0x7fffffffffffffff};
    static const char* tokens[] = {
        ",", "\"", "\"\"", "\n", "\r\n", "\xEF\xBB\xBF",        "nan", "inf", "1e308",
        "-", "e",  ".",    ";",  "\t",   "99999999999999999999"};
    const std::size_t n = b.size();
    switch (below(9)) {
      case 0:  // flip a bit
        if (n > 0) b[below(n)] ^= static_cast<char>(1u << below(8));
        break;
      case 1:  // an interesting integer over 1, 2, 4 or 8 bytes
        if (n > 0) {
          const std::size_t width = std::size_t{1} << below(4);
          const std::uint64_t v = interesting[below(std::size(interesting))];
          const std::size_t at = below(n);
          for (std::size_t i = 0; i < width && at + i < n; ++i) {
            b[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
          }
        }
        break;
      case 2:  // a random byte
        if (n > 0) b[below(n)] = static_cast<char>(below(256));
        break;
      case 3:  // insert random bytes
        b.insert(below(n + 1), Bytes(1 + below(8), static_cast<char>(below(256))));
        break;
      case 4:  // delete a range
        if (n > 0) {
          const std::size_t at = below(n);
          b.erase(at, 1 + below(std::min<std::size_t>(n - at, 64)));
        }
        break;
      case 5:  // duplicate a range
        if (n > 0) {
          const std::size_t at = below(n);
          const Bytes piece = b.substr(at, 1 + below(std::min<std::size_t>(n - at, 256)));
          b.insert(below(n + 1), piece);
        }
        break;
      case 6:  // splice another seed
        if (!pool.empty()) {
          const Bytes& other = pool[below(pool.size())];
          if (!other.empty()) {
            const std::size_t from = below(other.size());
            b = b.substr(0, below(n + 1)) + other.substr(from);
          }
        }
        break;
      case 7:  // truncate
        if (n > 0) b.resize(below(n));
        break;
      default:  // a token that matters to a text format
        b.insert(below(n + 1), tokens[below(std::size(tokens))]);
        break;
    }
  }

  std::mt19937_64 rng_;
};

// Reads `path` with the reader (CSV options drawn at random, or, for a seed, the ones it was
// written with); throws what the reader throws.
void read_with(const std::string& reader, const std::string& path, Mutator& m,
               const Bytes* seed = nullptr) {
  if (reader == "csv") {
    nn::CsvOptions options;
    if (seed != nullptr) {
      options.delimiter = seed->find(';') != Bytes::npos    ? ';'
                          : seed->find('\t') != Bytes::npos ? '\t'
                                                            : ',';
    } else {
      const char delimiters[] = {',', ';', '\t', ' '};
      options.delimiter = delimiters[m.below(4)];
      options.header = static_cast<nn::CsvHeader>(m.below(3));
      const char* labels[] = {"last", "0", "1", "label", "99999999999999999999999"};
      options.label_column = labels[m.below(5)];
    }
    const nn::Dataset d = nn::load_csv(path, options);
    if (d.x.rows != d.y.rows) throw std::logic_error("rows of x and y differ");
  } else if (reader == "idx") {
    const nn::IdxArray a = nn::read_idx(path);
    std::uint64_t count = 1;
    for (const std::int64_t d : a.dims) count *= static_cast<std::uint64_t>(d);
    if (count != a.values.size()) throw std::logic_error("dims and values disagree");
  } else {
    nn::Sequential model = nn::Sequential::load(path, nn::Device::cpu);
    // A model that loads must also run.
    const nn::Matrix out = model.predict(nn::Matrix(2, model.input_dim(), 0.5f));
    if (out.cols != model.output_dim()) throw std::logic_error("predict has the wrong width");
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: warpfuse_fuzz csv|idx|checkpoint [--seconds S] [--seed N] "
                 "[--max-bytes B] [--out DIR]\n";
    return 2;
  }
  const std::string reader = argv[1];
  if (reader != "csv" && reader != "idx" && reader != "checkpoint") {
    std::cerr << "warpfuse_fuzz: unknown reader '" << reader << "'\n";
    return 2;
  }
  double seconds = 10.0;
  std::uint64_t seed = 20261206;
  std::size_t max_bytes = 1 << 16;
  std::string out_dir = ".";
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--seconds") {
      seconds = std::stod(argv[i + 1]);
    } else if (flag == "--seed") {
      seed = std::stoull(argv[i + 1]);
    } else if (flag == "--max-bytes") {
      max_bytes = std::stoull(argv[i + 1]);
    } else if (flag == "--out") {
      out_dir = argv[i + 1];
    } else {
      std::cerr << "warpfuse_fuzz: unknown flag '" << flag << "'\n";
      return 2;
    }
  }
  const std::string scratch =
      "/tmp/warpfuse_fuzz_" + reader + "_" + std::to_string(getpid()) + ".bin";
  const std::vector<Bytes> pool = seeds(reader, scratch);
  Mutator mutator(seed);
  // The seeds themselves must read cleanly.
  for (const Bytes& s : pool) {
    write_file(scratch, s);
    read_with(reader, scratch, mutator, &s);
  }
  const auto start = std::chrono::steady_clock::now();
  std::uint64_t runs = 0, accepted = 0;
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() <
         seconds) {
    Bytes input = mutator.mutate(pool[mutator.below(pool.size())], pool, max_bytes);
    if (reader == "checkpoint" && mutator.below(2) == 0) reseal(input);
    write_file(scratch, input);
    ++runs;
    try {
      read_with(reader, scratch, mutator);
      ++accepted;
    } catch (const warpfuse::Error&) {
      // the contract: a clear, typed error
    } catch (const std::exception& e) {
      const std::string finding =
          out_dir + "/finding-" + reader + "-" + std::to_string(runs) + ".bin";
      write_file(finding, input);
      std::cerr << "warpfuse_fuzz: " << reader << ": input " << runs << " threw " << e.what()
                << " (not a warpfuse::Error); saved to " << finding << "\n";
      std::remove(scratch.c_str());
      return 1;
    }
  }
  std::remove(scratch.c_str());
  std::cout << "warpfuse_fuzz " << reader << ": " << runs << " inputs in " << seconds << " s, "
            << accepted << " accepted, the rest refused with warpfuse::Error; no finding\n";
  return runs > 0 ? 0 : 1;
}
