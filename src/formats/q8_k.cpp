// q8_K: 9.125 bpw, the activation format of the k-quant dot products (ggml-common.h
// block_q8_K). value = d * q, q in -127..127, d an f32; bsums[g] = sum of the 16
// quants of group g, so a dot with an affine format applies its mins per group
// without touching the quants. Activations are quantized on the fly, so this is
// plain round-to-nearest with the block's largest magnitude mapped to 127 (as in
// ggml's quantize_row_q8_K_ref, whose bytes this reproduces); `importance` is unused.
#include <cmath>
#include <cstring>

#include "formats/block_loops.h"
#include "formats/k_quants.h"

namespace lowbit {

void quantize_row_q8_K(const float* x, void* y, int64_t n, const float*) {
  quantize_row_by_block<BlockQ8_K>(x, y, n, kQK_K, nullptr, [](const float* xb, const float*, BlockQ8_K& blk) {
    float max = 0;  // the value of largest magnitude (first one on ties), with its sign
    for (int i = 0; i < kQK_K; ++i)
      if (std::fabs(xb[i]) > std::fabs(max)) max = xb[i];
    std::memset(&blk, 0, sizeof blk);
    if (max == 0) return;
    // The largest value maps to -127 (so q never needs -128); d carries the sign.
    const float iscale = -127.f / max;
    for (int i = 0; i < kQK_K; ++i) {
      float v = iscale * xb[i];
      blk.qs[i] = int8_t(v >= 127.f ? 127 : v <= -127.f ? -127 : int(std::lrintf(v)));
      blk.bsums[i / 16] = int16_t(blk.bsums[i / 16] + blk.qs[i]);
    }
    blk.d = 1 / iscale;
  });
}

void dequantize_row_q8_K(const void* x, float* y, int64_t n) {
  dequantize_row_by_block<BlockQ8_K>(x, y, n, kQK_K, [](const BlockQ8_K& b, float* yb) {
    for (int i = 0; i < kQK_K; ++i) yb[i] = b.d * float(b.qs[i]);
  });
}

float vec_dot_q8_K_q8_K_ref(int64_t n, const void* x, const void* y) {
  return vec_dot_by_block<BlockQ8_K, BlockQ8_K>(n, kQK_K, x, y, [](const BlockQ8_K& bx, const BlockQ8_K& by) {
    int32_t s = 0;
    for (int i = 0; i < kQK_K; ++i) s += int32_t(bx.qs[i]) * by.qs[i];
    return double(bx.d) * double(by.d) * double(s);
  });
}

}  // namespace lowbit
