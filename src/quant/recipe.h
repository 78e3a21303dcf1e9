// Quantization recipes: which storage format each tensor of a model gets.
//
// A recipe TYPE is either a llama.cpp mix, spelled in upper case as llama-quantize
// does (Q2_K, Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K, Q8_0,
// Q4_0, F16, BF16), or one format of the traits table in ggml's spelling (q4_K,
// q8_0, iq4_nl, f16, ...): every quantizable matrix gets that format ("pure").
//
// Rules (llama.cpp's llama_tensor_get_type, src/llama-quant.cpp):
//  - 1-D tensors (norms, biases) stay f32; position embeddings keep their type.
//  - mixes with a quantized base: output.weight (token_embd.weight when tied) ->
//    q6_K, or q8_0 when its rows do not divide the base block; attn_v / ffn_down /
//    attn_output / attn_qkv are upgraded per mix and layer (use_more_bits: first
//    and last eighth of the layers and every third layer between).
//  - with an importance matrix (RecipeOptions::has_imatrix, llama.cpp's qs.has_imatrix):
//    Q4_0 / Q5_0 mixes store ffn_down of the first n_layer/8 layers as q4_1 / q5_1.
//    That is the only has_imatrix rule for the mixes lowbit offers; llama.cpp's others
//    concern IQ3_XXS and IQ4_NL / IQ4_XS mixes. llama-quantize refuses to run without an
//    imatrix only for IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S and Q2_K_S, none of them a lowbit
//    mix, so no lowbit TYPE needs one.
//  - rows not a multiple of the chosen block size fall back:
//    q2_K, q3_K -> iq4_nl; q4_K -> q5_0; q5_K -> q5_1; q6_K -> q8_0; other
//    block formats -> f16; and f16 when the fallback's block does not divide
//    either. Every fallback is recorded in the tensor's note and logged.
//  - --tensor-type REGEX=TYPE overrides (std::regex_search on the canonical
//    name, first match wins), then --output-type / --keep-output for output.weight.
//
// Requantizing: a source tensor that is already block-quantized (a quantized
// GGUF input) is dequantized and quantized again, which compounds the error of
// both quantizations; make_plan warns once (log_warn, and QuantPlan::warning,
// which format_plan prints) that the original f16/bf16 weights should be used
// when available. A quantized tensor whose planned format is its own is not
// requantized: TensorPlan::copy marks it for a byte-exact copy.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "formats/format.h"
#include "model/model.h"

namespace lowbit {

struct RecipeOptions {
  std::string type;                         // mix or format name
  std::vector<std::string> tensor_types;    // "REGEX=TYPE"
  std::string output_type;                  // format for output.weight ("" = by rule)
  bool keep_output = false;                 // leave output.weight unquantized
  bool has_imatrix = false;                 // an importance matrix will be used (--imatrix): changes some mix rules
};

struct TensorPlan {
  std::string name;
  std::vector<int64_t> shape;  // outermost-first
  FormatId type = FormatId::F32;
  uint64_t bytes = 0;
  std::string note;            // why it differs from the base type ("" when it does not)
  bool fallback = false;       // rows did not fit the chosen format's block
  std::string source_type;     // the input's type: "f32", "bf16", "q4_K", ...
  bool copy = false;           // source already block-quantized in `type`: write its bytes unchanged
};

struct QuantPlan {
  std::string recipe;          // TYPE plus overrides, as recorded in lowbit.recipe
  uint32_t file_type = 0;      // llama.cpp's LLAMA_FTYPE id
  FormatId base = FormatId::F32;
  std::vector<TensorPlan> tensors;  // in the model's tensor order
  uint64_t total_bytes = 0;
  int64_t n_weights = 0;
  int n_requantized = 0;       // tensors dequantized from a quantized source and quantized again
  std::string warning;         // "" or the requantization warning (also logged by make_plan)
  double bits_per_weight() const { return n_weights ? 8.0 * double(total_bytes) / double(n_weights) : 0.0; }
  const TensorPlan* find(const std::string& name) const;
};

// Builds the plan; throws lowbit::Error for an unknown TYPE, a bad REGEX=TYPE, an unknown format.
// Logs one warning per fallback, and one when quantized source tensors are requantized.
QuantPlan make_plan(const Model& m, const RecipeOptions& opts);

// Decision for one tensor, exposed for tests. `layer` -1 for non-layer tensors.
FormatId mix_tensor_type(uint32_t file_type, FormatId base, const std::string& name, int layer, int n_layers,
                         int n_gqa, bool has_output, int64_t row_len, std::string* note, bool has_imatrix = false);

// The plan as a table: tensor, shape, source type, type, bytes, note; then total size and
// bits per weight, and the requantization warning when there is one.
std::string format_plan(const QuantPlan& p);

// Names accepted as TYPE, for help text.
std::string recipe_type_names();

}  // namespace lowbit
