// Fixed-scale rounding shared by the block formats' encode_fixed (format.h,
// BlockGridFn / EncodeFixedFn): the nearest code on one value's grid
//   value(k) = offset + step * g(k),  k in lo..hi,  g(k) = k, or table[k - lo] (ascending)
// with value(k) computed in f32 exactly as block_grid's users (and the format's
// dequantize) compute it.
#pragma once
#include <cmath>

namespace lowbit {

// The code a reference quantizer stores for a zero value when the scale is 0:
// the one whose g(k) is nearest to 0 (ties: the lower code). For affine ranges
// that is 0 (clamped into lo..hi); for iq4_nl's grid index 8 (grid point 1).
inline int zero_fixed_code(int lo, int hi, const float* table) {
  if (!table) return lo > 0 ? lo : (hi < 0 ? hi : 0);
  int best = lo;
  for (int k = lo + 1; k <= hi; ++k)
    if (std::fabs(table[k - lo]) < std::fabs(table[best - lo])) best = k;
  return best;
}

// Nearest code to x on the grid above: the k minimising |x - value(k)| (measured
// in double between x and the f32 value(k)), ties to the lower code; x beyond
// either end takes the end code. value(k) is monotone in k (f32 rounding is
// monotone), so two binary searches find it exactly, even where f32 rounding
// makes neighbouring codes decode to the same value (then the lowest of them).
// step == 0 (every code decodes to `offset`), a non-finite step or offset, or a
// NaN x: zero_fixed_code.
inline int nearest_fixed_code(float x, float step, float offset, int lo, int hi, const float* table) {
  if (step == 0.0f || !std::isfinite(step) || !std::isfinite(offset) || std::isnan(x))
    return zero_fixed_code(lo, hi, table);
  // a(k) = sign * value(k) ascends in k; y = sign * x (negation is exact, distances unchanged).
  const bool neg = step < 0.0f;
  auto a = [&](int k) {
    const float v = offset + step * (table ? table[k - lo] : float(k));
    return neg ? -v : v;
  };
  const float y = neg ? -x : x;
  auto first_ge = [&](float t) {  // lowest k in lo..hi with a(k) >= t, hi + 1 when none
    int l = lo, h = hi + 1;
    while (l < h) {
      const int m = l + (h - l) / 2;
      if (a(m) >= t) h = m; else l = m + 1;
    }
    return l;
  };
  const int up = first_ge(y);
  if (up == lo) return lo;
  const float below = a(up - 1);  // the largest value < y
  const int below_code = first_ge(below);  // lowest code decoding to it
  if (up > hi) return below_code;
  const double d_up = double(a(up)) - double(y), d_below = double(y) - double(below);
  return d_below <= d_up ? below_code : up;  // tie: below_code < up
}

}  // namespace lowbit
