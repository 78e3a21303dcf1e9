// q2_K: 2.625 bpw. 16 sub-blocks of 16 values, value = d * sc * q - dmin * m,
// q in 0..3, sc and m 4-bit (ggml-common.h block_q2_K; layout in k_quants.h).
#include <cstring>

#include "formats/k_quants.h"
#include "formats/k_quants_search.h"

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

void quantize_row_q2_K(const float* x, void* y, int64_t n, const float* importance) {
  kq::quantize_row(x, y, n, importance, kLayout, pack);
}

void dequantize_row_q2_K(const void* x, float* y, int64_t n) { kq::dequantize_row(x, y, n, kLayout, unpack); }

void block_grid_q2_K(const void* block, float* step, float* offset) {
  kq::block_grid(block, step, offset, kLayout, unpack);
}

void encode_fixed_q2_K(const float* x, void* block) { kq::encode_fixed(x, block, kLayout, unpack, pack); }

float vec_dot_q2_K_q8_K_ref(int64_t n, const void* x, const void* y) {
  return kq::vec_dot_q8_K(n, x, y, kLayout, unpack);
}

}  // namespace lowbit
