// q4_K: 4.5 bpw. 8 sub-blocks of 32 values, value = d * sc * q - dmin * m,
// q in 0..15, sc and m 6-bit (ggml-common.h block_q4_K; layout in k_quants.h).
#include <cstring>

#include "formats/k_quants.h"
#include "formats/k_quants_search.h"
#include "lowbit/error.h"

namespace lowbit {
namespace {

constexpr kq::AffineLayout kLayout{8, 32, 15, 63};

void pack(const kq::AffineSuperBlock& u, BlockQ4_K& b) {
  std::memset(&b, 0, sizeof b);
  for (int j = 0; j < 8; ++j) set_scale_min_k4(b.scales, j, u.sc[j], u.m[j]);
  for (int i = 0; i < 256; ++i) b.qs[32 * (i / 64) + i % 32] |= uint8_t(u.q[i] << (4 * (i / 32 % 2)));
  b.d = u.d;
  b.dmin = u.dmin;
}

void unpack(const BlockQ4_K& b, kq::AffineSuperBlock& u) {
  for (int j = 0; j < 8; ++j) {
    int sc, m;
    get_scale_min_k4(b.scales, j, sc, m);
    u.sc[j] = uint8_t(sc);
    u.m[j] = uint8_t(m);
  }
  for (int i = 0; i < 256; ++i) u.q[i] = (b.qs[32 * (i / 64) + i % 32] >> (4 * (i / 32 % 2))) & 15;
  u.d = b.d;
  u.dmin = b.dmin;
}

}  // namespace

void quantize_row_q4_K(const float* x, void* vy, int64_t n, const float* importance) {
  LOWBIT_ASSERT(n % kQK_K == 0);
  auto* y = static_cast<BlockQ4_K*>(vy);
  float w[kQK_K];
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    kq::superblock_weights(importance ? importance + b * kQK_K : nullptr, kLayout.sub_len, w);
    kq::AffineSuperBlock u;
    kq::search_affine(x + b * kQK_K, w, kLayout, u);
    pack(u, y[b]);
  }
}

void dequantize_row_q4_K(const void* vx, float* y, int64_t n) {
  LOWBIT_ASSERT(n % kQK_K == 0);
  const auto* x = static_cast<const BlockQ4_K*>(vx);
  kq::AffineSuperBlock u;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    unpack(x[b], u);
    kq::dequantize_affine(u, kLayout, y + b * kQK_K);
  }
}

float vec_dot_q4_K_q8_K_ref(int64_t n, const void* vx, const void* vy) {
  LOWBIT_ASSERT(n % kQK_K == 0);
  const auto* x = static_cast<const BlockQ4_K*>(vx);
  const auto* y = static_cast<const BlockQ8_K*>(vy);
  kq::AffineSuperBlock u;
  double sum = 0;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    unpack(x[b], u);
    sum += kq::dot_affine_q8_K(u, kLayout, y[b]);
  }
  return float(sum);
}

}  // namespace lowbit
