#include "methods/layer_pipeline.h"

#include <cstring>
#include <fstream>

#include <fmt/format.h>
#include <omp.h>

#include "lowbit/error.h"
#include "model/forward_state.h"
#include "model/matmul.h"

namespace lowbit {

struct LayerPipeline::Impl {
  Impl(const Model& m, int seqlen, int threads) : st(m, seqlen, threads, /*kv_layers=*/1) {
    st.reserve(seqlen);
    if (m.config.arch == Arch::Llama) fwd::rope_tables(st, seqlen, 0);  // every sample sits at positions 0..seqlen-1
    for (const auto& [name, view] : m.weights) st.weight_names.emplace(&view, name);
  }
  ScopedFixedTileMatmul fixed_tiles;  // statistics identical at any thread count
  ForwardState st;
};

LayerPipeline::LayerPipeline(Model& m, const CalibrationSet& calib, int n_threads) : m_(m) {
  m.validate_weights();
  if (calib.samples.empty()) fail(m.path, "no calibration samples", "pass --calib FILE with --nsamples > 0");
  nsamples_ = int(calib.samples.size());
  seqlen_ = int(calib.samples[0].size());
  if (m.config.arch == Arch::GPT2 && seqlen_ > m.config.max_seq)
    fail(m.path, fmt::format("--seqlen {} exceeds GPT-2's {} positions", seqlen_, m.config.max_seq), "use a smaller --seqlen");
  impl_ = std::make_unique<Impl>(m, seqlen_, n_threads > 0 ? n_threads : std::max(1, omp_get_num_procs()));
  const int dim = m.config.dim;
  inputs_.resize(size_t(nsamples_) * size_t(seqlen_) * size_t(dim));
  ForwardState& st = impl_->st;
  for (int s = 0; s < nsamples_; ++s) {
    const auto& toks = calib.samples[size_t(s)];
    for (int32_t t : toks)
      if (t < 0 || t >= m.config.n_vocab)
        fail(m.path, fmt::format("calibration token id {} is outside the vocabulary", t), "the tokenizer does not match this model");
    fwd::embed(st, toks.data(), seqlen_, 0);
    std::memcpy(inputs_.data() + size_t(s) * seqlen_ * dim, st.x.data(), size_t(seqlen_) * dim * sizeof(float));
  }
}

LayerPipeline::~LayerPipeline() = default;

int64_t LayerPipeline::n_tokens() const { return int64_t(nsamples_) * seqlen_; }

std::vector<std::vector<std::string>> LayerPipeline::sequential_groups(int l) const {
  auto n = [l](const char* s) { return layer_tensor_name(l, s); };
  if (m_.config.arch == Arch::GPT2)
    return {{n("attn_qkv.weight")}, {n("attn_output.weight")}, {n("ffn_up.weight")}, {n("ffn_down.weight")}};
  return {{n("attn_q.weight"), n("attn_k.weight"), n("attn_v.weight")},
          {n("attn_output.weight")},
          {n("ffn_gate.weight"), n("ffn_up.weight")},
          {n("ffn_down.weight")}};
}

std::string LayerPipeline::norm_before(const std::string& linear) const {
  const size_t dot = linear.find('.', 4);  // "blk.N."
  const std::string prefix = linear.substr(0, dot + 1), suffix = linear.substr(dot + 1);
  if (suffix == "attn_q.weight" || suffix == "attn_k.weight" || suffix == "attn_v.weight" || suffix == "attn_qkv.weight")
    return prefix + "attn_norm.weight";
  if (suffix == "ffn_gate.weight" || (suffix == "ffn_up.weight")) return prefix + "ffn_norm.weight";
  return "";
}

void LayerPipeline::run_layer(int l, const MatmulObserver& observe, bool attention_only, std::vector<float>* out) {
  ForwardState& st = impl_->st;
  const int dim = m_.config.dim;
  const bool gpt2 = m_.config.arch == Arch::GPT2;
  st.observer = observe;
  if (out) out->resize(inputs_.size());
  const size_t per = size_t(seqlen_) * size_t(dim);
  for (int s = 0; s < nsamples_; ++s) {
    std::memcpy(st.x.data(), inputs_.data() + size_t(s) * per, per * sizeof(float));
    if (gpt2) fwd::gpt2_attention(st, l, seqlen_, 0); else fwd::llama_attention(st, l, seqlen_, 0);
    if (!attention_only) {
      if (gpt2) fwd::gpt2_ffn(st, l, seqlen_); else fwd::llama_ffn(st, l, seqlen_);
    }
    if (out) std::memcpy(out->data() + size_t(s) * per, st.x.data(), per * sizeof(float));
  }
  st.observer = nullptr;
}

void LayerPipeline::run_ffn(int l, const std::vector<float>& in, const MatmulObserver& observe, std::vector<float>& out) {
  ForwardState& st = impl_->st;
  const int dim = m_.config.dim;
  LOWBIT_ASSERT(in.size() == inputs_.size());
  st.observer = observe;
  out.resize(in.size());
  const size_t per = size_t(seqlen_) * size_t(dim);
  for (int s = 0; s < nsamples_; ++s) {
    std::memcpy(st.x.data(), in.data() + size_t(s) * per, per * sizeof(float));
    if (m_.config.arch == Arch::GPT2) fwd::gpt2_ffn(st, l, seqlen_); else fwd::llama_ffn(st, l, seqlen_);
    std::memcpy(out.data() + size_t(s) * per, st.x.data(), per * sizeof(float));
  }
  st.observer = nullptr;
}

void LayerPipeline::advance(int l) {
  std::vector<float> out;
  run_layer(l, nullptr, false, &out);
  inputs_.swap(out);
}

void LayerPipeline::set_inputs(std::vector<float> x) {
  LOWBIT_ASSERT(x.size() == inputs_.size());
  inputs_ = std::move(x);
}

std::vector<float> LayerPipeline::weight_f32(const std::string& name) const {
  const TensorView& t = m_.weight(name);
  std::vector<float> v(size_t(t.numel()));
  to_f32(t, 0, t.numel(), v.data());
  return v;
}

void LayerPipeline::set_weight(const std::string& name, std::vector<float> values) {
  TensorView& t = m_.weights.at(name);
  if (int64_t(values.size()) != t.numel())
    fail(name, fmt::format("replacement has {} values, the tensor {}", values.size(), t.numel()));
  if (auto it = replaced_.find(name); it != replaced_.end()) {
    std::memcpy(it->second, values.data(), values.size() * sizeof(float));
    return;
  }
  std::vector<float>& buf = m_.owned.emplace_back(std::move(values));
  replaced_[name] = buf.data();
  TensorView v = t;
  v.dtype = DType::F32;
  v.data = buf.data();
  v.nbytes = buf.size() * sizeof(float);
  t = v;
  // Small vectors are read through f32 pointers resolved at construction: point them at the new data.
  ForwardState& st = impl_->st;
  if (!name.starts_with("blk.")) return;
  const size_t dot = name.find('.', 4);
  const int l = std::stoi(name.substr(4, dot - 4));
  const std::string suffix = name.substr(dot + 1);
  ForwardState::Layer& y = st.layers[size_t(l)];
  const float* p = buf.data();
  if (suffix == "attn_norm.weight") y.attn_norm_w = p;
  else if (suffix == "attn_norm.bias") y.attn_norm_b = p;
  else if (suffix == "ffn_norm.weight") y.ffn_norm_w = p;
  else if (suffix == "ffn_norm.bias") y.ffn_norm_b = p;
  else if (suffix == "attn_q.bias") y.bq = p;
  else if (suffix == "attn_k.bias") y.bk = p;
  else if (suffix == "attn_v.bias") y.bv = p;
  else if (suffix == "attn_qkv.bias") y.bqkv = p;
  else if (suffix == "attn_output.bias") y.bo = p;
  else if (suffix == "ffn_up.bias") y.b_up = p;
  else if (suffix == "ffn_down.bias") y.b_down = p;
}

size_t peak_rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.starts_with("VmHWM:")) return size_t(std::stoull(line.substr(6))) * 1024;  // "VmHWM:   1234 kB"
  return 0;
}

}  // namespace lowbit
