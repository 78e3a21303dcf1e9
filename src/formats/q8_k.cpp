// q8_K: 9.125 bpw, the activation format of the k-quant dot products (ggml-common.h
// block_q8_K). value = d * q, q in -127..127, d an f32; bsums[g] = sum of the 16
// quants of group g, so a dot with an affine format applies its mins per group
// without touching the quants. Activations are quantized on the fly, so this is
// plain round-to-nearest with the block's largest magnitude mapped to 127 (as in
// ggml's quantize_row_q8_K_ref, whose bytes this reproduces); `importance` is unused.
#include <cmath>
#include <cstring>

#include "formats/k_quants.h"
#include "lowbit/error.h"

namespace lowbit {

void quantize_row_q8_K(const float* x, void* vy, int64_t n, const float*) {
  LOWBIT_ASSERT(n % kQK_K == 0);
  auto* y = static_cast<BlockQ8_K*>(vy);
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    BlockQ8_K& blk = y[b];
    float max = 0;  // the value of largest magnitude (first one on ties), with its sign
    for (int i = 0; i < kQK_K; ++i)
      if (std::fabs(x[i]) > std::fabs(max)) max = x[i];
    std::memset(&blk, 0, sizeof blk);
    if (max == 0) continue;
    // The largest value maps to -127 (so q never needs -128); d carries the sign.
    const float iscale = -127.f / max;
    for (int i = 0; i < kQK_K; ++i) {
      float v = iscale * x[i];
      blk.qs[i] = int8_t(v >= 127.f ? 127 : v <= -127.f ? -127 : int(std::lrintf(v)));
      blk.bsums[i / 16] = int16_t(blk.bsums[i / 16] + blk.qs[i]);
    }
    blk.d = 1 / iscale;
  }
}

void dequantize_row_q8_K(const void* vx, float* y, int64_t n) {
  LOWBIT_ASSERT(n % kQK_K == 0);
  const auto* x = static_cast<const BlockQ8_K*>(vx);
  for (int64_t b = 0; b < n / kQK_K; ++b)
    for (int i = 0; i < kQK_K; ++i) y[b * kQK_K + i] = x[b].d * float(x[b].qs[i]);
}

float vec_dot_q8_K_q8_K_ref(int64_t n, const void* vx, const void* vy) {
  LOWBIT_ASSERT(n % kQK_K == 0);
  const auto* x = static_cast<const BlockQ8_K*>(vx);
  const auto* y = static_cast<const BlockQ8_K*>(vy);
  double sum = 0;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    int32_t s = 0;
    for (int i = 0; i < kQK_K; ++i) s += int32_t(x[b].qs[i]) * y[b].qs[i];
    sum += double(x[b].d) * double(y[b].d) * double(s);
  }
  return float(sum);
}

}  // namespace lowbit
