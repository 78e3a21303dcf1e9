// Y[n_tok, n_out] = X[n_tok, n_in] · W[n_out, n_in]^T for f32 / f16 / bf16 weights,
// and for quantized weights in prompt-sized products (matmul_quant.cpp sends
// n_tok >= its threshold here with the format's dequantize_row as converter).
//
// Two regimes, chosen by the size of the product:
//
//   Tiled (n_out * n_in * n_tok < kBlasThreadedMinMacs: decoding, small models,
//     short prompts): the weight rows are cut into fixed tiles of kRowTile rows
//     that OpenMP threads take (schedule dynamic); OpenBLAS runs single-threaded
//     inside each tile, so only one thread pool is ever busy.
//       f32:       W used in place (a view into the mapped file): per tile one
//                  cblas_sgemv (n_tok == 1) or cblas_sgemm.
//       f16, bf16, quantized (matmul_converted):
//                  n_tok < kHalfRowDotMaxTokens: each row is converted into a
//                  per-thread buffer [n_in] (stays in L1/L2) and dotted with every
//                  X row, so W is read exactly once; otherwise a tile's rows are
//                  converted into a per-thread panel [kRowTile, n_in], then sgemm.
//     Tiles do not depend on the thread count: results are bit-identical for any
//     n_threads.
//
//   Threaded BLAS (large products: prompt processing on big layers): one
//     cblas_sgemm with OpenBLAS threaded over n_threads, which packs X once and
//     shares it between its threads (fixed tiles would each re-pack their X
//     slice: measured 40 against 66 GFLOP/s on 512 x 4096 x 4096, 2 threads).
//       f16, bf16: W is walked in panels of ~kHalfPanelFloats; OpenMP threads
//                  convert a panel to f32, then one threaded sgemm uses it.
//     OpenBLAS partitions by thread count, so the last bits can differ between
//     thread counts (results are deterministic for a fixed count).
//
// Why not OpenBLAS threads everywhere: its pthread pool and the forward pass's
// OpenMP loops then alternate quickly, and each pool's spin-waiting threads
// steal the cores the other needs. Measured (stories260K, 40 greedy tokens,
// 2 threads, busy 2-core machine): 1059 ms with threaded OpenBLAS next to the
// OpenMP loops, 19 ms with OMP_WAIT_POLICY=passive, 4-8 ms with one pool.
// The threshold keeps each threaded call long (milliseconds at 7B sizes), so
// the few pool switches per layer are noise there.
// OpenBLAS's thread count is set for each call and restored after.

#include <cblas.h>

#include <atomic>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/cpu_features.h"
#include "core/half.h"
#include "lowbit/error.h"
#include "model/qlinear.h"
#include "model/forward.h"
#include "model/matmul.h"

namespace lowbit {

namespace {

constexpr int64_t kBlasThreadedMinMacs = int64_t(1) << 31;  // from here on: one threaded sgemm
std::atomic<int> g_fixed_tiles{0};  // ScopedFixedTileMatmul instances alive
bool threaded_blas_allowed() { return g_fixed_tiles.load(std::memory_order_relaxed) == 0; }
constexpr int64_t kRowTile = 64;                // weight rows per task in the tiled regime
constexpr int kHalfRowDotMaxTokens = 16;        // f16/bf16 tiled: below this, row-by-row dots
constexpr int64_t kHalfPanelFloats = 8 << 20;   // f16/bf16 threaded: panel of 32 MiB of f32
constexpr int64_t kParallelMinMacs = 1 << 20;   // smaller products run on the calling thread (~100 us)

// ---- f16 / bf16 -> f32 row conversion ----------------------------------

__attribute__((target("avx,f16c"))) void f16_to_f32_row_f16c(const void* vsrc, float* dst, int64_t n) {
  const auto* src = static_cast<const uint16_t*>(vsrc);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  for (; i < n; ++i) dst[i] = f16_to_f32(src[i]);
}

void f16_to_f32_row_scalar(const void* vsrc, float* dst, int64_t n) {
  const auto* src = static_cast<const uint16_t*>(vsrc);
  for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(src[i]);
}

void bf16_to_f32_row(const void* vsrc, float* dst, int64_t n) {
  const auto* src = static_cast<const uint16_t*>(vsrc);
  // bf16 is the top half of an f32: a shift (the compiler vectorises this loop).
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u = uint32_t(src[i]) << 16;
    std::memcpy(dst + i, &u, 4);
  }
}

RowConverter row_converter(DType t) {
  if (t == DType::BF16) return bf16_to_f32_row;
  static const bool has_f16c = cpu_features().f16c;
  return has_f16c ? f16_to_f32_row_f16c : f16_to_f32_row_scalar;
}

inline float dot(const float* a, const float* b, int64_t n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

using BlasThreads = ScopedBlasThreads;

// Per-thread f32 scratch; OpenMP worker threads persist, so it grows once per thread.
float* thread_buffer(size_t n) {
  thread_local std::vector<float> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

// Y[n_tok, n_out] = X[n_tok, n_in] · W[n_out, n_in]^T, one BLAS call (ldc = ldy).
inline void blas_matmul(const float* X, int n_tok, int64_t n_in, const float* W, int64_t n_out, float* Y,
                        int64_t ldy) {
  if (n_tok == 1)
    cblas_sgemv(CblasRowMajor, CblasNoTrans, int(n_out), int(n_in), 1.0f, W, int(n_in), X, 1, 0.0f, Y, 1);
  else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_tok, int(n_out), int(n_in), 1.0f, X, int(n_in), W,
                int(n_in), 0.0f, Y, int(ldy));
}

void matmul_f32(const float* W, int64_t n_out, int64_t n_in, const float* X, int n_tok, float* Y, int nt) {
  const int64_t macs = n_out * n_in * n_tok;
  if (macs >= kBlasThreadedMinMacs && nt > 1 && threaded_blas_allowed()) {
    BlasThreads threads(nt);
    blas_matmul(X, n_tok, n_in, W, n_out, Y, n_out);
    return;
  }
  BlasThreads single(1);  // BLAS is called from inside the OpenMP loop below
  const int64_t n_tiles = (n_out + kRowTile - 1) / kRowTile;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) if (n_tiles > 1 && nt > 1 && macs >= kParallelMinMacs)
  for (int64_t tile = 0; tile < n_tiles; ++tile) {
    const int64_t r0 = tile * kRowTile, rows = std::min(kRowTile, n_out - r0);
    // Y[:, r0:r0+rows] = X · W[r0:r0+rows]^T
    blas_matmul(X, n_tok, n_in, W + r0 * n_in, rows, Y + r0, n_out);
  }
}

}  // namespace

void matmul_rows(int64_t n_out, int64_t n_in, const RowToF32& convert, const float* X, int n_tok, float* Y, int nt) {
  const int64_t macs = n_out * n_in * n_tok;
  if (macs >= kBlasThreadedMinMacs && nt > 1 && threaded_blas_allowed()) {
    // Panels of rows converted by all threads into one f32 buffer [panel_rows, n_in]
    // of the calling thread, then one threaded sgemm per panel.
    const int64_t panel_rows = std::clamp<int64_t>(kHalfPanelFloats / n_in, kRowTile, n_out);
    float* panel = thread_buffer(size_t(panel_rows * n_in));
    BlasThreads threads(nt);
    for (int64_t r0 = 0; r0 < n_out; r0 += panel_rows) {
      const int64_t rows = std::min(panel_rows, n_out - r0);
#pragma omp parallel for num_threads(nt) schedule(static)
      for (int64_t r = 0; r < rows; ++r) convert(r0 + r, panel + r * n_in);
      blas_matmul(X, n_tok, n_in, panel, rows, Y + r0, n_out);  // Y[:, r0:r0+rows] = X · panel^T
    }
    return;
  }
  BlasThreads single(1);  // BLAS is called from inside the OpenMP loop below
  const int64_t n_tiles = (n_out + kRowTile - 1) / kRowTile;
  const bool row_dots = n_tok < kHalfRowDotMaxTokens;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) if (n_tiles > 1 && nt > 1 && macs >= kParallelMinMacs)
  for (int64_t tile = 0; tile < n_tiles; ++tile) {
    const int64_t r0 = tile * kRowTile, rows = std::min(kRowTile, n_out - r0);
    if (row_dots) {
      // Convert one row at a time (buffer [n_in]) and dot it with each token.
      float* row = thread_buffer(size_t(n_in));
      for (int64_t r = r0; r < r0 + rows; ++r) {
        convert(r, row);
        for (int t = 0; t < n_tok; ++t) Y[int64_t(t) * n_out + r] = dot(row, X + int64_t(t) * n_in, n_in);
      }
    } else {
      // Convert the tile's rows (panel [rows, n_in]), then one single-threaded sgemm.
      float* panel = thread_buffer(size_t(kRowTile * n_in));
      for (int64_t r = 0; r < rows; ++r) convert(r0 + r, panel + r * n_in);
      blas_matmul(X, n_tok, n_in, panel, rows, Y + r0, n_out);
    }
  }
}

void matmul_converted(const void* vW, size_t row_stride, int64_t n_out, int64_t n_in, RowConverter convert,
                      const float* X, int n_tok, float* Y, int nt) {
  const auto* W = static_cast<const uint8_t*>(vW);
  matmul_rows(
      n_out, n_in, [&](int64_t r, float* dst) { convert(W + size_t(r) * row_stride, dst, n_in); }, X, n_tok, Y, nt);
}

ScopedFixedTileMatmul::ScopedFixedTileMatmul() { g_fixed_tiles.fetch_add(1); }
ScopedFixedTileMatmul::~ScopedFixedTileMatmul() { g_fixed_tiles.fetch_sub(1); }

ScopedBlasThreads::ScopedBlasThreads(int n) : prev_(openblas_get_num_threads()), changed_(prev_ != n) {
  if (changed_) openblas_set_num_threads(n);
}

ScopedBlasThreads::~ScopedBlasThreads() {
  if (changed_) openblas_set_num_threads(prev_);
}

void matmul(const TensorView& W, const float* X, int n_tok, float* Y, int n_threads) {
  if (W.shape.size() != 2)
    fail(W.name, "matmul needs a 2-D weight, got shape " + W.shape_str(), "this is a bug in the caller");
  const int64_t n_out = W.shape[0], n_in = W.shape[1];
  if (n_tok == 0 || n_out == 0) return;
  const int nt = std::max(1, n_threads);
  if (W.dtype == DType::QUANT) return matmul_quant(W, X, n_tok, Y, nt);
  if (W.dtype == DType::QLINEAR) {
    LOWBIT_ASSERT(W.qlinear && W.qlinear->n_out() == n_out && W.qlinear->n_in() == n_in);
    return W.qlinear->matmul(X, n_tok, Y, nt);
  }
  LOWBIT_ASSERT(n_tok >= 0 && size_t(n_out * n_in) * dtype_size(W.dtype) <= W.nbytes);
  switch (W.dtype) {
    case DType::F32:
      matmul_f32(static_cast<const float*>(W.data), n_out, n_in, X, n_tok, Y, nt);
      return;
    case DType::F16:
    case DType::BF16:
      LOWBIT_ASSERT(reinterpret_cast<uintptr_t>(W.data) % alignof(uint16_t) == 0);
      matmul_converted(W.data, size_t(n_in) * 2, n_out, n_in, row_converter(W.dtype), X, n_tok, Y, nt);
      return;
    default:
      fail(W.name, "matmul cannot use weights of type " + std::string(dtype_name(W.dtype)),
           "weights must be f32, f16 or bf16 (quantized formats go through their own kernels)");
  }
}

void matmul(const TensorView& W, const float* X, int n_tok, float* Y) {
  matmul(W, X, n_tok, Y, omp_get_max_threads());
}

}  // namespace lowbit
