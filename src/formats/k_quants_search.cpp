// Scale / min search for the k-quant weight formats (the method is described in
// k_quants_search.h). Least-squares sums are accumulated in double; the error of
// a candidate is measured on the values dequantize would produce (computed in
// f32 the same way), with partial sums in a fixed order, so the result is the
// same whichever way the compiler vectorises the loops.
#include "formats/k_quants_search.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/half.h"

namespace lowbit::kq {
namespace {

// Search effort (for scale: llama.cpp's published search tries 16-37 inverse scales
// per sub-block and rounds the sub-block scales once). Two presets (k_quants.h):
// Fast, the default (a Q4_K_M file in about llama-quantize's time), keeps most
// of the error reduction; Best, several times slower.
// Affine sub-blocks: the value range is spread over q_max * (kGridLo + step * t) levels;
// symmetric sub-blocks: the largest value goes to level q_lo * (kGridLo + step * t);
// t = 0..grid_steps, step = kGridSpan / grid_steps.
constexpr float kGridLo = 0.7f;
constexpr float kGridSpan = 0.6f;
struct SearchEffort {
  int grid_steps;         // grid points per sub-block (+1)
  int refine_rounds;      // "round levels, refit scale" rounds per sub-block
  int pick_steps;         // single integer steps tried per sub-block when picking
  int superblock_rounds;  // "refit d, pick integers" rounds per start
  int affine_starts;      // starts of the affine super-block search (1 or 2, see kAffineStarts)
};
constexpr SearchEffort kFastEffort = {15, 3, 1, 0, 1};
constexpr SearchEffort kBestEffort = {30, 8, 4, 2, 2};
// Starts of the super-block search: d = (largest sub-block scale) / (sc_max - shrink).
constexpr float kAffineStarts[] = {0.f, 1.f};

std::atomic<int> g_effort{int(KQuantEffort::Fast)};
const SearchEffort& effort() { return g_effort.load(std::memory_order_relaxed) == int(KQuantEffort::Best) ? kBestEffort : kFastEffort; }

// Nearest integer (ties to even) clamped to lo..hi; NaN goes to lo.
// (std::rint compiles to one SSE4.1 roundss here; lrintf would be a libm call.)
int clamp_round(float v, int lo, int hi) {
  v = v > float(lo) ? v : float(lo);  // branch-free (maxss / minss)
  v = v < float(hi) ? v : float(hi);
  return int(std::rint(v));
}

// floor(v) moved into lo..hi - 1, so that it and the integer above are both in lo..hi.
int ideal_floor(float v, int lo, int hi) {
  v = v > float(lo) ? v : float(lo);
  v = v < float(hi - 1) ? v : float(hi - 1);
  return int(std::floor(v));
}

// Rounds to the f16 that will be stored (saturating at the largest finite half,
// so huge inputs clip instead of turning into inf / NaN) and returns its value.
float round_to_f16(float v, uint16_t& bits) {
  constexpr float kMaxHalf = 65504.f;
  bits = f32_to_f16(std::clamp(v, -kMaxHalf, kMaxHalf));
  return f16_to_f32(bits);
}

// ---------------------------------------------------------------------------
// Sub-block, affine: x ≈ a * l + b, l in 0..q_max, b <= 0.

struct AffineFit {
  float a = 0, b = 0;
  double err = std::numeric_limits<double>::infinity();
};

double affine_error(const float* x, const float* w, int n, float a, float b, const uint8_t* l) {
  double e = 0;
  for (int i = 0; i < n; ++i) {
    double diff = double(a) * l[i] + b - x[i];
    e += w[i] * diff * diff;
  }
  return e;
}

// Weighted least squares for x ≈ a * l + b given levels l, with b clamped to <= 0,
// and its error sum w (a l + b - x)^2 from the same sums. Returns false when the
// levels do not determine a positive scale.
bool solve_affine(const float* x, const float* w, int n, const uint8_t* l, AffineFit& fit) {
  double sw = 0, sl = 0, sll = 0, sx = 0, sxl = 0, sxx = 0;
  for (int i = 0; i < n; ++i) {
    const double wi = w[i], li = l[i], xi = x[i];
    sw += wi;
    sl += wi * li;
    sll += wi * li * li;
    sx += wi * xi;
    sxl += wi * xi * li;
    sxx += wi * xi * xi;
  }
  double det = sw * sll - sl * sl;
  if (det <= 0 || sll <= 0) return false;
  double a = (sw * sxl - sx * sl) / det;
  double b = (sll * sx - sl * sxl) / det;
  if (b > 0) {  // the offset may only pull values down (ggml stores it as an unsigned min)
    b = 0;
    a = sxl / sll;
  }
  if (!(a > 0)) return false;
  fit.a = float(a);
  fit.b = float(b);
  fit.err = std::max(0.0, sxx - 2 * a * sxl - 2 * b * sx + a * a * sll + 2 * a * b * sl + b * b * sw);
  return true;
}

AffineFit fit_affine(const float* x, const float* w, int n, int q_max, uint8_t* l) {
  float lo = 0, hi = x[0];
  for (int i = 0; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  AffineFit best;
  if (!(hi > lo)) {  // constant sub-block (<= 0): offset alone represents it
    std::fill_n(l, n, uint8_t(0));
    best.b = lo;
    best.err = affine_error(x, w, n, 0, lo, l);
    return best;
  }
  uint8_t trial[32];
  // Start: the plain min/max mapping.
  best.a = (hi - lo) / float(q_max);
  best.b = lo;
  for (int i = 0; i < n; ++i) l[i] = uint8_t(clamp_round((x[i] - lo) / best.a, 0, q_max));
  best.err = affine_error(x, w, n, best.a, best.b, l);
  // Grid over the inverse scale, each point refit by least squares (factors above 1
  // clip the largest values, below 1 leave levels unused; the refit then moves a, b).
  const SearchEffort& E = effort();
  for (int t = 0; t <= E.grid_steps; ++t) {
    const float iscale = float(q_max) * (kGridLo + kGridSpan / float(E.grid_steps) * float(t)) / (hi - lo);
    for (int i = 0; i < n; ++i) trial[i] = uint8_t(clamp_round((x[i] - lo) * iscale, 0, q_max));
    AffineFit fit;
    if (solve_affine(x, w, n, trial, fit) && fit.err < best.err) {
      best = fit;
      std::memcpy(l, trial, size_t(n));
    }
  }
  // Alternate: levels for this (a, b), then (a, b) for these levels.
  for (int r = 0; r < E.refine_rounds; ++r) {
    bool changed = false;
    const float inv = 1 / best.a;
    for (int i = 0; i < n; ++i) {
      trial[i] = uint8_t(clamp_round((x[i] - best.b) * inv, 0, q_max));
      changed |= trial[i] != l[i];
    }
    AffineFit fit;
    if (!changed || !solve_affine(x, w, n, trial, fit) || !(fit.err < best.err)) break;
    best = fit;
    std::memcpy(l, trial, size_t(n));
  }
  return best;
}

// ---------------------------------------------------------------------------
// Sub-block, symmetric: x ≈ s * l, l in q_lo..q_hi.

struct SymmetricFit {
  float s = 0;
  double err = std::numeric_limits<double>::infinity();
};

// Least-squares scale for levels l and its error sum w (x - s l)^2 = sxx - sxl^2 / sll.
bool solve_symmetric(const float* x, const float* w, int n, const int8_t* l, float& s, double& err) {
  double sxx = 0, sxl = 0, sll = 0;
  for (int i = 0; i < n; ++i) {
    const double wi = w[i], li = l[i], xi = x[i];
    sxx += wi * xi * xi;
    sxl += wi * xi * li;
    sll += wi * li * li;
  }
  if (sll <= 0) return false;
  s = float(sxl / sll);
  err = std::max(0.0, sxx - sxl * sxl / sll);
  return true;
}

SymmetricFit fit_symmetric(const float* x, const float* w, int n, int q_lo, int q_hi, int8_t* l) {
  float xm = 0;  // the value of largest magnitude, with its sign
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > std::fabs(xm)) xm = x[i];
  SymmetricFit best;
  if (xm == 0) {
    std::fill_n(l, n, int8_t(0));
    best.err = 0;
    return best;
  }
  // Grid: the largest value maps to level q_lo * r (the longer, negative end of the
  // level range) for r = kGridLo + step * t, each point refit by least
  // squares. A relative grid suits both 8 and 64 levels (with many levels, clipping
  // the largest value often pays); llama.cpp's make_qx_quants uses +-0.9 levels.
  int8_t trial[32];
  const SearchEffort& E = effort();
  for (int t = 0; t <= E.grid_steps; ++t) {
    const float iscale = float(q_lo) * (kGridLo + kGridSpan / float(E.grid_steps) * float(t)) / xm;
    for (int i = 0; i < n; ++i) trial[i] = int8_t(clamp_round(x[i] * iscale, q_lo, q_hi));
    float s;
    double e;
    if (solve_symmetric(x, w, n, trial, s, e) && e < best.err) {
      best = {s, e};
      std::memcpy(l, trial, size_t(n));
    }
  }
  if (best.s == 0) {  // every weight zero: nothing to fit
    std::fill_n(l, n, int8_t(0));
    best.err = 0;
    return best;
  }
  for (int r = 0; r < E.refine_rounds; ++r) {
    bool changed = false;
    const float inv = 1 / best.s;
    for (int i = 0; i < n; ++i) {
      trial[i] = int8_t(clamp_round(x[i] * inv, q_lo, q_hi));
      changed |= trial[i] != l[i];
    }
    float s;
    double e;
    if (!changed || !solve_symmetric(x, w, n, trial, s, e) || !(e < best.err) || s == 0) break;
    best = {s, e};
    std::memcpy(l, trial, size_t(n));
  }
  return best;
}

// The eight partial sums of round_affine / round_symmetric, added in a fixed order.
double sum8(const float* acc) {
  return ((double(acc[0]) + acc[1]) + (double(acc[2]) + acc[3])) + ((double(acc[4]) + acc[5]) + (double(acc[6]) + acc[7]));
}

// ---------------------------------------------------------------------------
// Super-block, affine.

// Levels of one sub-block for a fixed effective scale / min (value = scale * q - min)
// and their weighted error, the value computed in float as dequantize does.
double round_affine(const float* x, const float* w, int n, int q_max, float scale, float min, uint8_t* q) {
  // Written so the compiler can vectorise it: eight independent partial sums
  // (n is a multiple of 8) whose order is fixed by the code, so the result is
  // the same whether or not it does.
  const float inv = scale > 0 ? 1 / scale : 0, top = float(q_max);
  float acc[8] = {};
  for (int i0 = 0; i0 < n; i0 += 8)
    for (int k = 0; k < 8; ++k) {
      const int i = i0 + k;
      float v = (x[i] + min) * inv;
      v = v > 0.f ? v : 0.f;
      v = v < top ? v : top;
      const float level = std::rint(v);
      q[i] = uint8_t(level);
      const float diff = scale * level - min - x[i];
      acc[k] += w[i] * diff * diff;
    }
  return sum8(acc);
}

struct AffineState {
  AffineSuperBlock blk;
  float d = 0, dmin = 0;  // f16-rounded values of blk.d, blk.dmin
  double err = std::numeric_limits<double>::infinity();
};

// Re-rounds every level for the state's integers and d / dmin; sets err.
void requantize(const float* x, const float* w, const AffineLayout& L, AffineState& s) {
  s.err = 0;
  for (int j = 0; j < L.n_sub; ++j) {
    int o = j * L.sub_len;
    s.err += round_affine(x + o, w + o, L.sub_len, L.q_max, s.d * float(s.blk.sc[j]), s.dmin * float(s.blk.m[j]),
                          s.blk.q + o);
  }
}

// For fixed d / dmin, gives each sub-block the integer scale / min (neighbours of
// its ideal a_j / d, m_j / dmin, or its current pair) with the lowest error.
void pick_integers(const float* x, const float* w, const AffineLayout& L, const AffineFit* fits, AffineState& s) {
  uint8_t q[32];
  s.err = 0;
  for (int j = 0; j < L.n_sub; ++j) {
    const int o = j * L.sub_len;
    uint8_t& sc = s.blk.sc[j];
    uint8_t& m = s.blk.m[j];
    double best = round_affine(x + o, w + o, L.sub_len, L.q_max, s.d * float(sc), s.dmin * float(m), s.blk.q + o);
    auto try_pair = [&](int c, int k) {
      if (c < 0 || c > L.sc_max || k < 0 || k > L.sc_max || (c == sc && k == m)) return false;
      if ((s.d == 0 && c != 0) || (s.dmin == 0 && k != 0)) return false;
      double e = round_affine(x + o, w + o, L.sub_len, L.q_max, s.d * float(c), s.dmin * float(k), q);
      if (!(e < best)) return false;
      best = e;
      sc = uint8_t(c);
      m = uint8_t(k);
      std::memcpy(s.blk.q + o, q, size_t(L.sub_len));
      return true;
    };
    // The four integer pairs around the ideal (a_j / d, m_j / dmin), moved inside
    // the range (a coarse f16 d can put the ideal past sc_max) ...
    const int c0 = s.d > 0 ? ideal_floor(fits[j].a / s.d, 0, L.sc_max) : 0;
    const int k0 = s.dmin > 0 ? ideal_floor(-fits[j].b / s.dmin, 0, L.sc_max) : 0;
    for (int c = c0; c <= c0 + 1; ++c)
      for (int k = k0; k <= k0 + 1; ++k) try_pair(c, k);
    // ... then single steps from the best while they help.
    for (int step = 0; step < effort().pick_steps; ++step) {
      const int c = sc, k = m;
      if (!(try_pair(c - 1, k) | try_pair(c + 1, k) | try_pair(c, k - 1) | try_pair(c, k + 1))) break;
    }
    s.err += best;
  }
}

// Least-squares d, dmin >= 0 for the state's integers and levels:
// minimise sum w (d * A - dmin * B - x)^2 with A = sc[j] * q, B = m[j].
void refit_d(const float* x, const float* w, const AffineLayout& L, AffineState& s) {
  double aa = 0, ab = 0, bb = 0, ax = 0, bx = 0;
  for (int i = 0; i < L.n_sub * L.sub_len; ++i) {
    int j = i / L.sub_len;
    double A = double(s.blk.sc[j]) * s.blk.q[i], B = s.blk.m[j];
    aa += w[i] * A * A;
    ab += w[i] * A * B;
    bb += w[i] * B * B;
    ax += w[i] * A * x[i];
    bx += w[i] * B * x[i];
  }
  double d = s.d, dmin = s.dmin;  // a factor no integer uses keeps its value
  double det = aa * bb - ab * ab;
  if (aa > 0 && bb > 0 && det > 1e-12 * aa * bb) {
    d = (ax * bb - ab * bx) / det;
    dmin = -(aa * bx - ab * ax) / det;
    if (dmin < 0) dmin = 0, d = ax / aa;
    if (d < 0) d = 0, dmin = std::max(0.0, -bx / bb);
  } else if (aa > 0) {
    d = std::max(0.0, (ax + dmin * ab) / aa);
  } else if (bb > 0) {
    dmin = std::max(0.0, -bx / bb);
  }
  s.d = round_to_f16(float(d), s.blk.d);
  s.dmin = round_to_f16(float(dmin), s.blk.dmin);
}

// ---------------------------------------------------------------------------
// Super-block, symmetric.

double round_symmetric(const float* x, const float* w, int n, int q_lo, int q_hi, float scale, int8_t* q) {
  const float inv = scale != 0 ? 1 / scale : 0, lo = float(q_lo), hi = float(q_hi);
  float acc[8] = {};  // partial sums, as in round_affine
  for (int i0 = 0; i0 < n; i0 += 8)
    for (int k = 0; k < 8; ++k) {
      const int i = i0 + k;
      float v = x[i] * inv;
      v = v > lo ? v : lo;
      v = v < hi ? v : hi;
      const float level = std::rint(v);
      q[i] = int8_t(level);
      const float diff = scale * level - x[i];
      acc[k] += w[i] * diff * diff;
    }
  return sum8(acc);
}

struct SymmetricState {
  SymmetricSuperBlock blk;
  float d = 0;
  double err = std::numeric_limits<double>::infinity();
};

void requantize(const float* x, const float* w, const SymmetricLayout& L, SymmetricState& s) {
  s.err = 0;
  for (int j = 0; j < L.n_sub; ++j) {
    int o = j * L.sub_len;
    s.err += round_symmetric(x + o, w + o, L.sub_len, L.q_lo, L.q_hi, s.d * float(s.blk.sc[j]), s.blk.q + o);
  }
}

// For a fixed d, gives each sub-block the integer scale (around its ideal s_j / d,
// or its current one) with the lowest error, as the affine pick_integers does.
void pick_integers(const float* x, const float* w, const SymmetricLayout& L, const SymmetricFit* fits,
                   SymmetricState& s) {
  int8_t q[32];
  s.err = 0;
  for (int j = 0; j < L.n_sub; ++j) {
    const int o = j * L.sub_len;
    int8_t& sc = s.blk.sc[j];
    double best = round_symmetric(x + o, w + o, L.sub_len, L.q_lo, L.q_hi, s.d * float(sc), s.blk.q + o);
    auto try_scale = [&](int c) {
      if (c < L.sc_lo || c > L.sc_hi || c == sc || (s.d == 0 && c != 0)) return false;
      double e = round_symmetric(x + o, w + o, L.sub_len, L.q_lo, L.q_hi, s.d * float(c), q);
      if (!(e < best)) return false;
      best = e;
      sc = int8_t(c);
      std::memcpy(s.blk.q + o, q, size_t(L.sub_len));
      return true;
    };
    const int c0 = s.d != 0 ? ideal_floor(fits[j].s / s.d, L.sc_lo, L.sc_hi) : 0;
    try_scale(c0);
    try_scale(c0 + 1);
    for (int step = 0; step < effort().pick_steps; ++step) {
      const int c = sc;
      if (!(try_scale(c - 1) | try_scale(c + 1))) break;
    }
    s.err += best;
  }
}

void refit_d(const float* x, const float* w, const SymmetricLayout& L, SymmetricState& s) {
  double aa = 0, ax = 0;
  for (int i = 0; i < L.n_sub * L.sub_len; ++i) {
    double A = double(s.blk.sc[i / L.sub_len]) * s.blk.q[i];
    aa += w[i] * A * A;
    ax += w[i] * A * x[i];
  }
  if (aa > 0) s.d = round_to_f16(float(ax / aa), s.blk.d);
}

// ---------------------------------------------------------------------------
// Super-block, either kind.

// One start of the super-block search, from the d (and dmin) set in `cur`: pick
// the integers, then alternate "refit d (and dmin), re-round the levels" and
// "re-pick the integers" while either step improves; returns the best state seen.
template <class Layout, class Fit, class State>
State descend(const float* x, const float* w, const Layout& L, const Fit* fits, State cur) {
  pick_integers(x, w, L, fits, cur);
  State run = cur;
  for (int r = 0; r < effort().superblock_rounds; ++r) {
    bool improved = false;
    refit_d(x, w, L, cur);
    requantize(x, w, L, cur);
    if (cur.err < run.err) run = cur, improved = true;
    pick_integers(x, w, L, fits, cur);
    if (cur.err < run.err) run = cur, improved = true;
    if (!improved) break;
    cur = run;
  }
  return run;
}

}  // namespace

// ---------------------------------------------------------------------------

void superblock_weights(const float* importance, int sub_len, float* w) {
  for (int o = 0; o < 256; o += sub_len) {
    double sum = 0;
    if (importance)
      for (int i = o; i < o + sub_len; ++i) sum += importance[i];
    for (int i = o; i < o + sub_len; ++i) w[i] = sum > 0 ? importance[i] : 1.0f;
  }
}

void search(const float* x, const float* w, const AffineLayout& L, AffineSuperBlock& out) {
  AffineFit fits[16];
  float max_a = 0, max_m = 0;
  for (int j = 0; j < L.n_sub; ++j) {
    int o = j * L.sub_len;
    fits[j] = fit_affine(x + o, w + o, L.sub_len, L.q_max, out.q + o);
    max_a = std::max(max_a, fits[j].a);
    max_m = std::max(max_m, -fits[j].b);
  }
  // Starts: the largest sub-block scale / min gets (about) the largest integer.
  AffineState best;
  for (int start = 0; start < effort().affine_starts; ++start) {
    const float shrink = kAffineStarts[start];
    AffineState cur;
    cur.d = round_to_f16(max_a / (float(L.sc_max) - shrink), cur.blk.d);
    cur.dmin = round_to_f16(max_m / (float(L.sc_max) - shrink), cur.blk.dmin);
    const AffineState run = descend(x, w, L, fits, cur);
    if (run.err < best.err) best = run;
  }
  out = best.blk;
}

void search(const float* x, const float* w, const SymmetricLayout& L, SymmetricSuperBlock& out) {
  SymmetricFit fits[16];
  float s_max = 0;  // the sub-block scale of largest magnitude, with its sign
  for (int j = 0; j < L.n_sub; ++j) {
    int o = j * L.sub_len;
    fits[j] = fit_symmetric(x + o, w + o, L.sub_len, L.q_lo, L.q_hi, out.q + o);
    if (std::fabs(fits[j].s) > std::fabs(s_max)) s_max = fits[j].s;
  }
  out = SymmetricSuperBlock{};
  if (s_max == 0) return;  // all zero
  SymmetricState best;
  // Starts: the largest scale at either end of the (asymmetric) integer range.
  for (int end : {L.sc_lo, L.sc_hi}) {
    SymmetricState cur;
    cur.d = round_to_f16(s_max / float(end), cur.blk.d);
    if (cur.d == 0) continue;  // below the smallest f16: the block stays zero
    const SymmetricState run = descend(x, w, L, fits, cur);
    if (run.err < best.err) best = run;
  }
  if (best.err < std::numeric_limits<double>::infinity()) out = best.blk;
}

}  // namespace lowbit::kq

namespace lowbit {
void set_kquant_effort(KQuantEffort e) { kq::g_effort.store(int(e), std::memory_order_relaxed); }
KQuantEffort kquant_effort() { return KQuantEffort(kq::g_effort.load(std::memory_order_relaxed)); }
}  // namespace lowbit
