// Y[n_tok, n_out] = X[n_tok, n_in] · W[n_out, n_in]^T for f32 / f16 / bf16 weights.
//
// f32:       W is used in place (a view into the mapped file): one cblas_sgemm,
//            or cblas_sgemv when n_tok == 1.
// f16, bf16: rows of W are converted to f32 on the fly.
//            Few tokens (n_tok < kPanelMinTokens, i.e. generation): each OpenMP
//              thread converts one row at a time into its own buffer [n_in] and
//              dots it with every X row; W is read exactly once.
//            Many tokens (prompt processing): W is walked in panels of rows; all
//              threads convert a panel [rows, n_in] into one shared f32 buffer,
//              then one multi-threaded sgemm computes Y[:, panel]. Each converted
//              weight is reused n_tok times, so the conversion cost is amortised.
//
// Threads: matmul uses as many threads as OpenBLAS is set to
// (openblas_set_num_threads; Runner sets it to its n_threads), for both its
// own OpenMP loops and the BLAS calls. No BLAS call happens inside an OpenMP
// parallel region (the pthread OpenBLAS must not be nested).
#include <cblas.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/half.h"
#include "lowbit/error.h"
#include "model/forward.h"

namespace lowbit {

namespace {

constexpr int kPanelMinTokens = 8;           // below this, row-by-row conversion + dots
constexpr int64_t kPanelFloats = 4 << 20;    // panel buffer: 16 MiB of f32

// ---- f16 / bf16 -> f32 row conversion ----------------------------------

__attribute__((target("avx,f16c"))) void f16_to_f32_row_f16c(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  for (; i < n; ++i) dst[i] = f16_to_f32(src[i]);
}

void f16_to_f32_row_scalar(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(src[i]);
}

void bf16_to_f32_row(const uint16_t* src, float* dst, int64_t n) {
  // bf16 is the top half of an f32: a shift (the compiler vectorises this loop).
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u = uint32_t(src[i]) << 16;
    std::memcpy(dst + i, &u, 4);
  }
}

using RowConverter = void (*)(const uint16_t*, float*, int64_t);

RowConverter row_converter(DType t) {
  if (t == DType::BF16) return bf16_to_f32_row;
  static const bool has_f16c = __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx");
  return has_f16c ? f16_to_f32_row_f16c : f16_to_f32_row_scalar;
}

inline float dot(const float* a, const float* b, int64_t n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

int blas_threads() { return std::max(1, openblas_get_num_threads()); }

// Few tokens: parallel over output rows; each thread converts a row into its
// own buffer and dots it with all n_tok activation rows.
void matmul_half_rows(const uint16_t* W, int64_t n_out, int64_t n_in, RowConverter convert, const float* X,
                      int n_tok, float* Y) {
  const int nt = blas_threads();
#pragma omp parallel num_threads(nt)
  {
    // Per-thread row buffer; OpenMP worker threads persist, so this allocates once per thread.
    thread_local std::vector<float> row;
    if (row.size() < size_t(n_in)) row.resize(size_t(n_in));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < n_out; ++r) {
      convert(W + r * n_in, row.data(), n_in);
      for (int t = 0; t < n_tok; ++t) Y[int64_t(t) * n_out + r] = dot(row.data(), X + int64_t(t) * n_in, n_in);
    }
  }
}

// Many tokens: panels of rows converted in parallel, then one sgemm per panel.
void matmul_half_panels(const uint16_t* W, int64_t n_out, int64_t n_in, RowConverter convert, const float* X,
                        int n_tok, float* Y) {
  const int nt = blas_threads();
  const int64_t panel_rows = std::clamp<int64_t>(kPanelFloats / n_in, 16, n_out);
  // Buffer of the calling thread: [panel_rows, n_in] f32. Grows once, reused across calls.
  thread_local std::vector<float> panel;
  if (panel.size() < size_t(panel_rows * n_in)) panel.resize(size_t(panel_rows * n_in));
  for (int64_t r0 = 0; r0 < n_out; r0 += panel_rows) {
    const int64_t rows = std::min(panel_rows, n_out - r0);
    float* P = panel.data();
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t r = 0; r < rows; ++r) convert(W + (r0 + r) * n_in, P + r * n_in, n_in);
    // Y[:, r0:r0+rows] = X [n_tok, n_in] · P[rows, n_in]^T   (ldc = n_out)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_tok, int(rows), int(n_in), 1.0f, X, int(n_in), P,
                int(n_in), 0.0f, Y + r0, int(n_out));
  }
}

}  // namespace

void matmul(const TensorView& W, const float* X, int n_tok, float* Y) {
  if (W.shape.size() != 2)
    fail(W.name, "matmul needs a 2-D weight, got shape " + W.shape_str(), "this is a bug in the caller");
  const int64_t n_out = W.shape[0], n_in = W.shape[1];
  LOWBIT_ASSERT(n_tok >= 0);
  if (n_tok == 0 || n_out == 0) return;
  switch (W.dtype) {
    case DType::F32: {
      const float* w = static_cast<const float*>(W.data);  // [n_out, n_in]
      if (n_tok == 1) {
        // y[n_out] = W[n_out, n_in] · x[n_in]
        cblas_sgemv(CblasRowMajor, CblasNoTrans, int(n_out), int(n_in), 1.0f, w, int(n_in), X, 1, 0.0f, Y, 1);
      } else {
        // Y[n_tok, n_out] = X[n_tok, n_in] · W^T
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_tok, int(n_out), int(n_in), 1.0f, X, int(n_in), w,
                    int(n_in), 0.0f, Y, int(n_out));
      }
      return;
    }
    case DType::F16:
    case DType::BF16: {
      LOWBIT_ASSERT(reinterpret_cast<uintptr_t>(W.data) % alignof(uint16_t) == 0);
      const auto* w = static_cast<const uint16_t*>(W.data);  // [n_out, n_in]
      RowConverter convert = row_converter(W.dtype);
      if (n_tok < kPanelMinTokens)
        matmul_half_rows(w, n_out, n_in, convert, X, n_tok, Y);
      else
        matmul_half_panels(w, n_out, n_in, convert, X, n_tok, Y);
      return;
    }
    default:
      fail(W.name, "matmul cannot use weights of type " + std::string(dtype_name(W.dtype)),
           "weights must be f32, f16 or bf16 (quantized formats go through their own kernels)");
  }
}

}  // namespace lowbit
