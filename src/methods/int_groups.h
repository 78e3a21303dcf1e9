// Integer group quantization: the in-memory form shared by RTN, GPTQ and AWQ
// and stored by the Hugging Face GPTQ / AWQ layouts (io/hf_quant_layouts.h).
//
// A linear W [n_out, n_in] is split along its inputs into groups of
// `group_size` columns (-1: one group per row). Each (group, output row) has a
// scale and an integer zero point; a weight is stored as a code q in
// [0, 2^bits) and means  scale * (q - zero).  Scales are rounded to f16 when
// chosen, because every HF layout stores them in f16: the values lowbit
// computes with are the values a loader reconstructs.
//
// g_idx[i] is the group of input column i: i / group_size, except after GPTQ
// act-order without static groups, where groups follow the permuted order.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lowbit {

struct IntGroupSpec {
  int bits = 4;          // 2, 3, 4 or 8
  int group_size = 128;  // columns per group; -1 = the whole row
  bool sym = false;      // symmetric: zero fixed at 2^(bits-1)
  int maxq() const { return (1 << bits) - 1; }
  // Columns per group for a row of n_in (group_size, or n_in for -1).
  int64_t group_columns(int64_t n_in) const { return group_size < 0 ? n_in : group_size; }
  // Throws lowbit::Error (naming `what`) for unsupported bits / group sizes or n_in not a multiple of the group.
  void validate(int64_t n_in, const std::string& what) const;
  std::string name() const;  // "int4 g128 asym"
};

struct IntGroupQuant {
  IntGroupSpec spec;
  int64_t n_out = 0, n_in = 0;
  std::vector<uint8_t> q;      // [n_out, n_in] codes in [0, maxq]
  std::vector<float> scales;   // [n_groups, n_out] (f16-representable)
  std::vector<int32_t> zeros;  // [n_groups, n_out] in [0, maxq]
  std::vector<int32_t> g_idx;  // [n_in] group of each input column

  int64_t n_groups() const { return n_in / spec.group_columns(n_in); }
  float value(int64_t o, int64_t i) const {
    const int64_t g = g_idx[size_t(i)];
    return scales[size_t(g * n_out + o)] * float(int(q[size_t(o * n_in + i)]) - zeros[size_t(g * n_out + o)]);
  }
  std::vector<float> dequantize() const;  // [n_out, n_in]
};

// Scale and zero of one group of one row, chosen from its values as AutoGPTQ's
// Quantizer.find_params does (range widened to include 0; sym: zero =
// (maxq + 1) / 2 and the range symmetric; an all-zero group gets scale from
// [-1, 1]). The scale is rounded to f16. Asymmetric zeros are kept in
// [1, maxq] so that GPTQ's v1 checkpoint format (which stores zero - 1) can
// hold them.
struct IntGroupParams {
  float scale = 1.0f;
  int32_t zero = 0;
};
IntGroupParams int_group_params(const float* x, int64_t n, int64_t stride, const IntGroupSpec& spec);
// Code of x on the grid (clamped to [0, maxq]) and its value.
inline int32_t int_group_code(float x, const IntGroupParams& p, int maxq) {
  const float v = __builtin_nearbyintf(x / p.scale) + float(p.zero);
  return int32_t(v < 0.0f ? 0.0f : v > float(maxq) ? float(maxq) : v);
}
inline float int_group_value(int32_t code, const IntGroupParams& p) { return p.scale * float(code - p.zero); }

// Round-to-nearest of W [n_out, n_in] with int_group_params per (group, row): the RTN baseline.
IntGroupQuant rtn_int_groups(const float* W, int64_t n_out, int64_t n_in, const IntGroupSpec& spec);

}  // namespace lowbit
