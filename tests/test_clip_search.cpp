// Clipping-range calibration (methods/clip_search.h): the MSE grid search
// against a brute-force scan, its behaviour with outliers, and TensorRT's KL
// calibration against an independent transcription of Migacz's pseudo-code
// (normalised P and Q, Q built level by level), on histograms whose answer is
// known (uniform: no clipping; a uniform bulk plus one far outlier: clip at the
// bulk) and on Gaussian data.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <string>
#include <vector>

#include "lowbit/error.h"
#include "methods/clip_search.h"
#include "test_random.h"

using namespace lowbit;

namespace {

using lowbit::test::SplitMix64;

std::vector<float> gaussian(size_t n, uint64_t seed) {
  SplitMix64 rng{seed};
  std::vector<float> v(n);
  for (auto& x : v) x = float(rng.gauss());
  return v;
}

// Plain mean squared error of symmetric uniform quantization, in double.
double mse_ref(const std::vector<float>& x, int bits, double T) {
  const double qmax = (1 << (bits - 1)) - 1, s = T / qmax;
  double e = 0.0;
  for (float v : x) {
    double q = std::nearbyint(double(v) / s);
    q = std::max(-qmax, std::min(qmax, q));
    e += (v - q * s) * (v - q * s);
  }
  return e / double(x.size());
}

// KL(P || Q) for keeping i bins, as Migacz's slides state it: P = bins[0, i)
// with the outliers added to its last bin, Q = bins[0, i) quantized into L
// levels (level edges j * i / L, as numpy's linspace + digitize) and expanded
// over the non-zero bins; both normalised; infinite where Q = 0 < P.
double kl_ref(const std::vector<double>& bins, int bits, int i) {
  const int L = 1 << (bits - 1);
  std::vector<double> P(bins.begin(), bins.begin() + i);
  double outliers = 0.0;
  for (size_t j = size_t(i); j < bins.size(); ++j) outliers += bins[j];
  P.back() += outliers;
  std::vector<int> level(static_cast<size_t>(i));
  for (int b = 0; b < i; ++b) level[size_t(b)] = int(std::floor(double(b) / (double(i) / L)));
  std::vector<double> sum(size_t(L), 0.0), used(size_t(L), 0.0);
  for (int b = 0; b < i; ++b)
    if (bins[size_t(b)] != 0.0) {
      sum[size_t(level[size_t(b)])] += bins[size_t(b)];
      used[size_t(level[size_t(b)])] += 1.0;
    }
  std::vector<double> Q(static_cast<size_t>(i), 0.0);
  for (int b = 0; b < i; ++b)
    if (bins[size_t(b)] != 0.0) Q[size_t(b)] = sum[size_t(level[size_t(b)])] / used[size_t(level[size_t(b)])];
  double sp = 0.0, sq = 0.0;
  for (int b = 0; b < i; ++b) {
    sp += P[size_t(b)];
    sq += Q[size_t(b)];
  }
  double kl = 0.0;
  for (int b = 0; b < i; ++b) {
    if (P[size_t(b)] == 0.0) continue;
    if (Q[size_t(b)] == 0.0) return INFINITY;
    kl += P[size_t(b)] / sp * std::log((P[size_t(b)] / sp) / (Q[size_t(b)] / sq));
  }
  return kl;
}

}  // namespace

TEST(ClipSearch, SymQuantMseGolden) {
  // 2 bits: qmax 1, T = 1 -> s = 1: 0.1 -> 0, 0.5 -> 0 (ties to even), 1 -> 1, -1 -> -1.
  const std::vector<float> x = {0.1f, 0.5f, 1.0f, -1.0f};
  EXPECT_NEAR(sym_quant_mse(x, 2, 1.0f), (0.01 + 0.25) / 4, 1e-9);
  // weights: only the second value counts
  const float w[] = {0, 1, 0, 0};
  EXPECT_NEAR(sym_quant_mse(x, 2, 1.0f, w), 0.25, 1e-9);
  // 4 bits, T = 1.4: s = 0.2, 1.0 -> 5 * 0.2 exactly; 3.0 clipped to 7 * 0.2 = 1.4
  const std::vector<float> y = {1.0f, 3.0f};
  EXPECT_NEAR(sym_quant_mse(y, 4, 1.4f), (1.6 * 1.6) / 2, 1e-6);
}

TEST(ClipSearch, MseGridIsTheBruteForceMinimum) {
  const std::vector<float> x = gaussian(3000, 1);
  for (int bits : {3, 4, 8}) {
    const ClipResult r = clip_search_mse(x, bits);
    double best = 1e300;
    int best_k = -1;
    for (int k = 99; k >= 0; --k) {
      const double T = double(r.absmax) * (0.5 + 0.5 * k / 99.0);
      const double e = mse_ref(x, bits, float(T));
      if (e < best * (1 - 1e-9)) best = e, best_k = k;
    }
    EXPECT_NEAR(r.error, best, 1e-6 * best) << bits;
    EXPECT_NEAR(r.index, best_k, 1) << bits;  // float grid points may tie-break differently
    EXPECT_LE(r.threshold, r.absmax);
  }
}

TEST(ClipSearch, MseClipsOutliers) {
  // N(0, 1) and four values at ~10-12 sigma: at 3-4 bits the range is worth
  // clipping (a step of absmax / qmax leaves most of the bulk at 0).
  std::vector<float> x = gaussian(4096, 2);
  for (float o : {10.0f, -11.0f, 12.0f, -10.5f}) x.push_back(o);
  for (int bits : {3, 4}) {
    const ClipResult r = clip_search_mse(x, bits);
    EXPECT_EQ(r.absmax, 12.0f);
    EXPECT_LE(r.threshold, 0.6f * r.absmax) << bits;
    EXPECT_LT(r.error, 0.6 * sym_quant_mse(x, bits, r.absmax)) << bits;
    // A wider grid goes lower still.
    const ClipResult wide = clip_search_mse(x, bits, nullptr, 200, 0.1f);
    EXPECT_LT(wide.threshold, 0.5f * r.absmax) << bits;
    EXPECT_LE(wide.error, r.error) << bits;
  }
  // Without outliers a Gaussian at 8 bits keeps (nearly) the whole range.
  const ClipResult plain = clip_search_mse(gaussian(4096, 3), 8);
  EXPECT_GT(plain.threshold, 0.75f * plain.absmax);
}

TEST(ClipSearch, KlMatchesReferenceTranscription) {
  const Histogram h = Histogram::of(gaussian(20000, 4), 512);
  int finite = 0;
  for (int bits : {4, 8})
    for (int i : {128, 200, 333, 400, 450, 511, 512}) {
      const double a = kl_divergence_at(h, bits, i), b = kl_ref(h.counts, bits, i);
      if (std::isinf(b)) {
        EXPECT_TRUE(std::isinf(a)) << bits << " " << i;
      } else {
        EXPECT_NEAR(a, b, 1e-10) << bits << " " << i;
        ++finite;
      }
    }
  EXPECT_GE(finite, 6);  // most candidates of a Gaussian histogram are finite
  // The chosen candidate is the reference argmin.
  for (int bits : {4, 8}) {
    const ClipResult r = clip_search_kl(h, bits);
    double best = INFINITY;
    for (int i = 1 << (bits - 1); i <= h.n_bins(); ++i) best = std::min(best, kl_ref(h.counts, bits, i));
    EXPECT_NEAR(kl_ref(h.counts, bits, r.index), best, 1e-10) << bits;
    EXPECT_NEAR(r.error, best, 1e-10) << bits;
    EXPECT_NEAR(r.threshold, r.index * h.range / 512.0, 1e-5);
  }
  // Outliers folded into a bin that Q leaves empty: infinite divergence.
  Histogram g(1.0f, 256);
  for (int b = 0; b < 100; ++b) g.counts[size_t(b)] = 10.0;
  g.counts[255] = 1.0;
  EXPECT_TRUE(std::isinf(kl_divergence_at(g, 4, 200)));
  EXPECT_TRUE(std::isinf(kl_ref(g.counts, 4, 200)));
  EXPECT_TRUE(std::isfinite(kl_divergence_at(g, 4, 256)));
}

TEST(ClipSearch, KlUniformKeepsTheRange) {
  SplitMix64 rng{5};
  std::vector<float> x(100000);
  for (auto& v : x) v = float(2.0 * rng.uniform() - 1.0);
  const Histogram h = Histogram::of(x);
  EXPECT_EQ(h.n_bins(), 2048);
  for (int bits : {4, 8}) {
    const ClipResult r = clip_search_kl(h, bits);
    EXPECT_GT(r.threshold, 0.95f * r.absmax) << bits;
  }
}

TEST(ClipSearch, KlGaussianWithAFarOutlier) {
  // A standard normal bulk (max ~4.4) and one value at 40: keeping the outlier
  // would spend 8-bit levels of width 40/128 on a bulk of ~15 levels.
  std::vector<float> x = gaussian(100000, 9);
  x.push_back(40.0f);
  const Histogram h = Histogram::of(x);
  const ClipResult r = clip_search_kl(h, 8);
  EXPECT_EQ(r.absmax, 40.0f);
  EXPECT_GT(r.threshold, 2.5f);
  EXPECT_LT(r.threshold, 6.0f);
}

TEST(ClipSearch, KlGaussianLandsInTheTail) {
  const std::vector<float> x = gaussian(200000, 6);
  const Histogram h = Histogram::of(x);
  const ClipResult r8 = clip_search_kl(h, 8), r4 = clip_search_kl(h, 4);
  // absmax of 2e5 standard normals is ~4.5; 8 bits clip in the far tail, 4 bits
  // (8 levels a side) much closer in.
  EXPECT_GT(r8.threshold, 2.5f);
  EXPECT_LT(r8.threshold, r8.absmax);
  EXPECT_GT(r4.threshold, 1.0f);
  EXPECT_LT(r4.threshold, r8.threshold);
}

TEST(ClipSearch, HistogramAccumulates) {
  Histogram h(2.0f, 4);
  h.add(std::vector<float>{0.1f, -0.6f, 1.2f, -1.9f, 5.0f});
  EXPECT_EQ(h.counts, (std::vector<double>{1, 1, 1, 2}));  // beyond the range: last bin
  EXPECT_THROW(h.add(std::vector<float>{std::nanf("")}), Error);
}

TEST(ClipSearch, RowsMatchPerRowSearchAtAnyThreadCount) {
  const int64_t n_out = 96, n_in = 1024;
  std::vector<float> W = gaussian(size_t(n_out * n_in), 7);
  for (int64_t o = 0; o < n_out; o += 3) W[size_t(o * n_in + (o * 7) % n_in)] = 30.0f;  // outlier rows
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const std::vector<float> t1 = clip_rows_mse(W.data(), n_out, n_in, 4);
  omp_set_num_threads(2);
  const std::vector<float> t2 = clip_rows_mse(W.data(), n_out, n_in, 4);
  omp_set_num_threads(saved);
  EXPECT_EQ(t1, t2);
  for (int64_t o = 0; o < n_out; ++o) {
    const ClipResult r = clip_search_mse(std::span<const float>(W.data() + o * n_in, size_t(n_in)), 4);
    EXPECT_EQ(t1[size_t(o)], r.threshold);
    if (o % 3 == 0) {
      EXPECT_LE(t1[size_t(o)], 0.55f * r.absmax) << o;
    }
  }
}

TEST(ClipSearch, BadInputThrows) {
  std::vector<float> x = {1.0f, std::nanf(""), 2.0f};
  EXPECT_THROW(clip_search_mse(x, 4), Error);
  EXPECT_THROW(Histogram::of(x), Error);
  EXPECT_THROW(clip_search_mse(std::vector<float>{1.0f}, 1), Error);
  EXPECT_THROW(clip_search_kl(Histogram(1.0f, 16), 9), Error);
  const float w[] = {1.0f, -1.0f};
  EXPECT_THROW(clip_search_mse(std::vector<float>{1.0f, 2.0f}, 4, w), Error);
  std::vector<float> W(8, 0.5f);
  W[5] = INFINITY;
  try {
    clip_rows_mse(W.data(), 2, 4, 4, nullptr, "blk.0.ffn_up.weight");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("blk.0.ffn_up.weight"), std::string::npos);
  }
  // All-zero input: threshold 0, no error.
  const ClipResult z = clip_search_mse(std::vector<float>(16, 0.0f), 4);
  EXPECT_EQ(z.threshold, 0.0f);
  EXPECT_EQ(z.error, 0.0);
}
