// The k-quant rows of the formats traits table, and the dequantize / dot
// product kernels the weight formats share once their bits are unpacked
// (declared in k_quants_search.h). Every weight format's dot product pairs
// with q8_K activations, as in ggml's CPU backend. vec_dot is the scalar
// reference until the AVX2 / AVX-512 kernels land.
#include "core/half.h"
#include "formats/families.h"
#include "formats/fixed_grid.h"
#include "formats/k_quants.h"
#include "formats/k_quants_search.h"

namespace lowbit {
namespace kq {

void dequantize(const AffineSuperBlock& b, const AffineLayout& L, float* y) {
  const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
  for (int j = 0; j < L.n_sub; ++j) {
    const float dl = d * float(b.sc[j]), ml = dmin * float(b.m[j]);
    for (int i = j * L.sub_len; i < (j + 1) * L.sub_len; ++i) y[i] = dl * float(b.q[i]) - ml;
  }
}

void dequantize(const SymmetricSuperBlock& b, const SymmetricLayout& L, float* y) {
  const float d = f16_to_f32(b.d);
  for (int j = 0; j < L.n_sub; ++j) {
    const float dl = d * float(b.sc[j]);
    for (int i = j * L.sub_len; i < (j + 1) * L.sub_len; ++i) y[i] = dl * float(b.q[i]);
  }
}

void block_grid(const AffineSuperBlock& b, const AffineLayout& L, float* step, float* offset) {
  const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
  for (int j = 0; j < L.n_sub; ++j) {
    const float dl = d * float(b.sc[j]), ml = dmin * float(b.m[j]);  // as in dequantize
    for (int i = j * L.sub_len; i < (j + 1) * L.sub_len; ++i) {
      step[i] = dl;
      offset[i] = -ml;
    }
  }
}

void block_grid(const SymmetricSuperBlock& b, const SymmetricLayout& L, float* step, float* offset) {
  const float d = f16_to_f32(b.d);
  for (int j = 0; j < L.n_sub; ++j) {
    const float dl = d * float(b.sc[j]);  // as in dequantize
    for (int i = j * L.sub_len; i < (j + 1) * L.sub_len; ++i) {
      step[i] = dl;
      offset[i] = -0.0f;
    }
  }
}

void encode_fixed(const float* x, const AffineLayout& L, AffineSuperBlock& b) {
  float step[kQK_K], offset[kQK_K];
  block_grid(b, L, step, offset);
  for (int i = 0; i < L.n_sub * L.sub_len; ++i)
    b.q[i] = uint8_t(nearest_fixed_code(x[i], step[i], offset[i], 0, L.q_max, nullptr));
}

void encode_fixed(const float* x, const SymmetricLayout& L, SymmetricSuperBlock& b) {
  float step[kQK_K], offset[kQK_K];
  block_grid(b, L, step, offset);
  for (int i = 0; i < L.n_sub * L.sub_len; ++i)
    b.q[i] = int8_t(nearest_fixed_code(x[i], step[i], offset[i], L.q_lo, L.q_hi, nullptr));
}

double dot_q8_K(const AffineSuperBlock& b, const AffineLayout& L, const BlockQ8_K& y) {
  int64_t sum_q = 0, sum_m = 0;
  for (int j = 0; j < L.n_sub; ++j) {
    int32_t s = 0;
    for (int i = j * L.sub_len; i < (j + 1) * L.sub_len; ++i) s += int32_t(b.q[i]) * y.qs[i];
    sum_q += int64_t(b.sc[j]) * s;
    for (int g = j * L.sub_len / 16; g < (j + 1) * L.sub_len / 16; ++g) sum_m += int64_t(b.m[j]) * y.bsums[g];
  }
  return double(y.d) * (double(f16_to_f32(b.d)) * double(sum_q) - double(f16_to_f32(b.dmin)) * double(sum_m));
}

double dot_q8_K(const SymmetricSuperBlock& b, const SymmetricLayout& L, const BlockQ8_K& y) {
  int64_t sum_q = 0;
  for (int j = 0; j < L.n_sub; ++j) {
    int32_t s = 0;
    for (int i = j * L.sub_len; i < (j + 1) * L.sub_len; ++i) s += int32_t(b.q[i]) * y.qs[i];
    sum_q += int64_t(b.sc[j]) * s;
  }
  return double(y.d) * double(f16_to_f32(b.d)) * double(sum_q);
}

}  // namespace kq

namespace {

// Fixed-scale grid codes (kq::block_grid): q2_K 0..3, q4_K 0..15, q5_K 0..31 (affine:
// d * sc * q - dmin * m); q3_K -4..3, q6_K -32..31 (symmetric: d * sc * q).
constexpr FormatTraits kRows[] = {
    with_fixed_grid({FormatId::Q2_K, "q2_K", kQK_K, sizeof(BlockQ2_K), true, FormatId::Q8_K, quantize_row_q2_K,
                     dequantize_row_q2_K, vec_dot_q2_K_q8_K_ref, vec_dot_q2_K_q8_K_ref},
                    block_grid_q2_K, encode_fixed_q2_K, 0, 3),
    with_fixed_grid({FormatId::Q3_K, "q3_K", kQK_K, sizeof(BlockQ3_K), true, FormatId::Q8_K, quantize_row_q3_K,
                     dequantize_row_q3_K, vec_dot_q3_K_q8_K_ref, vec_dot_q3_K_q8_K_ref},
                    block_grid_q3_K, encode_fixed_q3_K, -4, 3),
    with_fixed_grid({FormatId::Q4_K, "q4_K", kQK_K, sizeof(BlockQ4_K), true, FormatId::Q8_K, quantize_row_q4_K,
                     dequantize_row_q4_K, vec_dot_q4_K_q8_K_ref, vec_dot_q4_K_q8_K_ref},
                    block_grid_q4_K, encode_fixed_q4_K, 0, 15),
    with_fixed_grid({FormatId::Q5_K, "q5_K", kQK_K, sizeof(BlockQ5_K), true, FormatId::Q8_K, quantize_row_q5_K,
                     dequantize_row_q5_K, vec_dot_q5_K_q8_K_ref, vec_dot_q5_K_q8_K_ref},
                    block_grid_q5_K, encode_fixed_q5_K, 0, 31),
    with_fixed_grid({FormatId::Q6_K, "q6_K", kQK_K, sizeof(BlockQ6_K), true, FormatId::Q8_K, quantize_row_q6_K,
                     dequantize_row_q6_K, vec_dot_q6_K_q8_K_ref, vec_dot_q6_K_q8_K_ref},
                    block_grid_q6_K, encode_fixed_q6_K, -32, 31),
    // q8_K is activation-only: no fixed-scale grid.
    {FormatId::Q8_K, "q8_K", kQK_K, sizeof(BlockQ8_K), true, FormatId::Q8_K, quantize_row_q8_K,
     dequantize_row_q8_K, vec_dot_q8_K_q8_K_ref, vec_dot_q8_K_q8_K_ref},
};

}  // namespace

std::span<const FormatTraits> kquant_formats() { return kRows; }

}  // namespace lowbit
