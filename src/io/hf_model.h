// Hugging Face model folders: config.json + *.safetensors (+ tokenizer files),
// mapped onto lowbit's canonical tensor names (see model/config.h).
#pragma once
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "model/config.h"
#include "model/model.h"

namespace lowbit {

// Architectures ("architectures"[0] in config.json) lowbit loads, comma-separated for messages.
std::string_view hf_supported_architectures();

// Parses a config.json into a ModelConfig (not yet validated). Throws
// lowbit::Error naming the file and the field for an unsupported architecture,
// a missing required key or a value of the wrong type.
ModelConfig read_hf_config(const std::string& config_path);

// One row of the name table: canonical name <- Hugging Face name. "{i}" stands
// for the layer number. GPT-2 names are listed without their optional
// "transformer." prefix.
struct HfNameRule {
  std::string_view canonical;
  std::string_view hf;
  bool conv1d = false;     // GPT-2 Conv1D weight stored [in, out]: transposed on load
  bool qkv_bias = false;   // only present when ModelConfig::attn_qkv_bias
};
std::span<const HfNameRule> hf_name_rules(Arch arch);

// The Hugging Face name of a canonical tensor ("blk.3.attn_q.weight" ->
// "model.layers.3.self_attn.q_proj.weight"), for writers of HF layouts.
// nullopt when the architecture has no such tensor.
std::optional<std::string> hf_tensor_name(Arch arch, std::string_view canonical);

// Loads the folder `dir` into `m`: config, canonical-named weights (views into
// the memory-mapped shards; GPT-2 Conv1D weights transposed into f32 buffers
// in m.owned), metadata and, when the folder has one (tokenizer.model,
// tokenizer.json, or vocab.json + merges.txt), the tokenizer.
void load_hf_model(const std::string& dir, Model& m);

}  // namespace lowbit
