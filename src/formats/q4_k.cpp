// q4_K: 4.5 bpw. 8 sub-blocks of 32 values, value = d * sc * q - dmin * m,
// q in 0..15, sc and m 6-bit (ggml-common.h block_q4_K; layout in k_quants.h).
#include <cstring>

#include "formats/k_quants.h"
#include "formats/k_quants_search.h"

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

void quantize_row_q4_K(const float* x, void* y, int64_t n, const float* importance) {
  kq::quantize_row(x, y, n, importance, kLayout, pack);
}

void dequantize_row_q4_K(const void* x, float* y, int64_t n) { kq::dequantize_row(x, y, n, kLayout, unpack); }

void block_grid_q4_K(const void* block, float* step, float* offset) {
  kq::block_grid(block, step, offset, kLayout, unpack);
}

void encode_fixed_q4_K(const float* x, void* block) { kq::encode_fixed(x, block, kLayout, unpack, pack); }

float vec_dot_q4_K_q8_K_ref(int64_t n, const void* x, const void* y) {
  return kq::vec_dot_q8_K(n, x, y, kLayout, unpack);
}

}  // namespace lowbit
