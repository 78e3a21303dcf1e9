// GPTQ (methods/gptq.h): Algorithm 1 of Frantar et al. 2022, with the
// behaviour of AutoGPTQ's GPTQ.fasterquant for the integer-group target.
//
// Numerics and layout:
//  - H is handled in double: dead-column fix, act-order permutation, damping,
//    and the upper factor U of H^-1 = U^T U. U is computed without forming
//    H^-1: with J the exchange matrix, J H J = L L^T (Cholesky) gives
//    H = V V^T for the upper V = J L J, so U = V^-1 = J L^-1 J. That is the
//    same factor as AutoGPTQ's cholesky -> cholesky_inverse -> cholesky(upper)
//    at half the cost (n^3/3 multiply-adds instead of 2n^3/3) and without the
//    explicit inverse. Both steps are blocked (tiles of 256).
//  - The sweep keeps W and U in float32, as AutoGPTQ does (the work is
//    dominated by the rank-`block` updates, which run as sgemm).
//  - W stays row-major [n_out, n_in]. Once U is known every row is
//    independent (its scales, its errors, its updates), so fixed chunks of
//    128 rows run the whole algorithm on their own: per lazy batch, each row
//    sweeps the batch on its contiguous segment W[o, i1:i2] (the update of
//    later columns is an axpy along the row, vectorisable, in L1), then
//    W[chunk, i2:] -= Err[chunk, batch] * U[batch, i2:] is one sgemm.
//  - Losses: GPTQ's from its own scaled errors (sum err^2 = tr(E H' E^T) for
//    the damped H'), corrected to the undamped H; RTN's by the explicit
//    product, tiled.
//  - Determinism: OpenBLAS's threaded sgemm / dpotrf / dtrtri do NOT give the
//    same bits at 1 and 2 threads (checked on 0.3.21), so OpenBLAS always runs
//    single-threaded here, and the parallelism is ours: fixed row chunks for
//    the sweep, fixed tiles for the factorisation and the RTN loss, each a
//    single-threaded BLAS call, reduced in a fixed order. The same bits at any
//    thread count (tested).
#include "methods/gptq.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>

#include <fmt/format.h>

#include "core/log.h"
#include "lowbit/error.h"

extern "C" void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info);

namespace lowbit {

namespace {

constexpr const char* kWhere = "gptq";

// Sets OpenBLAS's thread count while alive (OpenBLAS is only called outside OpenMP regions here).
class BlasThreads {
 public:
  explicit BlasThreads(int n) : prev_(openblas_get_num_threads()) {
    if (prev_ != n) openblas_set_num_threads(n);
  }
  ~BlasThreads() {
    if (openblas_get_num_threads() != prev_) openblas_set_num_threads(prev_);
  }

 private:
  int prev_;
};

// Tiles of the factorisations below: each tile is one single-threaded BLAS /
// LAPACK call, tiles run in parallel (OpenMP). The tiling is fixed, so the bits
// do not depend on the thread count (OpenBLAS's own threaded dpotrf / dtrtri
// do not give the same bits at different thread counts).
constexpr int64_t kFactorTile = 256;

// Blocked right-looking Cholesky of the column-major lower triangle of A [n, n]
// (A = L L^T, L written over it). Returns 0, or LAPACK's info (the 1-based
// column whose pivot was not positive).
int cholesky_lower(double* A, int64_t n, int threads) {
  const int64_t nb = kFactorTile;
  const int lda = int(n);
  const char lo = 'L';
  std::vector<std::pair<int64_t, int64_t>> tiles;
  for (int64_t k = 0; k < n; k += nb) {
    const int kb = int(std::min(nb, n - k));
    int info = 0;
    dpotrf_(&lo, &kb, A + k + k * n, &lda, &info);
    if (info != 0) return int(k) + info;
    const int64_t r0 = k + kb, nblk = (n - r0 + nb - 1) / nb;
    if (nblk == 0) break;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int64_t b = 0; b < nblk; ++b) {  // panel: A[r0:, k:k+kb] L_kk^-T
      const int64_t i0 = r0 + b * nb;
      cblas_dtrsm(CblasColMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, int(std::min(nb, n - i0)), kb, 1.0,
                  A + k + k * n, lda, A + i0 + k * n, lda);
    }
    tiles.clear();
    for (int64_t bi = 0; bi < nblk; ++bi)
      for (int64_t bj = 0; bj <= bi; ++bj) tiles.emplace_back(bi, bj);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (size_t t = 0; t < tiles.size(); ++t) {  // trailing update A[i, j] -= A[i, k] A[j, k]^T
      const int64_t i0 = r0 + tiles[t].first * nb, j0 = r0 + tiles[t].second * nb;
      const int mi = int(std::min(nb, n - i0)), mj = int(std::min(nb, n - j0));
      if (i0 == j0)
        cblas_dsyrk(CblasColMajor, CblasLower, CblasNoTrans, mi, kb, -1.0, A + i0 + k * n, lda, 1.0, A + i0 + i0 * n,
                    lda);
      else
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, mi, mj, kb, -1.0, A + i0 + k * n, lda, A + j0 + k * n, lda,
                    1.0, A + i0 + j0 * n, lda);
    }
  }
  return 0;
}

// X = L^-1 for the column-major lower L [n, n] (lower triangle of X; X's upper
// part left as is), one column block per task: X[c0:, c0:c1] = L[c0:, c0:]^-1 I.
void inverse_lower(const double* L, double* X, int64_t n, int threads) {
  const int64_t nb = kFactorTile, nblk = (n + nb - 1) / nb;
  const int lda = int(n);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
  for (int64_t b = 0; b < nblk; ++b) {  // largest solves first
    const int64_t c0 = b * nb, cb = std::min(nb, n - c0);
    for (int64_t c = c0; c < c0 + cb; ++c) {
      double* col = X + c * n;
      std::fill(col + c0, col + n, 0.0);
      col[c] = 1.0;
    }
    cblas_dtrsm(CblasColMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, int(n - c0), int(cb), 1.0,
                L + c0 + c0 * n, lda, X + c0 + c0 * n, lda);
  }
}

// Upper U (row-major [n, n], float, lower triangle zero) with
// (Hp + lambda I)^-1 = U^T U, where Hp[i][j] = Hfix(perm[i], perm[j]).
// Returns an empty string on success, else why the factorisation failed.
std::string inverse_cholesky_upper(const double* H, const std::vector<double>& diag_fixed,
                                   const std::vector<int64_t>& perm, int64_t n, double lambda, int threads,
                                   std::vector<float>& U) {
  // A = J Hp J + lambda I (symmetric, so row- and column-major agree).
  std::vector<double> A(size_t(n * n));
  std::vector<double> a_diag(static_cast<size_t>(n));
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const int64_t pi = perm[size_t(n - 1 - i)];
    for (int64_t j = 0; j < n; ++j) {
      const int64_t pj = perm[size_t(n - 1 - j)];
      A[size_t(i * n + j)] = pi == pj ? diag_fixed[size_t(pi)] + lambda : H[pi * n + pj];
    }
    a_diag[size_t(i)] = A[size_t(i * n + i)];
  }
  const int info = cholesky_lower(A.data(), n, threads);
  if (info != 0) return fmt::format("H is not positive definite (Cholesky pivot {} of {})", info, n);
  // A pivot that is round-off small relative to its diagonal: H is numerically singular.
  for (int64_t i = 0; i < n; ++i) {
    const double p = A[size_t(i + i * n)];
    if (!(p * p >= 1e-13 * a_diag[size_t(i)]))
      return fmt::format("H is numerically singular (pivot {} of {})", n - 1 - i, n);
  }
  std::vector<double> X(size_t(n * n));
  inverse_lower(A.data(), X.data(), n, threads);
  A.clear();
  A.shrink_to_fit();
  // X's column-major lower triangle holds Linv: Linv(r, c) = X[r + c n], r >= c.
  // U[i][j] = Linv(n-1-i, n-1-j) for j >= i.
  U.assign(size_t(n * n), 0.0f);
  int bad = 0;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : bad)
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = n - 1 - i;
    for (int64_t j = i; j < n; ++j) {
      const double v = X[size_t(r + (n - 1 - j) * n)];
      if (!std::isfinite(v) || std::fabs(v) > 3.0e38) ++bad;
      U[size_t(i * n + j)] = float(v);
    }
    if (!(U[size_t(i * n + i)] > 0.0f)) ++bad;
  }
  if (bad > 0) return "the inverse Hessian factor is not finite in float";
  return {};
}

// Value of x on one format grid point offset + step * grid(k), the nearest code (ties: the lower code).
inline float grid_value(float x, float step, float offset, const FormatTraits& f) {
  if (step == 0.0f) return offset;
  const float t = (x - offset) / step;
  if (f.grid_table == nullptr) {
    float k = std::ceil(t - 0.5f);
    k = std::clamp(k, float(f.code_min), float(f.code_max));
    return offset + step * k;
  }
  const int n = f.code_max - f.code_min + 1;
  int best = 0;
  float bd = std::fabs(t - f.grid_table[0]);
  for (int k = 1; k < n; ++k) {
    const float d = std::fabs(t - f.grid_table[k]);
    if (d < bd) bd = d, best = k;
  }
  return offset + step * f.grid_table[best];
}

// tr(E H E^T) / n_out for E = W - Q (H as given, in double), as a sum over
// tiles of the upper triangle of H_IJ .* (E_I^T E_J), the tiles from
// single-threaded sgemm calls run in parallel; fixed tiles and a fixed
// reduction order, so independent of the thread count.
double proxy_loss(const float* W, const float* Q, int64_t n_out, int64_t n_in, const double* H, int threads) {
  std::vector<float> E(size_t(n_out * n_in));
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t k = 0; k < n_out * n_in; ++k) E[size_t(k)] = W[k] - Q[k];
  const int64_t T = std::min<int64_t>(n_in, 512), nt_tiles = (n_in + T - 1) / T;
  std::vector<std::pair<int64_t, int64_t>> tiles;  // (i0, j0) of the upper triangle
  for (int64_t ti = 0; ti < nt_tiles; ++ti)
    for (int64_t tj = ti; tj < nt_tiles; ++tj) tiles.emplace_back(ti * T, tj * T);
  std::vector<double> part(tiles.size());
  BlasThreads bt(1);  // one tile per thread
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> C(size_t(T * T));
#pragma omp for schedule(dynamic, 1)
    for (size_t t = 0; t < tiles.size(); ++t) {
      const int64_t i0 = tiles[t].first, j0 = tiles[t].second;
      const int64_t mi = std::min(T, n_in - i0), mj = std::min(T, n_in - j0);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(mi), int(mj), int(n_out), 1.0f, E.data() + i0,
                  int(n_in), E.data() + j0, int(n_in), 0.0f, C.data(), int(mj));
      double s = 0.0;
      for (int64_t a = 0; a < mi; ++a) {
        const double* h = H + (i0 + a) * n_in + j0;
        const float* c = C.data() + a * mj;
        for (int64_t b = 0; b < mj; ++b) s += h[b] * double(c[b]);
      }
      part[t] = (j0 == i0 ? 1.0 : 2.0) * s;
    }
  }
  double sum = 0.0;
  for (double v : part) sum += v;
  return sum / double(n_out);
}

const FormatTraits& checked_format(FormatId id, int64_t n_in) {
  const FormatTraits& f = format_traits(id);
  if (!f.quantized || f.quantize_row_ref == nullptr)
    fail(kWhere, fmt::format("format {} is not a quantized block format", f.name),
         "pick a ggml quantized format such as q4_K, q6_K, q5_0, q8_0 or iq4_nl");
  if (n_in % f.block_size != 0)
    fail(kWhere, fmt::format("{} input columns are not a multiple of {}'s block size {}", n_in, f.name, f.block_size),
         "use a format with a smaller block (e.g. q8_0 / q4_0 blocks of 32) for this tensor");
  return f;
}

}  // namespace

GptqResult rtn_quantize(const float* W, int64_t n_out, int64_t n_in, const GptqTarget& target, const float* importance) {
  if (target.ints.has_value() == target.format.has_value())
    fail(kWhere, "the target must be exactly one of an integer-group spec and a format");
  GptqResult r;
  if (target.ints) {
    r.ints = rtn_int_groups(W, n_out, n_in, *target.ints);
    r.dequantized = r.ints.dequantize();
    return r;
  }
  const FormatTraits& f = checked_format(*target.format, n_in);
  const size_t rb = row_bytes(f.id, n_in);
  r.blocks.resize(rb * size_t(n_out));
  r.dequantized.resize(size_t(n_out * n_in));
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < n_out; ++o) {
    f.quantize_row_ref(W + o * n_in, r.blocks.data() + size_t(o) * rb, n_in, importance);
    f.dequantize_row(r.blocks.data() + size_t(o) * rb, r.dequantized.data() + o * n_in, n_in);
  }
  return r;
}

GptqResult gptq_quantize(const float* W, int64_t n_out, int64_t n_in, const double* H, const GptqTarget& target,
                         const GptqOptions& opts) {
  if (target.ints.has_value() == target.format.has_value())
    fail(kWhere, "the target must be exactly one of an integer-group spec and a format");
  if (n_out <= 0 || n_in <= 0) fail(kWhere, fmt::format("empty weight [{}, {}]", n_out, n_in));
  if (n_in > (int64_t(1) << 30) || n_out > (int64_t(1) << 30))
    fail(kWhere, fmt::format("weight [{}, {}] is too large", n_out, n_in));
  if (!(opts.damp >= 0.0) || !std::isfinite(opts.damp))
    fail(kWhere, fmt::format("damping {} is not valid", opts.damp), "use --damp 0.01 (a small non-negative number)");
  if (opts.block_size <= 0) fail(kWhere, fmt::format("block size {} is not valid", opts.block_size), "use 128");
  const bool is_int = target.ints.has_value();
  const FormatTraits* fmt_traits = nullptr;
  if (is_int) {
    target.ints->validate(n_in, kWhere);
  } else {
    fmt_traits = &checked_format(*target.format, n_in);
    if (fmt_traits->block_grid == nullptr || fmt_traits->encode_fixed == nullptr)
      fail(kWhere, fmt::format("format {} has no fixed-scale grid (block_grid / encode_fixed)", fmt_traits->name),
           "GPTQ cannot target this format yet; use --method rtn or an integer-group target");
  }
  const int nt = opts.threads > 0 ? opts.threads : omp_get_max_threads();
  const int64_t n = n_in;

  for (int64_t o = 0; o < n_out; ++o)
    for (int64_t i = 0; i < n_in; ++i)
      if (!std::isfinite(W[o * n_in + i]))
        fail(kWhere, fmt::format("weight [{}, {}] (row {}, input column {}) is {}", o, i, o, i, W[o * n_in + i]),
             "the source tensor holds non-finite values; check the model file");
  for (int64_t k = 0; k < n * n; ++k)
    if (!std::isfinite(H[k]))
      fail(kWhere, fmt::format("Hessian entry [{}, {}] is {}", k / n, k % n, H[k]),
           "the calibration activations overflowed; check the calibration data or capture in double");

  using clock = std::chrono::steady_clock;
  const auto t_start = clock::now();
  auto seconds_since = [](clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); };
  GptqResult r;
  // Dead columns: H[i][i] == 0 -> H[i][i] = 1 and W[:, i] = 0.
  std::vector<double> diag(static_cast<size_t>(n));
  std::vector<char> dead(size_t(n), 0);
  for (int64_t i = 0; i < n; ++i) {
    diag[size_t(i)] = H[i * n + i];
    if (diag[size_t(i)] == 0.0) {
      diag[size_t(i)] = 1.0;
      dead[size_t(i)] = 1;
      ++r.dead_columns;
    }
  }
  // Working copy, dead columns zeroed, then permuted (act_order).
  std::vector<int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), int64_t(0));
  if (opts.act_order)
    std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) { return diag[size_t(a)] > diag[size_t(b)]; });
  std::vector<float> Wz(W, W + n_out * n_in);  // [n_out, n_in] original order, dead columns zeroed
  if (r.dead_columns > 0)
    for (int64_t o = 0; o < n_out; ++o)
      for (int64_t i = 0; i < n; ++i)
        if (dead[size_t(i)]) Wz[size_t(o * n + i)] = 0.0f;
  std::vector<float> importance;  // diag(H) after the dead-column fix, original order (format targets)
  if (!is_int) {
    importance.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) importance[size_t(i)] = float(diag[size_t(i)]);
  }

  // Damping and the upper factor of the inverse Hessian.
  std::vector<float> U;  // [n, n] upper, processing order
  double mean = 0.0;  // mean diag(H) after the dead-column fix
  for (double d : diag) mean += d;
  mean /= double(n);
  {
    double damp = opts.damp;
    BlasThreads bt(1);  // parallel over tiles instead (see kFactorTile)
    for (;;) {
      const std::string why = inverse_cholesky_upper(H, diag, perm, n, damp * mean, nt, U);
      if (why.empty()) break;
      if (damp >= 1.0)
        fail(kWhere, fmt::format("{} even with damping {} (relative to mean diag(H) = {})", why, damp, mean),
             "the calibration data is degenerate for this layer: use more / more varied calibration samples");
      const double next = damp <= 0.0 ? 0.01 : std::min(1.0, damp * 10.0);
      log_warn(fmt::format("gptq: {} at damping {}; retrying with damping {}", why, damp, next));
      damp = next;
    }
    r.damp_used = damp;
  }
  const double t_factor = seconds_since(t_start);
  const auto t_sweep_start = clock::now();

  // Working matrix in processing order.
  std::vector<float> Wp;
  if (opts.act_order) {
    Wp.resize(size_t(n_out * n));
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t o = 0; o < n_out; ++o)
      for (int64_t j = 0; j < n; ++j) Wp[size_t(o * n + j)] = Wz[size_t(o * n + perm[size_t(j)])];
  } else {
    Wp = Wz;
  }

  r.dequantized.assign(size_t(n_out * n), 0.0f);
  float* deq = r.dequantized.data();

  // ---- target-specific set-up ----
  int64_t B = opts.block_size;
  IntGroupSpec spec;
  int64_t gc = 0;
  bool dynamic_groups = false;
  const FormatTraits& f = is_int ? format_traits(FormatId::F32) : *fmt_traits;
  int64_t bs = 1;
  size_t rb = 0;
  if (is_int) {
    spec = *target.ints;
    gc = spec.group_columns(n);
    const int64_t ng = n / gc;
    IntGroupQuant& iq = r.ints;
    iq.spec = spec;
    iq.n_out = n_out;
    iq.n_in = n;
    iq.q.assign(size_t(n_out * n), 0);
    iq.scales.assign(size_t(ng * n_out), 1.0f);
    iq.zeros.assign(size_t(ng * n_out), 0);
    iq.g_idx.resize(size_t(n));
    dynamic_groups = spec.group_size > 0 && !opts.static_groups;
    for (int64_t i = 0; i < n; ++i) iq.g_idx[size_t(i)] = int32_t(i / gc);
    if (dynamic_groups && opts.act_order)
      for (int64_t k = 0; k < n; ++k) iq.g_idx[size_t(perm[size_t(k)])] = int32_t(k / gc);
    if (spec.group_size < 0) {
      // As AutoGPTQ: the per-row parameters come from W before the dead-column fix.
      for (int64_t o = 0; o < n_out; ++o) {
        const IntGroupParams p = int_group_params(W + o * n, n, 1, spec);
        iq.scales[size_t(o)] = p.scale;
        iq.zeros[size_t(o)] = p.zero;
      }
    } else if (!dynamic_groups) {
      for (int64_t g = 0; g < ng; ++g)
        for (int64_t o = 0; o < n_out; ++o) {
          const IntGroupParams p = int_group_params(Wz.data() + o * n + g * gc, gc, 1, spec);
          iq.scales[size_t(g * n_out + o)] = p.scale;
          iq.zeros[size_t(g * n_out + o)] = p.zero;
        }
    }
  } else {
    bs = f.block_size;
    rb = row_bytes(f.id, n);
    B = std::max<int64_t>(B, bs);
    B = (B + bs - 1) / bs * bs;
    r.blocks.assign(rb * size_t(n_out), 0);
    if (opts.act_order) {
      // Static blocks: every block's scales chosen up front from the original (dead-zeroed) weights.
#pragma omp parallel for num_threads(nt) schedule(static)
      for (int64_t o = 0; o < n_out; ++o)
        f.quantize_row_ref(Wz.data() + o * n, r.blocks.data() + size_t(o) * rb, n, importance.data());
    }
  }
  Wz.clear();
  Wz.shrink_to_fit();
  const size_t block_bytes = f.block_bytes;
  const int maxq = spec.maxq();

  // Rows are independent once U is known: each chunk of kRowChunk rows runs
  // every batch on its own (sweep, then its share of the trailing update with a
  // single-threaded sgemm). Chunks are fixed, so no result depends on which
  // thread ran it or how many there are (OpenBLAS's threaded sgemm / dpotrf do
  // not give the same bits at different thread counts, so it is kept at 1).
  constexpr int64_t kRowChunk = 128;
  const int64_t n_batches = (n + B - 1) / B, n_chunks = (n_out + kRowChunk - 1) / kRowChunk;
  std::vector<std::vector<int64_t>> needed_blocks(size_t(!is_int && opts.act_order ? n_batches : 0));
  for (size_t t = 0; t < needed_blocks.size(); ++t) {  // act-order format: blocks touched by each batch
    auto& nb = needed_blocks[t];
    for (int64_t j = int64_t(t) * B; j < std::min(int64_t(t + 1) * B, n); ++j) nb.push_back(perm[size_t(j)] / bs);
    std::sort(nb.begin(), nb.end());
    nb.erase(std::unique(nb.begin(), nb.end()), nb.end());
  }
  std::vector<double> row_err2(static_cast<size_t>(n_out), 0.0);  // sum over columns of err^2, per row
  BlasThreads bt(1);
#pragma omp parallel num_threads(nt)
  {
    std::vector<float> Err(size_t(kRowChunk * B));  // [chunk rows, B] scaled errors of the current batch
    std::vector<float> snap(static_cast<size_t>(B)), group_vals(size_t(is_int ? gc : 0));
    std::vector<float> step(size_t(is_int ? 0 : (opts.act_order ? n : bs)));
    std::vector<float> offset(step.size());
#pragma omp for schedule(dynamic, 1)
    for (int64_t ch = 0; ch < n_chunks; ++ch) {
      const int64_t o0 = ch * kRowChunk, o1 = std::min(n_out, o0 + kRowChunk);
      for (int64_t i1 = 0; i1 < n; i1 += B) {
        const int64_t i2 = std::min(i1 + B, n), cnt = i2 - i1;
        for (int64_t o = o0; o < o1; ++o) {
          float* w = Wp.data() + o * n;
          float* e = Err.data() + (o - o0) * B;
          uint8_t* row_blocks = r.blocks.data() + size_t(o) * rb;
          double err2 = 0.0;
          if (dynamic_groups) std::memcpy(snap.data(), w + i1, size_t(cnt) * sizeof(float));
          if (!is_int && opts.act_order)
            for (int64_t blk : needed_blocks[size_t(i1 / B)])
              f.block_grid(row_blocks + size_t(blk) * block_bytes, step.data() + blk * bs, offset.data() + blk * bs);
          for (int64_t i = 0; i < cnt; ++i) {
            const int64_t j = i1 + i;
            const int64_t c = perm[size_t(j)];  // original column
            const float* u = U.data() + j * n + i1;
            const float x = w[j];
            float qv;
            if (is_int) {
              IntGroupQuant& iq = r.ints;
              IntGroupParams p;
              int64_t g;
              if (spec.group_size < 0) {
                g = 0;
              } else if (!dynamic_groups) {
                g = c / gc;
              } else {
                g = j / gc;
                if (j % gc == 0) {
                  // As AutoGPTQ: W[:, j:j+gc] as of the batch start (not yet updated within the batch).
                  const int64_t in_batch = std::min(gc, cnt - i);
                  std::memcpy(group_vals.data(), snap.data() + i, size_t(in_batch) * sizeof(float));
                  std::memcpy(group_vals.data() + in_batch, w + i2, size_t(gc - in_batch) * sizeof(float));
                  p = int_group_params(group_vals.data(), gc, 1, spec);
                  iq.scales[size_t(g * n_out + o)] = p.scale;
                  iq.zeros[size_t(g * n_out + o)] = p.zero;
                }
              }
              p.scale = iq.scales[size_t(g * n_out + o)];
              p.zero = iq.zeros[size_t(g * n_out + o)];
              const int32_t code = int_group_code(x, p, maxq);
              iq.q[size_t(o * n + c)] = uint8_t(code);
              qv = int_group_value(code, p);
            } else if (!opts.act_order) {
              if (j % bs == 0) {
                uint8_t* blk = row_blocks + size_t(j / bs) * block_bytes;
                f.quantize_row_ref(w + j, blk, bs, importance.data() + j);
                f.block_grid(blk, step.data(), offset.data());
              }
              qv = grid_value(x, step[size_t(j % bs)], offset[size_t(j % bs)], f);
            } else {
              qv = grid_value(x, step[size_t(c)], offset[size_t(c)], f);
            }
            deq[o * n + c] = qv;
            const float err = (x - qv) / u[i];
            e[i] = err;
            err2 += double(err) * double(err);
            for (int64_t k = i + 1; k < cnt; ++k) w[i1 + k] -= err * u[k];
          }
          row_err2[size_t(o)] += err2;
        }
        if (i2 < n)
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(o1 - o0), int(n - i2), int(cnt), -1.0f, Err.data(),
                      int(B), U.data() + i1 * n + i2, int(n), 1.0f, Wp.data() + o0 * n + i2, int(n));
      }
    }
  }
  U.clear();
  U.shrink_to_fit();
  Wp.clear();
  Wp.shrink_to_fit();

  if (!is_int) {
    // Store the final values in each block (its scales kept) and read them back.
    int64_t mismatched = 0;
#pragma omp parallel num_threads(nt) reduction(+ : mismatched)
    {
      std::vector<float> back(static_cast<size_t>(n));
#pragma omp for schedule(static)
      for (int64_t o = 0; o < n_out; ++o) {
        uint8_t* row_blocks = r.blocks.data() + size_t(o) * rb;
        for (int64_t b = 0; b < n / bs; ++b) f.encode_fixed(deq + o * n + b * bs, row_blocks + size_t(b) * block_bytes);
        f.dequantize_row(row_blocks, back.data(), n);
        for (int64_t i = 0; i < n; ++i) {
          if (back[size_t(i)] != deq[o * n + i]) {
            // Same grid point, different rounding of offset + step * grid(k) is harmless; a different code is not.
            const float tol = 1e-5f * std::max(std::fabs(back[size_t(i)]), std::fabs(deq[o * n + i])) + 1e-30f;
            if (std::fabs(back[size_t(i)] - deq[o * n + i]) > tol) ++mismatched;
          }
          deq[o * n + i] = back[size_t(i)];
        }
      }
    }
    if (mismatched > 0)
      log_warn(fmt::format("gptq: {}: encode_fixed stored another grid point than GPTQ chose for {} of {} values",
                           f.name, mismatched, n_out * n));
  }

  const double t_sweep = seconds_since(t_sweep_start);
  const auto t_loss_start = clock::now();
  // Proxy losses (undamped H as given). GPTQ's from its own errors: W - Q =
  // Err U with H' = U^-1 U^-T (H' = H + dead-column ones + lambda I), so
  // tr(E H' E^T) = sum err^2 exactly, and tr(E H E^T) = sum err^2 -
  // lambda |E|^2 - sum over dead columns of E^2 (E = W - Q with W's dead
  // columns zeroed, which H does not see). The test checks it against the
  // explicit product. Round-to-nearest's by the explicit product.
  {
    double err2 = 0.0, e2 = 0.0, e2_dead = 0.0;
    for (double v : row_err2) err2 += v;
    for (int64_t o = 0; o < n_out; ++o)
      for (int64_t i = 0; i < n; ++i) {
        const double e = dead[size_t(i)] ? -double(deq[o * n + i]) : double(W[o * n + i]) - double(deq[o * n + i]);
        e2 += e * e;
        if (dead[size_t(i)]) e2_dead += e * e;
      }
    r.loss_gptq = std::max(0.0, (err2 - r.damp_used * mean * e2 - e2_dead) / double(n_out));
  }
  {
    const GptqResult rtn = rtn_quantize(W, n_out, n, target, is_int ? nullptr : importance.data());
    r.loss_rtn = proxy_loss(W, rtn.dequantized.data(), n_out, n, H, nt);
  }
  for (float v : r.dequantized)
    LOWBIT_ASSERT(std::isfinite(v));
  log(LogLevel::Debug, fmt::format("gptq [{}, {}]: inverse-Hessian factor {:.2f} s, sweep {:.2f} s, losses {:.2f} s; "
                                   "loss rtn {:.6g} gptq {:.6g}",
                                   n_out, n, t_factor, t_sweep, seconds_since(t_loss_start), r.loss_rtn, r.loss_gptq));
  return r;
}

}  // namespace lowbit
