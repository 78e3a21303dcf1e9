// Clipping-range calibration for b-bit symmetric uniform quantizers: pick the
// threshold T that values are clipped to before rounding to the grid
// s * q, s = T / qmax, q in [-qmax, qmax], qmax = 2^(b-1) - 1.
//
// Two criteria:
//   clip_search_mse  the T on a grid of candidates (default 100 points from
//                    0.5 * absmax to absmax) with the least (weighted) mean
//                    squared error of the quantized values: for weights, or
//                    for activation samples.
//   clip_search_kl   TensorRT's entropy calibration (Migacz, "8-bit Inference
//                    with TensorRT", GTC 2017): on a histogram of |x| (2048
//                    bins), for each candidate i the reference P = bins[0, i)
//                    with everything beyond folded into bin i-1, the candidate
//                    Q = bins[0, i) (not folded) merged into 2^(b-1) levels and
//                    spread back evenly over each level's non-zero bins; the
//                    threshold is the upper edge of bin i-1 for the i
//                    minimising KL(P || Q) of the normalised distributions.
//                    Used for static activation scales (histograms gathered
//                    over calibration batches).
//
// Standalone: nothing here is used by the k-means codebooks.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace lowbit {

struct ClipResult {
  float threshold = 0.0f;  // T: clip to [-T, T]; scale = T / (2^(b-1) - 1)
  double error = 0.0;      // MSE (weighted mean of squared errors) or KL(P || Q) at T
  float absmax = 0.0f;     // max |x| of the input (the histogram's range for clip_search_kl)
  int index = 0;           // candidate index: grid point (MSE) or number of bins kept (KL)
};

// Largest code of a b-bit symmetric quantizer: 2^(b-1) - 1 (127 for 8 bits).
inline int sym_qmax(int bits) { return (1 << (bits - 1)) - 1; }

// Mean squared error (weights w [n] or nullptr = 1) of quantizing x [n] symmetric
// uniform with threshold T (clamp to [-qmax, qmax] after rounding to nearest even).
double sym_quant_mse(std::span<const float> x, int bits, float threshold, const float* weights = nullptr);

// (a) Grid search: candidates T_k = absmax * (lo_frac + (1 - lo_frac) * k / (n_grid - 1)),
// k = 0..n_grid-1; the least error wins, ties to the larger T. bits 2..8.
// Throws lowbit::Error naming `what` for NaN/Inf values or weights < 0.
ClipResult clip_search_mse(std::span<const float> x, int bits, const float* weights = nullptr, int n_grid = 100,
                           float lo_frac = 0.5f, const std::string& what = "clip_search_mse");

// Histogram of |x| over [0, range) in n_bins equal bins (values >= range land in
// the last bin). Counts are doubles so histograms of many batches can be added.
struct Histogram {
  float range = 0.0f;
  std::vector<double> counts;  // [n_bins]

  Histogram() = default;
  Histogram(float range, int n_bins);
  // |x| of every value added (throws naming `what` for NaN/Inf).
  void add(std::span<const float> x, const std::string& what = "histogram");
  // The histogram of x with range = max |x| (TensorRT's first pass).
  static Histogram of(std::span<const float> x, int n_bins = 2048, const std::string& what = "histogram");
  int n_bins() const { return int(counts.size()); }
  double bin_width() const { return counts.empty() ? 0.0 : double(range) / double(counts.size()); }
};

// (b) Entropy calibration on h for b-bit symmetric codes (2^(b-1) levels per
// side). Candidates i = 2^(b-1) .. n_bins; bin b of a candidate falls in level
// floor(b * 2^(b-1) / i) (an even split, as pytorch-quantization's calibrator
// digitizes); ties go to the larger i (its last argmin). error = KL at the pick.
ClipResult clip_search_kl(const Histogram& h, int bits);
// KL(P || Q) of the candidate keeping i bins (exposed for tests); +inf where P
// has mass in a bin Q leaves empty (outliers folded into an empty level).
double kl_divergence_at(const Histogram& h, int bits, int i);

// Per-output-row MSE thresholds of W [n_out, n_in] for int RTN (one symmetric
// scale per row: scale = T / qmax). importance: [n_in] per-column weights or
// nullptr. Rows in parallel; the result does not depend on the thread count.
std::vector<float> clip_rows_mse(const float* W, int64_t n_out, int64_t n_in, int bits,
                                 const float* importance = nullptr, const std::string& name = "weight");

}  // namespace lowbit
