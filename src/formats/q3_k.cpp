// q3_K: 3.4375 bpw. 16 sub-blocks of 16 values, value = d * sc * q, q in -4..3,
// sc a 6-bit signed integer stored + 32 (ggml-common.h block_q3_K; layout in k_quants.h).
#include <cstring>

#include "formats/k_quants.h"
#include "formats/k_quants_search.h"

namespace lowbit {
namespace {

constexpr kq::SymmetricLayout kLayout{16, 16, -4, 3, -32, 31};

void pack(const kq::SymmetricSuperBlock& u, BlockQ3_K& b) {
  std::memset(&b, 0, sizeof b);
  for (int j = 0; j < 16; ++j) {
    int s = u.sc[j] + 32;  // 0..63
    b.scales[j % 8] |= uint8_t((s & 15) << (j < 8 ? 0 : 4));
    b.scales[8 + j % 4] |= uint8_t((s >> 4) << (2 * (j / 4)));
  }
  for (int i = 0; i < 256; ++i) {
    int v = u.q[i] + 4;  // 0..7
    b.qs[32 * (i / 128) + i % 32] |= uint8_t((v & 3) << (2 * (i / 32 % 4)));
    if (v & 4) b.hmask[i % 32] |= uint8_t(1 << (i / 32));
  }
  b.d = u.d;
}

void unpack(const BlockQ3_K& b, kq::SymmetricSuperBlock& u) {
  for (int j = 0; j < 16; ++j) {
    int lo = (b.scales[j % 8] >> (j < 8 ? 0 : 4)) & 15;
    int hi = (b.scales[8 + j % 4] >> (2 * (j / 4))) & 3;
    u.sc[j] = int8_t((lo | hi << 4) - 32);
  }
  for (int i = 0; i < 256; ++i) {
    int low = (b.qs[32 * (i / 128) + i % 32] >> (2 * (i / 32 % 4))) & 3;
    bool high = (b.hmask[i % 32] >> (i / 32)) & 1;
    u.q[i] = int8_t(low - (high ? 0 : 4));
  }
  u.d = b.d;
}

}  // namespace

void quantize_row_q3_K(const float* x, void* y, int64_t n, const float* importance) {
  kq::quantize_row(x, y, n, importance, kLayout, pack);
}

void dequantize_row_q3_K(const void* x, float* y, int64_t n) { kq::dequantize_row(x, y, n, kLayout, unpack); }

void block_grid_q3_K(const void* block, float* step, float* offset) {
  kq::block_grid(block, step, offset, kLayout, unpack);
}

void encode_fixed_q3_K(const float* x, void* block) { kq::encode_fixed(x, block, kLayout, unpack, pack); }

float vec_dot_q3_K_q8_K_ref(int64_t n, const void* x, const void* y) {
  return kq::vec_dot_q8_K(n, x, y, kLayout, unpack);
}

}  // namespace lowbit
