// warpfuse benchmarks — chunked linear + cross-entropy (include/warpfuse/linear_cross_entropy.h)
// against the unfused path, time and device memory.
//
// linear_cross_entropy/<dtype>/<impl>/<V>: loss (mean over int64 targets, a bias) and the
// gradients dhidden (fp32), dweight (fp32) and dbias (fp32) of logits = hidden W^T + b, hidden
// rows x d. Shapes (rows, d, V): (16384, 4096, 128256) (Llama 3's vocabulary: the issue's goal
// shape; 16-bit only) and (8192, 2048, 50257) (GPT-2's), every dtype; with the emulator's tiny
// settings (--min-mib below 1) (64, 32, 32) and (48, 16, 2048) in chunks of 16 and 20 rows.
// Implementations:
//   chunked  linear_cross_entropy with its default workspace (1024-row chunks): the logits never
//            exist beyond one chunk
//   chunked_<2n>  the same with chunks twice as long (2048 rows): half the passes over the fp32
//            dweight that each chunk's GEMM reads and writes (beta 1: 8 V d bytes per chunk, 4 GiB
//            at the goal shape), twice the workspace; the default chunk is tuned from the two
//   unfused  the same math as separate public ops: gemm into a rows x V logits tensor (the bias
//            first), cross_entropy with dlogits in place, gemm for dhidden, dweight and dbias
//            (PyTorch's F.linear + F.cross_entropy + autograd structure; compare_torch.py times
//            PyTorch itself when torch is installed)
// Counters besides the harness's: d, temp_mib (device memory beyond the inputs and outputs: the
// workspace, or the logits plus cross_entropy's workspace), peak_mib (everything the case holds:
// inputs, outputs and temp_mib; the cuBLAS workspace is the same 32 MiB for both and not counted),
// tflops (the three GEMMs' 6 rows d V flops per second). `bytes` is the inputs read and the outputs
// written once (hidden, W, bias, the fp32 gradients), so GBps is not a bandwidth figure here:
// compare median_us and peak_mib between the two implementations.
//
// Correctness before timing: chunked against unfused (both device paths made of tested ops) for
// the loss and the first and last rows of dhidden and dweight, within the dtype's tolerance.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "bench/bench_common.h"
#include "warpfuse/cross_entropy.h"
#include "warpfuse/gemm.h"
#include "warpfuse/linear_cross_entropy.h"
#include "warpfuse/memory.h"

namespace warpfuse::bench {
namespace {

struct Shape {
  std::int64_t rows, d, vocab;
  std::int64_t chunk;  // the chunked workspace's rows per chunk
};

std::vector<Shape> shapes() {
  if (config().min_bytes < (std::size_t{1} << 20)) return {{64, 32, 32, 16}, {48, 16, 2048, 20}};
  return {{16384, 4096, 128256, kLinearCrossEntropyDefaultChunkRows},
          {8192, 2048, 50257, kLinearCrossEntropyDefaultChunkRows}};
}

/// Targets in [0, V) from a fixed hash, every 17th row ignored (-100).
std::vector<std::int64_t> make_targets(std::int64_t rows, std::int64_t vocab) {
  std::vector<std::int64_t> t(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::uint64_t h = (static_cast<std::uint64_t>(r) + 1) * 0x9E3779B97F4A7C15ull;
    t[r] = r % 17 == 16 ? -100
                        : static_cast<std::int64_t>((h >> 17) % static_cast<std::uint64_t>(vocab));
  }
  return t;
}

double mib(std::size_t bytes) {
  return static_cast<double>(bytes) / (1024.0 * 1024.0);
}

template <class T>
void run_case(benchmark::State& state, const Shape& s, std::int64_t chunk) {
  const bool chunked = chunk > 0;
  const std::int64_t rows = s.rows, d = s.d, vocab = s.vocab;
  cudaStream_t st = stream();
  // Inputs and outputs: the same for both implementations.
  DeviceBuffer<T> hidden(static_cast<std::size_t>(rows * d)),
      weight(static_cast<std::size_t>(vocab * d)), bias(static_cast<std::size_t>(vocab));
  DeviceBuffer<std::int64_t> targets = to_device(make_targets(rows, vocab));
  DeviceBuffer<float> loss(1), dh(static_cast<std::size_t>(rows * d)),
      dw(static_cast<std::size_t>(vocab * d)), db(static_cast<std::size_t>(vocab));
  fill_uniform(hidden.data(), hidden.size(), -1.0f, 1.0f, 1);
  fill_uniform(weight.data(), weight.size(), -0.05f, 0.05f, 2);
  fill_uniform(bias.data(), bias.size(), -1.0f, 1.0f, 3);
  const std::size_t io_bytes = hidden.bytes() + weight.bytes() + bias.bytes() + targets.bytes() +
                               loss.bytes() + dh.bytes() + dw.bytes() + db.bytes();
  Blas blas;
  const MatrixView<const T> h(hidden.data(), rows, d), w(weight.data(), vocab, d);
  const VectorView<const T> b(bias.data(), vocab);
  const VectorView<const std::int64_t> t(targets.data(), rows);

  // The unfused path's buffers (also the reference of the chunked one's check).
  DeviceBuffer<T> ones =
      to_device(std::vector<T>(static_cast<std::size_t>(rows), from_float<T>(1.0f)));
  DeviceBuffer<unsigned char> ce_ws(cross_entropy_workspace_bytes(rows));
  std::size_t temp_bytes = 0;
  DeviceBuffer<T> logits;
  DeviceBuffer<unsigned char> chunk_ws;
  const auto unfused = [&](float* l, float* g_h, float* g_w, float* g_b) {
    const MatrixView<T> z(logits.data(), rows, vocab);
    gemm<T>(blas, false, false, 1.0f, MatrixView<const T>(ones.data(), rows, 1),
            MatrixView<const T>(bias.data(), 1, vocab), 0.0f, z, GemmPrecision::fp32, st);
    gemm<T>(blas, false, true, 1.0f, h, w, 1.0f, z, GemmPrecision::fp32, st);
    CrossEntropyOutputs<T> out;
    out.loss = VectorView<float>(l, 1);
    out.dlogits = z;
    cross_entropy(MatrixView<const T>(z), t, out, Workspace{ce_ws.data(), ce_ws.size()}, {}, {},
                  st);
    gemm<T>(blas, false, false, 1.0f, MatrixView<const T>(z), w, 0.0f,
            MatrixView<float>(g_h, rows, d), GemmPrecision::fp32, st);
    gemm<T>(blas, true, false, 1.0f, MatrixView<const T>(z), h, 0.0f,
            MatrixView<float>(g_w, vocab, d), GemmPrecision::fp32, st);
    gemm<T>(blas, true, false, 1.0f, MatrixView<const T>(ones.data(), rows, 1),
            MatrixView<const T>(z), 0.0f, MatrixView<float>(g_b, 1, vocab), GemmPrecision::fp32,
            st);
  };
  const auto fused = [&](float* l, float* g_h, float* g_w, float* g_b) {
    LinearCrossEntropyOutputs<T> out;
    out.loss = VectorView<float>(l, 1);
    out.dhidden = MatrixView<float>(g_h, rows, d);
    out.dweight = MatrixView<float>(g_w, vocab, d);
    out.dbias = VectorView<float>(g_b, vocab);
    linear_cross_entropy(blas, h, w, b, t, out, Workspace{chunk_ws.data(), chunk_ws.size()}, {}, {},
                         st);
  };

  // The check: both paths once, chunked against unfused. The unfused logits exist only here when
  // timing the chunked path (freed before timing).
  {
    chunk_ws = DeviceBuffer<unsigned char>(linear_cross_entropy_workspace_bytes(
        rows, vocab, dtype_of<T>(), chunked ? chunk : s.chunk));
    DeviceBuffer<float> l2(1), dh2(dh.size()), dw2(dw.size()), db2(db.size());
    {
      logits = DeviceBuffer<T>(static_cast<std::size_t>(rows * vocab));
      unfused(l2.data(), dh2.data(), dw2.data(), db2.data());
      if (chunked) logits = DeviceBuffer<T>();
    }
    poison(loss.data(), loss.bytes());
    poison(dh.data(), dh.bytes());
    poison(dw.data(), dw.bytes());
    fused(loss.data(), dh.data(), dw.data(), db.data());
    const std::vector<std::int64_t> checked{0, rows - 1};
    const Tolerance tol = tolerance_for<T>();
    std::string mismatch =
        compare_rows(copy_rows(loss.data(), 1, {0}), copy_rows(l2.data(), 1, {0}), 1, {0}, tol);
    if (mismatch.empty()) {
      mismatch = compare_rows(copy_rows(dh.data(), d, checked), copy_rows(dh2.data(), d, checked),
                              d, checked, tol);
    }
    if (mismatch.empty()) {
      const std::vector<std::int64_t> vocab_rows{0, vocab - 1};
      mismatch = compare_rows(copy_rows(dw.data(), d, vocab_rows),
                              copy_rows(dw2.data(), d, vocab_rows), d, vocab_rows, tol);
    }
    if (!mismatch.empty()) {
      state.SkipWithError(("chunked vs unfused: " + mismatch).c_str());
      return;
    }
    if (!chunked) chunk_ws = DeviceBuffer<unsigned char>();
  }
  temp_bytes = chunked ? chunk_ws.bytes() : logits.bytes() + ce_ws.bytes();
  state.counters["d"] = static_cast<double>(d);
  state.counters["temp_mib"] = mib(temp_bytes);
  state.counters["peak_mib"] = mib(io_bytes + temp_bytes);
  set_shape_counters(state, rows, vocab, 1, 2);
  const auto launch = [&](int) {
    if (chunked) {
      fused(loss.data(), dh.data(), dw.data(), db.data());
    } else {
      unfused(loss.data(), dh.data(), dw.data(), db.data());
    }
  };
  time_case(state, 1, static_cast<double>(io_bytes), launch);
  const double flops =
      6.0 * static_cast<double>(rows) * static_cast<double>(d) * static_cast<double>(vocab);
  state.counters["tflops"] = flops / (state.counters["median_us"] * 1e-6) / 1e12;
}

template <class T>
void register_dtype() {
  for (const Shape& s : shapes()) {
    // fp32 runs without tensor cores (cuBLAS's default math): at the goal shape one step would
    // take about a second, so fp32 times the smaller shape only.
    if (std::is_same_v<T, float> && s.rows * s.vocab > std::int64_t{1} << 30) continue;
    // chunked: the default chunk; chunked_<2n>: twice as many rows per chunk (half the dweight
    // accumulation passes, twice the workspace), to tune the default on a GPU.
    const std::pair<std::string, std::int64_t> impls[] = {
        {"chunked", s.chunk},
        {"chunked_" + std::to_string(2 * s.chunk), 2 * s.chunk},
        {"unfused", 0}};
    for (const auto& [impl, chunk] : impls) {
      add_case(case_name("linear_cross_entropy", dtype_of<T>(), impl, s.vocab),
               [s, chunk = chunk](benchmark::State& state) { run_case<T>(state, s, chunk); });
    }
  }
}

void register_cases() {
  register_dtype<float>();
  register_dtype<__half>();
  register_dtype<__nv_bfloat16>();
}

}  // namespace
}  // namespace warpfuse::bench

int main(int argc, char** argv) {
  return warpfuse::bench::bench_main(argc, argv, "linear_cross_entropy_bench",
                                     warpfuse::bench::register_cases);
}
