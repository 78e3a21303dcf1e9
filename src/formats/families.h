// Each format family contributes its rows to the traits table (format_table.cpp).
#pragma once
#include <span>

#include "formats/format.h"

namespace lowbit {
std::span<const FormatTraits> float_formats();   // f32, f16, bf16          (float_formats.cpp)
std::span<const FormatTraits> legacy_formats();  // q4_0, q4_1, q5_0, q5_1, q8_0, q8_1, iq4_nl (legacy_quants.cpp, iq4_nl.cpp)
std::span<const FormatTraits> kquant_formats();  // q2_K, q3_K, q4_K, q5_K, q6_K, q8_K      (k_quants*.cpp)

// A family row with its fixed-scale grid (format.h, BlockGridFn) filled in:
// codes lo..hi, grid(k) = k, or table[k - lo] for a non-uniform grid.
constexpr FormatTraits with_fixed_grid(FormatTraits row, BlockGridFn grid, EncodeFixedFn encode, int lo, int hi,
                                       const float* table = nullptr) {
  row.block_grid = grid;
  row.encode_fixed = encode;
  row.code_min = lo;
  row.code_max = hi;
  row.grid_table = table;
  return row;
}
}  // namespace lowbit
