// Weighted k-means codebook quantization (see kmeans.h): the 1-D Lloyd fit,
// the KmeansLinear runtime layer (lookup-table kernels) and the "kmeans"
// quantizer with its lowbit layout.
#include "methods/kmeans.h"

#include <cblas.h>
#include <fmt/format.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "core/half.h"
#include "kernels/avx2_common.h"
#include "lowbit/error.h"
#include "model/matmul.h"

namespace lowbit {

// ======================================================================== 1-D fit

namespace {

// Clusters of sorted values as runs: cluster j = positions [end[j-1], end[j]).
// The assignment rule: value x goes to the cluster j with mid_{j-1} < x <= mid_j,
// mid_j = (c_j + c_{j+1}) / 2, i.e. the nearest centroid with ties to the lower
// one. Needs c ascending (duplicates allowed: the upper copy only gets values
// strictly above it, which are equally near).
void assign_runs(const std::vector<double>& xs, const std::vector<double>& c, std::vector<int64_t>& end) {
  const size_t k = c.size();
  end.resize(k);
  for (size_t j = 0; j + 1 < k; ++j) {
    const double mid = 0.5 * (c[j] + c[j + 1]);
    end[j] = std::upper_bound(xs.begin(), xs.end(), mid) - xs.begin();
  }
  end[k - 1] = int64_t(xs.size());
}

double objective(const std::vector<double>& xs, const std::vector<double>& ws, const std::vector<double>& c,
                 const std::vector<int64_t>& end) {
  double J = 0.0;
  int64_t p = 0;
  for (size_t j = 0; j < c.size(); ++j)
    for (; p < end[j]; ++p) {
      const double d = xs[size_t(p)] - c[j];
      J += ws[size_t(p)] * d * d;
    }
  return J;
}

struct LloydRun {
  std::vector<double> c;      // [k] centroids, ascending
  std::vector<int64_t> end;   // [k] cluster run ends (assign_runs)
  std::vector<double> trace;  // objective after the initial assignment and after each iteration
  double final_objective = 0.0;
  int iterations = 0;
  bool converged = false;
};

// Prefix sums of sorted values for O(k) centroid updates: s0[p] = sum_{q<p} w_q,
// s1[p] = sum_{q<p} w_q (x_q - x_0) (offsets from the smallest value keep the
// differences of nearby prefixes accurate).
struct Prefix {
  std::vector<double> s0, s1;  // [n + 1]
  Prefix(const std::vector<double>& xs, const std::vector<double>& ws)
      : s0(xs.size() + 1, 0.0), s1(xs.size() + 1, 0.0) {
    for (size_t p = 0; p < xs.size(); ++p) {
      s0[p + 1] = s0[p] + ws[p];
      s1[p + 1] = s1[p] + ws[p] * (xs[p] - xs[0]);
    }
  }
};

// Weighted Lloyd iterations from centroids c (ascending) on sorted xs.
LloydRun lloyd(const std::vector<double>& xs, const std::vector<double>& ws, const Prefix& pre, std::vector<double> c,
               int max_iters, bool record) {
  LloydRun r;
  const size_t k = c.size();
  std::vector<int64_t> next_end;
  assign_runs(xs, c, r.end);
  if (record) r.trace.push_back(objective(xs, ws, c, r.end));
  for (int it = 0; it < max_iters; ++it) {
    // Update: each centroid moves to its cluster's weighted mean, kept inside
    // [min, max] of the cluster, so a cluster of equal values keeps exactly that
    // value and the centroids stay ascending (cluster j lies in (mid_{j-1},
    // mid_j]). A cluster without weight keeps its centroid (adding zero weights
    // leaves the prefix sum unchanged, so that test is exact), so the objective
    // never increases.
    int64_t start = 0;
    for (size_t j = 0; j < k; ++j) {
      const int64_t stop = r.end[j];
      const double w = pre.s0[size_t(stop)] - pre.s0[size_t(start)];
      if (stop > start && w > 0.0) {
        const double mean = xs[0] + (pre.s1[size_t(stop)] - pre.s1[size_t(start)]) / w;
        c[j] = std::clamp(mean, xs[size_t(start)], xs[size_t(stop - 1)]);
      }
      start = stop;
    }
    LOWBIT_ASSERT(std::is_sorted(c.begin(), c.end()));
    assign_runs(xs, c, next_end);
    ++r.iterations;
    const bool changed = next_end != r.end;
    r.end.swap(next_end);
    if (record) r.trace.push_back(objective(xs, ws, c, r.end));
    if (!changed) {
      r.converged = true;
      break;
    }
  }
  r.final_objective = record ? r.trace.back() : objective(xs, ws, c, r.end);
  r.c = std::move(c);
  return r;
}

}  // namespace

KmeansFit kmeans_fit_1d(const float* x, const float* w, int64_t n, int k, int max_iters, bool record_objective) {
  LOWBIT_ASSERT(k >= 1 && k <= 256 && n >= 0);
  KmeansFit f;
  f.centroids.assign(size_t(k), 0.0f);
  f.codes.assign(size_t(n), 0);
  if (n == 0) return f;

  // Values ascending (ties by position, so the order is a function of the input alone).
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t(0));
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return x[a] < x[b] || (x[a] == x[b] && a < b); });
  std::vector<double> xs(static_cast<size_t>(n)), ws(static_cast<size_t>(n));
  double total = 0.0;
  for (int64_t p = 0; p < n; ++p) {
    xs[size_t(p)] = x[order[size_t(p)]];
    ws[size_t(p)] = w ? double(w[order[size_t(p)]]) : 1.0;
    total += ws[size_t(p)];
  }
  if (!(total > 0.0)) {  // no weight anywhere: every choice has objective 0; fit the plain values
    std::fill(ws.begin(), ws.end(), 1.0);
    total = double(n);
  }

  // Initialisation: the distinct values when there are at most k of them (the
  // fit is then exact). Otherwise two deterministic starts, and the run that ends
  // with the lower objective is kept (ties: the first):
  //   (1) weighted quantiles (j + 1/2) / k: the centroids spread by weight;
  //   (2) the uniform grid min + (max - min) * j / (k - 1): the min/max grid of
  //       round-to-nearest, so the fit never ends worse than that grid.
  // (SqueezeLLM runs sklearn's k-means; Lloyd from a single start stalls in poor
  // local minima on short groups, e.g. 64 values into 16 clusters.)
  std::vector<double> distinct;
  for (int64_t p = 0; p < n && int64_t(distinct.size()) <= k; ++p)
    if (distinct.empty() || xs[size_t(p)] != distinct.back()) distinct.push_back(xs[size_t(p)]);
  std::vector<std::vector<double>> starts;
  if (int64_t(distinct.size()) <= k) {
    std::vector<double> c(static_cast<size_t>(k));
    for (int j = 0; j < k; ++j) c[size_t(j)] = distinct[std::min(size_t(j), distinct.size() - 1)];
    starts.push_back(std::move(c));
  } else {
    std::vector<double> c(static_cast<size_t>(k));
    double cum = 0.0;  // weight of the values before position p
    int64_t p = 0;
    for (int j = 0; j < k; ++j) {
      const double target = (double(j) + 0.5) / double(k) * total;
      while (p < n - 1 && cum + ws[size_t(p)] < target) cum += ws[size_t(p++)];
      c[size_t(j)] = xs[size_t(p)];
    }
    starts.push_back(c);
    const double lo = xs.front(), hi = xs.back();
    for (int j = 0; j < k; ++j) c[size_t(j)] = k == 1 ? lo : std::min(hi, lo + (hi - lo) * double(j) / double(k - 1));
    starts.push_back(std::move(c));
  }

  const Prefix pre(xs, ws);
  LloydRun best;
  for (auto& c : starts) {
    LloydRun run = lloyd(xs, ws, pre, std::move(c), max_iters, record_objective);
    if (best.c.empty() || run.final_objective < best.final_objective) best = std::move(run);
  }
  f.iterations = best.iterations;
  f.converged = best.converged;
  f.objective = std::move(best.trace);
  for (int j = 0; j < k; ++j) f.centroids[size_t(j)] = float(best.c[size_t(j)]);
  int64_t p = 0;
  for (int j = 0; j < k; ++j)
    for (; p < best.end[size_t(j)]; ++p) f.codes[size_t(order[size_t(p)])] = uint8_t(j);
  return f;
}

// ======================================================================== code packing

namespace {

// Value i of a row packed LSB first, `bits` per value (kmeans.h).
inline int get_code(const uint8_t* row, int64_t i, int bits) {
  const int64_t bit = i * bits;
  const int64_t byte = bit >> 3;
  const int shift = int(bit & 7);
  unsigned v = unsigned(row[byte]) >> shift;
  if (shift + bits > 8) v |= unsigned(row[byte + 1]) << (8 - shift);
  return int(v & ((1u << bits) - 1));
}

inline void put_code(uint8_t* row, int64_t i, int bits, int code) {
  const int64_t bit = i * bits;
  const int64_t byte = bit >> 3;
  const int shift = int(bit & 7);
  const unsigned v = unsigned(code) << shift;
  row[byte] = uint8_t(row[byte] | (v & 0xff));
  if (shift + bits > 8) row[byte + 1] = uint8_t(row[byte + 1] | (v >> 8));
}

// All n codes of a row into out[n].
void unpack_row(const uint8_t* row, int64_t n, int bits, uint8_t* out) {
  switch (bits) {
    case 8:
      std::memcpy(out, row, size_t(n));
      return;
    case 4:
      for (int64_t i = 0; i < n; ++i) out[i] = uint8_t((row[i >> 1] >> ((i & 1) * 4)) & 15);
      return;
    case 2:
      for (int64_t i = 0; i < n; ++i) out[i] = uint8_t((row[i >> 2] >> ((i & 3) * 2)) & 3);
      return;
    default:
      for (int64_t i = 0; i < n; ++i) out[i] = uint8_t(get_code(row, i, bits));
  }
}

template <class T>
T* thread_buffer(size_t n) {
  thread_local std::vector<T> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

constexpr int64_t kRowTile = 64;               // rows per OpenMP task
constexpr int64_t kParallelMinMacs = 1 << 20;  // smaller products stay on the calling thread

}  // namespace

// ======================================================================== KmeansLinear

KmeansLinear::KmeansLinear(int64_t n_out, int64_t n_in, int bits, int group_size, std::vector<uint8_t> codes,
                           std::vector<uint16_t> codebook)
    : n_out_(n_out),
      n_in_(n_in),
      bits_(bits),
      group_size_(group_size),
      group_(group_size < 0 ? n_in : group_size),
      row_bytes_(row_bytes(n_in, bits)),
      codes_(std::move(codes)),
      codebook_(std::move(codebook)) {
  LOWBIT_ASSERT(bits >= 1 && bits <= 8 && n_out > 0 && n_in > 0 && group_ > 0 && n_in % group_ == 0);
  LOWBIT_ASSERT(int64_t(codes_.size()) == n_out * row_bytes_);
  LOWBIT_ASSERT(int64_t(codebook_.size()) == n_out * (n_in / group_) * (int64_t(1) << bits));
}

int KmeansLinear::code(int64_t o, int64_t i) const { return get_code(codes_.data() + o * row_bytes_, i, bits_); }

std::string KmeansLinear::type_name() const {
  return group_size_ < 0 ? fmt::format("kmeans{}", bits_) : fmt::format("kmeans{}g{}", bits_, group_size_);
}

std::string KmeansLinear::describe() const {
  return fmt::format("kmeans, bits={}, group_size={}", bits_,
                     group_size_ < 0 ? std::string("row") : std::to_string(group_size_));
}

std::shared_ptr<QLinear> KmeansLinear::with_rows_permuted(std::span<const int64_t> perm) const {
  if (int64_t(perm.size()) != n_out_)
    fail("kmeans layer", fmt::format("row permutation has {} entries for {} rows", perm.size(), n_out_),
         "this is a bug in the caller");
  const int64_t gpr = groups_per_row(), cb_row = gpr << bits_;
  std::vector<uint8_t> codes(codes_.size());
  std::vector<uint16_t> codebook(codebook_.size());
  for (int64_t r = 0; r < n_out_; ++r) {
    const int64_t s = perm[size_t(r)];
    if (s < 0 || s >= n_out_)
      fail("kmeans layer", fmt::format("row permutation entry {} is {} (rows 0..{})", r, s, n_out_ - 1),
           "this is a bug in the caller");
    std::memcpy(codes.data() + r * row_bytes_, codes_.data() + s * row_bytes_, size_t(row_bytes_));
    std::memcpy(codebook.data() + r * cb_row, codebook_.data() + s * cb_row, size_t(cb_row) * 2);
  }
  return std::make_shared<KmeansLinear>(n_out_, n_in_, bits_, group_size_, std::move(codes), std::move(codebook));
}

// ---------------------------------------------------------------- lookup-table kernels
//
// Row o of Y^T: y[t][o] = sum_g sum_{i in g} lut_g[code_i] * x[t][i], lut_g the
// group's codebook expanded to f32 once per group.
//   scalar: one float accumulator per token, values in order i = 0..n_in-1.
//   AVX2 (4-bit, group a multiple of 16): per group the 16 f16 codebook entries
//     are split into a low-byte and a high-byte table (16 bytes each); 16 codes
//     (8 bytes) per step are unpacked to 16 index bytes, two pshufb look up the
//     two byte planes, interleaving them gives the 16 f16 values, and vcvtph2ps
//     widens them (exactly) to two vectors of 8 floats. Two accumulators per
//     token, summed at the end of the row. Only the summation order differs from
//     the scalar kernel. (Measured against an f32 LUT in two registers selected
//     with _mm256_permutevar8x32_ps + blendv: 2.1x faster at n_tok = 1.)

namespace {

void lut_row_ref(const uint8_t* codes, const uint16_t* cb, int K, int64_t n_in, int64_t group, const float* X,
                 int n_tok, float* y, int64_t y_stride) {
  float lut[256];
  for (int t = 0; t < n_tok; ++t) {
    const float* x = X + int64_t(t) * n_in;
    float s = 0.0f;
    for (int64_t g0 = 0; g0 < n_in; g0 += group) {
      const uint16_t* c = cb + (g0 / group) * K;
      for (int j = 0; j < K; ++j) lut[j] = f16_to_f32(c[j]);
      for (int64_t i = g0; i < g0 + group; ++i) s += lut[codes[i]] * x[i];
    }
    y[int64_t(t) * y_stride] = s;
  }
}

// A group's 16 f16 codebook entries split into their low and high bytes, so that
// one pshufb per byte plane looks up 16 codes at once.
struct Lut16 {
  __m128i lo, hi;  // byte j = low / high byte of entry j
};

LB_AVX2 inline Lut16 load_lut16(const uint16_t* cb) {
  const __m128i even = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m128i odd = _mm_setr_epi8(1, 3, 5, 7, 9, 11, 13, 15, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(cb));      // entries 0..7
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(cb + 8));  // entries 8..15
  return {_mm_unpacklo_epi64(_mm_shuffle_epi8(a, even), _mm_shuffle_epi8(b, even)),
          _mm_unpacklo_epi64(_mm_shuffle_epi8(a, odd), _mm_shuffle_epi8(b, odd))};
}

// 16 packed 4-bit codes (8 bytes) -> their codebook values, values 0..7 in w0, 8..15 in w1.
LB_AVX2 inline void lut16_weights(const uint8_t* packed, const Lut16& lut, __m256& w0, __m256& w1) {
  const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(packed));
  const __m128i m = _mm_set1_epi8(0x0F);
  const __m128i lo = _mm_and_si128(b, m), hi = _mm_and_si128(_mm_srli_epi16(b, 4), m);
  const __m128i idx = _mm_unpacklo_epi8(lo, hi);  // bytes = codes of values 0..15 in order
  const __m128i L = _mm_shuffle_epi8(lut.lo, idx), H = _mm_shuffle_epi8(lut.hi, idx);
  w0 = _mm256_cvtph_ps(_mm_unpacklo_epi8(L, H));  // f16 of values 0..7 -> f32 (exact)
  w1 = _mm256_cvtph_ps(_mm_unpackhi_epi8(L, H));  // values 8..15
}

// One row of 4-bit codes (packed, n_in / 2 bytes) against n_tok < 16 tokens.
LB_AVX2 void lut4_row_avx2(const uint8_t* packed, const uint16_t* cb, int64_t n_in, int64_t group, const float* X,
                           int n_tok, float* y, int64_t y_stride) {
  if (n_tok == 1) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (int64_t g0 = 0; g0 < n_in; g0 += group) {
      const Lut16 lut = load_lut16(cb + (g0 / group) * 16);
      for (int64_t i = g0; i < g0 + group; i += 16) {
        __m256 w0, w1;
        lut16_weights(packed + i / 2, lut, w0, w1);
        a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(X + i), a0);
        a1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(X + i + 8), a1);
      }
    }
    y[0] = avx2::hsum(_mm256_add_ps(a0, a1));
    return;
  }
  __m256 acc[2 * kKmeansPanelMinTokens];
  for (int t = 0; t < 2 * n_tok; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t g0 = 0; g0 < n_in; g0 += group) {
    const Lut16 lut = load_lut16(cb + (g0 / group) * 16);
    for (int64_t i = g0; i < g0 + group; i += 16) {
      __m256 w0, w1;
      lut16_weights(packed + i / 2, lut, w0, w1);
      for (int t = 0; t < n_tok; ++t) {
        const float* x = X + int64_t(t) * n_in + i;
        acc[2 * t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x), acc[2 * t]);
        acc[2 * t + 1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + 8), acc[2 * t + 1]);
      }
    }
  }
  for (int t = 0; t < n_tok; ++t) y[int64_t(t) * y_stride] = avx2::hsum(_mm256_add_ps(acc[2 * t], acc[2 * t + 1]));
}

// One row of 4-bit codes expanded to f32: dst[n_in] (the same values as the scalar path).
LB_AVX2 void dequant4_row_avx2(const uint8_t* packed, const uint16_t* cb, int64_t n_in, int64_t group, float* dst) {
  for (int64_t g0 = 0; g0 < n_in; g0 += group) {
    const Lut16 lut = load_lut16(cb + (g0 / group) * 16);
    for (int64_t i = g0; i < g0 + group; i += 16) {
      __m256 w0, w1;
      lut16_weights(packed + i / 2, lut, w0, w1);
      _mm256_storeu_ps(dst + i, w0);
      _mm256_storeu_ps(dst + i + 8, w1);
    }
  }
}

}  // namespace

void KmeansLinear::dequantize_rows(int64_t row0, int64_t n_rows, float* W) const {
  dequantize_rows_isa(row0, n_rows, W, active_isa());
}

void KmeansLinear::dequantize_rows_isa(int64_t row0, int64_t n_rows, float* W, IsaLevel isa) const {
  LOWBIT_ASSERT(row0 >= 0 && n_rows >= 0 && row0 + n_rows <= n_out_);
  if (avx2_lut(isa)) {
    for (int64_t r = 0; r < n_rows; ++r)
      dequant4_row_avx2(codes_.data() + (row0 + r) * row_bytes_, codebook_.data() + (row0 + r) * groups_per_row() * 16,
                        n_in_, group_, W + r * n_in_);
    return;
  }
  const int K = 1 << bits_;
  const int64_t gpr = groups_per_row();
  uint8_t* codes = thread_buffer<uint8_t>(size_t(n_in_));
  float lut[256];
  for (int64_t r = 0; r < n_rows; ++r) {
    const int64_t o = row0 + r;
    unpack_row(codes_.data() + o * row_bytes_, n_in_, bits_, codes);
    for (int64_t g = 0; g < gpr; ++g) {
      const uint16_t* cb = codebook_.data() + (o * gpr + g) * K;
      for (int j = 0; j < K; ++j) lut[j] = f16_to_f32(cb[j]);
      float* dst = W + r * n_in_ + g * group_;
      const uint8_t* c = codes + g * group_;
      for (int64_t i = 0; i < group_; ++i) dst[i] = lut[c[i]];
    }
  }
}

void KmeansLinear::matmul_rows_lut(const float* X, int n_tok, float* Y, int nt, bool avx2) const {
  const int K = 1 << bits_;
  const int64_t gpr = groups_per_row();
  const int64_t n_tiles = (n_out_ + kRowTile - 1) / kRowTile;
  const int64_t macs = n_out_ * n_in_ * n_tok;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) if (n_tiles > 1 && nt > 1 && macs >= kParallelMinMacs)
  for (int64_t tile = 0; tile < n_tiles; ++tile) {
    const int64_t r0 = tile * kRowTile, r1 = std::min(n_out_, r0 + kRowTile);
    uint8_t* codes = avx2 ? nullptr : thread_buffer<uint8_t>(size_t(n_in_));
    for (int64_t o = r0; o < r1; ++o) {
      const uint8_t* packed = codes_.data() + o * row_bytes_;
      const uint16_t* cb = codebook_.data() + o * gpr * K;
      if (avx2) {
        lut4_row_avx2(packed, cb, n_in_, group_, X, n_tok, Y + o, n_out_);
      } else {
        unpack_row(packed, n_in_, bits_, codes);
        lut_row_ref(codes, cb, K, n_in_, group_, X, n_tok, Y + o, n_out_);
      }
    }
  }
}

bool KmeansLinear::avx2_lut(IsaLevel isa) const {
  return bits_ == 4 && group_ % 16 == 0 && isa >= IsaLevel::Avx2 && best_isa_supported() >= IsaLevel::Avx2;
}

void KmeansLinear::matmul_panels(const float* X, int n_tok, float* Y, int nt, IsaLevel isa) const {
  ScopedBlasThreads single(1);  // BLAS runs inside the OpenMP loop below
  const int64_t n_tiles = (n_out_ + kRowTile - 1) / kRowTile;
  const int64_t macs = n_out_ * n_in_ * n_tok;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) if (n_tiles > 1 && nt > 1 && macs >= kParallelMinMacs)
  for (int64_t tile = 0; tile < n_tiles; ++tile) {
    const int64_t r0 = tile * kRowTile, rows = std::min(kRowTile, n_out_ - r0);
    float* panel = thread_buffer<float>(size_t(kRowTile * n_in_));  // [rows, n_in]
    dequantize_rows_isa(r0, rows, panel, isa);
    // Y[:, r0:r0+rows] = X · panel^T
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_tok, int(rows), int(n_in_), 1.0f, X, int(n_in_), panel,
                int(n_in_), 0.0f, Y + r0, int(n_out_));
  }
}

void KmeansLinear::matmul_isa(const float* X, int n_tok, float* Y, int n_threads, IsaLevel isa) const {
  if (n_tok <= 0) return;
  const int nt = std::max(1, n_threads);
  if (n_tok >= kKmeansPanelMinTokens) return matmul_panels(X, n_tok, Y, nt, isa);
  matmul_rows_lut(X, n_tok, Y, nt, avx2_lut(isa));
}

void KmeansLinear::matmul(const float* X, int n_tok, float* Y, int n_threads) const {
  matmul_isa(X, n_tok, Y, n_threads, active_isa());
}

// ======================================================================== quantization

namespace {

void check_bits(const std::string& where, int bits) {
  if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
    fail(where, fmt::format("kmeans cannot store {}-bit codes", bits), "bits: 2, 3, 4 or 8");
}

void check_group(const std::string& where, int group_size, int64_t n_in) {
  if (group_size == -1) return;
  if (group_size <= 0 || n_in % group_size != 0)
    fail(where, fmt::format("group_size {} does not divide the {} input columns", group_size, n_in),
         "use -1 (one codebook per row) or a divisor of the row length, e.g. 64 or 128");
}

}  // namespace

std::shared_ptr<KmeansLinear> kmeans_quantize(const std::string& name, const float* W, int64_t n_out, int64_t n_in,
                                              int bits, int group_size, const float* importance, int iters,
                                              int threads) {
  check_bits(name, bits);
  if (n_out <= 0 || n_in <= 0)
    fail(name, fmt::format("empty weight [{}, {}]", n_out, n_in), "expected a 2-D linear weight");
  check_group(name, group_size, n_in);
  if (iters < 0) fail(name, fmt::format("kmeans iters = {}", iters), "iters must be >= 0");
  for (int64_t i = 0; i < n_out * n_in; ++i)
    if (!std::isfinite(W[i]))
      fail(name, fmt::format("weight [{}, {}] is {}", i / n_in, i % n_in, W[i]), "the source tensor holds NaN or Inf");
  if (importance)
    for (int64_t i = 0; i < n_in; ++i)
      if (!std::isfinite(importance[i]) || importance[i] < 0.0f)
        fail(name, fmt::format("importance of input column {} is {}", i, importance[i]),
             "importance (imatrix) entries must be finite and >= 0");

  const int K = 1 << bits;
  const int64_t group = group_size < 0 ? n_in : group_size, gpr = n_in / group;
  const int64_t rb = KmeansLinear::row_bytes(n_in, bits);
  std::vector<uint8_t> codes(size_t(n_out * rb), 0);        // [n_out, row_bytes]
  std::vector<uint16_t> codebook(size_t(n_out * gpr * K));  // [n_out * gpr, K]
  std::vector<uint8_t> overflow(size_t(n_out), 0);          // rows whose codebook left f16's range
  const int nt = threads > 0 ? threads : omp_get_max_threads();

#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1 && n_out > 1)
  for (int64_t o = 0; o < n_out; ++o) {
    std::vector<double> mids(size_t(K - 1));
    for (int64_t g = 0; g < gpr; ++g) {
      const float* x = W + o * n_in + g * group;  // [group]
      const float* w = importance ? importance + g * group : nullptr;
      const KmeansFit fit = kmeans_fit_1d(x, w, group, K, iters, false);
      // Store f16 (rounding is monotone: the codebook stays ascending), then re-pick
      // every code against the stored values with the same midpoint rule.
      uint16_t* cb = codebook.data() + (o * gpr + g) * K;
      float cf[256];
      for (int j = 0; j < K; ++j) {
        cb[j] = f32_to_f16(fit.centroids[size_t(j)]);
        cf[j] = f16_to_f32(cb[j]);
        if (!std::isfinite(cf[j])) overflow[size_t(o)] = 1;
      }
      for (int j = 0; j + 1 < K; ++j) mids[size_t(j)] = 0.5 * (double(cf[j]) + double(cf[j + 1]));
      uint8_t* row = codes.data() + o * rb;
      for (int64_t i = 0; i < group; ++i) {
        const int c = int(std::lower_bound(mids.begin(), mids.end(), double(x[i])) - mids.begin());
        put_code(row, g * group + i, bits, c);
      }
    }
  }
  for (int64_t o = 0; o < n_out; ++o)
    if (overflow[size_t(o)])
      fail(name, fmt::format("a k-means centroid of row {} is beyond the f16 range (|w| > 65504)", o),
           "scale the weight down or keep this tensor unquantized");
  return std::make_shared<KmeansLinear>(n_out, n_in, bits, group_size, std::move(codes), std::move(codebook));
}

// ---------------------------------------------------------------- the quantizer

namespace {

class KmeansQuantizer final : public Quantizer {
 public:
  std::string name() const override { return "kmeans"; }
  std::string summary() const override {
    return "weighted k-means codebook per row or group (SqueezeLLM-style non-uniform), 2/3/4/8-bit, lowbit layout; "
           "extra: iters (default 30)";
  }
  std::vector<int> supported_bits() const override { return {2, 3, 4, 8}; }
  QuantConfig default_config() const override {
    QuantConfig c;
    c.method = "kmeans";
    c.bits = 4;
    c.group_size = -1;  // one codebook per row: a 16-entry f16 codebook costs 256 bits, cheap over a row, not over 64 values
    return c;
  }
  bool fits(const QuantConfig& cfg, int64_t n_out, int64_t n_in, std::string* why) const override {
    if (cfg.group_size < 0 || n_in % cfg.group_size == 0) return true;
    if (why) *why = fmt::format("group size {} does not divide its {} inputs", cfg.group_size, n_in);
    return false;
  }

  void validate(const QuantConfig& cfg) const override {
    check_bits("quantization config: bits", cfg.bits);
    if (cfg.group_size != -1 && cfg.group_size <= 0)
      fail("quantization config: group_size", fmt::format("group_size {} is not -1 or positive", cfg.group_size),
           "-1 for one codebook per row, or e.g. 64 / 128");
    const int iters = cfg.extra_or<int>("iters", 30);
    if (iters < 0 || iters > 10000)
      fail("quantization config: extra.iters", fmt::format("iters = {}", iters),
           "Lloyd iterations: 0..10000 (default 30)");
  }

  double bits_per_weight(const QuantConfig& cfg, int64_t n_out, int64_t n_in) const override {
    const int64_t group = cfg.group_size < 0 ? n_in : cfg.group_size;
    const double K = double(int64_t(1) << cfg.bits);
    if (n_in <= 0 || n_out <= 0 || group <= 0 || n_in % group != 0) return cfg.bits + 16.0 * K / double(group);
    const double bytes =
        double(n_out * KmeansLinear::row_bytes(n_in, cfg.bits)) + 2.0 * double(n_out * (n_in / group)) * K;
    return 8.0 * bytes / double(n_out * n_in);
  }

  std::shared_ptr<QLinear> quantize_linear(const std::string& name, const float* W, int64_t n_out, int64_t n_in,
                                           const QuantConfig& cfg, const float* importance) const override {
    validate(cfg);
    return kmeans_quantize(name, W, n_out, n_in, cfg.bits, cfg.group_size, importance, cfg.extra_or<int>("iters", 30));
  }

  std::vector<HfModuleTensor> hf_module_tensors(const QLinear& q, const QuantConfig& cfg) const override {
    const auto* k = dynamic_cast<const KmeansLinear*>(&q);
    if (!k)
      fail("kmeans layout", fmt::format("layer of type '{}' is not a k-means layer", q.type_name()),
           "quantize with --method kmeans");
    if (k->bits() != cfg.bits || k->group_size() != cfg.group_size)
      fail("kmeans layout", fmt::format("layer {} does not match the config ({})", k->type_name(), cfg.describe()),
           "write the layer with the config it was quantized with");
    const int64_t K = int64_t(1) << k->bits();
    HfModuleTensor codes{"codes", DType::U8, {k->n_out(), KmeansLinear::row_bytes(k->n_in(), k->bits())}, {}};
    codes.bytes = k->codes();
    HfModuleTensor cb{"codebook", DType::F16, {k->n_out() * k->groups_per_row(), K}, {}};
    cb.bytes.resize(k->codebook().size() * 2);
    std::memcpy(cb.bytes.data(), k->codebook().data(), cb.bytes.size());
    return {std::move(codes), std::move(cb)};
  }

  std::vector<std::string> hf_marker_suffixes() const override { return {"codebook"}; }
  std::vector<std::string> hf_module_suffixes() const override { return {"codes", "codebook"}; }

  std::shared_ptr<QLinear> load_hf_module(const QuantConfig& cfg, const std::map<std::string, const TensorView*>& parts,
                                          int64_t n_out, int64_t n_in, const std::string& where) const override {
    check_bits(where + ": quantization_config.bits", cfg.bits);
    if (n_out <= 0 || n_in <= 0)
      fail(where, fmt::format("module shape [{}, {}] is empty", n_out, n_in), "check config.json");
    check_group(where + ": quantization_config.group_size", cfg.group_size, n_in);
    const int64_t group = cfg.group_size < 0 ? n_in : cfg.group_size, K = int64_t(1) << cfg.bits;
    const int64_t rb = KmeansLinear::row_bytes(n_in, cfg.bits);
    auto part = [&](const std::string& suffix, DType dt, std::vector<int64_t> shape) -> const TensorView& {
      auto it = parts.find(suffix);
      if (it == parts.end() || !it->second)
        fail(where + "." + suffix, "missing tensor of a k-means module",
             "a k-means module stores .codes and .codebook");
      const TensorView& t = *it->second;
      if (t.dtype != dt)
        fail(where + "." + suffix, fmt::format("dtype {} (expected {})", dtype_name(t.dtype), dtype_name(dt)),
             "the file was not written by lowbit's kmeans layout");
      TensorView want;
      want.shape = shape;
      if (t.shape != shape)
        fail(where + "." + suffix,
             fmt::format("shape {} (expected {} for a [{}, {}] layer, {} bits, group {})", t.shape_str(),
                         want.shape_str(), n_out, n_in, cfg.bits, group),
             "the tensor does not match quantization_config");
      if (!t.data || t.nbytes < size_t(want.numel()) * dtype_size(dt))
        fail(where + "." + suffix, fmt::format("{} bytes for {} values", t.nbytes, want.numel()),
             "the file is truncated");
      return t;
    };
    const TensorView& tc = part("codes", DType::U8, {n_out, rb});
    const TensorView& tb = part("codebook", DType::F16, {n_out * (n_in / group), K});
    std::vector<uint8_t> codes(size_t(n_out * rb));
    std::memcpy(codes.data(), tc.data, codes.size());
    std::vector<uint16_t> cb(size_t(n_out * (n_in / group) * K));
    std::memcpy(cb.data(), tb.data, cb.size() * 2);
    for (size_t i = 0; i < cb.size(); ++i)
      if (!std::isfinite(f16_to_f32(cb[i])))
        fail(where + ".codebook",
             fmt::format("entry {} of codebook row {} is {}", i % size_t(K), i / size_t(K), f16_to_f32(cb[i])),
             "the file is corrupt (codebooks hold finite values)");
    const int pad = int(rb * 8 - n_in * cfg.bits);  // unused bits at the end of each row
    if (pad > 0)
      for (int64_t o = 0; o < n_out; ++o)
        if (codes[size_t(o * rb + rb - 1)] >> (8 - pad))
          fail(where + ".codes", fmt::format("row {} has non-zero padding bits", o), "the file is corrupt");
    return std::make_shared<KmeansLinear>(n_out, n_in, cfg.bits, cfg.group_size, std::move(codes), std::move(cb));
  }
};

}  // namespace

std::unique_ptr<Quantizer> make_kmeans_quantizer() { return std::make_unique<KmeansQuantizer>(); }

}  // namespace lowbit
