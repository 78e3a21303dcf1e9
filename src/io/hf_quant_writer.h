// Writes a quantized Hugging Face model folder in the GPTQ or AWQ layout
// (io/hf_quant_layouts.h), loadable by transformers (+ optimum / gptqmodel or
// autoawq), AutoGPTQ, GPTQModel, AutoAWQ and vLLM, and by lowbit itself.
//
// OUT_DIR gets:
//   config.json           the source's config.json (HF folder) or a generated
//                         LlamaForCausalLM / Qwen2ForCausalLM one, with
//                         "torch_dtype": "float16" and "quantization_config":
//     gptq: {"quant_method": "gptq", "bits", "group_size", "desc_act", "sym",
//            "damp_percent", "true_sequential", "static_groups",
//            "checkpoint_format": "gptq", "model_name_or_path": null,
//            "model_file_base_name": "model"}
//           + "modules_in_block_to_quantize": [["self_attn.q_proj", ...]] when
//             only some block linears are quantized (optimum's filter: a module
//             is quantized when its name ends with a listed suffix).
//     awq:  {"quant_method": "awq", "bits": 4, "group_size", "zero_point": true,
//            "version": "gemm", "modules_to_not_convert": null | ["mlp.down_proj", ...]}
//           (transformers skips modules whose name contains a listed string).
//   quantize_config.json  gptq only: the same object as quantization_config (AutoGPTQ's file).
//   model.safetensors     every linear in `linears` as <module>.qweight / .qzeros /
//                         .scales (/ .g_idx for gptq); every other tensor in f16
//                         (as AutoGPTQ / AutoAWQ save a model.half(), norms included).
//                         __metadata__: format=pt, lowbit.version, lowbit.quantization.
//   tokenizer files       copied from an HF source folder when present (tokenizer.json,
//                         tokenizer.model, tokenizer_config.json, special_tokens_map.json,
//                         generation_config.json, added_tokens.json, vocab.json, merges.txt);
//                         otherwise a warning says how to add them.
//
// The folder is built in OUT_DIR.tmp and renamed onto OUT_DIR at the end. An
// existing OUT_DIR is replaced only when it is empty or holds nothing but files
// this writer writes (a previous lowbit output); anything else is refused.
//
// Llama family only: GPT-2's Conv1D layout differs (fail() with a hint). Sources
// with interleaved RoPE (llama2.c, GGUF) get their q/k rows permuted into HF's
// rotate-half order (codes, scales and zeros alike: exact, rows are independent).
#pragma once
#include <map>
#include <string>

#include "methods/int_groups.h"
#include "methods/quantizer.h"
#include "model/model.h"

namespace lowbit {

struct HfQuantConfig {
  std::string method;  // "gptq" | "awq"
  IntGroupSpec spec;
  bool desc_act = false, static_groups = false, true_sequential = true;
  double damp = 0.01;
};

// `linears`: canonical names ("blk.0.attn_q.weight") of block linears -> their
// quantization (spec equal to cfg.spec). Throws lowbit::Error naming the
// tensor / folder for anything that cannot be written.
// One linear's tensors in the GPTQ v1 layout (qweight, qzeros, scales, g_idx) or
// AWQ's GEMM layout (qweight, qzeros, scales); `what` names it in errors.
std::vector<HfModuleTensor> gptq_module_tensors(const IntGroupQuant& q, const std::string& what);
std::vector<HfModuleTensor> awq_module_tensors(const IntGroupQuant& q, const std::string& what);

void write_hf_quantized(const Model& m, const std::map<std::string, IntGroupQuant>& linears, const HfQuantConfig& cfg,
                        const std::string& out_dir);

}  // namespace lowbit
