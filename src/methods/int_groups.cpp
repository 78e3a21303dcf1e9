#include "methods/int_groups.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "core/half.h"
#include "lowbit/error.h"

namespace lowbit {

void IntGroupSpec::validate(int64_t n_in, const std::string& what) const {
  if (n_in <= 0) fail(what, fmt::format("{} input columns", n_in), "a quantized linear needs at least one input");
  if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
    fail(what, fmt::format("{} bits is not supported", bits), "use --bits 2, 3, 4 or 8");
  if (group_size != -1 && group_size <= 0)
    fail(what, fmt::format("group size {} is not valid", group_size), "use -1 (whole row) or a positive size such as 32, 64, 128");
  if (group_size > 0 && n_in % group_size != 0)
    fail(what, fmt::format("{} input columns are not a multiple of the group size {}", n_in, group_size),
         "pick a group size that divides every linear's input width, or -1");
}

std::string IntGroupSpec::name() const {
  return fmt::format("int{} {} {}", bits, group_size < 0 ? std::string("per-row") : fmt::format("g{}", group_size),
                     sym ? "sym" : "asym");
}

std::vector<float> IntGroupQuant::dequantize() const {
  std::vector<float> w(size_t(n_out * n_in));
  for (int64_t o = 0; o < n_out; ++o)
    for (int64_t i = 0; i < n_in; ++i) w[size_t(o * n_in + i)] = value(o, i);
  return w;
}

namespace {
// Nearest f16 value, kept finite and non-zero so that x / scale is defined.
float f16_scale(float s) {
  s = std::clamp(s, 5.9604645e-08f, 65504.0f);  // smallest f16 subnormal .. largest f16
  return f16_to_f32(f32_to_f16(s));
}
}  // namespace

IntGroupParams int_group_params(const float* x, int64_t n, int64_t stride, const IntGroupSpec& spec) {
  const int maxq = spec.maxq();
  float xmin = 0.0f, xmax = 0.0f;  // the range always includes 0
  for (int64_t i = 0; i < n; ++i) {
    xmin = std::min(xmin, x[i * stride]);
    xmax = std::max(xmax, x[i * stride]);
  }
  if (spec.sym) {
    xmax = std::max(-xmin, xmax);
    if (xmin < 0.0f) xmin = -xmax;
  }
  if (xmin == 0.0f && xmax == 0.0f) xmin = -1.0f, xmax = 1.0f;
  IntGroupParams p;
  p.scale = f16_scale((xmax - xmin) / float(maxq));
  if (spec.sym) {
    p.zero = (maxq + 1) / 2;
  } else {
    p.zero = int32_t(std::nearbyint(-xmin / p.scale));
    p.zero = std::clamp(p.zero, 1, maxq);
  }
  return p;
}

IntGroupQuant rtn_int_groups(const float* W, int64_t n_out, int64_t n_in, const IntGroupSpec& spec) {
  spec.validate(n_in, "rtn");
  IntGroupQuant r;
  r.spec = spec;
  r.n_out = n_out;
  r.n_in = n_in;
  const int64_t gc = spec.group_columns(n_in), ng = n_in / gc;
  r.q.resize(size_t(n_out * n_in));
  r.scales.resize(size_t(ng * n_out));
  r.zeros.resize(size_t(ng * n_out));
  r.g_idx.resize(size_t(n_in));
  for (int64_t i = 0; i < n_in; ++i) r.g_idx[size_t(i)] = int32_t(i / gc);
  for (int64_t o = 0; o < n_out; ++o)
    for (int64_t g = 0; g < ng; ++g) {
      const float* x = W + o * n_in + g * gc;
      const IntGroupParams p = int_group_params(x, gc, 1, spec);
      r.scales[size_t(g * n_out + o)] = p.scale;
      r.zeros[size_t(g * n_out + o)] = p.zero;
      for (int64_t i = 0; i < gc; ++i) r.q[size_t(o * n_in + g * gc + i)] = uint8_t(int_group_code(x[i], p, spec.maxq()));
    }
  return r;
}

}  // namespace lowbit
