// matmul with an explicit thread count (the forward pass passes its own).
// The public matmul(W, X, n_tok, Y) in model/forward.h uses omp_get_max_threads().
#pragma once
#include "lowbit/tensor.h"

namespace lowbit {

// Y[n_tok, n_out] = X[n_tok, n_in] · W[n_out, n_in]^T; W f32 / f16 / bf16 or QUANT.
// n_threads: OpenMP threads over fixed row tiles (results bit-identical for any
// thread count), or, for products of >= 2^31 multiply-adds (prompts on big
// layers), OpenBLAS threads (last bits may vary with the thread count).
// See matmul.cpp.
void matmul(const TensorView& W, const float* X, int n_tok, float* Y, int n_threads);

// The same for W of dtype QUANT (matmul_quant.cpp): activations quantized to
// the weight format's dot_with format, one vec_dot per output element;
// bit-identical for any thread count. matmul() forwards QUANT weights here.
void matmul_quant(const TensorView& W, const float* X, int n_tok, float* Y, int n_threads);

// Sets OpenBLAS's thread count while alive and restores the previous one after.
// Use ScopedBlasThreads(1) around OpenMP regions that call BLAS: OpenBLAS's
// pthread pool must not be used from inside another pool's threads.
class ScopedBlasThreads {
 public:
  explicit ScopedBlasThreads(int n);
  ~ScopedBlasThreads();
  ScopedBlasThreads(const ScopedBlasThreads&) = delete;
  ScopedBlasThreads& operator=(const ScopedBlasThreads&) = delete;

 private:
  int prev_;
  bool changed_;
};

}  // namespace lowbit
