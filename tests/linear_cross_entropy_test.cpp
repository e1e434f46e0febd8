// Tests of chunked linear + cross-entropy (include/warpfuse/linear_cross_entropy.h): every dtype
// and index type against the unfused composition in double (ref::linear_cross_entropy: a reference
// GEMM, the reference cross-entropy, the backward GEMMs, with the storage type's roundings of the
// logits and of dz), and against the device's own unfused path (gemm + cross_entropy + gemm) for
// awkward shapes: V = 50257, 33 and 1, rows not a multiple of the chunk, ignored rows, smoothing,
// class weights, z-loss, softcap and scale, every reduction, strided views, accumulation, the T
// copies, the chunk taken from the workspace, 0 rows, bad targets, CUDA Graph capture, and the
// typed errors. One body, in the emulated and the GPU binaries.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "test_util.h"
#include "warpfuse/cross_entropy.h"
#include "warpfuse/gemm.h"
#include "warpfuse/linear_cross_entropy.h"
#include "warpfuse/loss.h"
#include "warpfuse/ref/linear_cross_entropy.h"

namespace warpfuse::test {
namespace {

using ::testing::HasSubstr;

struct LinearCase {
  std::int64_t rows;
  std::int64_t d;
  std::int64_t vocab;
  std::int64_t chunk;  // options.chunk_rows
  bool bias = true;
  CrossEntropyReduction reduction = CrossEntropyReduction::mean;
  float smoothing = 0.0f;
  float z_loss = 0.0f;
  bool weights = false;
  int ignored_every = 0;
  float softcap = 0.0f;
  float logit_scale = 1.0f;
  bool strided = false;     // hidden, weight, dhidden and dweight with padded row strides
  bool accumulate = false;  // dweight and dbias start from earlier values
  bool extras = false;      // lse, z-loss term, correct, entropy
  bool copies = false;      // the T copies of the gradients
  RowStrategy strategy = RowStrategy::automatic;

  std::string name() const {
    return std::to_string(rows) + "x" + std::to_string(d) + " V " + std::to_string(vocab) +
           " chunk " + std::to_string(chunk) + (bias ? " bias" : "") + " " + to_string(reduction) +
           " smoothing " + std::to_string(smoothing) + " z " + std::to_string(z_loss) +
           (weights ? " weighted" : "") +
           (ignored_every ? " ignore/" + std::to_string(ignored_every) : "") + " cap " +
           std::to_string(softcap) + " scale " + std::to_string(logit_scale) +
           (strided ? " strided" : "") + (accumulate ? " accumulate" : "") +
           (extras ? " extras" : "") + (copies ? " copies" : "") + " " + to_string(strategy);
  }
};

template <class T>
double storage_round(double v) {
  return to_double(from_double<T>(v));
}

/// The per-dtype tolerance of the loss and the gradients against the double composition (which
/// rounds the logits and dz as T, so what is left is fp32 arithmetic and sum order; a logit or dz
/// whose fp32 value rounds to the neighbouring T value costs one T ulp of one term). Gradients are
/// compared relative to their largest magnitude.
template <class T>
Tolerance loss_tolerance() {
  return std::is_same_v<T, float> ? Tolerance{1e-5, 1e-5} : Tolerance{2e-4, 2e-4};
}
template <class T>
double gradient_tolerance() {
  return std::is_same_v<T, float> ? 1e-5 : (std::is_same_v<T, __half> ? 2e-3 : 1e-2);
}

std::vector<double> max_abs_scale(const std::vector<double>& v) {
  double m = 0.0;
  for (const double x : v) m = std::max(m, std::fabs(x));
  return std::vector<double>(v.size(), m);
}

/// A device matrix with row stride ld, and its dense host view.
template <class V>
std::vector<V> dense_rows(const std::vector<V>& strided, std::int64_t rows, std::int64_t cols,
                          std::int64_t ld) {
  std::vector<V> out(static_cast<std::size_t>(rows * cols));
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t c = 0; c < cols; ++c) out[r * cols + c] = strided[r * ld + c];
  }
  return out;
}

/// The problem's inputs, on the host (T values) and the device.
template <class T, class Index>
struct Problem {
  std::int64_t rows, d, vocab, ld_h, ld_w;
  std::vector<T> hidden, weight, bias;
  std::vector<std::int64_t> targets;
  std::vector<float> class_weight;
  DeviceBuffer<T> d_hidden, d_weight, d_bias;
  DeviceBuffer<Index> d_targets;
  DeviceBuffer<float> d_class_weight;

  Problem(const LinearCase& c, std::uint64_t seed)
      : rows(c.rows),
        d(c.d),
        vocab(c.vocab),
        ld_h(c.strided ? c.d + 5 : c.d),
        ld_w(c.strided ? c.d + 3 : c.d) {
    hidden = random_values<T>(static_cast<std::size_t>(std::max<std::int64_t>(rows, 1) * ld_h),
                              seed, -1.0, 1.0);
    weight = random_values<T>(static_cast<std::size_t>(vocab * ld_w), seed + 1, -0.6, 0.6);
    if (c.bias) bias = random_values<T>(static_cast<std::size_t>(vocab), seed + 2, -1.0, 1.0);
    targets.resize(static_cast<std::size_t>(rows));
    const auto draws = random_values<std::int64_t>(
        static_cast<std::size_t>(std::max<std::int64_t>(rows, 1)), seed + 3, 0, vocab - 1);
    for (std::int64_t r = 0; r < rows; ++r) {
      targets[r] = r == 0 ? 0 : (r == 1 ? vocab - 1 : draws[r]);
      if (c.ignored_every > 0 && r % c.ignored_every == c.ignored_every - 1) targets[r] = -100;
    }
    if (c.weights) {
      class_weight = random_values<float>(static_cast<std::size_t>(vocab), seed + 4, 0.5, 2.0);
    }
    d_hidden = to_device(hidden);
    d_weight = to_device(weight);
    d_bias = to_device(bias);
    d_targets = to_device(std::vector<Index>(targets.begin(), targets.end()));
    d_class_weight = to_device(class_weight);
  }
  MatrixView<const T> hidden_view() const {
    return MatrixView<const T>(d_hidden.data(), rows, d, ld_h);
  }
  MatrixView<const T> weight_view() const {
    return MatrixView<const T>(d_weight.data(), vocab, d, ld_w);
  }
  VectorView<const T> bias_view() const {
    return VectorView<const T>(d_bias.data(), static_cast<std::int64_t>(bias.size()));
  }
  VectorView<const Index> targets_view() const {
    return VectorView<const Index>(d_targets.data(), rows);
  }
  VectorView<const float> class_weight_view() const {
    return VectorView<const float>(d_class_weight.data(),
                                   static_cast<std::int64_t>(class_weight.size()));
  }
};

template <class T, class Index>
void check_linear(const LinearCase& c, std::uint64_t seed) {
  SCOPED_TRACE(c.name() + " " + type_name<T>() + " " + type_name<Index>());
  const Problem<T, Index> p(c, seed);
  const std::int64_t rows = c.rows, d = c.d, vocab = c.vocab;
  const std::int64_t ld_dh = c.strided ? d + 2 : d, ld_dw = c.strided ? d + 1 : d;
  const std::size_t loss_count = c.reduction == CrossEntropyReduction::none ? rows : 1;
  LinearCrossEntropyOptions options;
  options.cross_entropy = cross_entropy_options_of(c, 0.75f);
  options.chunk_rows = c.chunk;
  options.accumulate = c.accumulate;

  // Accumulation starts from these; otherwise the outputs start poisoned.
  const std::vector<float> dw_start =
      random_values<float>(static_cast<std::size_t>(vocab * ld_dw), seed + 5, -0.1, 0.1);
  const std::vector<float> db_start =
      random_values<float>(static_cast<std::size_t>(vocab), seed + 6, -0.1, 0.1);
  DeviceBuffer<float> loss = poisoned_buffer<float>(loss_count);
  DeviceBuffer<float> dh = poisoned_buffer<float>(static_cast<std::size_t>(rows * ld_dh));
  DeviceBuffer<float> dw = c.accumulate
                               ? to_device(dw_start)
                               : poisoned_buffer<float>(static_cast<std::size_t>(vocab * ld_dw));
  DeviceBuffer<float> db =
      c.accumulate ? to_device(db_start) : poisoned_buffer<float>(static_cast<std::size_t>(vocab));
  DeviceBuffer<T> dh_copy = poisoned_buffer<T>(static_cast<std::size_t>(rows * d));
  DeviceBuffer<T> dw_copy = poisoned_buffer<T>(static_cast<std::size_t>(vocab * d));
  DeviceBuffer<T> db_copy = poisoned_buffer<T>(static_cast<std::size_t>(vocab));
  DeviceBuffer<float> lse = poisoned_buffer<float>(rows), zterm = poisoned_buffer<float>(rows),
                      correct = poisoned_buffer<float>(rows),
                      entropy = poisoned_buffer<float>(rows);
  LinearCrossEntropyOutputs<T> out;
  out.loss = VectorView<float>(loss.data(), static_cast<std::int64_t>(loss_count));
  out.dhidden = MatrixView<float>(dh.data(), rows, d, ld_dh);
  out.dweight = MatrixView<float>(dw.data(), vocab, d, ld_dw);
  if (c.bias) out.dbias = db.vector();
  if (c.copies) {
    out.dhidden_copy = MatrixView<T>(dh_copy.data(), rows, d);
    out.dweight_copy = MatrixView<T>(dw_copy.data(), vocab, d);
    if (c.bias) out.dbias_copy = db_copy.vector();
  }
  if (c.extras) {
    out.logsumexp = lse.vector();
    out.z_loss_term = zterm.vector();
    out.correct = correct.vector();
    out.entropy = entropy.vector();
  }
  DeviceBuffer<unsigned char> workspace(
      linear_cross_entropy_workspace_bytes(rows, vocab, dtype_of<T>(), c.chunk));
  Blas blas;
  linear_cross_entropy(blas, p.hidden_view(), p.weight_view(), p.bias_view(), p.targets_view(), out,
                       Workspace{workspace.data(), workspace.size()}, options,
                       p.class_weight_view());
  WARPFUSE_CUDA_CHECK(cudaDeviceSynchronize());

  // The double composition, with T's roundings of the logits and dz.
  const std::vector<double> h64 = dense_rows(to_double(p.hidden), rows, d, p.ld_h);
  const std::vector<double> w64 = dense_rows(to_double(p.weight), vocab, d, p.ld_w);
  const std::vector<double> b64 = to_double(p.bias);
  const std::vector<double> cw64(p.class_weight.begin(), p.class_weight.end());
  ref::CrossEntropyParams params;
  params.label_smoothing = c.smoothing;
  params.z_loss = c.z_loss;
  params.weight = c.weights ? cw64.data() : nullptr;
  params.logit_softcap = c.softcap;
  params.logit_scale = c.logit_scale;
  const VectorView<const std::int64_t> targets_host(p.targets.data(), rows);
  double g = 0.75;
  if (c.reduction == CrossEntropyReduction::mean) {
    const double denominator = ref::cross_entropy_mean_denominator(targets_host, vocab, params);
    g = denominator > 0.0 ? 0.75 / denominator : 0.0;
  }
  std::vector<double> row_loss(rows), want_lse(rows), want_z(rows), want_correct(rows),
      want_entropy(rows), want_dh(rows * d), want_dw(vocab * d), want_db(vocab);
  ref::LinearCrossEntropyGrads grads;
  grads.dhidden = MatrixView<double>(want_dh.data(), rows, d);
  grads.dweight = MatrixView<double>(want_dw.data(), vocab, d);
  if (c.bias) grads.dbias = VectorView<double>(want_db.data(), vocab);
  ref::CrossEntropyRowExtras extras{VectorView<double>(want_z.data(), rows),
                                    VectorView<double>(want_correct.data(), rows),
                                    VectorView<double>(want_entropy.data(), rows)};
  ref::linear_cross_entropy(MatrixView<const double>(h64.data(), rows, d),
                            MatrixView<const double>(w64.data(), vocab, d),
                            VectorView<const double>(b64.data(), c.bias ? vocab : 0), targets_host,
                            params, g, VectorView<double>(row_loss.data(), rows), grads,
                            VectorView<double>(want_lse.data(), rows), extras, &storage_round<T>);
  std::vector<double> want_loss;
  if (c.reduction == CrossEntropyReduction::none) {
    want_loss = row_loss;
  } else {
    double sum = 0.0;
    for (const double v : row_loss) sum += v;
    if (c.reduction == CrossEntropyReduction::mean) {
      const double denominator = ref::cross_entropy_mean_denominator(targets_host, vocab, params);
      sum = denominator > 0.0 ? sum / denominator : 0.0;
    }
    want_loss = {sum};
  }
  if (c.accumulate) {
    for (std::int64_t v = 0; v < vocab; ++v) {
      for (std::int64_t k = 0; k < d; ++k) want_dw[v * d + k] += dw_start[v * ld_dw + k];
      want_db[v] += db_start[v];
    }
  }
  EXPECT_TRUE(all_close(loss.to_host(), want_loss, loss_tolerance<T>()));
  const Tolerance gtol{0.0, gradient_tolerance<T>()};
  const std::vector<float> got_dh = dense_rows(dh.to_host(), rows, d, ld_dh);
  const std::vector<float> got_dw = dense_rows(dw.to_host(), vocab, d, ld_dw);
  EXPECT_TRUE(all_close_scaled(got_dh, want_dh, max_abs_scale(want_dh), gtol, d)) << "dhidden";
  EXPECT_TRUE(all_close_scaled(got_dw, want_dw, max_abs_scale(want_dw), gtol, d)) << "dweight";
  // Nothing written between the rows of a strided gradient.
  if (c.strided) {
    EXPECT_EQ(written_outside(dh.to_host(), poisoned_host<float>(dh.size()), 0, rows, d, ld_dh),
              0u);
  }
  std::vector<float> got_db;
  if (c.bias) {
    got_db = db.to_host();
    EXPECT_TRUE(all_close_scaled(got_db, want_db, max_abs_scale(want_db), gtol)) << "dbias";
  }
  if (c.copies) {
    const auto rounded = [](const std::vector<float>& v) {
      std::vector<T> out(v.size());
      for (std::size_t i = 0; i < v.size(); ++i) out[i] = from_double<T>(v[i]);
      return out;
    };
    EXPECT_TRUE(bitwise_equal(dh_copy.to_host(), rounded(got_dh))) << "dhidden_copy";
    EXPECT_TRUE(bitwise_equal(dw_copy.to_host(), rounded(got_dw))) << "dweight_copy";
    if (c.bias) {
      EXPECT_TRUE(bitwise_equal(db_copy.to_host(), rounded(got_db))) << "dbias_copy";
    }
  }
  if (c.extras) {
    const Tolerance tol = loss_tolerance<T>();
    EXPECT_TRUE(all_close(lse.to_host(), want_lse, tol)) << "logsumexp";
    EXPECT_TRUE(all_close(zterm.to_host(), want_z, tol)) << "z_loss_term";
    EXPECT_TRUE(all_close(entropy.to_host(), want_entropy, Tolerance{1e-4, 1e-4})) << "entropy";
    EXPECT_TRUE(all_close(correct.to_host(), want_correct, Tolerance{0.0, 0.0})) << "correct";
  }
}

template <class T>
class LinearCrossEntropy : public DeviceTest {};
using Dtypes = ::testing::Types<float, __half, __nv_bfloat16>;
TYPED_TEST_SUITE(LinearCrossEntropy, Dtypes, );

// GPT-2's vocabulary in ragged chunks (8, 8, 5), a bias, ignored rows, the mean.
TYPED_TEST(LinearCrossEntropy, Vocab50257InRaggedChunks) {
  using T = TypeParam;
  LinearCase c{21, 24, 50257, 8};
  c.ignored_every = 5;
  check_linear<T, std::int64_t>(c, 100);
  c.bias = false;
  c.chunk = 0;  // the default chunk: every row at once
  c.extras = true;
  check_linear<T, std::int32_t>(c, 101);
}

// Every loss option, small and odd vocabularies, every reduction, strided views, accumulation,
// the copies.
TYPED_TEST(LinearCrossEntropy, EveryOptionOnAwkwardShapes) {
  using T = TypeParam;
  LinearCase c{29, 20, 33, 7};
  c.smoothing = 0.1f;
  c.weights = true;
  c.z_loss = 1e-3f;
  c.ignored_every = 4;
  c.extras = true;
  c.copies = true;
  for (const auto reduction :
       {CrossEntropyReduction::mean, CrossEntropyReduction::sum, CrossEntropyReduction::none}) {
    c.reduction = reduction;
    check_linear<T, std::int64_t>(c, 200 + static_cast<int>(reduction));
  }
  c.softcap = 2.0f;  // saturating: logits reach about +-4
  c.logit_scale = 1.5f;
  c.strided = true;
  c.accumulate = true;
  check_linear<T, std::int32_t>(c, 210);
  c.softcap = 0.0f;
  c.logit_scale = 0.5f;
  c.strategy = RowStrategy::online;
  check_linear<T, std::int64_t>(c, 211);
  // One class: every loss is 0 (or the z-loss), every gradient 0 without smoothing.
  LinearCase one{11, 8, 1, 5};
  one.reduction = CrossEntropyReduction::none;
  one.extras = true;
  one.copies = true;
  check_linear<T, std::int64_t>(one, 220);
  one.z_loss = 0.01f;
  one.reduction = CrossEntropyReduction::sum;
  check_linear<T, std::int32_t>(one, 221);
}

// The chunk comes from the workspace: a workspace sized for 8-row chunks with chunk_rows = 0.
TYPED_TEST(LinearCrossEntropy, ChunkFromTheWorkspace) {
  using T = TypeParam;
  const std::int64_t rows = 30, vocab = 1000, d = 16;
  const std::size_t bytes = linear_cross_entropy_workspace_bytes(rows, vocab, dtype_of<T>(), 8);
  EXPECT_EQ(linear_cross_entropy_chunk_rows(rows, vocab, dtype_of<T>(), bytes), 8);
  EXPECT_EQ(linear_cross_entropy_chunk_rows(rows, vocab, dtype_of<T>(), bytes, 3), 3);
  EXPECT_EQ(linear_cross_entropy_chunk_rows(rows, vocab, dtype_of<T>(), bytes - 1), 7);
  EXPECT_EQ(linear_cross_entropy_chunk_rows(rows, vocab, dtype_of<T>(), 256), 0);
  EXPECT_EQ(linear_cross_entropy_chunk_rows(
                rows, vocab, dtype_of<T>(),
                linear_cross_entropy_workspace_bytes(rows, vocab, dtype_of<T>())),
            rows);
  EXPECT_GE(linear_cross_entropy_workspace_bytes(16384, 128256, dtype_of<T>()),
            std::size_t{1024} * 128256 * sizeof(T));

  LinearCase c{rows, d, vocab, 0};
  const Problem<T, std::int32_t> p(c, 300);
  DeviceBuffer<float> loss = poisoned_buffer<float>(1), loss8 = poisoned_buffer<float>(1);
  DeviceBuffer<float> dh = poisoned_buffer<float>(rows * d), dh8 = poisoned_buffer<float>(rows * d);
  DeviceBuffer<unsigned char> small(bytes),
      whole(linear_cross_entropy_workspace_bytes(rows, vocab, dtype_of<T>()));
  Blas blas;
  LinearCrossEntropyOutputs<T> out;
  out.loss = loss8.vector();
  out.dhidden = MatrixView<float>(dh8.data(), rows, d);
  linear_cross_entropy(blas, p.hidden_view(), p.weight_view(), p.bias_view(), p.targets_view(), out,
                       Workspace{small.data(), small.size()});
  out.loss = loss.vector();
  out.dhidden = MatrixView<float>(dh.data(), rows, d);
  linear_cross_entropy(blas, p.hidden_view(), p.weight_view(), p.bias_view(), p.targets_view(), out,
                       Workspace{whole.data(), whole.size()});
  // The rows of each chunk are the same rows with the same math: the results agree to the GEMMs'
  // sum order (bitwise where the GEMM's order does not depend on the row count).
  const std::vector<float> l1 = loss.to_host(), l8 = loss8.to_host();
  EXPECT_NEAR(l1[0], l8[0], 1e-5 * (1.0 + std::fabs(l1[0])));
  const std::vector<float> g1 = dh.to_host();
  const std::vector<double> g8 = to_double(dh8.to_host());
  EXPECT_TRUE(all_close_scaled(g1, g8, max_abs_scale(g8), Tolerance{0.0, 1e-5}, d));
  // A workspace short of one row is refused, naming the workspace and the size needed.
  const std::string message = expect_invalid(
      [&] {
        linear_cross_entropy(blas, p.hidden_view(), p.weight_view(), p.bias_view(),
                             p.targets_view(), out, Workspace{small.data(), 512});
      },
      "linear_cross_entropy", "workspace");
  EXPECT_THAT(message, HasSubstr("one row"));
}

// Against the device's own unfused path: gemm into a rows x V logits tensor (+ bias), cross_entropy
// in place, gemm for dhidden and dweight.
TYPED_TEST(LinearCrossEntropy, MatchesTheUnfusedDevicePath) {
  using T = TypeParam;
  LinearCase c{21, 12, 777, 6};
  c.smoothing = 0.05f;
  c.ignored_every = 6;
  const Problem<T, std::int64_t> p(c, 400);
  const std::int64_t rows = c.rows, d = c.d, vocab = c.vocab;
  Blas blas;
  // Unfused.
  DeviceBuffer<T> ones =
      to_device(std::vector<T>(static_cast<std::size_t>(rows), from_double<T>(1.0)));
  DeviceBuffer<T> logits(static_cast<std::size_t>(rows * vocab));
  const MatrixView<T> z(logits.data(), rows, vocab);
  gemm<T>(blas, false, false, 1.0f, MatrixView<const T>(ones.data(), rows, 1),
          MatrixView<const T>(p.d_bias.data(), 1, vocab), 0.0f, z);
  gemm<T>(blas, false, true, 1.0f, p.hidden_view(), p.weight_view(), 1.0f, z);
  DeviceBuffer<float> u_loss = poisoned_buffer<float>(1);
  DeviceBuffer<unsigned char> ce_ws(cross_entropy_workspace_bytes(rows));
  CrossEntropyOutputs<T> ce_out;
  ce_out.loss = u_loss.vector();
  ce_out.dlogits = z;
  const CrossEntropyOptions ce = cross_entropy_options_of(c, 0.75f);
  cross_entropy(MatrixView<const T>(z), p.targets_view(), ce_out,
                Workspace{ce_ws.data(), ce_ws.size()}, ce);
  DeviceBuffer<float> u_dh = poisoned_buffer<float>(rows * d),
                      u_dw = poisoned_buffer<float>(vocab * d),
                      u_db = poisoned_buffer<float>(vocab);
  gemm<T>(blas, false, false, 1.0f, MatrixView<const T>(z), p.weight_view(), 0.0f,
          MatrixView<float>(u_dh.data(), rows, d));
  gemm<T>(blas, true, false, 1.0f, MatrixView<const T>(z), p.hidden_view(), 0.0f,
          MatrixView<float>(u_dw.data(), vocab, d));
  gemm<T>(blas, true, false, 1.0f, MatrixView<const T>(ones.data(), rows, 1),
          MatrixView<const T>(z), 0.0f, MatrixView<float>(u_db.data(), 1, vocab));
  // Chunked.
  DeviceBuffer<float> loss = poisoned_buffer<float>(1), dh = poisoned_buffer<float>(rows * d),
                      dw = poisoned_buffer<float>(vocab * d), db = poisoned_buffer<float>(vocab);
  DeviceBuffer<unsigned char> ws(
      linear_cross_entropy_workspace_bytes(rows, vocab, dtype_of<T>(), c.chunk));
  LinearCrossEntropyOutputs<T> out;
  out.loss = loss.vector();
  out.dhidden = MatrixView<float>(dh.data(), rows, d);
  out.dweight = MatrixView<float>(dw.data(), vocab, d);
  out.dbias = db.vector();
  LinearCrossEntropyOptions options;
  options.cross_entropy = ce;
  options.chunk_rows = c.chunk;
  linear_cross_entropy(blas, p.hidden_view(), p.weight_view(), p.bias_view(), p.targets_view(), out,
                       Workspace{ws.data(), ws.size()}, options);
  EXPECT_TRUE(all_close(loss.to_host(), to_double(u_loss.to_host()), Tolerance{1e-6, 1e-6}));
  const auto expect_same = [&](DeviceBuffer<float>& got, DeviceBuffer<float>& want,
                               const char* what, std::int64_t cols) {
    const std::vector<double> w = to_double(want.to_host());
    EXPECT_TRUE(all_close_scaled(got.to_host(), w, max_abs_scale(w), Tolerance{0.0, 1e-5}, cols))
        << what;
  };
  expect_same(dh, u_dh, "dhidden", d);
  expect_same(dw, u_dw, "dweight", d);
  expect_same(db, u_db, "dbias", 0);
}

// Forward only: no gradient output, no gradient; the loss and the extras as with gradients.
TYPED_TEST(LinearCrossEntropy, ForwardOnlyAndZeroRows) {
  using T = TypeParam;
  LinearCase c{13, 8, 300, 4};
  c.reduction = CrossEntropyReduction::none;
  const Problem<T, std::int64_t> p(c, 500);
  Blas blas;
  DeviceBuffer<unsigned char> ws(linear_cross_entropy_workspace_bytes(13, 300, dtype_of<T>(), 4));
  DeviceBuffer<float> loss = poisoned_buffer<float>(13), loss_grad = poisoned_buffer<float>(13);
  DeviceBuffer<float> dh = poisoned_buffer<float>(13 * 8);
  LinearCrossEntropyOptions options;
  options.cross_entropy.reduction = CrossEntropyReduction::none;
  options.chunk_rows = 4;
  LinearCrossEntropyOutputs<T> out;
  out.loss = loss.vector();
  linear_cross_entropy(blas, p.hidden_view(), p.weight_view(), p.bias_view(), p.targets_view(), out,
                       Workspace{ws.data(), ws.size()}, options);
  out.loss = loss_grad.vector();
  out.dhidden = MatrixView<float>(dh.data(), 13, 8);
  linear_cross_entropy(blas, p.hidden_view(), p.weight_view(), p.bias_view(), p.targets_view(), out,
                       Workspace{ws.data(), ws.size()}, options);
  EXPECT_TRUE(bitwise_equal(loss.to_host(), loss_grad.to_host()));

  // 0 rows: the mean is 0, the overwritten gradients are zero, accumulated ones keep their values.
  const MatrixView<const T> no_rows(p.d_hidden.data(), 0, 8);
  DeviceBuffer<float> mean = poisoned_buffer<float>(1), dw = poisoned_buffer<float>(300 * 8),
                      db = poisoned_buffer<float>(300);
  LinearCrossEntropyOutputs<T> empty;
  empty.loss = mean.vector();
  empty.dweight = MatrixView<float>(dw.data(), 300, 8);
  empty.dbias = db.vector();
  DeviceBuffer<unsigned char> ws0(linear_cross_entropy_workspace_bytes(0, 300, dtype_of<T>()));
  linear_cross_entropy(blas, no_rows, p.weight_view(), p.bias_view(),
                       VectorView<const std::int64_t>(p.d_targets.data(), 0), empty,
                       Workspace{ws0.data(), ws0.size()});
  EXPECT_EQ(mean.to_host()[0], 0.0f);
  EXPECT_TRUE(all_close(dw.to_host(), std::vector<double>(300 * 8, 0.0), Tolerance{0.0, 0.0}));
  EXPECT_TRUE(all_close(db.to_host(), std::vector<double>(300, 0.0), Tolerance{0.0, 0.0}));
  const std::vector<float> kept = random_values<float>(300, 501);
  DeviceBuffer<float> db_kept = to_device(kept);
  empty.dweight = {};
  empty.dbias = db_kept.vector();
  LinearCrossEntropyOptions accumulate;
  accumulate.accumulate = true;
  linear_cross_entropy(blas, no_rows, p.weight_view(), p.bias_view(),
                       VectorView<const std::int64_t>(p.d_targets.data(), 0), empty,
                       Workspace{ws0.data(), ws0.size()}, accumulate);
  EXPECT_TRUE(bitwise_equal(db_kept.to_host(), kept));
}

// A bad target in the second chunk: NaN loss for its row, a zero gradient row, and the status names
// the batch's row (not the chunk's).
TYPED_TEST(LinearCrossEntropy, BadTargetNamesTheBatchRow) {
  using T = TypeParam;
  LinearCase c{10, 8, 50, 4};
  Problem<T, std::int32_t> p(c, 600);
  std::vector<std::int32_t> targets(p.targets.begin(), p.targets.end());
  targets[6] = 50;
  p.d_targets = to_device(targets);
  Blas blas;
  DeviceBuffer<unsigned char> ws(linear_cross_entropy_workspace_bytes(10, 50, dtype_of<T>(), 4));
  DeviceBuffer<float> loss = poisoned_buffer<float>(10), dh = poisoned_buffer<float>(80);
  LinearCrossEntropyOptions options;
  options.cross_entropy.reduction = CrossEntropyReduction::none;
  options.chunk_rows = 4;
  LinearCrossEntropyOutputs<T> out;
  out.loss = loss.vector();
  out.dhidden = MatrixView<float>(dh.data(), 10, 8);
  const Workspace workspace{ws.data(), ws.size()};
  linear_cross_entropy(blas, p.hidden_view(), p.weight_view(), p.bias_view(), p.targets_view(), out,
                       workspace, options);
  const std::vector<float> l = loss.to_host(), g = dh.to_host();
  for (int r = 0; r < 10; ++r) EXPECT_EQ(std::isnan(l[r]), r == 6) << r;
  for (int k = 0; k < 8; ++k) EXPECT_EQ(g[6 * 8 + k], 0.0f);
  const LossStatus status = read_loss_status(workspace);
  EXPECT_EQ(status.bad_rows, 1);
  EXPECT_EQ(status.first_bad_row, 6);
  const std::string message =
      expect_invalid([&] { check_cross_entropy_targets(workspace, p.targets_view(), 50); },
                     "cross_entropy", "targets");
  EXPECT_THAT(message, HasSubstr("row 6 with target 50"));
}

// Captured into a CUDA Graph and replayed: the same loss and gradients as the direct call.
TYPED_TEST(LinearCrossEntropy, CapturedInAGraph) {
  using T = TypeParam;
  LinearCase c{19, 8, 130, 8};
  const Problem<T, std::int64_t> p(c, 700);
  Blas blas;
  DeviceBuffer<unsigned char> ws(linear_cross_entropy_workspace_bytes(19, 130, dtype_of<T>(), 8));
  DeviceBuffer<float> loss = poisoned_buffer<float>(1), dw = poisoned_buffer<float>(130 * 8);
  DeviceBuffer<float> loss2 = poisoned_buffer<float>(1), dw2 = poisoned_buffer<float>(130 * 8);
  LinearCrossEntropyOptions options;
  options.chunk_rows = 8;
  LinearCrossEntropyOutputs<T> out;
  out.loss = loss.vector();
  out.dweight = MatrixView<float>(dw.data(), 130, 8);
  linear_cross_entropy(blas, p.hidden_view(), p.weight_view(), p.bias_view(), p.targets_view(), out,
                       Workspace{ws.data(), ws.size()}, options);
  cudaStream_t stream = nullptr;
  WARPFUSE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  out.loss = loss2.vector();
  out.dweight = MatrixView<float>(dw2.data(), 130, 8);
  WARPFUSE_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  linear_cross_entropy(blas, p.hidden_view(), p.weight_view(), p.bias_view(), p.targets_view(), out,
                       Workspace{ws.data(), ws.size()}, options, {}, stream);
  WARPFUSE_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  WARPFUSE_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  for (int replay = 0; replay < 2; ++replay) {
    WARPFUSE_CUDA_CHECK(cudaGraphLaunch(exec, stream));
    WARPFUSE_CUDA_CHECK(cudaStreamSynchronize(stream));
    EXPECT_TRUE(bitwise_equal(loss2.to_host(), loss.to_host())) << replay;
    EXPECT_TRUE(bitwise_equal(dw2.to_host(), dw.to_host())) << replay;
  }
  WARPFUSE_CUDA_CHECK(cudaGraphExecDestroy(exec));
  WARPFUSE_CUDA_CHECK(cudaGraphDestroy(graph));
  WARPFUSE_CUDA_CHECK(cudaStreamDestroy(stream));
}

TYPED_TEST(LinearCrossEntropy, TypedErrors) {
  using T = TypeParam;
  LinearCase c{6, 4, 10, 0};
  const Problem<T, std::int64_t> p(c, 800);
  Blas blas;
  DeviceBuffer<unsigned char> ws(linear_cross_entropy_workspace_bytes(6, 10, dtype_of<T>()));
  DeviceBuffer<float> loss(1), dh(24), dw(40), db(10), rows_out(6);
  DeviceBuffer<T> copy(40);
  const Workspace workspace{ws.data(), ws.size()};
  const auto call = [&](LinearCrossEntropyOutputs<T> out, LinearCrossEntropyOptions options = {},
                        MatrixView<const T> hidden = {}, MatrixView<const T> weight = {},
                        VectorView<const T> bias = {}, bool no_bias = false) {
    if (hidden.data == nullptr) hidden = p.hidden_view();
    if (weight.data == nullptr) weight = p.weight_view();
    if (bias.data == nullptr && !no_bias) bias = p.bias_view();
    linear_cross_entropy(blas, hidden, weight, bias, p.targets_view(), out, workspace, options);
  };
  LinearCrossEntropyOutputs<T> base;
  base.loss = loss.vector();
  const std::string op = "linear_cross_entropy";
  expect_invalid([&] { call(base, {}, MatrixView<const T>(p.d_hidden.data(), 6, 3)); }, op,
                 "weight");
  expect_invalid([&] { call(base, {}, MatrixView<const T>(p.d_hidden.data(), 6, 0)); }, op,
                 "hidden");
  expect_invalid([&] { call(base, {}, {}, {}, VectorView<const T>(p.d_bias.data(), 9)); }, op,
                 "bias");
  expect_invalid([&] { call(base, {}, {}, MatrixView<const T>(p.d_weight.data(), 0, 4)); }, op,
                 "weight");
  {
    auto out = base;
    out.loss = rows_out.vector();  // mean writes 1 value
    expect_invalid([&] { call(out); }, op, "outputs.loss");
  }
  {
    auto out = base;
    out.dhidden = MatrixView<float>(dh.data(), 6, 3);
    expect_invalid([&] { call(out); }, op, "outputs.dhidden");
  }
  {
    auto out = base;
    out.dweight = MatrixView<float>(dw.data(), 4, 10);  // transposed
    expect_invalid([&] { call(out); }, op, "outputs.dweight");
  }
  {
    auto out = base;
    out.dbias = db.vector();
    expect_invalid([&] { call(out, {}, {}, {}, {}, true); }, op, "outputs.dbias");
  }
  {
    auto out = base;
    out.dweight_copy = MatrixView<T>(copy.data(), 10, 4);  // without dweight
    expect_invalid([&] { call(out); }, op, "outputs.dweight_copy");
  }
  {
    auto out = base;
    out.dweight = MatrixView<float>(dw.data(), 10, 4);
    out.dhidden = MatrixView<float>(dw.data() + 16, 6, 4);  // overlaps dweight
    expect_invalid([&] { call(out); }, op, "outputs.dhidden");
  }
  {
    auto out = base;
    out.entropy = VectorView<float>(rows_out.data(), 5);
    expect_invalid([&] { call(out); }, op, "outputs.entropy");
  }
  {
    auto out = base;
    out.loss =
        VectorView<float>(reinterpret_cast<float*>(ws.data()) + 64, 1);  // inside the workspace
    expect_invalid([&] { call(out); }, op, "outputs.loss");
  }
  {
    LinearCrossEntropyOptions options;
    options.chunk_rows = -1;
    expect_invalid([&] { call(base, options); }, op, "options.chunk_rows");
    options.chunk_rows = 0;
    options.cross_entropy.label_smoothing = 1.0f;
    expect_invalid([&] { call(base, options); }, op, "options.label_smoothing");
    options.cross_entropy.label_smoothing = 0.0f;
    options.cross_entropy.logit_softcap = -1.0f;
    expect_invalid([&] { call(base, options); }, op, "options.logit_softcap");
  }
  {
    // A forced strategy that cannot hold the row: Unsupported, naming the op.
    LinearCase wide{2, 4, 2000, 0};
    const Problem<T, std::int64_t> q(wide, 801);
    DeviceBuffer<unsigned char> wide_ws(
        linear_cross_entropy_workspace_bytes(2, 2000, dtype_of<T>()));
    LinearCrossEntropyOptions options;
    options.cross_entropy.strategy = RowStrategy::warp;
    LinearCrossEntropyOutputs<T> out = base;
    const std::string message = error_message(
        [&] {
          linear_cross_entropy(blas, q.hidden_view(), q.weight_view(), q.bias_view(),
                               q.targets_view(), out, Workspace{wide_ws.data(), wide_ws.size()},
                               options);
        },
        ErrorKind::unsupported);
    EXPECT_THAT(message, HasSubstr("linear_cross_entropy"));
  }
  expect_invalid([&] { linear_cross_entropy_workspace_bytes(-1, 10, dtype_of<T>()); },
                 "linear_cross_entropy_workspace_bytes", "rows");
  expect_invalid([&] { linear_cross_entropy_workspace_bytes(4, 0, dtype_of<T>()); },
                 "linear_cross_entropy_workspace_bytes", "vocab");
  expect_invalid(
      [&] { linear_cross_entropy_workspace_bytes(4, std::int64_t{1} << 62, dtype_of<T>(), 4); },
      "linear_cross_entropy_workspace_bytes", "vocab");
}

// The GEMM's own checks and results (the wrapper the trainer and linear_cross_entropy share).
TYPED_TEST(LinearCrossEntropy, GemmMatchesTheReferenceAndChecksItsArguments) {
  using T = TypeParam;
  Blas blas;
  const std::int64_t m = 7, n = 5, k = 9;
  for (const bool ta : {false, true}) {
    for (const bool tb : {false, true}) {
      SCOPED_TRACE(std::string(ta ? "A^T" : "A") + (tb ? " B^T" : " B"));
      const std::vector<T> a = random_values<T>(m * k, 900 + ta, -1.0, 1.0);
      const std::vector<T> b = random_values<T>(k * n, 910 + tb, -1.0, 1.0);
      const std::vector<float> c0 = random_values<float>(m * (n + 2), 920);
      DeviceBuffer<T> da = to_device(a), db = to_device(b);
      DeviceBuffer<float> dc = to_device(c0);
      DeviceBuffer<T> dct = poisoned_buffer<T>(m * n);
      const MatrixView<const T> av(da.data(), ta ? k : m, ta ? m : k);
      const MatrixView<const T> bv(db.data(), tb ? n : k, tb ? k : n);
      gemm<T>(blas, ta, tb, 0.5f, av, bv, 2.0f, MatrixView<float>(dc.data(), m, n, n + 2));
      gemm<T>(blas, ta, tb, 1.0f, av, bv, 0.0f, MatrixView<T>(dct.data(), m, n));
      std::vector<double> want(m * (n + 2)), want_t(m * n);
      for (std::int64_t i = 0; i < m; ++i) {
        for (std::int64_t j = 0; j < n + 2; ++j) {
          if (j >= n) {
            want[i * (n + 2) + j] = c0[i * (n + 2) + j];  // the padding is not written
            continue;
          }
          double s = 0.0;
          for (std::int64_t q = 0; q < k; ++q) {
            s += to_double(ta ? a[q * m + i] : a[i * k + q]) *
                 to_double(tb ? b[j * k + q] : b[q * n + j]);
          }
          want[i * (n + 2) + j] = 0.5 * s + 2.0 * c0[i * (n + 2) + j];
          want_t[i * n + j] = s;
        }
      }
      EXPECT_TRUE(all_close(dc.to_host(), want, Tolerance{1e-5, 1e-5}, n + 2));
      EXPECT_TRUE(all_close(dct.to_host(), rounded_to<T>(want_t), tolerance_for<T>(), n));
    }
  }
  DeviceBuffer<T> a(12), b(12);
  DeviceBuffer<float> c(16);
  expect_invalid(
      [&] {
        gemm<T>(blas, false, false, 1.0f, MatrixView<const T>(a.data(), 3, 4),
                MatrixView<const T>(b.data(), 3, 4), 0.0f, MatrixView<float>(c.data(), 3, 4));
      },
      "gemm", "b");
  expect_invalid(
      [&] {
        gemm<T>(blas, false, true, 1.0f, MatrixView<const T>(a.data(), 3, 4),
                MatrixView<const T>(b.data(), 3, 4), 0.0f, MatrixView<float>(c.data(), 4, 4));
      },
      "gemm", "c");
  expect_invalid(
      [&] {
        gemm<T>(blas, false, true, 1.0f, MatrixView<const T>(a.data(), 1, 2, std::int64_t{1} << 31),
                MatrixView<const T>(b.data(), 3, 2), 0.0f, MatrixView<float>(c.data(), 1, 3));
      },
      "gemm", "a");
}

}  // namespace
}  // namespace warpfuse::test
