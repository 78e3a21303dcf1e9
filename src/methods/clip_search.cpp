// Clipping thresholds for symmetric uniform quantizers: MSE grid search and
// TensorRT's KL (entropy) calibration. See clip_search.h.
#include "methods/clip_search.h"

#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "lowbit/error.h"

namespace lowbit {

namespace {

void check_bits(const std::string& what, int bits) {
  if (bits < 2 || bits > 8) fail(what, fmt::format("{}-bit symmetric clipping is not supported", bits), "bits: 2..8");
}

float checked_absmax(std::span<const float> x, const float* weights, const std::string& what) {
  float m = 0.0f;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i])) fail(what, fmt::format("value {} is {}", i, x[i]), "the input holds NaN or Inf");
    if (weights && !(std::isfinite(weights[i]) && weights[i] >= 0.0f))
      fail(what, fmt::format("weight {} is {}", i, weights[i]), "weights must be finite and >= 0");
    m = std::max(m, std::fabs(x[i]));
  }
  return m;
}

}  // namespace

double sym_quant_mse(std::span<const float> x, int bits, float threshold, const float* weights) {
  const int qmax = sym_qmax(bits);
  const float s = threshold / float(qmax);
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    float e = x[i];
    if (s > 0.0f) {
      const float q = std::clamp(std::nearbyint(x[i] / s), -float(qmax), float(qmax));
      e = x[i] - q * s;
    }
    const double w = weights ? double(weights[i]) : 1.0;
    num += w * double(e) * double(e);
    den += w;
  }
  return den > 0.0 ? num / den : 0.0;
}

ClipResult clip_search_mse(std::span<const float> x, int bits, const float* weights, int n_grid, float lo_frac,
                           const std::string& what) {
  check_bits(what, bits);
  if (n_grid < 1 || !(lo_frac > 0.0f && lo_frac <= 1.0f))
    fail(what, fmt::format("grid of {} points from {} * absmax", n_grid, lo_frac), "n_grid >= 1, 0 < lo_frac <= 1");
  ClipResult r;
  r.absmax = checked_absmax(x, weights, what);
  r.index = n_grid - 1;
  r.threshold = r.absmax;
  if (r.absmax == 0.0f) return r;
  r.error = sym_quant_mse(x, bits, r.absmax, weights);
  for (int k = n_grid - 2; k >= 0; --k) {  // from the top: ties keep the larger threshold
    const float t = r.absmax * (lo_frac + (1.0f - lo_frac) * float(k) / float(n_grid - 1));
    const double e = sym_quant_mse(x, bits, t, weights);
    if (e < r.error) {
      r.error = e;
      r.threshold = t;
      r.index = k;
    }
  }
  return r;
}

// ---------------------------------------------------------------- histogram + KL

Histogram::Histogram(float range_, int n_bins) : range(range_), counts(size_t(std::max(1, n_bins)), 0.0) {
  if (!(range_ >= 0.0f) || !std::isfinite(range_) || n_bins < 1)
    fail("histogram", fmt::format("range {} with {} bins", range_, n_bins), "range >= 0 and at least one bin");
}

void Histogram::add(std::span<const float> x, const std::string& what) {
  const int nb = n_bins();
  const double scale = range > 0.0f ? double(nb) / double(range) : 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i])) fail(what, fmt::format("value {} is {}", i, x[i]), "the input holds NaN or Inf");
    const double b = std::fabs(double(x[i])) * scale;
    counts[size_t(b >= double(nb - 1) ? nb - 1 : int(b))] += 1.0;
  }
}

Histogram Histogram::of(std::span<const float> x, int n_bins, const std::string& what) {
  const float m = checked_absmax(x, nullptr, what);
  Histogram h(m, n_bins);
  h.add(x, what);
  return h;
}

double kl_divergence_at(const Histogram& h, int bits, int i) {
  const int L = 1 << (bits - 1);  // quantization levels of |x|
  LOWBIT_ASSERT(i >= 1 && i <= h.n_bins());
  const double* bins = h.counts.data();
  // P: bins [0, i), the outliers beyond folded into bin i-1.
  std::vector<double> p(bins, bins + i);
  for (int j = i; j < h.n_bins(); ++j) p[size_t(i - 1)] += bins[j];
  double p_total = 0.0;
  for (double v : p) p_total += v;
  if (p_total <= 0.0) return 0.0;
  // Q: the unfolded bins [0, i) merged into L levels (bin b in level b * L / i,
  // an even split as in pytorch-quantization's entropy calibrator), each level's
  // mass spread evenly over its non-zero bins and zero elsewhere. The outliers
  // are not in Q: a candidate that clips much gets a spike in P that Q lacks.
  std::vector<double> q(static_cast<size_t>(i), 0.0);
  const int levels = std::min(L, i);
  int b0 = 0;
  double q_total = 0.0;
  for (int l = 0; l < levels; ++l) {
    int b1 = b0;
    while (b1 < i && int64_t(b1) * levels / i == l) ++b1;
    double mass = 0.0;
    int nonzero = 0;
    for (int b = b0; b < b1; ++b)
      if (bins[b] > 0.0) {
        mass += bins[b];
        ++nonzero;
      }
    for (int b = b0; b < b1; ++b)
      if (bins[b] > 0.0) q[size_t(b)] = mass / nonzero;
    q_total += mass;
    b0 = b1;
  }
  // KL of the normalised distributions; P > 0 where Q = 0 makes it infinite.
  double kl = 0.0;
  for (int b = 0; b < i; ++b) {
    if (p[size_t(b)] <= 0.0) continue;
    if (q[size_t(b)] <= 0.0) return INFINITY;
    const double pn = p[size_t(b)] / p_total, qn = q[size_t(b)] / q_total;
    kl += pn * std::log(pn / qn);
  }
  return std::max(0.0, kl);
}

ClipResult clip_search_kl(const Histogram& h, int bits) {
  check_bits("clip_search_kl", bits);
  if (h.n_bins() < 1)
    fail("clip_search_kl", "empty histogram", "build it with Histogram::of or Histogram(range, bins)");
  const int L = 1 << (bits - 1);
  ClipResult r;
  r.absmax = h.range;
  r.index = h.n_bins();
  r.error = INFINITY;
  for (int i = std::min(L, h.n_bins()); i <= h.n_bins(); ++i) {
    const double d = kl_divergence_at(h, bits, i);
    if (d <= r.error) {  // ties go to the larger i (pytorch-quantization takes the last argmin)
      r.error = d;
      r.index = i;
    }
  }
  r.threshold = float(double(r.index) * h.bin_width());  // upper edge of bin index-1
  return r;
}

// ---------------------------------------------------------------- per row

std::vector<float> clip_rows_mse(const float* W, int64_t n_out, int64_t n_in, int bits, const float* importance,
                                 const std::string& name) {
  check_bits(name, bits);
  std::vector<float> t(static_cast<size_t>(std::max<int64_t>(0, n_out)), 0.0f);
  if (n_out <= 0 || n_in <= 0) return t;
  for (int64_t i = 0; i < n_out * n_in; ++i)
    if (!std::isfinite(W[i]))
      fail(name, fmt::format("weight [{}, {}] is {}", i / n_in, i % n_in, W[i]), "the tensor holds NaN or Inf");
  if (importance) checked_absmax(std::span<const float>(importance, size_t(n_in)), importance, name + " importance");
  const int nt = omp_get_max_threads();
#pragma omp parallel for num_threads(nt) schedule(dynamic, 16) if (n_out * n_in >= (1 << 16))
  for (int64_t o = 0; o < n_out; ++o)
    t[size_t(o)] = clip_search_mse(std::span<const float>(W + o * n_in, size_t(n_in)), bits, importance).threshold;
  return t;
}

}  // namespace lowbit
