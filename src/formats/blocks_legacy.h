// Block structs of ggml's "legacy" 32-value formats (q4_0 .. q8_1) and of
// iq4_nl, laid out byte for byte as ggml stores them in GGUF files
// (ggml/src/ggml-common.h). Scales are IEEE half floats kept as raw bits
// (core/half.h converts them). All multi-byte fields are little-endian.
//
// Nibble order, shared by every 4-bit layout here: byte j of qs[16] holds
// value j in its low nibble and value j + 16 in its high nibble.
// Fifth bit (q5_0, q5_1): bit j of the little-endian uint32 in qh[4] is the
// fifth bit of value j (j = 0..31).
#pragma once
#include <cstdint>

namespace lowbit {

inline constexpr int kLegacyBlock = 32;  // values per block for every format in this file

// q4_0: 4.5 bpw. value = (q - 8) * d, q in 0..15.
struct BlockQ4_0 {
  uint16_t d;       // f16 scale
  uint8_t qs[16];   // 32 x 4-bit
};
static_assert(sizeof(BlockQ4_0) == 18, "q4_0 block must be 18 bytes");

// q4_1: 5 bpw. value = q * d + m, q in 0..15.
struct BlockQ4_1 {
  uint16_t d;       // f16 scale
  uint16_t m;       // f16 offset (the block minimum)
  uint8_t qs[16];   // 32 x 4-bit
};
static_assert(sizeof(BlockQ4_1) == 20, "q4_1 block must be 20 bytes");

// q5_0: 5.5 bpw. value = (q - 16) * d, q in 0..31 (low 4 bits in qs, fifth in qh).
struct BlockQ5_0 {
  uint16_t d;       // f16 scale
  uint8_t qh[4];    // fifth bits, bit j = value j
  uint8_t qs[16];   // low nibbles
};
static_assert(sizeof(BlockQ5_0) == 22, "q5_0 block must be 22 bytes");

// q5_1: 6 bpw. value = q * d + m, q in 0..31.
struct BlockQ5_1 {
  uint16_t d;       // f16 scale
  uint16_t m;       // f16 offset
  uint8_t qh[4];    // fifth bits
  uint8_t qs[16];   // low nibbles
};
static_assert(sizeof(BlockQ5_1) == 24, "q5_1 block must be 24 bytes");

// q8_0: 8.5 bpw. value = q * d, q in -127..127.
struct BlockQ8_0 {
  uint16_t d;       // f16 scale
  int8_t qs[32];
};
static_assert(sizeof(BlockQ8_0) == 34, "q8_0 block must be 34 bytes");

// q8_1: 9 bpw, activation side of q4_1 / q5_1. value = q * d; s = d * sum(q)
// (stored so the offset term m * sum(y) of a q4_1/q5_1 dot costs one multiply).
struct BlockQ8_1 {
  uint16_t d;       // f16 scale
  uint16_t s;       // f16 d * sum(qs)
  int8_t qs[32];
};
static_assert(sizeof(BlockQ8_1) == 36, "q8_1 block must be 36 bytes");

// iq4_nl: 4.5 bpw. value = kIq4nlValues[q] * d, q in 0..15 (a non-uniform grid).
struct BlockIQ4_NL {
  uint16_t d;       // f16 scale
  uint8_t qs[16];   // 32 x 4-bit indices into kIq4nlValues
};
static_assert(sizeof(BlockIQ4_NL) == 18, "iq4_nl block must be 18 bytes");

// iq4_nl's 16 grid points (ggml's kvalues_iq4nl), ascending; denser near zero.
inline constexpr int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};
// The same grid as floats: iq4_nl's grid_table in the traits table (fixed-scale grid, format.h).
inline constexpr float kIq4nlGrid[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

// Kernels with the traits-table signatures (format.h). n is the row length, a
// multiple of 32; `importance` is [n] or nullptr.
void quantize_row_q4_0(const float* x, void* y, int64_t n, const float* importance);
void quantize_row_q4_1(const float* x, void* y, int64_t n, const float* importance);
void quantize_row_q5_0(const float* x, void* y, int64_t n, const float* importance);
void quantize_row_q5_1(const float* x, void* y, int64_t n, const float* importance);
void quantize_row_q8_0(const float* x, void* y, int64_t n, const float* importance);
void quantize_row_q8_1(const float* x, void* y, int64_t n, const float* importance);
void quantize_row_iq4_nl(const float* x, void* y, int64_t n, const float* importance);

void dequantize_row_q4_0(const void* x, float* y, int64_t n);
void dequantize_row_q4_1(const void* x, float* y, int64_t n);
void dequantize_row_q5_0(const void* x, float* y, int64_t n);
void dequantize_row_q5_1(const void* x, float* y, int64_t n);
void dequantize_row_q8_0(const void* x, float* y, int64_t n);
void dequantize_row_q8_1(const void* x, float* y, int64_t n);
void dequantize_row_iq4_nl(const void* x, float* y, int64_t n);

// Fixed-scale grids (format.h, BlockGridFn / EncodeFixedFn), one block each.
// Codes: q4_0 -8..7, q5_0 -16..15, q8_0 -127..127 (step d, offset -0.0f: value = d * k);
// q4_1 0..15, q5_1 0..31 (step d, offset m: value = m + d * k);
// iq4_nl 0..15 (step d, offset -0.0f, grid kIq4nlGrid: value = d * kIq4nlGrid[k]).
void block_grid_q4_0(const void* block, float* step, float* offset);
void block_grid_q4_1(const void* block, float* step, float* offset);
void block_grid_q5_0(const void* block, float* step, float* offset);
void block_grid_q5_1(const void* block, float* step, float* offset);
void block_grid_q8_0(const void* block, float* step, float* offset);
void block_grid_iq4_nl(const void* block, float* step, float* offset);
void encode_fixed_q4_0(const float* x, void* block);
void encode_fixed_q4_1(const float* x, void* block);
void encode_fixed_q5_0(const float* x, void* block);
void encode_fixed_q5_1(const float* x, void* block);
void encode_fixed_q8_0(const float* x, void* block);
void encode_fixed_iq4_nl(const float* x, void* block);

float vec_dot_q4_0_q8_0_ref(int64_t n, const void* x, const void* y);
float vec_dot_q4_1_q8_1_ref(int64_t n, const void* x, const void* y);
float vec_dot_q5_0_q8_0_ref(int64_t n, const void* x, const void* y);
float vec_dot_q5_1_q8_1_ref(int64_t n, const void* x, const void* y);
float vec_dot_q8_0_q8_0_ref(int64_t n, const void* x, const void* y);
float vec_dot_q8_1_q8_1_ref(int64_t n, const void* x, const void* y);
float vec_dot_iq4_nl_q8_0_ref(int64_t n, const void* x, const void* y);

}  // namespace lowbit
