// Loads a GGUF model (architectures llama, qwen2, gpt2) into a Model:
// hyperparameters from `{arch}.*` metadata, weights as views into the mapped
// file (GGUF's tensor names are lowbit's canonical names), and the tokenizer
// embedded in `tokenizer.ggml.*`.
#pragma once
#include <string>

#include "model/model.h"

namespace lowbit {

// Fills `m` (path, format "gguf", config, weights, tokenizer, metadata, and the
// open file in m.sources). Throws lowbit::Error naming the file and the key or
// tensor on an unsupported architecture, a missing/mistyped key, a quantized
// tensor (not supported yet) or weights that do not match the config.
// An unsupported embedded tokenizer is a warning (m.tokenizer stays null).
void load_gguf_model(const std::string& path, Model& m);

}  // namespace lowbit
