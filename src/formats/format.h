// The formats traits table: one row per storage format (a block layout plus
// its kernels). Code asks the table; it does not switch on the type.
//
// Format ids equal ggml's type ids, so a GGUF tensor's type is a FormatId.
// A new format is one new file (its block struct with a static_assert on the
// size and its bits per weight in a comment, reference quantize / dequantize /
// dot), one row in its family's table, and one test-table entry.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace lowbit {

enum class FormatId : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15, IQ4_NL = 20, BF16 = 30,
};

// Quantizes one row of n values (n % block_size == 0) into n / block_size
// blocks. `importance` ([n] or nullptr) weights each value's squared error in
// the scale/min search (llama.cpp's imatrix); nullptr = plain error.
using QuantizeRowFn = void (*)(const float* x, void* y, int64_t n, const float* importance);
// Expands n values (n % block_size == 0) of one row back to f32.
using DequantizeRowFn = void (*)(const void* x, float* y, int64_t n);
// Dot product of one row x of this format with one row y of `dot_with` format, n values.
using VecDotFn = float (*)(int64_t n, const void* x, const void* y);
// The dot products of 4 rows of this format (x, x + stride, x + 2 stride, x + 3 stride
// bytes) with one row y of `dot_with` format: out[r] == vec_dot(n, row r, y) bit for bit.
using VecDot4RowsFn = void (*)(int64_t n, const void* x, size_t stride, const void* y, float* out);

// Fixed-scale rounding, for methods that quantize one column at a time with
// error feedback (GPTQ targeting a ggml format): a block's scales and mins are
// chosen once by quantize_row_ref; after that each of its values can only be
//   offset[i] + step[i] * grid(k)   for an integer code k in [code_min, code_max],
// where grid(k) = k for affine formats and grid_table[k - code_min] for
// non-uniform ones (iq4_nl). block_grid reads step/offset [block_size] out of
// one block's bytes; encode_fixed stores x [block_size] in the block keeping
// every scale and min, each code the nearest grid point (ties: the lower code).
using BlockGridFn = void (*)(const void* block, float* step, float* offset);
using EncodeFixedFn = void (*)(const float* x, void* block);

struct FormatTraits {
  FormatId id;
  const char* name;          // ggml's spelling: "q4_K", "q8_0", "f16"
  int block_size;            // values per block (1 for f32/f16/bf16)
  size_t block_bytes;        // bytes per block
  bool quantized;
  FormatId dot_with;         // activation format this format's dot product pairs with
  QuantizeRowFn quantize_row_ref;   // reference: deterministic, used to write files
  DequantizeRowFn dequantize_row;
  VecDotFn vec_dot_ref;      // scalar reference dot
  VecDotFn vec_dot;          // fastest kernel for this CPU (set once at start-up), == ref when none
  // Fastest dequantize_row for this CPU (set once at start-up; bit-identical to
  // dequantize_row), == dequantize_row when none. Family tables leave it unset.
  DequantizeRowFn dequantize_row_fast = nullptr;
  // 4-row kernel for this CPU when one exists (set once at start-up), else nullptr.
  VecDot4RowsFn vec_dot_4rows = nullptr;
  // Fixed-scale grid (see BlockGridFn); nullptr for float formats and activation-only ones.
  BlockGridFn block_grid = nullptr;
  EncodeFixedFn encode_fixed = nullptr;
  int code_min = 0, code_max = 0;
  const float* grid_table = nullptr;  // [code_max - code_min + 1] for non-uniform grids, else nullptr

  double bits_per_weight() const { return 8.0 * double(block_bytes) / double(block_size); }
};

// The whole table, in id order.
std::span<const FormatTraits> all_formats();
// Row for `id`; throws lowbit::Error for an id not in the table.
const FormatTraits& format_traits(FormatId id);
// Row for a raw id (e.g. a GGUF tensor's ggml type); nullptr when not in the table.
const FormatTraits* find_format_by_id(uint32_t id);
// Row by name, case-insensitive ("Q4_K", "q4_k", "f16"); nullptr when unknown.
const FormatTraits* find_format(std::string_view name);
// Bytes of one row of n values; throws lowbit::Error when n is not a multiple of the block size.
size_t row_bytes(FormatId id, int64_t n);

}  // namespace lowbit
