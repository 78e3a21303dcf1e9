// Block structs of ggml's k-quant formats (q2_K .. q6_K for weights, q8_K for
// the activations their dot products pair with), laid out byte for byte as
// ggml stores them in GGUF files (ggml/src/ggml-common.h, QK_K = 256).
// Super-block scales are IEEE half floats kept as raw bits (core/half.h);
// q8_K's scale is an f32. All multi-byte fields are little-endian.
//
// Every weight format splits a super-block of 256 values into sub-blocks of
// 16 or 32 values. Each sub-block has a small integer scale (and, for the
// "affine" types q2_K / q4_K / q5_K, a small integer min); those integers are
// themselves scaled by the super-block's f16 `d` (and `dmin`):
//   affine     value = d * sc[j] * q - dmin * m[j]      q in 0..2^b - 1
//   symmetric  value = d * sc[j] * q                    q in -2^(b-1)..2^(b-1) - 1
//
// Where the bits of value i (0..255) live:
//   2-bit planes (q2_K qs, q3_K qs): i = 128*h + 32*k + l  ->  qs[32*h + l], bits 2k..2k+1
//   4-bit pairs  (q4_K qs, q5_K qs): i = 64*p + 32*s + l   ->  qs[32*p + l], low nibble if s = 0, high if s = 1
//   q3_K high bit (hmask):           i = 32*k + l          ->  hmask[l], bit k (set = +0, clear = -4)
//   q5_K fifth bit (qh):             i = 32*k + l          ->  qh[l], bit k
//   q6_K (ql, qh):                   i = 128*h + 32*k + l  ->  low 4 bits in ql[64*h + 32*(k&1) + l]
//                                                               (low nibble k < 2, high nibble k >= 2),
//                                                               top 2 bits in qh[32*h + l], bits 2k..2k+1
#pragma once
#include <cstdint>

namespace lowbit {

inline constexpr int kQK_K = 256;  // values per super-block, every format in this file

// q2_K: 2.625 bpw. 16 sub-blocks of 16; value = d * (scales[j] & 15) * q - dmin * (scales[j] >> 4), q in 0..3.
struct BlockQ2_K {
  uint8_t scales[16];  // low nibble: 4-bit scale of sub-block j; high nibble: its 4-bit min
  uint8_t qs[64];      // 2-bit quants (2-bit planes above)
  uint16_t d;          // f16 super-block scale of the scales
  uint16_t dmin;       // f16 super-block scale of the mins
};
static_assert(sizeof(BlockQ2_K) == 84, "q2_K block must be 84 bytes");

// q3_K: 3.4375 bpw. 16 sub-blocks of 16; value = d * (sc[j] - 32) * q, q in -4..3, sc 6-bit.
struct BlockQ3_K {
  uint8_t hmask[32];   // high bit of each quant (set: q = low bits, clear: q = low bits - 4)
  uint8_t qs[64];      // low 2 bits of each quant (2-bit planes above)
  uint8_t scales[12];  // 16 x 6-bit scales (+32): low 4 bits of j in scales[j % 8] (low nibble j < 8,
                       // high nibble j >= 8); top 2 bits of j in scales[8 + j % 4], bits 2*(j/4)..+1
  uint16_t d;          // f16 super-block scale
};
static_assert(sizeof(BlockQ3_K) == 110, "q3_K block must be 110 bytes");

// 6-bit scales and mins of q4_K / q5_K (8 sub-blocks), packed in 12 bytes:
//   j < 4:  sc = scales[j] & 63,                               m = scales[j + 4] & 63
//   j >= 4: sc = (scales[j + 4] & 15) | (scales[j - 4] >> 6) << 4,  m = (scales[j + 4] >> 4) | (scales[j] >> 6) << 4
inline constexpr int kScaleBytesK = 12;

inline void get_scale_min_k4(const uint8_t* s, int j, int& sc, int& m) {
  if (j < 4) {
    sc = s[j] & 63;
    m = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
    m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
  }
}

// Writes sub-block j's 6-bit scale and min; call for j = 0..7 in order on zeroed bytes.
inline void set_scale_min_k4(uint8_t* s, int j, int sc, int m) {
  if (j < 4) {
    s[j] = uint8_t(sc);
    s[j + 4] = uint8_t(m);
  } else {
    s[j + 4] = uint8_t((sc & 15) | (m & 15) << 4);
    s[j - 4] |= uint8_t((sc >> 4) << 6);
    s[j] |= uint8_t((m >> 4) << 6);
  }
}

// q4_K: 4.5 bpw. 8 sub-blocks of 32; value = d * sc[j] * q - dmin * m[j], q in 0..15.
struct BlockQ4_K {
  uint16_t d;                    // f16 super-block scale of the scales
  uint16_t dmin;                 // f16 super-block scale of the mins
  uint8_t scales[kScaleBytesK];  // 8 x (6-bit scale, 6-bit min)
  uint8_t qs[128];               // 4-bit quants (4-bit pairs above)
};
static_assert(sizeof(BlockQ4_K) == 144, "q4_K block must be 144 bytes");

// q5_K: 5.5 bpw. 8 sub-blocks of 32; value = d * sc[j] * q - dmin * m[j], q in 0..31.
struct BlockQ5_K {
  uint16_t d;                    // f16 super-block scale of the scales
  uint16_t dmin;                 // f16 super-block scale of the mins
  uint8_t scales[kScaleBytesK];  // 8 x (6-bit scale, 6-bit min)
  uint8_t qh[32];                // fifth bit of each quant
  uint8_t qs[128];               // low 4 bits (4-bit pairs above)
};
static_assert(sizeof(BlockQ5_K) == 176, "q5_K block must be 176 bytes");

// q6_K: 6.5625 bpw. 16 sub-blocks of 16; value = d * scales[j] * q, q in -32..31 (stored + 32).
struct BlockQ6_K {
  uint8_t ql[128];     // low 4 bits of each quant
  uint8_t qh[64];      // top 2 bits of each quant
  int8_t scales[16];   // 8-bit signed sub-block scales
  uint16_t d;          // f16 super-block scale
};
static_assert(sizeof(BlockQ6_K) == 210, "q6_K block must be 210 bytes");

// q8_K: 9.125 bpw, the activation side of every k-quant dot product. value = d * qs[i].
struct BlockQ8_K {
  float d;             // f32 scale
  int8_t qs[256];      // quants, -127..127
  int16_t bsums[16];   // sum of qs over each group of 16 (lets a dot apply the mins in one multiply)
};
static_assert(sizeof(BlockQ8_K) == 292, "q8_K block must be 292 bytes");

// How hard the k-quant quantizers (q2_K..q6_K) search scales and mins
// (k_quants_search.cpp). Fast (default): a Q4_K_M file in about llama-quantize's
// time (README, Benchmarks), still below ggml's error (tests/test_kquants.cpp);
// Best: lower error still, several times slower. Process-wide; set it before quantizing (outputs differ by effort,
// never by thread count).
enum class KQuantEffort { Fast = 0, Best = 1 };
void set_kquant_effort(KQuantEffort e);
KQuantEffort kquant_effort();

// Kernels with the traits-table signatures (format.h). n is the row length, a
// multiple of 256; `importance` is [n] (non-negative) or nullptr.
void quantize_row_q2_K(const float* x, void* y, int64_t n, const float* importance);
void quantize_row_q3_K(const float* x, void* y, int64_t n, const float* importance);
void quantize_row_q4_K(const float* x, void* y, int64_t n, const float* importance);
void quantize_row_q5_K(const float* x, void* y, int64_t n, const float* importance);
void quantize_row_q6_K(const float* x, void* y, int64_t n, const float* importance);
void quantize_row_q8_K(const float* x, void* y, int64_t n, const float* importance);

void dequantize_row_q2_K(const void* x, float* y, int64_t n);
void dequantize_row_q3_K(const void* x, float* y, int64_t n);
void dequantize_row_q4_K(const void* x, float* y, int64_t n);
void dequantize_row_q5_K(const void* x, float* y, int64_t n);
void dequantize_row_q6_K(const void* x, float* y, int64_t n);
void dequantize_row_q8_K(const void* x, float* y, int64_t n);

// Fixed-scale grids (format.h, BlockGridFn / EncodeFixedFn), one super-block each.
// Codes: q2_K 0..3, q4_K 0..15, q5_K 0..31 (value = d*sc*q - dmin*m); q3_K -4..3,
// q6_K -32..31 (value = d*sc*q); the full range each layout stores.
void block_grid_q2_K(const void* block, float* step, float* offset);
void block_grid_q3_K(const void* block, float* step, float* offset);
void block_grid_q4_K(const void* block, float* step, float* offset);
void block_grid_q5_K(const void* block, float* step, float* offset);
void block_grid_q6_K(const void* block, float* step, float* offset);
void encode_fixed_q2_K(const float* x, void* block);
void encode_fixed_q3_K(const float* x, void* block);
void encode_fixed_q4_K(const float* x, void* block);
void encode_fixed_q5_K(const float* x, void* block);
void encode_fixed_q6_K(const float* x, void* block);

// x: one row of the weight format, y: one row of q8_K, both of n values.
float vec_dot_q2_K_q8_K_ref(int64_t n, const void* x, const void* y);
float vec_dot_q3_K_q8_K_ref(int64_t n, const void* x, const void* y);
float vec_dot_q4_K_q8_K_ref(int64_t n, const void* x, const void* y);
float vec_dot_q5_K_q8_K_ref(int64_t n, const void* x, const void* y);
float vec_dot_q6_K_q8_K_ref(int64_t n, const void* x, const void* y);
float vec_dot_q8_K_q8_K_ref(int64_t n, const void* x, const void* y);

}  // namespace lowbit
