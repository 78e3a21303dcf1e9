// Layer-by-layer calibration (design.md, step 3; GPTQ paper §4 "true
// sequential"): the hidden states of every calibration sample enter decoder
// layer 0; a method works on one layer at a time, and that layer's outputs,
// computed with its already-quantized weights, become the next layer's inputs.
// Memory: the inputs of one layer for all samples [nsamples * seqlen, dim],
// one layer's scratch, and a KV cache for one layer — not the model's size
// times anything (weights stay memory-mapped; only replaced ones are copied).
//
// Weights a method changes (quantized values, AWQ-scaled linears and norms)
// are stored as f32 in the Model (Model::owned) and replace its views, so the
// same Model is then what gets written.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "eval/calibration_data.h"
#include "model/forward.h"
#include "model/model.h"

namespace lowbit {

class LayerPipeline {
 public:
  // Embeds every sample (layer 0's inputs). Throws for a sample token outside the vocabulary.
  LayerPipeline(Model& m, const CalibrationSet& calib, int n_threads);
  ~LayerPipeline();
  LayerPipeline(const LayerPipeline&) = delete;
  LayerPipeline& operator=(const LayerPipeline&) = delete;

  const Model& model() const { return m_; }
  int n_layers() const { return m_.config.n_layers; }
  int64_t n_tokens() const;  // calibration tokens (rows of every linear's input)

  // The linears of layer l in true-sequential order, grouped by the input
  // they share: Llama {q,k,v} {o} {gate,up} {down}; GPT-2 {qkv} {o} {up} {down}.
  std::vector<std::vector<std::string>> sequential_groups(int l) const;
  // Which norm feeds a group (canonical name), "" when its input is another linear's output.
  std::string norm_before(const std::string& linear) const;

  // Runs layer l over every sample from its current inputs with the current
  // weights, reporting each linear's input to `observe`. attention_only: stop
  // after the attention block. out (optional): the residual stream after what
  // ran, [n_tokens, dim].
  void run_layer(int l, const MatmulObserver& observe, bool attention_only, std::vector<float>* out = nullptr);
  // Runs only the feed-forward block of layer l from `in` [n_tokens, dim] (the
  // stream after attention) into `out`.
  void run_ffn(int l, const std::vector<float>& in, const MatmulObserver& observe, std::vector<float>& out);
  // Replaces layer l's inputs by its outputs (current weights): call after quantizing layer l.
  void advance(int l);
  const std::vector<float>& inputs() const { return inputs_; }  // [n_tokens, dim]
  void set_inputs(std::vector<float> x);                         // e.g. fp outputs computed earlier

  // A weight as f32 (a copy), and its replacement (shape unchanged), e.g. the
  // quantized values or scaled norms. Changes are seen by later runs. A weight
  // replaced before is overwritten in place (no new copy).
  std::vector<float> weight_f32(const std::string& name) const;
  void set_weight(const std::string& name, std::vector<float> values);

 private:
  struct Impl;
  Model& m_;
  int seqlen_ = 0, nsamples_ = 0;
  std::vector<float> inputs_;  // [nsamples * seqlen, dim]
  std::map<std::string, float*> replaced_;  // weights already copied into m_.owned
  std::unique_ptr<Impl> impl_;
};

// Resident set high-water mark of this process in bytes (VmHWM), 0 when unknown.
size_t peak_rss_bytes();

}  // namespace lowbit
