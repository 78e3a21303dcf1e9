#include "methods/input_stats.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "model/matmul.h"

namespace lowbit {

HessianAccumulator::HessianAccumulator(int64_t n_in, bool hessian)
    : n_in_(n_in), with_hessian_(hessian), sum_abs_(size_t(n_in)), sum_sq_(size_t(n_in)), max_abs_(size_t(n_in)) {
  if (with_hessian_) {
    xtx_.assign(size_t(n_in * n_in), 0.0);
    scratch_.resize(size_t(n_in * n_in));
  }
}

void HessianAccumulator::add(const float* X, int64_t n_tok) {
  const int64_t n = n_in_;
  for (int64_t t = 0; t < n_tok; ++t) {
    const float* x = X + t * n;
    for (int64_t i = 0; i < n; ++i) {
      const float a = std::fabs(x[i]);
      sum_abs_[size_t(i)] += a;
      sum_sq_[size_t(i)] += double(x[i]) * x[i];
      max_abs_[size_t(i)] = std::max(max_abs_[size_t(i)], a);
    }
  }
  n_tokens_ += n_tok;
  if (!with_hessian_) return;
  // Upper triangle of X^T X by row blocks: block b = X[:, i0:i1]^T X[:, i0:n], one
  // single-threaded sgemm per block, blocks spread over OpenMP threads. Each
  // value is computed by one fixed BLAS call, so H is identical at any thread
  // count (OpenBLAS's own threading partitions by thread count).
  constexpr int64_t kBlock = 128;
  const int64_t n_blocks = (n + kBlock - 1) / kBlock;
  ScopedBlasThreads single(1);
#pragma omp parallel for schedule(dynamic, 1) if (n_blocks > 1 && n * n * n_tok >= (int64_t(1) << 22))
  for (int64_t b = 0; b < n_blocks; ++b) {
    const int64_t i0 = b * kBlock, rows = std::min(kBlock, n - i0);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(rows), int(n - i0), int(n_tok), 1.0f, X + i0, int(n),
                X + i0, int(n), 0.0f, scratch_.data() + i0 * n + i0, int(n));
    for (int64_t i = i0; i < i0 + rows; ++i)
      for (int64_t j = i; j < n; ++j) xtx_[size_t(i * n + j)] += scratch_[size_t(i * n + j)];
  }
}

std::vector<double> HessianAccumulator::hessian() const {
  const int64_t n = n_in_;
  std::vector<double> H(size_t(n * n));
  const double f = n_tokens_ ? 2.0 / double(n_tokens_) : 0.0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i; j < n; ++j) H[size_t(i * n + j)] = H[size_t(j * n + i)] = f * xtx_[size_t(i * n + j)];
  return H;
}

std::vector<float> HessianAccumulator::mean_abs() const {
  std::vector<float> v(static_cast<size_t>(n_in_));
  for (int64_t i = 0; i < n_in_; ++i) v[size_t(i)] = n_tokens_ ? float(sum_abs_[size_t(i)] / double(n_tokens_)) : 0.0f;
  return v;
}

std::vector<float> HessianAccumulator::max_abs() const { return max_abs_; }

std::vector<float> HessianAccumulator::mean_sq() const {
  std::vector<float> v(static_cast<size_t>(n_in_));
  for (int64_t i = 0; i < n_in_; ++i) v[size_t(i)] = n_tokens_ ? float(sum_sq_[size_t(i)] / double(n_tokens_)) : 0.0f;
  return v;
}

}  // namespace lowbit
