// matmul with an explicit thread count (the forward pass passes its own).
// The public matmul(W, X, n_tok, Y) in model/forward.h uses omp_get_max_threads().
#pragma once
#include <functional>

#include "lowbit/tensor.h"

namespace lowbit {

// Y[n_tok, n_out] = X[n_tok, n_in] · W[n_out, n_in]^T; W f32 / f16 / bf16 or QUANT.
// n_threads: OpenMP threads over fixed row tiles (results bit-identical for any
// thread count), or, for products of >= 2^31 multiply-adds (prompts on big
// layers), OpenBLAS threads (last bits may vary with the thread count).
// See matmul.cpp.
void matmul(const TensorView& W, const float* X, int n_tok, float* Y, int n_threads);

// Row-to-f32 conversion: n values of one stored row at src into dst
// (f16/bf16 conversion, or a format's dequantize_row).
using RowConverter = void (*)(const void* src, float* dst, int64_t n);

// Y = X · W^T for W stored as n_out rows of row_stride bytes that `convert`
// expands to n_in floats: rows (or row panels) are converted into per-thread
// f32 buffers, then dotted / multiplied with BLAS in the regimes of matmul.cpp.
void matmul_converted(const void* W, size_t row_stride, int64_t n_out, int64_t n_in, RowConverter convert,
                      const float* X, int n_tok, float* Y, int n_threads);

// The same with rows produced by a callback: row_to_f32(r, dst) writes row r
// ([n_in] floats) of W into dst. Layers of model/qlinear.h use it.
using RowToF32 = std::function<void(int64_t row, float* dst)>;
void matmul_rows(int64_t n_out, int64_t n_in, const RowToF32& row_to_f32, const float* X, int n_tok, float* Y,
                 int n_threads);

// The same for W of dtype QUANT (matmul_quant.cpp), forwarded here by matmul():
//   n_tok <  kQuantSgemmMinTokens: activations quantized to the weight format's
//            dot_with format, one vec_dot per output element (as ggml computes);
//   n_tok >= kQuantSgemmMinTokens: weights dequantized to f32, then sgemm
//            (matmul_converted) on the unquantized activations.
// Bit-identical for any thread count, except in the threaded-BLAS regime.
inline constexpr int kQuantSgemmMinTokens = 16;
void matmul_quant(const TensorView& W, const float* X, int n_tok, float* Y, int n_threads);

// While alive, every matmul uses fixed tiles (never one threaded sgemm), so
// results are bit-identical at any thread count in every regime, at some cost
// in prompt-sized products. Calibration (methods/layer_pipeline.h) holds one,
// since its statistics decide quantized bytes. Process-wide; nests.
class ScopedFixedTileMatmul {
 public:
  ScopedFixedTileMatmul();
  ~ScopedFixedTileMatmul();
  ScopedFixedTileMatmul(const ScopedFixedTileMatmul&) = delete;
  ScopedFixedTileMatmul& operator=(const ScopedFixedTileMatmul&) = delete;
};

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
