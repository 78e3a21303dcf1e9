// HQQ: the half-quadratic solver, the HqqLinear runtime layer and the "hqq" Quantizer.
//
// The solver (Badri & Shaji, "Half-Quadratic Quantization of Large Machine
// Learning Models", 2023; hqq/core/optimize.py optimize_weights_proximal_legacy):
// per group, minimise  phi(W - Q^-1(Q(W)))  with phi the lp "norm" |.|^p,
// p < 1, over the zero point z (the scale s stays at its min/max value, or the
// grid-searched one with extra "optimize_scale", see HqqOptions).
// Half-quadratic splitting introduces the extra variable W_e = W - W_r and
// alternates two closed-form steps (blog/paper "Optimization" section):
//   (sp1)  W_e <- shrink_lp(W - W_r; beta, p)   generalized soft-thresholding:
//          sign(x) * relu(|x| - |x|^(p-1) / beta)
//   (sp2)  z   <- mean(W_q - (W - W_e) * s)     the z that makes W_r closest to W - W_e
// with W_q = clamp(round(W * s + z)), W_r = (W_q - z) / s, and beta *= kappa
// after each step. As in hqq, the scale is the multiplier max_q / (max - min)
// while optimising and is inverted at the end.
//
// Differences from the reference, all deliberate:
//   - Early stopping is per group (hqq stops the whole tensor on its mean |error|),
//     measured with the objective itself (sum |W - W_r|^p), and the best zero seen
//     is kept (hqq's legacy solver returns the zero computed after the last step).
//     Groups are independent, so results do not depend on how groups are split
//     between threads.
//   - Codes are chosen on the stored grid: q = clamp(round(w / s16 + z16)) with the
//     f16-rounded scale and zero a loader reconstructs (hqq rounds with the f32
//     values, then casts the meta to f16).
//   - Dequantization is computed in f32: (q - z) * s (hqq uses the compute dtype).
//   - |r|^(p-1) uses a polynomial log2/exp2 (~1e-7 relative), so the loop vectorises;
//     the solver is compiled for the baseline ISA only, so its bytes do not depend
//     on the CPU either.
#include "methods/hqq.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "core/half.h"
#include "kernels/dispatch.h"
#include "lowbit/error.h"
#include "model/matmul.h"

namespace lowbit {

namespace {

// ---- fast |x|^y for the shrinkage (vectorisable; ~1e-7 relative) ----------

inline float fast_log2(float x) {  // x > 0, normal
  const uint32_t u = std::bit_cast<uint32_t>(x);
  float e = float(int32_t(u >> 23) - 127);
  float m = std::bit_cast<float>((u & 0x7fffffu) | 0x3f800000u);  // [1, 2)
  const bool hi = m > 1.41421356f;
  m = hi ? m * 0.5f : m;
  e = hi ? e + 1.0f : e;
  // log2(m) = 2/ln2 * atanh(t), t = (m - 1) / (m + 1), |t| <= 0.172
  const float t = (m - 1.0f) / (m + 1.0f), t2 = t * t;
  const float poly = t * (2.0f + t2 * (0.6666667f + t2 * (0.4f + t2 * 0.2857143f)));
  return e + poly * 1.44269504f;
}

inline float fast_exp2(float y) {  // y in [-126, 126]
  const float n = __builtin_nearbyintf(y);
  const float f = (y - n) * 0.69314718f;  // e^f, |f| <= 0.347
  const float p = 1.0f + f * (1.0f + f * (0.5f + f * (0.16666667f + f * (0.041666668f + f * (0.008333334f + f * 0.0013888889f)))));
  const uint32_t bits = uint32_t(int32_t(n) + 127) << 23;
  return p * std::bit_cast<float>(bits);
}

// a^y for a >= 1e-30, |y| <= 1.
inline float fast_pow(float a, float y) { return fast_exp2(std::clamp(y * fast_log2(a), -126.0f, 126.0f)); }

struct Init {
  float scale, zero;
};

// hqq Quantizer.quantize: scale = max_q / (max - min) (1 when the range is
// <= 1e-4), clamped to 2e4 for half precision; zero = -min * scale.
Init minmax_init(const float* w, int64_t n, int maxq, bool round_zero) {
  float mn = w[0], mx = w[0];
  for (int64_t i = 1; i < n; ++i) {
    mn = std::min(mn, w[i]);
    mx = std::max(mx, w[i]);
  }
  const float denom = mx - mn;
  float scale = std::fabs(denom) <= 1e-4f ? 1.0f : float(maxq) / denom;
  scale = std::min(scale, 2e4f);
  float zero = -mn * scale;
  if (round_zero) zero = __builtin_nearbyintf(zero);
  return {scale, zero};
}

// update_scale_grid_search for one group: W_q fixed at the init, scales
// s + linspace(-0.05 s, 0.05 s, 129) (an odd count keeps s itself), magnitudes
// below 2e-4 pushed out to +-2e-4 ("safe inverse"), the first minimum of
// sum |W - (W_q - z) / s_i| wins.
float grid_search_scale(const float* w, int64_t n, float fmaxq, const Init& init) {
  constexpr int kN = 129;
  const float rng = 0.05f * std::fabs(init.scale), z = init.zero;
  float best_s = init.scale, best = INFINITY;
  for (int i = 0; i < kN; ++i) {
    float si = init.scale + (-rng + float(i) * (2.0f * rng / float(kN - 1)));
    if (std::fabs(si) <= 2e-4f) si = si >= 0.0f ? 2e-4f : -2e-4f;
    float err = 0.0f;
#pragma omp simd reduction(+ : err)
    for (int64_t k = 0; k < n; ++k) {
      const float q = std::clamp(__builtin_nearbyintf(w[k] * init.scale + z), 0.0f, fmaxq);
      err += std::fabs(w[k] - (q - z) / si);
    }
    if (err < best) {
      best = err;
      best_s = si;
    }
  }
  return best_s;
}

}  // namespace

HqqGroupFit hqq_fit_group(const float* w, int64_t n, int nbits, const HqqOptions& opt) {
  const int maxq = (1 << nbits) - 1;
  const float fmaxq = float(maxq);
  const Init init = minmax_init(w, n, maxq, opt.round_zero);
  const float s = opt.optimize && opt.optimize_scale ? grid_search_scale(w, n, fmaxq, init) : init.scale;
  const float p1 = opt.lp_norm - 1.0f;
  HqqGroupFit fit{s, init.zero, 0.0, 0.0, 0};
  float z = init.zero, beta = opt.beta;
  float best = INFINITY;
  const int iters = opt.optimize ? std::max(1, opt.iters) : 1;
  for (int it = 0; it < iters; ++it) {
    const float inv_beta = 1.0f / beta;
    float err = 0.0f, zsum = 0.0f;
#pragma omp simd reduction(+ : err, zsum)
    for (int64_t i = 0; i < n; ++i) {
      const float q = std::clamp(__builtin_nearbyintf(w[i] * s + z), 0.0f, fmaxq);
      const float r = w[i] - (q - z) / s;                    // W - W_r
      const float a = std::fabs(r);
      const float t = fast_pow(std::max(a, 1e-30f), p1);     // |r|^(p-1)
      err += a * t;                                          // |r|^p
      const float we = std::copysign(std::max(a - t * inv_beta, 0.0f), r);  // (sp1) shrink_lp
      zsum += q - (w[i] - we) * s;                           // (sp2)
    }
    if (it == 0) fit.init_error = err;
    fit.iters_run = it + 1;
    if (err < best) {
      best = err;
      fit.zero = z;
    } else if (opt.early_stop) {
      break;
    }
    if (!opt.optimize) break;
    z = zsum / float(n);
    beta *= opt.kappa;
  }
  fit.best_error = best;
  return fit;
}

double hqq_group_lp_error(const float* w, int64_t n, int nbits, float scale, float zero, float p) {
  const float maxq = float((1 << nbits) - 1);
  double e = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const float q = std::clamp(std::nearbyint(w[i] * scale + zero), 0.0f, maxq);
    e += std::pow(std::fabs(double(w[i]) - double((q - zero) / scale)), double(p));
  }
  return e;
}

HqqOptions hqq_options_from_config(const QuantConfig& cfg) {
  HqqOptions o;
  o.iters = cfg.extra_or<int>("iters", o.iters);
  o.lp_norm = cfg.extra_or<float>("lp_norm", o.lp_norm);
  o.beta = cfg.extra_or<float>("beta", o.beta);
  o.kappa = cfg.extra_or<float>("kappa", o.kappa);
  o.early_stop = cfg.extra_or<bool>("early_stop", o.early_stop);
  o.optimize = cfg.extra_or<bool>("optimize", o.optimize);
  o.round_zero = cfg.extra_or<bool>("round_zero", cfg.bits == 4);
  o.optimize_scale = cfg.extra_or<bool>("optimize_scale", o.optimize_scale);
  const std::string where = "quantization config (hqq)";
  if (o.iters < 1 || o.iters > 10000) fail(where, fmt::format("extra.iters = {} is out of range", o.iters), "hqq uses 20");
  if (!(o.lp_norm > 0.0f && o.lp_norm <= 1.0f))
    fail(where, fmt::format("extra.lp_norm = {} is not in (0, 1]", o.lp_norm), "hqq uses 0.7");
  if (!(o.beta > 0.0f && std::isfinite(o.beta))) fail(where, fmt::format("extra.beta = {} is not > 0", o.beta), "hqq uses 10");
  if (!(o.kappa >= 1.0f && o.kappa < 100.0f)) fail(where, fmt::format("extra.kappa = {} is not in [1, 100)", o.kappa), "hqq uses 1.01");
  return o;
}

// ---- layout --------------------------------------------------------------

int HqqShape::codes_per_unit() const {
  switch (nbits) {
    case 8: return 1;
    case 4: return 2;
    case 3: return 10;
    case 2: return 4;
    case 1: return 8;
    default: return 0;
  }
}

int64_t HqqShape::packed_rows() const {
  const int per = codes_per_unit();
  return per == 0 ? 0 : (pack_len() + per - 1) / per;
}

const char* HqqShape::packing() const {
  switch (nbits) {
    case 8: return "8bit_u8";
    case 4: return "4bit_u8";
    case 3: return "3bit_32";
    case 2: return "2bit_u8";
    case 1: return "1bit_u8";
    default: return "?";
  }
}

void HqqShape::validate(const std::string& where) const {
  if (codes_per_unit() == 0) fail(where, fmt::format("hqq cannot store {} bits", nbits), "nbits: 1, 2, 3, 4 or 8");
  if (axis != 0 && axis != 1) fail(where, fmt::format("hqq axis {} is not 0 or 1", axis), "axis 1 groups along a row");
  if (n_out <= 0 || n_in <= 0) fail(where, fmt::format("empty weight [{}, {}]", n_out, n_in));
  const int64_t dim = axis == 1 ? n_in : n_out;
  if (group_size <= 0 || dim % group_size != 0)
    fail(where,
         fmt::format("group_size {} does not divide {} = {} of the weight [{}, {}]", group_size,
                     axis == 1 ? "n_in" : "n_out", dim, n_out, n_in),
         "choose a group_size that divides the grouped dimension, or -1 for whole rows/columns");
  const int per = codes_per_unit();
  if (nbits != 3 && pack_len() % per != 0)
    fail(where,
         fmt::format("hqq's {} packing needs the {} ({}) to be a multiple of {}", packing(),
                     axis == 1 ? "number of groups" : "group_size", pack_len(), per),
         "choose another group_size (hqq's BitPack packs along that dimension)");
}

std::vector<uint8_t> hqq_pack(const HqqShape& s, std::span<const uint8_t> codes) {
  const int64_t L = s.pack_len(), width = s.pack_width(), step = s.packed_rows();
  const int per = s.codes_per_unit();
  LOWBIT_ASSERT(int64_t(codes.size()) == L * width);
  std::vector<uint8_t> out(s.packed_bytes(), 0);
  if (s.nbits == 3) {
    std::vector<uint32_t> u(size_t(step * width), 0);
    for (int64_t a = 0; a < L; ++a) {
      const int shift = 3 * (per - 1 - int(a / step));
      uint32_t* dst = u.data() + (a % step) * width;
      const uint8_t* src = codes.data() + a * width;
      for (int64_t b = 0; b < width; ++b) dst[b] |= uint32_t(src[b] & 7) << shift;
    }
    std::memcpy(out.data(), u.data(), out.size());  // int32 units, little endian as torch stores them
    return out;
  }
  const int mask = (1 << s.nbits) - 1;
  for (int64_t a = 0; a < L; ++a) {
    const int shift = s.nbits * (per - 1 - int(a / step));
    uint8_t* dst = out.data() + (a % step) * width;
    const uint8_t* src = codes.data() + a * width;
    for (int64_t b = 0; b < width; ++b) dst[b] = uint8_t(dst[b] | ((src[b] & mask) << shift));
  }
  return out;
}

std::vector<uint8_t> hqq_unpack(const HqqShape& s, std::span<const uint8_t> packed) {
  const int64_t L = s.pack_len(), width = s.pack_width(), step = s.packed_rows();
  const int per = s.codes_per_unit(), mask = (1 << s.nbits) - 1;
  LOWBIT_ASSERT(packed.size() == s.packed_bytes());
  std::vector<uint8_t> codes(size_t(L * width));
  for (int64_t a = 0; a < L; ++a) {
    const int shift = s.nbits * (per - 1 - int(a / step));
    uint8_t* dst = codes.data() + a * width;
    if (s.nbits == 3) {
      const uint8_t* src = packed.data() + size_t((a % step) * width) * 4;
      for (int64_t b = 0; b < width; ++b) {
        uint32_t u;
        std::memcpy(&u, src + 4 * b, 4);
        dst[b] = uint8_t((u >> shift) & 7u);
      }
    } else {
      const uint8_t* src = packed.data() + (a % step) * width;
      for (int64_t b = 0; b < width; ++b) dst[b] = uint8_t((src[b] >> shift) & mask);
    }
  }
  return codes;
}

// ---- HqqLinear -----------------------------------------------------------

HqqLinear::HqqLinear(HqqShape shape, std::vector<uint8_t> packed, std::vector<float> scale, std::vector<float> zero,
                     DType meta_dtype, HqqOptions opts)
    : shape_(shape), packed_(std::move(packed)), scale_(std::move(scale)), zero_(std::move(zero)),
      meta_dtype_(meta_dtype), opts_(opts) {
  shape_.validate("HqqLinear");
  LOWBIT_ASSERT(packed_.size() == shape_.packed_bytes());
  LOWBIT_ASSERT(int64_t(scale_.size()) == shape_.n_groups() && int64_t(zero_.size()) == shape_.n_groups());
  LOWBIT_ASSERT(meta_dtype_ == DType::F16 || meta_dtype_ == DType::BF16 || meta_dtype_ == DType::F32);
}

size_t HqqLinear::nbytes() const { return packed_.size() + 2 * scale_.size() * dtype_size(meta_dtype_); }

std::string HqqLinear::type_name() const {
  return fmt::format("hqq{}g{}{}", shape_.nbits, shape_.group_size, shape_.axis == 0 ? "a0" : "");
}

std::string HqqLinear::describe() const {
  return fmt::format("hqq, nbits={}, group_size={}, axis={}", shape_.nbits, shape_.group_size, shape_.axis);
}

int HqqLinear::code(int64_t row, int64_t col) const {
  const int64_t f = row * shape_.n_in + col, width = shape_.pack_width(), step = shape_.packed_rows();
  const int64_t a = f / width, b = f % width;
  const int shift = shape_.nbits * (shape_.codes_per_unit() - 1 - int(a / step));
  if (shape_.nbits == 3) {
    uint32_t u;
    std::memcpy(&u, packed_.data() + size_t((a % step) * width + b) * 4, 4);
    return int((u >> shift) & 7u);
  }
  return (packed_[size_t((a % step) * width + b)] >> shift) & ((1 << shape_.nbits) - 1);
}

namespace {

// Everything a row decode needs, by value (so the ISA clones below see plain pointers).
struct RowJob {
  const uint8_t* packed;
  const float* scale;
  const float* zero;
  int nbits, per;
  int axis;
  int64_t gs, n_in, width, step, R;  // R = n_out / gs (axis 0)
};

// out[i] = (code_i - z) * s for n codes of one unit row at bit `shift`.
__attribute__((always_inline)) inline void decode_u8(const uint8_t* src, int shift, int mask, float s, float z,
                                                     float* out, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = (float((src[i] >> shift) & mask) - z) * s;
}
__attribute__((always_inline)) inline void decode_u32(const uint8_t* src, int shift, float s, float z, float* out,
                                                      int64_t n) {
  const auto* u = reinterpret_cast<const uint32_t*>(src);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = (float((u[i] >> shift) & 7u) - z) * s;
}
// Per-element scale/zero (axis 0).
__attribute__((always_inline)) inline void decode_u8_v(const uint8_t* src, int shift, int mask, const float* s,
                                                       const float* z, float* out, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = (float((src[i] >> shift) & mask) - z[i]) * s[i];
}
__attribute__((always_inline)) inline void decode_u32_v(const uint8_t* src, int shift, const float* s, const float* z,
                                                        float* out, int64_t n) {
  const auto* u = reinterpret_cast<const uint32_t*>(src);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = (float((u[i] >> shift) & 7u) - z[i]) * s[i];
}

__attribute__((always_inline)) inline void row_impl(const RowJob& j, int64_t r, float* out) {
  const int mask = (1 << j.nbits) - 1, ub = j.nbits == 3 ? 4 : 1;
  if (j.axis == 1) {
    const int64_t gpr = j.n_in / j.gs;
    for (int64_t g = 0; g < gpr; ++g) {
      const int64_t a = r * gpr + g;  // group index = row of the reshaped W_q
      const int shift = j.nbits * (j.per - 1 - int(a / j.step));
      const uint8_t* src = j.packed + size_t((a % j.step) * j.width) * size_t(ub);
      if (ub == 4)
        decode_u32(src, shift, j.scale[a], j.zero[a], out + g * j.gs, j.gs);
      else
        decode_u8(src, shift, mask, j.scale[a], j.zero[a], out + g * j.gs, j.gs);
    }
  } else {
    const int64_t a = r / j.R, b0 = (r % j.R) * j.n_in;  // element a of groups b0 .. b0 + n_in
    const int shift = j.nbits * (j.per - 1 - int(a / j.step));
    const uint8_t* src = j.packed + size_t((a % j.step) * j.width + b0) * size_t(ub);
    if (ub == 4)
      decode_u32_v(src, shift, j.scale + b0, j.zero + b0, out, j.n_in);
    else
      decode_u8_v(src, shift, mask, j.scale + b0, j.zero + b0, out, j.n_in);
  }
}

__attribute__((always_inline)) inline float dot_impl(const float* a, const float* b, int64_t n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// x · W[r] for axis 1 without a row buffer: each weight (q - z) * s is formed
// in registers and multiplied into a per-group partial sum (decoding, n_tok = 1).
__attribute__((always_inline)) inline float row_dot_impl(const RowJob& j, int64_t r, const float* x) {
  const int mask = (1 << j.nbits) - 1;
  const int64_t gpr = j.n_in / j.gs;
  float acc = 0.0f;
  for (int64_t g = 0; g < gpr; ++g) {
    const int64_t a = r * gpr + g;
    const int shift = j.nbits * (j.per - 1 - int(a / j.step));
    const float s = j.scale[a], z = j.zero[a];
    const float* xg = x + g * j.gs;
    float part = 0.0f;
    if (j.nbits == 3) {
      const auto* u = reinterpret_cast<const uint32_t*>(j.packed + size_t((a % j.step) * j.width) * 4);
#pragma omp simd reduction(+ : part)
      for (int64_t e = 0; e < j.gs; ++e) part += (float((u[e] >> shift) & 7u) - z) * s * xg[e];
    } else {
      const uint8_t* src = j.packed + (a % j.step) * j.width;
#pragma omp simd reduction(+ : part)
      for (int64_t e = 0; e < j.gs; ++e) part += (float((src[e] >> shift) & mask) - z) * s * xg[e];
    }
    acc += part;
  }
  return acc;
}

void row_ref(const RowJob& j, int64_t r, float* out) { row_impl(j, r, out); }
float row_dot_ref(const RowJob& j, int64_t r, const float* x) { return row_dot_impl(j, r, x); }
__attribute__((target("avx2,fma,f16c"))) float row_dot_avx2(const RowJob& j, int64_t r, const float* x) {
  return row_dot_impl(j, r, x);
}
using RowDotFn = float (*)(const RowJob&, int64_t, const float*);
RowDotFn row_dot_fn() { return active_isa() >= IsaLevel::Avx2 ? row_dot_avx2 : row_dot_ref; }
float dot_ref(const float* a, const float* b, int64_t n) { return dot_impl(a, b, n); }
__attribute__((target("avx2,fma,f16c"))) void row_avx2(const RowJob& j, int64_t r, float* out) { row_impl(j, r, out); }
__attribute__((target("avx2,fma,f16c"))) float dot_avx2(const float* a, const float* b, int64_t n) {
  return dot_impl(a, b, n);
}

using RowFn = void (*)(const RowJob&, int64_t, float*);
using DotFn = float (*)(const float*, const float*, int64_t);
RowFn row_fn() { return active_isa() >= IsaLevel::Avx2 ? row_avx2 : row_ref; }
DotFn dot_fn() { return active_isa() >= IsaLevel::Avx2 ? dot_avx2 : dot_ref; }

RowJob row_job(const HqqShape& s, const std::vector<uint8_t>& packed, const std::vector<float>& scale,
               const std::vector<float>& zero) {
  return RowJob{packed.data(), scale.data(), zero.data(), s.nbits, s.codes_per_unit(), s.axis, s.group_size,
                s.n_in, s.pack_width(), s.packed_rows(), s.axis == 0 ? s.n_out / s.group_size : 1};
}

float* thread_buffer(size_t n) {
  thread_local std::vector<float> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

constexpr int64_t kRowTile = 64;              // weight rows per task (fixed: results independent of threads)
constexpr int kRowDotMaxTokens = 16;          // below: row-by-row dots; from here: panel + sgemm
constexpr int64_t kParallelMinMacs = 1 << 20;

}  // namespace

void HqqLinear::dequantize_row(int64_t r, float* out) const { row_fn()(row_job(shape_, packed_, scale_, zero_), r, out); }

void HqqLinear::dequantize_rows(int64_t row0, int64_t n_rows, float* W) const {
  if (row0 < 0 || n_rows < 0 || row0 + n_rows > shape_.n_out)
    fail("HqqLinear", fmt::format("rows [{}, {}) outside the weight's {} rows", row0, row0 + n_rows, shape_.n_out),
         "this is a bug in the caller");
  const RowJob job = row_job(shape_, packed_, scale_, zero_);
  const RowFn fn = row_fn();
  for (int64_t r = 0; r < n_rows; ++r) fn(job, row0 + r, W + r * shape_.n_in);
}

void HqqLinear::matmul(const float* X, int n_tok, float* Y, int n_threads) const {
  const int64_t n_out = shape_.n_out, n_in = shape_.n_in;
  if (n_tok <= 0) return;
  const RowJob job = row_job(shape_, packed_, scale_, zero_);
  const RowFn rowf = row_fn();
  const DotFn dotf = dot_fn();
  const RowDotFn rowdotf = row_dot_fn();
  const int nt = std::max(1, n_threads);
  const int64_t n_tiles = (n_out + kRowTile - 1) / kRowTile;
  const int64_t macs = n_out * n_in * n_tok;
  const bool row_dots = n_tok < kRowDotMaxTokens;
  ScopedBlasThreads single(1);  // sgemm runs inside the OpenMP loop below
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) if (n_tiles > 1 && nt > 1 && macs >= kParallelMinMacs)
  for (int64_t tile = 0; tile < n_tiles; ++tile) {
    const int64_t r0 = tile * kRowTile, rows = std::min(kRowTile, n_out - r0);
    if (n_tok == 1 && shape_.axis == 1) {
      for (int64_t r = r0; r < r0 + rows; ++r) Y[r] = rowdotf(job, r, X);
    } else if (row_dots) {
      float* row = thread_buffer(size_t(n_in));  // [n_in]
      for (int64_t r = r0; r < r0 + rows; ++r) {
        rowf(job, r, row);
        for (int t = 0; t < n_tok; ++t) Y[int64_t(t) * n_out + r] = dotf(row, X + int64_t(t) * n_in, n_in);
      }
    } else {
      float* panel = thread_buffer(size_t(kRowTile * n_in));  // [rows, n_in]
      for (int64_t r = 0; r < rows; ++r) rowf(job, r0 + r, panel + r * n_in);
      // Y[:, r0:r0+rows] = X · panel^T
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_tok, int(rows), int(n_in), 1.0f, X, int(n_in), panel,
                  int(n_in), 0.0f, Y + r0, int(n_out));
    }
  }
}

std::shared_ptr<QLinear> HqqLinear::with_rows_permuted(std::span<const int64_t> perm) const {
  const int64_t n_out = shape_.n_out, n_in = shape_.n_in, G = shape_.n_groups();
  if (int64_t(perm.size()) != n_out) fail("HqqLinear", fmt::format("row permutation has {} entries for {} rows", perm.size(), n_out));
  std::vector<char> seen(size_t(n_out), 0);
  for (int64_t p : perm) {
    if (p < 0 || p >= n_out || seen[size_t(p)]) fail("HqqLinear", "row permutation is not a permutation of the rows");
    seen[size_t(p)] = 1;
  }
  const std::vector<uint8_t> codes = hqq_unpack(shape_, packed_);  // [n_out, n_in] in W order
  std::vector<uint8_t> out_codes(codes.size());
  std::vector<float> sc(static_cast<size_t>(G)), ze(static_cast<size_t>(G));
  for (int64_t r = 0; r < n_out; ++r)
    std::memcpy(out_codes.data() + r * n_in, codes.data() + perm[size_t(r)] * n_in, size_t(n_in));
  if (shape_.axis == 1) {
    // Groups lie inside rows: a row's groups move with it.
    const int64_t gpr = n_in / shape_.group_size;
    for (int64_t r = 0; r < n_out; ++r)
      for (int64_t g = 0; g < gpr; ++g) {
        sc[size_t(r * gpr + g)] = scale_[size_t(perm[size_t(r)] * gpr + g)];
        ze[size_t(r * gpr + g)] = zero_[size_t(perm[size_t(r)] * gpr + g)];
      }
  } else {
    // Group (rr, c) holds rows rr, rr + R, rr + 2R, ...: exact only when every new
    // group's rows come from one old group (the same residue mod R).
    const int64_t R = n_out / shape_.group_size;
    for (int64_t rr = 0; rr < R; ++rr) {
      const int64_t src = perm[size_t(rr)] % R;
      for (int64_t k = 0; k < shape_.group_size; ++k)
        if (perm[size_t(k * R + rr)] % R != src) return nullptr;
      for (int64_t c = 0; c < n_in; ++c) {
        sc[size_t(rr * n_in + c)] = scale_[size_t(src * n_in + c)];
        ze[size_t(rr * n_in + c)] = zero_[size_t(src * n_in + c)];
      }
    }
  }
  return std::make_shared<HqqLinear>(shape_, hqq_pack(shape_, out_codes), std::move(sc), std::move(ze), meta_dtype_, opts_);
}

// ---- quantize ------------------------------------------------------------

std::shared_ptr<HqqLinear> hqq_quantize(const std::string& name, const float* W, int64_t n_out, int64_t n_in, int nbits,
                                        int64_t group_size, int axis, const HqqOptions& opt, int n_threads) {
  HqqShape s{nbits, group_size, axis, n_out, n_in};
  if (group_size < 0) s.group_size = axis == 1 ? n_in : n_out;  // hqq: group_size None -> the whole axis
  s.validate(name);
  const int64_t N = n_out * n_in;
  for (int64_t i = 0; i < N; ++i)
    if (!std::isfinite(W[i]))
      fail(name, fmt::format("weight [{}, {}] holds a non-finite value ({}) at row {}, column {}", n_out, n_in, W[i],
                             i / n_in, i % n_in),
           "the source checkpoint is corrupt or overflowed; HQQ needs finite weights");
  const int64_t G = s.n_groups(), gs = s.group_size;
  const int maxq = (1 << nbits) - 1;
  std::vector<uint8_t> codes(static_cast<size_t>(N), uint8_t(0));  // [L, width] = W's flat order (see hqq.h)
  std::vector<float> scale(static_cast<size_t>(G)), zero(static_cast<size_t>(G));
  const int nt = n_threads > 0 ? n_threads : omp_get_max_threads();
  constexpr int64_t kGroupTile = 64;
  const int64_t n_tiles = (G + kGroupTile - 1) / kGroupTile;
  int bad_group = -1;  // first group whose meta does not fit f16 (reported after the loop)
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
  for (int64_t tile = 0; tile < n_tiles; ++tile) {
    float* buf = thread_buffer(size_t(gs));
    for (int64_t g = tile * kGroupTile; g < std::min(G, (tile + 1) * kGroupTile); ++g) {
      // gather: element k of group g is flat g * gs + k (axis 1) or k * G + g (axis 0)
      for (int64_t k = 0; k < gs; ++k) buf[k] = axis == 1 ? W[g * gs + k] : W[k * G + g];
      const HqqGroupFit fit = hqq_fit_group(buf, gs, nbits, opt);
      // Stored as hqq stores them: scale inverted, both in f16.
      const float s16 = f16_to_f32(f32_to_f16(1.0f / fit.scale));
      const float z16 = f16_to_f32(f32_to_f16(fit.zero));
      if (!std::isfinite(s16) || !std::isfinite(z16) || s16 == 0.0f) {
#pragma omp critical
        if (bad_group < 0 || g < bad_group) bad_group = int(g);
        continue;
      }
      scale[size_t(g)] = s16;
      zero[size_t(g)] = z16;
      for (int64_t k = 0; k < gs; ++k) {
        const float q = std::clamp(__builtin_nearbyintf(buf[k] / s16 + z16), 0.0f, float(maxq));
        codes[size_t(axis == 1 ? g * gs + k : k * G + g)] = uint8_t(q);
      }
    }
  }
  if (bad_group >= 0) {
    float max_abs = 0.0f;
    for (int64_t i = 0; i < N; ++i) max_abs = std::max(max_abs, std::fabs(W[i]));
    fail(name, fmt::format("group {} has a scale or zero outside the f16 range (weights up to {:g})", bad_group, max_abs),
         "HQQ stores scale and zero in f16; rescale the weights or keep this tensor unquantized");
  }
  return std::make_shared<HqqLinear>(s, hqq_pack(s, codes), std::move(scale), std::move(zero), DType::F16, opt);
}

// ---- the Quantizer -------------------------------------------------------

namespace {

class HqqQuantizer final : public Quantizer {
 public:
  std::string name() const override { return "hqq"; }
  std::string summary() const override {
    return "HQQ half-quadratic quantization (calibration-free): 1/2/3/4/8-bit groups, f16 scale and float zero; "
           "extra: iters, lp_norm, beta, kappa, early_stop, round_zero, optimize, optimize_scale";
  }
  std::vector<int> supported_bits() const override { return {1, 2, 3, 4, 8}; }
  QuantConfig default_config() const override {
    QuantConfig c;
    c.method = "hqq";
    c.bits = 4;
    c.group_size = 64;  // hqq's BaseQuantizeConfig default
    c.axis = 1;
    return c;
  }
  bool fits(const QuantConfig& cfg, int64_t n_out, int64_t n_in, std::string* why) const override {
    const int64_t along = cfg.axis == 1 ? n_in : n_out;
    if (cfg.group_size < 0 || along % cfg.group_size == 0) return true;
    if (why) *why = fmt::format("group size {} does not divide its {} {}", cfg.group_size, along, cfg.axis == 1 ? "inputs" : "outputs");
    return false;
  }

  void validate(const QuantConfig& cfg) const override {
    const std::string where = "quantization config (hqq)";
    if (cfg.bits != 1 && cfg.bits != 2 && cfg.bits != 3 && cfg.bits != 4 && cfg.bits != 8)
      fail(where + ": bits", fmt::format("hqq cannot store {} bits", cfg.bits), "bits: 1, 2, 3, 4 or 8");
    if (cfg.group_size != -1 && (cfg.group_size <= 0 || cfg.group_size % 8 != 0))
      fail(where + ": group_size", fmt::format("group_size {} is not a positive multiple of 8 or -1", cfg.group_size),
           "hqq's BaseQuantizeConfig requires a multiple of 8 (e.g. 64); -1 quantizes whole rows");
    if (cfg.axis != 0 && cfg.axis != 1)
      fail(where + ": axis", fmt::format("axis {} is not 0 or 1", cfg.axis), "axis 1 groups along a row (inputs)");
    static const char* kKnown[] = {"iters", "lp_norm", "beta", "kappa", "early_stop", "optimize", "round_zero", "optimize_scale",
                                   "channel_wise", "view_as_float", "quant_zero", "quant_scale", "offload_meta",
                                   "scale_quant_params", "zero_quant_params"};
    for (auto it = cfg.extra.begin(); it != cfg.extra.end(); ++it) {
      if (std::find_if(std::begin(kKnown), std::end(kKnown), [&](const char* k) { return it.key() == k; }) == std::end(kKnown))
        fail(where, fmt::format("unknown field '{}'", it.key()),
             "hqq fields: iters, lp_norm, beta, kappa, early_stop, optimize, round_zero, optimize_scale (and HqqConfig's "
             "channel_wise, view_as_float, quant_zero, quant_scale, offload_meta)");
    }
    auto must_be = [&](const char* key, bool want, const char* why) {
      if (cfg.extra_or<bool>(key, want) != want) fail(where + ": " + key, fmt::format("{} = {} is not supported", key, !want), why);
    };
    must_be("channel_wise", true, "lowbit quantizes per group (channel_wise = true)");
    must_be("view_as_float", false, "W_q is stored as packed integers");
    must_be("quant_zero", false, "quantized zeros are deprecated in hqq; store them in f16");
    must_be("quant_scale", false, "quantized scales are deprecated in hqq; store them in f16");
    must_be("offload_meta", false, "meta offloading is a runtime setting lowbit does not use");
    (void)hqq_options_from_config(cfg);
  }

  double bits_per_weight(const QuantConfig& cfg, int64_t n_out, int64_t n_in) const override {
    HqqShape s{cfg.bits, cfg.group_size, cfg.axis, n_out, n_in};
    if (s.group_size < 0) s.group_size = cfg.axis == 1 ? n_in : n_out;
    s.validate(fmt::format("hqq [{}, {}]", n_out, n_in));
    const double bytes = double(s.packed_bytes()) + 2.0 * double(s.n_groups()) * 2.0;  // codes + f16 scale + f16 zero
    return 8.0 * bytes / double(n_out * n_in);
  }

  std::shared_ptr<QLinear> quantize_linear(const std::string& name, const float* W, int64_t n_out, int64_t n_in,
                                           const QuantConfig& cfg, const float* /*importance: HQQ is data-free*/) const override {
    validate(cfg);
    return hqq_quantize(name, W, n_out, n_in, cfg.bits, cfg.group_size, cfg.axis, hqq_options_from_config(cfg));
  }

  // HqqConfig's form, with weight_quant_params completed as hqq's BaseQuantizeConfig
  // writes them (channel_wise, optimize, round_zero); solver knobs stay beside them.
  nlohmann::json hf_quantization_config(const QuantConfig& cfg) const override {
    nlohmann::json j = quant_config_to_json(cfg);
    const HqqOptions o = hqq_options_from_config(cfg);
    nlohmann::json& w = j["quant_config"]["weight_quant_params"];
    w["channel_wise"] = true;
    w["optimize"] = o.optimize;
    w["round_zero"] = o.round_zero;
    return j;
  }

  std::vector<HfModuleTensor> hf_module_tensors(const QLinear& q, const QuantConfig& /*cfg*/) const override {
    const auto* h = dynamic_cast<const HqqLinear*>(&q);
    if (!h) fail("hqq layout", fmt::format("layer of type {} was not made by hqq", q.type_name()), "quantize it with --method hqq");
    return hqq_hf_module_tensors(*h);
  }
  std::vector<std::string> hf_marker_suffixes() const override { return {"W_q"}; }
  std::vector<std::string> hf_module_suffixes() const override { return hqq_hf_module_suffixes(); }
  std::shared_ptr<QLinear> load_hf_module(const QuantConfig& /*cfg: each module carries its own meta*/,
                                          const std::map<std::string, const TensorView*>& parts, int64_t n_out,
                                          int64_t n_in, const std::string& where) const override {
    return hqq_load_hf_module(parts, n_out, n_in, where);
  }
};

}  // namespace

std::unique_ptr<Quantizer> make_hqq_quantizer() { return std::make_unique<HqqQuantizer>(); }

}  // namespace lowbit
