// Opens a model the way the ecosystem ships it and maps it onto canonical names.
#pragma once
#include <memory>
#include <string>

#include "model/model.h"

namespace lowbit {

struct LoadOptions {
  std::string tokenizer_path;  // overrides the tokenizer found with the model
  // Repack weights for this CPU's generation kernels (model/packed_weights.h):
  // for commands that run the model; costs a copy of the packed tensors.
  bool pack_for_cpu = false;
};

// PATH may be: a GGUF file; a Hugging Face folder (config.json + *.safetensors
// [+ model.safetensors.index.json] + tokenizer files) or a .safetensors file
// inside one; a llama2.c checkpoint (.bin; tokenizer from tokNNN.bin /
// tokenizer.bin beside it).
std::unique_ptr<Model> load_model(const std::string& path, const LoadOptions& opts = {});

}  // namespace lowbit
