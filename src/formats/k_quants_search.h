// K-quant super-blocks in unpacked form (one byte per level and per integer
// scale), the scale / min search that fills them (k_quants_search.cpp), and
// the dequantize / dot product every weight format shares once its bits are
// unpacked (k_quants.cpp), and the row loops around them (below). Each format's
// file only packs and unpacks its layout.
//
// A k-quant super-block of 256 values stores, per sub-block j, a small integer
// scale sc[j] (and for the affine types a small integer min m[j]), and, per
// super-block, f16 factors d (and dmin) that turn those integers into real
// scales. Choosing them is a two-level least-squares problem. We follow the
// published k-quant method of llama.cpp (ggml-quants.c: make_qkx2_quants /
// make_qx_quants fit each sub-block by trying a grid of inverse scales and
// refitting scale and min by weighted least squares for the rounded levels;
// the sub-block scales are then rounded to integers of a shared d) and go
// further at both levels:
//   sub-block    a finer, wider grid (relative to the level count, so that
//                clipping the largest values is tried too), then alternating
//                "round the levels for this scale / min" and "refit scale /
//                min for these levels" while the error drops;
//   super-block  instead of rounding each sub-block scale once, alternate
//                between picking every sub-block's integer scale (and min)
//                - the integers around its ideal value, then single steps
//                while they help, each judged by its true error after
//                re-rounding its levels - and refitting d (and dmin) by
//                least squares for those integers; the error is always
//                measured with the f16-rounded d / dmin that will be stored,
//                from two starting values of d, keeping the best state seen.
// Errors are weighted by `w` (the caller's importance vector, or 1s), so with
// an imatrix the search minimises exactly sum_i importance_i * (x_i - x̂_i)^2.
#pragma once
#include <cstdint>

#include "formats/block_loops.h"
#include "formats/k_quants.h"

namespace lowbit::kq {

// Affine super-block geometry (q2_K: 16 x 16, q 0..3, 4-bit scale/min;
// q4_K: 8 x 32, q 0..15, 6-bit; q5_K: 8 x 32, q 0..31, 6-bit).
struct AffineLayout {
  int n_sub;    // sub-blocks per super-block
  int sub_len;  // values per sub-block
  int q_max;    // levels are 0..q_max
  int sc_max;   // integer scales and mins are 0..sc_max
};

// value = f16(d) * sc[j] * q - f16(dmin) * m[j]
struct AffineSuperBlock {
  uint16_t d = 0, dmin = 0;  // f16 bits
  uint8_t sc[16] = {}, m[16] = {};
  uint8_t q[256] = {};
};

// Symmetric super-block geometry (q3_K: 16 x 16, q -4..3, 6-bit signed scale;
// q6_K: 16 x 16, q -32..31, 8-bit signed scale).
struct SymmetricLayout {
  int n_sub, sub_len;
  int q_lo, q_hi;    // levels are q_lo..q_hi
  int sc_lo, sc_hi;  // integer scales are sc_lo..sc_hi
};

// value = f16(d) * sc[j] * q
struct SymmetricSuperBlock {
  uint16_t d = 0;
  int8_t sc[16] = {};
  int8_t q[256] = {};
};

// x, w: [n_sub * sub_len] values and their (non-negative) error weights.
void search(const float* x, const float* w, const AffineLayout& layout, AffineSuperBlock& out);
void search(const float* x, const float* w, const SymmetricLayout& layout, SymmetricSuperBlock& out);

// The error weights of one super-block: importance[0..255] when given, else 1s;
// a sub-block of `sub_len` whose importance is all zero gets 1s (its error does
// not count, but its scale should still be sane).
void superblock_weights(const float* importance, int sub_len, float* w);

// Values of an unpacked super-block, computed in f32 exactly as ggml's
// dequantize_row_<type> does ((d * sc) * q - dmin * m), so they are bit-equal.
void dequantize(const AffineSuperBlock& b, const AffineLayout& layout, float* y);
void dequantize(const SymmetricSuperBlock& b, const SymmetricLayout& layout, float* y);

// Dot product of an unpacked super-block with one q8_K block, in integers per
// sub-block then scaled: y.d * (d * sum_j sc[j] * sum_i q_i y_i  -  dmin * sum_j m[j] * bsums_j).
// (Symmetric: the same without the dmin term.)
double dot_q8_K(const AffineSuperBlock& b, const AffineLayout& layout, const BlockQ8_K& y);
double dot_q8_K(const SymmetricSuperBlock& b, const SymmetricLayout& layout, const BlockQ8_K& y);

// Fixed-scale grid of an unpacked super-block (format.h, BlockGridFn), in the
// same f32 operations as dequantize: value i of sub-block j is
// offset[i] + step[i] * q with
//   affine     step = d * sc[j], offset = -(dmin * m[j]), codes 0..q_max
//              (dequantize: (d * sc) * q - dmin * m, and a - b == a + (-b) exactly);
//   symmetric  step = d * sc[j], offset = -0.0f, codes q_lo..q_hi
//              (dequantize: (d * sc) * q; x + -0.0f == x for every x).
void block_grid(const AffineSuperBlock& b, const AffineLayout& layout, float* step, float* offset);
void block_grid(const SymmetricSuperBlock& b, const SymmetricLayout& layout, float* step, float* offset);
// Replaces every level of b by the nearest code to x[i] on its fixed grid (fixed_grid.h),
// keeping d, dmin and every sub-block scale and min.
void encode_fixed(const float* x, const AffineLayout& layout, AffineSuperBlock& b);
void encode_fixed(const float* x, const SymmetricLayout& layout, SymmetricSuperBlock& b);

// The row kernels of a weight format (traits-table signatures, format.h), from
// its layout and the pack / unpack between its block struct and the unpacked
// super-block, which is all a format's file defines.
template <class Block, class Layout, class Unpacked>
void quantize_row(const float* x, void* y, int64_t n, const float* importance, const Layout& layout,
                  void (*pack)(const Unpacked&, Block&)) {
  quantize_row_by_block<Block>(x, y, n, kQK_K, importance, [&](const float* xb, const float* imp, Block& out) {
    float w[kQK_K];
    superblock_weights(imp, layout.sub_len, w);
    Unpacked u;
    search(xb, w, layout, u);
    pack(u, out);
  });
}

template <class Block, class Layout, class Unpacked>
void dequantize_row(const void* x, float* y, int64_t n, const Layout& layout, void (*unpack)(const Block&, Unpacked&)) {
  Unpacked u;  // reused: unpack writes every field a block's layout uses
  dequantize_row_by_block<Block>(x, y, n, kQK_K, [&](const Block& b, float* yb) {
    unpack(b, u);
    dequantize(u, layout, yb);
  });
}

// x: one row of the weight format, y: one row of q8_K.
template <class Block, class Layout, class Unpacked>
float vec_dot_q8_K(int64_t n, const void* x, const void* y, const Layout& layout,
                   void (*unpack)(const Block&, Unpacked&)) {
  Unpacked u;  // reused, as above
  return vec_dot_by_block<Block, BlockQ8_K>(n, kQK_K, x, y, [&](const Block& bx, const BlockQ8_K& by) {
    unpack(bx, u);
    return dot_q8_K(u, layout, by);
  });
}

// block_grid / encode_fixed of one block of a weight format (traits-table signatures).
// Unpack then pack rewrites the scale bytes bit for bit (every bit of them is a field).
template <class Block, class Layout, class Unpacked>
void block_grid(const void* block, float* step, float* offset, const Layout& layout,
                void (*unpack)(const Block&, Unpacked&)) {
  Unpacked u;
  unpack(*static_cast<const Block*>(block), u);
  block_grid(u, layout, step, offset);
}

template <class Block, class Layout, class Unpacked>
void encode_fixed(const float* x, void* block, const Layout& layout, void (*unpack)(const Block&, Unpacked&),
                  void (*pack)(const Unpacked&, Block&)) {
  auto& b = *static_cast<Block*>(block);
  Unpacked u;
  unpack(b, u);
  encode_fixed(x, layout, u);
  pack(u, b);
}

}  // namespace lowbit::kq
