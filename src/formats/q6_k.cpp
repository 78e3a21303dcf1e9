// q6_K: 6.5625 bpw. 16 sub-blocks of 16 values, value = d * sc * q, q in -32..31
// (stored + 32), sc an 8-bit signed integer (ggml-common.h block_q6_K; layout in k_quants.h).
#include <cstring>

#include "formats/k_quants.h"
#include "formats/k_quants_search.h"

namespace lowbit {
namespace {

constexpr kq::SymmetricLayout kLayout{16, 16, -32, 31, -128, 127};

// Value i = 128*h + 32*k + l: low 4 bits in ql[64*h + 32*(k & 1) + l] (low nibble for
// k < 2, high for k >= 2), top 2 bits in qh[32*h + l] at bit 2*k.
int ql_index(int i) { return 64 * (i / 128) + 32 * (i / 32 % 2) + i % 32; }
int ql_shift(int i) { return i / 32 % 4 < 2 ? 0 : 4; }
int qh_index(int i) { return 32 * (i / 128) + i % 32; }
int qh_shift(int i) { return 2 * (i / 32 % 4); }

void pack(const kq::SymmetricSuperBlock& u, BlockQ6_K& b) {
  std::memset(&b, 0, sizeof b);
  for (int i = 0; i < 256; ++i) {
    int v = u.q[i] + 32;  // 0..63
    b.ql[ql_index(i)] |= uint8_t((v & 15) << ql_shift(i));
    b.qh[qh_index(i)] |= uint8_t((v >> 4) << qh_shift(i));
  }
  std::memcpy(b.scales, u.sc, 16);
  b.d = u.d;
}

void unpack(const BlockQ6_K& b, kq::SymmetricSuperBlock& u) {
  for (int i = 0; i < 256; ++i) {
    int low = (b.ql[ql_index(i)] >> ql_shift(i)) & 15;
    int high = (b.qh[qh_index(i)] >> qh_shift(i)) & 3;
    u.q[i] = int8_t((low | high << 4) - 32);
  }
  std::memcpy(u.sc, b.scales, 16);
  u.d = b.d;
}

}  // namespace

void quantize_row_q6_K(const float* x, void* y, int64_t n, const float* importance) {
  kq::quantize_row(x, y, n, importance, kLayout, pack);
}

void dequantize_row_q6_K(const void* x, float* y, int64_t n) { kq::dequantize_row(x, y, n, kLayout, unpack); }

void block_grid_q6_K(const void* block, float* step, float* offset) {
  kq::block_grid(block, step, offset, kLayout, unpack);
}

void encode_fixed_q6_K(const float* x, void* block) { kq::encode_fixed(x, block, kLayout, unpack, pack); }

float vec_dot_q6_K_q8_K_ref(int64_t n, const void* x, const void* y) {
  return kq::vec_dot_q8_K(n, x, y, kLayout, unpack);
}

}  // namespace lowbit
