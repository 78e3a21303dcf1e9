// The Hugging Face GPTQ and AWQ checkpoint layouts of one quantized linear,
// packed from / unpacked into IntGroupQuant (methods/int_groups.h). Pure
// functions: no files here (io/hf_quant_writer.h writes folders, io/hf_model.cpp
// reads them).
//
// Notation: W [n_out, n_in] = scales[g_idx[i], o] * (q[o, i] - zeros[g_idx[i], o]).
//
// GPTQ (AutoGPTQ QuantLinear `pack`, GPTQModel, transformers/optimum, vLLM):
//   qweight int32 [n_in * bits / 32, n_out]      codes packed along the INPUT dim
//   qzeros  int32 [n_groups, n_out * bits / 32]  zero points packed along the OUTPUT dim
//   scales  f16   [n_groups, n_out]
//   g_idx   int32 [n_in]                         group of each input column (act-order: not monotone)
//   (bias   f16   [n_out], optional; not part of this file)
//   Packing of a sequence v[0..n) into 32-bit words (the same for both tensors):
//     bits 2, 4, 8: k = 32 / bits values per word; v[j] sits at bit (j % k) * bits of word j / k.
//     bits 3: every 32 values fill 3 words (AutoGPTQ's scheme):
//       w0 = v0..v9 at bits 3j,        v10 bits 0-1 at bits 30-31
//       w1 = v10 bit 2 at bit 0,       v11..v20 at bits 3j+1,  v21 bit 0 at bit 31
//       w2 = v21 bits 1-2 at bits 0-1, v22..v31 at bits 3j+2
//   For qweight the sequence of output column o is q[o, 0..n_in) and word r sits
//   at qweight[r, o]; for qzeros the sequence of group g is zeros[g, 0..n_out).
//   Checkpoint format "gptq" (v1, what AutoGPTQ / transformers / vLLM write and
//   read by default) stores zero - 1 in qzeros and loaders add 1 back;
//   "gptq_v2" (GPTQModel's internal format) stores zero itself.
//
// AWQ GEMM (AutoAWQ WQLinear_GEMM, `version: "gemm"`; 4 bits only):
//   qweight int32 [n_in, n_out / 8]     codes packed along the OUTPUT dim
//   qzeros  int32 [n_groups, n_out / 8] zero points, same packing, stored as is
//   scales  f16   [n_groups, n_out]
//   No g_idx: input column i is in group i / group_size.
//   Nibble k (bits 4k..4k+3) of word c holds output 8c + kAwqOrder[k], with
//   kAwqOrder = {0, 2, 4, 6, 1, 3, 5, 7}.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/tensor.h"
#include "methods/int_groups.h"

namespace lowbit {

inline constexpr int kAwqOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};

enum class HfQuantMethod { Gptq, Awq };

// What a checkpoint's quantization_config says about its linears.
struct HfQuantScheme {
  HfQuantMethod method = HfQuantMethod::Gptq;
  IntGroupSpec spec;
  bool gptq_v2 = false;   // checkpoint_format "gptq_v2": zeros stored without the - 1
  bool desc_act = false;  // informational (g_idx carries the order)
  // "gptq int4 g128 sym desc_act", "awq int4 g128 asym".
  std::string describe() const;
};

// Packs `n` values v[k * v_stride] (each in [0, 2^bits); gptq_packable(n, bits))
// into n * bits / 32 words w[r * w_stride] in GPTQ's order (see above); the
// words are overwritten. Unpack is the inverse.
void gptq_pack_sequence(const int32_t* v, int64_t n, int64_t v_stride, int bits, int32_t* w, int64_t w_stride);
void gptq_unpack_sequence(const int32_t* w, int64_t n, int64_t w_stride, int bits, int32_t* v, int64_t v_stride);
// Whether a sequence of n values packs into whole words (n % (32 / bits) == 0; 3 bits: n % 32 == 0).
bool gptq_packable(int64_t n, int bits);

struct GptqTensors {
  int bits = 4;
  int64_t n_in = 0, n_out = 0, n_groups = 0;
  std::vector<int32_t> qweight;  // [n_in * bits / 32, n_out]
  std::vector<int32_t> qzeros;   // [n_groups, n_out * bits / 32]
  std::vector<float> scales;     // [n_groups, n_out] (f16 values)
  std::vector<int32_t> g_idx;    // [n_in]
};

struct AwqTensors {
  int64_t n_in = 0, n_out = 0, n_groups = 0;
  std::vector<int32_t> qweight;  // [n_in, n_out / 8]
  std::vector<int32_t> qzeros;   // [n_groups, n_out / 8]
  std::vector<float> scales;     // [n_groups, n_out] (f16 values)
};

// Throw lowbit::Error naming `what` (a tensor or module) when q cannot be stored:
// n_in / n_out not packable, scales not f16 values, v1 zeros outside [1, 2^bits]
// (v2: [0, maxq]), AWQ with bits != 4, n_out % 8 != 0 or a g_idx other than i / group_size.
GptqTensors pack_gptq(const IntGroupQuant& q, bool v2, const std::string& what);
AwqTensors pack_awq(const IntGroupQuant& q, const std::string& what);

// The inverse. `spec` (bits, group_size, sym) comes from the checkpoint's config;
// sizes of the vectors and g_idx values are checked (errors name `what`). Zeros
// read from a v1 checkpoint lie in [1, 2^bits] (a stored maxq means 2^bits).
IntGroupQuant unpack_gptq(const GptqTensors& t, const IntGroupSpec& spec, bool v2, const std::string& what);
IntGroupQuant unpack_awq(const AwqTensors& t, const IntGroupSpec& spec, const std::string& what);

// From the tensors of one module of a checkpoint (views into the mapped file):
// checks dtypes and shapes against each other and the scheme (errors name
// `file` and the tensor) and unpacks. g_idx may be null (GPTQ: i / group_size;
// AWQ ignores it).
IntGroupQuant read_hf_quant_linear(const HfQuantScheme& s, const TensorView& qweight, const TensorView& qzeros,
                                   const TensorView& scales, const TensorView* g_idx, const std::string& file);

// q with output rows permuted: row o of the result is row src_row[o] of q
// (codes, and the scale / zero columns). Exact: rows are independent.
IntGroupQuant permute_output_rows(const IntGroupQuant& q, const std::vector<int64_t>& src_row);

}  // namespace lowbit
