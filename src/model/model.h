// A model ready to run: config + canonical-named weights + tokenizer, with the
// files they live in kept open (weights are views into mapped files, or into
// buffers this struct owns when a layout had to be converted).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/tensor_source.h"
#include "io/tokenizer.h"
#include "lowbit/tensor.h"
#include "model/config.h"

namespace lowbit {

struct Model {
  std::string path;                                   // what the user passed
  std::string format;                                 // "gguf", "safetensors", "llama2.c"
  ModelConfig config;
  std::map<std::string, TensorView> weights;          // canonical name -> view
  std::unique_ptr<Tokenizer> tokenizer;               // may be null (no tokenizer found)
  std::vector<std::unique_ptr<TensorSource>> sources; // keeps mappings alive
  std::vector<std::vector<float>> owned;              // converted tensors (e.g. GPT-2 Conv1D transposed)
  std::map<std::string, std::string> metadata;        // printable key/values from the file
  std::vector<std::shared_ptr<const QLinear>> qlinears;  // layers behind QLINEAR views (model/qlinear.h)
  std::vector<std::shared_ptr<const PackedWeights>> packed;  // behind TensorView::packed (model/packed_weights.h)

  // Replaces (or adds) weight `name` by a QLINEAR view of `q`, which the model keeps.
  void set_qlinear(const std::string& name, std::shared_ptr<const QLinear> q);

  // Throws lowbit::Error naming the model path and the tensor when missing.
  const TensorView& weight(const std::string& name) const;
  const TensorView* find_weight(const std::string& name) const;
  // Checks every tensor the architecture needs exists with the expected shape.
  void validate_weights() const;
  int64_t n_params() const;  // sum of numel over weights (tied output counted once)
  const Tokenizer& tok() const;  // throws with a --tokenizer hint when absent
};

}  // namespace lowbit
