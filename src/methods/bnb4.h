// bitsandbytes 4-bit weights: NF4 and FP4 blocks with optional double
// quantization of the block scales (QLoRA, Dettmers et al. 2023), stored and
// read back byte-compatible with the checkpoints transformers saves through
// bitsandbytes' Params4bit / QuantState.as_dict(packed=True).
//
// Layout of one linear W [n_out, n_in] (bnb's, not per row):
//   - W is flattened row-major into n = n_out * n_in values and cut into
//     blocks of `blocksize` (64) consecutive values; blocks may straddle rows
//     when n_in % blocksize != 0, and the last block may be short.
//   - per block: absmax = max |w| (f32); each value becomes the 4-bit index of
//     the nearest code of w / absmax (bnb's decision trees, ties to the lower
//     code); two codes per byte, the FIRST element in the HIGH nibble. An odd n
//     pads the last low nibble with the code of 0.
//   - double quantization (QLoRA section 3, "Double Quantization"):
//     offset = mean(absmax); (absmax - offset) is quantized in blocks of 256
//     with bnb's signed dynamic 8-bit map -> uint8 per 4-bit block plus an f32
//     nested_absmax per 256 blocks. Decoding:
//       absmax_b = dyn[q_b] * nested_absmax[b / 256] + offset   (f32, in that order)
//       w_i      = code[nibble_i] * absmax_b                     (f32)
//
// Bits per weight (constant code tables excluded, they are the same for every layer):
//   without double quant: 4 + 32 / 64                          = 4.5
//   with double quant:    4 + 8 / 64 + 32 / (64 * 256) + 32 / n ~= 4.127
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/dispatch.h"
#include "methods/quantizer.h"
#include "model/qlinear.h"

namespace lowbit {

enum class Bnb4Type : uint8_t { NF4, FP4 };

const char* bnb4_type_name(Bnb4Type t);  // "nf4" | "fp4"

// bnb's quant_map (get_4bit_type): 16 f32 values in [-1, 1], index = 4-bit code.
// NF4: the published NormalFloat4 values (exact 0 at code 7).
// FP4: bnb's sign + 2 exponent + 1 mantissa bits, {0, 0.0625, 8, 12, 4, 6, 2, 3} / 12
// by bit pattern, bit 3 = sign (code 8 is +0, as bnb's table holds).
const std::array<float, 16>& bnb4_code(Bnb4Type t);
// bnb's create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): 256
// sorted f32 values from -0.99296875 to 1.0 (index 127 is 0), bit-exact with
// what torch's CPU kernels compute on an AVX2 machine (an AVX-512 torch rounds a
// few entries differently by 1-2 ulp; checkpoints carry their own copy as
// weight.nested_quant_map, and the loader uses that copy).
const std::array<float, 256>& bnb_dynamic_map();

// Code of one value already scaled to [-1, 1] (x = w * (1 / absmax)), exactly as
// bnb's CUDA kernels decide (dQuantizeNF4 / dQuantizeFP4): ties go to the lower
// code; NaN (an all-zero block: 0 * inf) gives code 0.
uint8_t bnb4_quantize_scaled(Bnb4Type t, float x);
// Index into a sorted 256-entry map for x in [-1, 1]: bnb's dQuantize<0>
// (7-step binary search, then the nearer neighbour by midpoint).
uint8_t bnb_dynamic_quantize_scaled(const float* code256, float x);

// One NF4/FP4 linear: exactly the quantized state bnb keeps.
// 4.5 bits per weight (codes + f32 absmax), ~4.127 with double quant.
struct Bnb4State {
  Bnb4Type type = Bnb4Type::NF4;
  int64_t n_out = 0, n_in = 0;
  int blocksize = 64;                  // values per absmax block (bnb: 32..4096, powers of two)
  std::string dtype = "float32";       // quant_state "dtype": the dtype bnb dequantizes to
  std::vector<uint8_t> codes;          // [ceil(n/2)] two 4-bit codes per byte, first element high nibble
  // Without double quant:
  std::vector<float> absmax;           // [n_blocks] f32
  // With double quant:
  bool double_quant = false;
  std::vector<uint8_t> absmax_q;       // [n_blocks] indices into nested_code
  std::vector<float> nested_absmax;    // [ceil(n_blocks / nested_blocksize)]
  int nested_blocksize = 256;
  float offset = 0.0f;                 // mean of the absmax vector
  std::array<float, 256> nested_code{};  // the dynamic map (as read from the checkpoint)

  int64_t numel() const { return n_out * n_in; }
  int64_t n_blocks() const { return (numel() + blocksize - 1) / blocksize; }
  // The f32 absmax of block b (decoded when double-quantized).
  float block_absmax(int64_t b) const {
    if (!double_quant) return absmax[size_t(b)];
    const float s = nested_code[absmax_q[size_t(b)]] * nested_absmax[size_t(b / nested_blocksize)];
    return s + offset;
  }
};

// Quantizes W [n_out, n_in] (f32, row-major) bitsandbytes' way. Throws
// lowbit::Error naming `name` for non-finite values or a bad blocksize.
// Deterministic at any thread count (n_threads <= 0: all cores).
Bnb4State quantize_bnb4(const std::string& name, const float* W, int64_t n_out, int64_t n_in, Bnb4Type type,
                        int blocksize, bool double_quant, int n_threads = 0);

// Bytes of the state that scales with the layer: codes, absmax (or absmax codes,
// nested absmax and the offset). The constant code tables are not counted.
size_t bnb4_state_bytes(int64_t n_out, int64_t n_in, int blocksize, bool double_quant, int nested_blocksize = 256);

class Bnb4Linear final : public QLinear {
 public:
  explicit Bnb4Linear(Bnb4State s);

  int64_t n_out() const override { return s_.n_out; }
  int64_t n_in() const override { return s_.n_in; }
  void matmul(const float* X, int n_tok, float* Y, int n_threads) const override;
  void dequantize_rows(int64_t row0, int64_t n_rows, float* W) const override;
  size_t nbytes() const override;
  std::string type_name() const override;  // "nf4", "nf4-dq", "fp4", "fp4-dq"
  std::string describe() const override;   // "nf4, blocksize=64, double_quant=True"
  std::shared_ptr<QLinear> with_rows_permuted(std::span<const int64_t> perm) const override;

  // matmul with the kernel of `isa` (Ref: scalar reference; Avx2: fused
  // dequant-dot, when the CPU has it). matmul() uses active_isa().
  void matmul_isa(const float* X, int n_tok, float* Y, int n_threads, IsaLevel isa) const;

  const Bnb4State& state() const { return s_; }

 private:
  Bnb4State s_;
};

// --- kernels (bnb4.cpp: reference; kernels/bnb4_avx2.cpp: AVX2) ---
// One row whose blocks do not straddle rows: codes [n_in / 2] bytes, absmax
// [n_in / blocksize] f32, x [n_in]. Returns sum_i (code[q_i] * absmax_b) * x_i.
using Bnb4DotRowFn = float (*)(const uint8_t* codes, const float* absmax, int64_t n_in, int blocksize,
                               const float* code16, const float* x);
// Dequantizes such a row: w [n_in] = code[q_i] * absmax_b (bit-exact in every kernel).
using Bnb4DequantRowFn = void (*)(const uint8_t* codes, const float* absmax, int64_t n_in, int blocksize,
                                  const float* code16, float* w);
float bnb4_dot_row_ref(const uint8_t* codes, const float* absmax, int64_t n_in, int blocksize, const float* code16,
                       const float* x);
void bnb4_dequant_row_ref(const uint8_t* codes, const float* absmax, int64_t n_in, int blocksize, const float* code16,
                          float* w);
float bnb4_dot_row_avx2(const uint8_t* codes, const float* absmax, int64_t n_in, int blocksize, const float* code16,
                        const float* x);
void bnb4_dequant_row_avx2(const uint8_t* codes, const float* absmax, int64_t n_in, int blocksize,
                           const float* code16, float* w);

// f32 dot products (the path for 4 <= n_tok < 16: one dequantized row, several tokens).
float f32_dot_ref(const float* a, const float* b, int64_t n);
float f32_dot_avx2(const float* a, const float* b, int64_t n);

// Registered as "nf4" and "fp4" (methods/registry.cpp).
std::unique_ptr<Quantizer> make_nf4_quantizer();
std::unique_ptr<Quantizer> make_fp4_quantizer();

}  // namespace lowbit
