// Y[n_tok, n_out] = X[n_tok, n_in] · W[n_out, n_in]^T for f32 / f16 / bf16 weights.
//
// One thread pool: the work is cut into fixed tiles that OpenMP threads take
// (schedule dynamic), each tile computed by a single-threaded OpenBLAS call.
// Mixing OpenBLAS's own pthread pool with the forward pass's OpenMP loops makes
// the two pools' spin-waiting threads fight over the cores (measured: 50x
// slower decoding on a loaded 2-core machine), and OpenBLAS's thread-count-
// dependent partitioning would make results depend on the thread count. Tiles
// here do not depend on n_threads, so results are bit-identical for any count.
//
// Tiles: kRowTile weight rows x kTokTile tokens.
//   f32:       W is used in place (a view into the mapped file): per tile one
//              cblas_sgemm, or cblas_sgemv when n_tok == 1.
//   f16, bf16: rows are converted to f32 on the fly, in per-thread buffers.
//              Few tokens (n_tok < kHalfPanelMinTokens, i.e. generation): each
//                row is converted into a [n_in] buffer (stays in L1/L2) and dotted
//                with every X row; W is read exactly once.
//              Many tokens (prompt processing): a task converts its kRowTile-row
//                panel [kRowTile, n_in] once, then runs one sgemm per token tile.
//
// OpenBLAS is switched to one thread for the duration (and restored after);
// Runner does this once per forward() so matmul finds it already so.

#include <cblas.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/half.h"
#include "lowbit/error.h"
#include "model/forward.h"
#include "model/matmul.h"

namespace lowbit {

namespace {

constexpr int64_t kRowTile = 128;         // weight rows per task
constexpr int kTokTile = 256;             // activation rows per sgemm call
constexpr int kHalfPanelMinTokens = 8;    // f16/bf16: below this, row-by-row conversion + dots
constexpr int64_t kParallelMinMacs = 1 << 17;  // smaller products run on the calling thread

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

// Makes OpenBLAS single-threaded while alive (tiles are parallelised by OpenMP).
class BlasSingleThread {
 public:
  BlasSingleThread() : prev_(openblas_get_num_threads()) {
    if (prev_ != 1) openblas_set_num_threads(1);
  }
  ~BlasSingleThread() {
    if (prev_ != 1) openblas_set_num_threads(prev_);
  }
  BlasSingleThread(const BlasSingleThread&) = delete;
  BlasSingleThread& operator=(const BlasSingleThread&) = delete;

 private:
  int prev_;
};

// Per-thread f32 scratch; OpenMP worker threads persist, so it grows once per thread.
float* thread_buffer(size_t n) {
  thread_local std::vector<float> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

// Y[t0:t0+nt_, r0:r0+rows] = X[t0:t0+nt_, :] · W[r0:r0+rows, :]^T   (ldc = n_out)
inline void sgemm_tile(const float* X, int n_tok, int64_t n_in, const float* W, int64_t rows, int64_t n_out, float* Y) {
  if (n_tok == 1)
    cblas_sgemv(CblasRowMajor, CblasNoTrans, int(rows), int(n_in), 1.0f, W, int(n_in), X, 1, 0.0f, Y, 1);
  else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_tok, int(rows), int(n_in), 1.0f, X, int(n_in), W,
                int(n_in), 0.0f, Y, int(n_out));
}

void matmul_f32(const float* W, int64_t n_out, int64_t n_in, const float* X, int n_tok, float* Y, int nt) {
  const int64_t row_tiles = (n_out + kRowTile - 1) / kRowTile;
  const int64_t tok_tiles = (n_tok + kTokTile - 1) / kTokTile;
  const int64_t n_tasks = row_tiles * tok_tiles;
  const bool parallel = n_tasks > 1 && nt > 1 && n_out * n_in * n_tok >= kParallelMinMacs;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) if (parallel)
  for (int64_t task = 0; task < n_tasks; ++task) {
    const int64_t r0 = (task % row_tiles) * kRowTile, rows = std::min(kRowTile, n_out - r0);
    const int t0 = int(task / row_tiles) * kTokTile, toks = std::min(kTokTile, n_tok - t0);
    sgemm_tile(X + int64_t(t0) * n_in, toks, n_in, W + r0 * n_in, rows, n_out, Y + int64_t(t0) * n_out + r0);
  }
}

void matmul_half(const uint16_t* W, int64_t n_out, int64_t n_in, RowConverter convert, const float* X, int n_tok,
                 float* Y, int nt) {
  const int64_t row_tiles = (n_out + kRowTile - 1) / kRowTile;
  const bool parallel = row_tiles > 1 && nt > 1 && n_out * n_in * n_tok >= kParallelMinMacs;
  if (n_tok < kHalfPanelMinTokens) {
    // Generation: convert one row at a time (row buffer [n_in]) and dot it with each token.
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) if (parallel)
    for (int64_t tile = 0; tile < row_tiles; ++tile) {
      float* row = thread_buffer(size_t(n_in));
      const int64_t r_end = std::min(n_out, (tile + 1) * kRowTile);
      for (int64_t r = tile * kRowTile; r < r_end; ++r) {
        convert(W + r * n_in, row, n_in);
        for (int t = 0; t < n_tok; ++t) Y[int64_t(t) * n_out + r] = dot(row, X + int64_t(t) * n_in, n_in);
      }
    }
    return;
  }
  // Prompt: convert a panel [rows, n_in] once, then one sgemm per token tile.
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) if (parallel)
  for (int64_t tile = 0; tile < row_tiles; ++tile) {
    const int64_t r0 = tile * kRowTile, rows = std::min(kRowTile, n_out - r0);
    float* panel = thread_buffer(size_t(kRowTile * n_in));
    for (int64_t r = 0; r < rows; ++r) convert(W + (r0 + r) * n_in, panel + r * n_in, n_in);
    for (int t0 = 0; t0 < n_tok; t0 += kTokTile) {
      const int toks = std::min(kTokTile, n_tok - t0);
      sgemm_tile(X + int64_t(t0) * n_in, toks, n_in, panel, rows, n_out, Y + int64_t(t0) * n_out + r0);
    }
  }
}

}  // namespace

void matmul(const TensorView& W, const float* X, int n_tok, float* Y, int n_threads) {
  if (W.shape.size() != 2)
    fail(W.name, "matmul needs a 2-D weight, got shape " + W.shape_str(), "this is a bug in the caller");
  const int64_t n_out = W.shape[0], n_in = W.shape[1];
  LOWBIT_ASSERT(n_tok >= 0 && size_t(n_out * n_in) * dtype_size(W.dtype) <= W.nbytes);
  if (n_tok == 0 || n_out == 0) return;
  const int nt = std::max(1, n_threads);
  BlasSingleThread single;
  switch (W.dtype) {
    case DType::F32:
      matmul_f32(static_cast<const float*>(W.data), n_out, n_in, X, n_tok, Y, nt);
      return;
    case DType::F16:
    case DType::BF16:
      LOWBIT_ASSERT(reinterpret_cast<uintptr_t>(W.data) % alignof(uint16_t) == 0);
      matmul_half(static_cast<const uint16_t*>(W.data), n_out, n_in, row_converter(W.dtype), X, n_tok, Y, nt);
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
