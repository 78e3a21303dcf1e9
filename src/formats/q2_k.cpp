// q2_K: 2.625 bpw. 16 sub-blocks of 16 values, value = d * sc * q - dmin * m,
// q in 0..3, sc and m 4-bit (ggml-common.h block_q2_K; layout in k_quants.h).
#include <cstring>

#include "formats/k_quants.h"
#include "formats/k_quants_search.h"
#include "lowbit/error.h"

namespace lowbit {
namespace {

constexpr kq::AffineLayout kLayout{16, 16, 3, 15};

void pack(const kq::AffineSuperBlock& u, BlockQ2_K& b) {
  for (int j = 0; j < 16; ++j) b.scales[j] = uint8_t(u.sc[j] | u.m[j] << 4);
  std::memset(b.qs, 0, sizeof b.qs);
  for (int i = 0; i < 256; ++i) b.qs[32 * (i / 128) + i % 32] |= uint8_t(u.q[i] << (2 * (i / 32 % 4)));
  b.d = u.d;
  b.dmin = u.dmin;
}

void unpack(const BlockQ2_K& b, kq::AffineSuperBlock& u) {
  for (int j = 0; j < 16; ++j) {
    u.sc[j] = b.scales[j] & 15;
    u.m[j] = b.scales[j] >> 4;
  }
  for (int i = 0; i < 256; ++i) u.q[i] = (b.qs[32 * (i / 128) + i % 32] >> (2 * (i / 32 % 4))) & 3;
  u.d = b.d;
  u.dmin = b.dmin;
}

}  // namespace

void quantize_row_q2_K(const float* x, void* vy, int64_t n, const float* importance) {
  LOWBIT_ASSERT(n % kQK_K == 0);
  auto* y = static_cast<BlockQ2_K*>(vy);
  float w[kQK_K];
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    kq::superblock_weights(importance ? importance + b * kQK_K : nullptr, kLayout.sub_len, w);
    kq::AffineSuperBlock u;
    kq::search_affine(x + b * kQK_K, w, kLayout, u);
    pack(u, y[b]);
  }
}

void dequantize_row_q2_K(const void* vx, float* y, int64_t n) {
  LOWBIT_ASSERT(n % kQK_K == 0);
  const auto* x = static_cast<const BlockQ2_K*>(vx);
  kq::AffineSuperBlock u;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    unpack(x[b], u);
    kq::dequantize_affine(u, kLayout, y + b * kQK_K);
  }
}

float vec_dot_q2_K_q8_K_ref(int64_t n, const void* vx, const void* vy) {
  LOWBIT_ASSERT(n % kQK_K == 0);
  const auto* x = static_cast<const BlockQ2_K*>(vx);
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
