// The part of writing a quantized Hugging Face folder every layout shares
// (GPTQ, AWQ, bitsandbytes, HQQ, lowbit's own): config.json with the
// quantization_config, tokenizer files, model.safetensors with each quantized
// module's tensors and every other tensor in f16, q/k rows in HF's rotate-half
// order, and the folder built in OUT_DIR.tmp and renamed onto OUT_DIR at the end.
//
// OUT_DIR gets:
//   config.json           the source's config.json (HF folder) or a generated
//                         LlamaForCausalLM / Qwen2ForCausalLM one, with
//                         "torch_dtype": "float16" and "quantization_config".
//   quantize_config.json  when asked (AutoGPTQ reads it): the quantization_config.
//   model.safetensors     per quantized module (canonical "blk.0.attn_q.weight" ->
//                         HF "model.layers.0.self_attn.q_proj"): "<module>.<suffix>"
//                         for each tensor the layout gives; every other tensor in
//                         f16. __metadata__: format=pt, lowbit.version, lowbit.quantization.
//   tokenizer files       copied from an HF source folder when present; otherwise a
//                         warning says how to add them.
// An existing OUT_DIR is replaced only when it is empty or holds nothing but
// files this writer writes (a previous lowbit output); anything else is refused.
//
// Llama family only (GPT-2 stores Conv1D [in, out]). Sources with interleaved
// RoPE (llama2.c, GGUF) have their q/k rows permuted into HF's order: the
// layout callback gets the row order to apply (exact, rows are independent).
#pragma once
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "methods/quantizer.h"
#include "model/model.h"

namespace lowbit {

// Block linears: canonical suffix -> HF module suffix inside "model.layers.N.".
struct BlockLinear {
  const char* canonical;  // "attn_q"
  const char* hf;         // "self_attn.q_proj"
};
inline constexpr BlockLinear kBlockLinears[] = {
    {"attn_q", "self_attn.q_proj"},   {"attn_k", "self_attn.k_proj"}, {"attn_v", "self_attn.v_proj"},
    {"attn_output", "self_attn.o_proj"}, {"ffn_gate", "mlp.gate_proj"}, {"ffn_up", "mlp.up_proj"},
    {"ffn_down", "mlp.down_proj"},
};

// "blk.3.attn_q.weight" -> {3, index into kBlockLinears}; nullopt for anything else.
std::optional<std::pair<int, int>> parse_block_linear(const std::string& name);

struct HfFolderSpec {
  nlohmann::json quantization_config;
  std::string description;              // "__metadata__" lowbit.quantization: "gptq int4 g128 sym"
  bool write_quantize_config = false;   // also write quantize_config.json (AutoGPTQ)
  std::set<std::string> quantized;      // canonical names of the block linears stored by `module_tensors`
  // The tensors of quantized linear `canonical`. perm: nullptr, or the source row
  // of each output row (HF row r = source row perm[r]) to apply first.
  std::function<std::vector<HfModuleTensor>(const std::string& canonical, const std::vector<int64_t>* perm)>
      module_tensors;
};

// Throws lowbit::Error naming the tensor / folder for anything that cannot be
// written; leaves no OUT_DIR.tmp behind.
void write_hf_folder(const Model& m, const HfFolderSpec& spec, const std::string& out_dir);

// A model whose block linears a Quantizer turned into QLinears (Quantizer::
// quantize_model), written in that method's layout.
void write_hf_qlinear_folder(const Model& m, const Quantizer& q, const QuantConfig& cfg, const std::string& out_dir);

}  // namespace lowbit
