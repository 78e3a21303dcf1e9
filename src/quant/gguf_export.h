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
// otherwise the model's tokenizer file as an SPM "llama" or byte-level BPE "gpt2" vocab, quant/gguf_tokenizer.h),
// and lowbit.version / lowbit.recipe / lowbit.seed / lowbit.kquant_effort; with an importance matrix,
// llama-quantize's quantize.imatrix.{file,dataset,entries_count,chunks_count}.
//
// Importance matrix (ExportOptions::imatrix): every tensor stored in a
// quantized format gets its entry's per-column importance (mean x^2, [n_in])
// passed to the format's quantizer; a tensor without an entry is quantized
// without one and named in a warning; an entry whose length differs from the
// tensor's columns is an error.
//
// A Hugging Face llama stores q/k rows permuted for NeoX-style RoPE; GGUF
// `llama` expects the interleaved order, so those rows are permuted back.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "model/model.h"
#include "quant/recipe.h"

namespace lowbit {

struct ImatrixData;  // eval/imatrix.h

struct ExportOptions {
  int threads = 0;           // 0 = OpenMP default
  std::string vocab_path;    // tokenizer file to embed (tokenizer.json / .model / llama2.c .bin; "" = the model's)
  uint64_t seed = 0;         // recorded as lowbit.seed (RTN uses no randomness)
  const ImatrixData* imatrix = nullptr;  // importance matrix (not owned; nullptr = none)
  std::string imatrix_path;              // its file, recorded as quantize.imatrix.file
  // Tensors a method already quantized (GPTQ / AWQ toward the plan's format):
  // canonical name -> rows of blocks in the model's row order, written as they
  // are (q/k rows permuted like any other). Not owned; nullptr = none.
  const std::map<std::string, std::vector<uint8_t>>* prequantized = nullptr;
  std::map<std::string, std::string> extra_metadata;  // more lowbit.* keys (method, calibration)
};

// Throws lowbit::Error (and leaves no file at `out_path`) on failure.
void export_gguf(const Model& m, const QuantPlan& plan, const std::string& out_path, const ExportOptions& opts = {});

// GGUF architecture name lowbit writes for `c`: "llama", "qwen2" or "gpt2".
std::string gguf_arch_name(const ModelConfig& c);

}  // namespace lowbit
