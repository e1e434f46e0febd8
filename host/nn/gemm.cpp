// warpfuse::nn internals — the GEMM wrapper (gemm.h).
#include "host/nn/gemm.h"

namespace warpfuse::nn::detail {

void Gemm::operator()(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                      float alpha, const float* a, std::int64_t lda, const float* b,
                      std::int64_t ldb, float beta, float* c, std::int64_t ldc,
                      MatmulPrecision precision) {
  // The operands as stored: op(A) = A^T when trans_a, so A itself is k x m.
  const MatrixView<const float> a_view(a, trans_a ? k : m, trans_a ? m : k, lda);
  const MatrixView<const float> b_view(b, trans_b ? n : k, trans_b ? k : n, ldb);
  gemm<float>(blas_, trans_a, trans_b, alpha, a_view, b_view, beta, MatrixView<float>(c, m, n, ldc),
              precision, stream_);
}

}  // namespace warpfuse::nn::detail
