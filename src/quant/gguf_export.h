// Writes a Model quantized per a QuantPlan to a GGUF v3 file llama.cpp loads.
//
// Tensors are streamed one at a time through GgufWriter's fill callback: each
// row is converted to f32 and quantized with the format's reference quantizer
// (rows in parallel with OpenMP; each row's bytes depend only on that row, so
// the file is byte-identical at any thread count). Peak memory ~ one tensor.
// The file is written to OUT.tmp and renamed when complete.
//
// Metadata: general.architecture (llama / qwen2 / gpt2), general.name,
// general.file_type, general.quantization_version = 2, the {arch}.*
// hyperparameters, the tokenizer (every tokenizer.* key of a GGUF input;
// otherwise a SentencePiece-style vocab as tokenizer.ggml.model = "llama"),
// and lowbit.version / lowbit.recipe / lowbit.seed.
//
// A Hugging Face llama stores q/k rows permuted for NeoX-style RoPE; GGUF
// `llama` expects the interleaved order, so those rows are permuted back.
#pragma once
#include <string>

#include "model/model.h"
#include "quant/recipe.h"

namespace lowbit {

struct ExportOptions {
  int threads = 0;           // 0 = OpenMP default
  std::string vocab_path;    // llama2.c tokenizer .bin or SentencePiece tokenizer.model ("" = find one)
  uint64_t seed = 0;         // recorded as lowbit.seed (RTN uses no randomness)
};

// Throws lowbit::Error (and leaves no file at `out_path`) on failure.
void export_gguf(const Model& m, const QuantPlan& plan, const std::string& out_path, const ExportOptions& opts = {});

// GGUF architecture name lowbit writes for `c`: "llama", "qwen2" or "gpt2".
std::string gguf_arch_name(const ModelConfig& c);

}  // namespace lowbit
