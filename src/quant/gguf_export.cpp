#include "quant/gguf_export.h"

#include <algorithm>
#include <cstring>
#include <cctype>
#include <filesystem>
#include <vector>

#include <fmt/format.h>
#include <omp.h>

#include "core/log.h"
#include "eval/imatrix.h"
#include "formats/k_quants.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "lowbit/error.h"
#include "quant/gguf_tokenizer.h"

namespace lowbit {

namespace fs = std::filesystem;

std::string gguf_arch_name(const ModelConfig& c) {
  if (c.arch == Arch::GPT2) return "gpt2";
  std::string a = c.arch_name;
  std::transform(a.begin(), a.end(), a.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
  return a.find("qwen2") != std::string::npos ? "qwen2" : "llama";
}

namespace {

const GgufFile* gguf_source(const Model& m) {
  for (const auto& s : m.sources)
    if (auto* g = dynamic_cast<const GgufFile*>(s.get())) return g;
  return nullptr;
}

// tokenizer.* keys: see quant/gguf_tokenizer.h.
void write_tokenizer(GgufWriter& w, const Model& m, const ExportOptions& o) { write_gguf_tokenizer(w, m, o.vocab_path); }

void write_hparams(GgufWriter& w, const Model& m, const std::string& arch) {
  const ModelConfig& c = m.config;
  auto k = [&](const char* s) { return arch + "." + s; };
  w.set(k("context_length"), uint32_t(c.max_seq));
  w.set(k("embedding_length"), uint32_t(c.dim));
  w.set(k("block_count"), uint32_t(c.n_layers));
  w.set(k("feed_forward_length"), uint32_t(c.hidden_dim));
  w.set(k("attention.head_count"), uint32_t(c.n_heads));
  w.set(k("attention.head_count_kv"), uint32_t(c.n_kv_heads));
  w.set(k("vocab_size"), uint32_t(c.n_vocab));
  if (c.head_dim * c.n_heads != c.dim) {
    w.set(k("attention.key_length"), uint32_t(c.head_dim));
    w.set(k("attention.value_length"), uint32_t(c.head_dim));
  }
  if (c.arch == Arch::GPT2) {
    w.set(k("attention.layer_norm_epsilon"), float(c.norm_eps));
    return;
  }
  w.set(k("attention.layer_norm_rms_epsilon"), float(c.norm_eps));
  w.set(k("rope.freq_base"), float(c.rope_theta));
  w.set(k("rope.dimension_count"), uint32_t(c.head_dim));
  if (c.rope_scaling.type == "linear") {
    w.set(k("rope.scaling.type"), "linear");
    w.set(k("rope.scaling.factor"), float(c.rope_scaling.factor));
  } else if (!c.rope_scaling.type.empty()) {
    fail(m.path, fmt::format("rope_scaling '{}' cannot be written to GGUF yet", c.rope_scaling.type),
         "models without RoPE scaling or with linear scaling are supported");
  }
}

// Source row for output row r of a q/k weight (or bias) written for GGUF `llama`
// from Hugging Face's NeoX order: interleaved row (head h, pair i, half p) is HF
// row h*hd + p*hd/2 + i.
int64_t unpermute_row(int64_t r, int head_dim) {
  int64_t h = r / head_dim, j = r % head_dim, i = j / 2, p = j % 2;
  return h * head_dim + p * (head_dim / 2) + i;
}

// What llama-quantize records for an imatrix: the file and dataset (strings it
// cuts to 127 bytes), the entry count, and the chunk count when known (int32).
void write_imatrix_keys(GgufWriter& w, const ImatrixData& im, const std::string& path) {
  w.set("quantize.imatrix.file", path.substr(0, 127));
  if (!im.dataset.empty()) w.set("quantize.imatrix.dataset", im.dataset.substr(0, 127));
  w.set("quantize.imatrix.entries_count", int32_t(im.entries.size()));
  if (im.last_call > 0) w.set("quantize.imatrix.chunks_count", int32_t(im.last_call));
}

// The importance [cols] for a quantized tensor: empty (with a warning) when the
// imatrix has no entry; an error when the entry's length is not `cols`.
std::vector<float> tensor_importance(const ImatrixData& im, const TensorPlan& tp, int64_t cols) {
  std::vector<float> v = im.importance(tp.name);
  if (v.empty()) {
    log_warn(fmt::format("imatrix has no entry for {}: quantized to {} without importance", tp.name,
                         format_traits(tp.type).name));
  } else if (int64_t(v.size()) != cols) {
    fail(tp.name, fmt::format("imatrix entry has {} values, the tensor {} columns", v.size(), cols),
         "the imatrix was computed for another model");
  }
  return v;
}

}  // namespace

void export_gguf(const Model& m, const QuantPlan& plan, const std::string& out_path, const ExportOptions& o) {
  const ModelConfig& c = m.config;
  const std::string arch = gguf_arch_name(c);
  const bool unpermute = arch == "llama" && c.rope_style == RopeStyle::NeoX;

  GgufWriter w(out_path);
  if (const GgufFile* g = gguf_source(m)) {
    // Keep what the source says about itself (general.*, extra {arch}.* keys); ours replace below.
    for (const auto& kv : g->kvs())
      if (!kv.key.starts_with("tokenizer.") && kv.key != "general.alignment" && !kv.key.starts_with("lowbit.") &&
          !kv.key.starts_with("quantize.imatrix."))  // a source's imatrix keys do not describe this file
        w.set(kv.key, kv.value);
    if (const TensorView* t = g->find("output.weight"); t && !m.find_weight("output.weight"))
      log(LogLevel::Debug, "output.weight duplicates token_embd.weight; writing the tied embedding once");
  }
  w.set("general.architecture", arch);
  if (!w.find("general.name")) w.set("general.name", fs::path(m.path).filename().string());
  w.set("general.file_type", uint32_t(plan.file_type));
  w.set("general.quantization_version", uint32_t(2));
  write_hparams(w, m, arch);
  write_tokenizer(w, m, o);
  w.set("lowbit.version", LOWBIT_VERSION);
  w.set("lowbit.recipe", plan.recipe);
  w.set("lowbit.seed", uint64_t(o.seed));
  w.set("lowbit.kquant_effort", kquant_effort() == KQuantEffort::Best ? "best" : "fast");
  if (o.imatrix) write_imatrix_keys(w, *o.imatrix, o.imatrix_path);
  for (const auto& [k, v] : o.extra_metadata) w.set(k, v);

  const int threads = o.threads > 0 ? o.threads : omp_get_max_threads();
  for (const TensorPlan& tp : plan.tensors) {
    const TensorView& src = m.weight(tp.name);
    // llama.cpp's gpt2 graph reads output.weight even when tied: write the embedding twice.
    const bool gpt2_tied_head = c.arch == Arch::GPT2 && c.tied_embeddings && tp.name == "token_embd.weight";
    if (tp.copy) {  // already in the target format (GGUF input): the bytes, unchanged
      w.add_tensor(tp.name, GgmlType(uint32_t(tp.type)), tp.shape, src.data, src.nbytes);
      if (gpt2_tied_head) w.add_tensor("output.weight", GgmlType(uint32_t(tp.type)), tp.shape, src.data, src.nbytes);
      continue;
    }
    const FormatTraits& f = format_traits(tp.type);
    const std::vector<uint8_t>* pre = nullptr;
    if (o.prequantized)
      if (auto it = o.prequantized->find(tp.name); it != o.prequantized->end()) pre = &it->second;
    int head_dim = 0;
    if (unpermute && (tp.name.ends_with("attn_q.weight") || tp.name.ends_with("attn_q.bias") ||
                      tp.name.ends_with("attn_k.weight") || tp.name.ends_with("attn_k.bias")))
      head_dim = c.head_dim;
    const bool is_bias = tp.shape.size() == 1;
    const int64_t rows = is_bias ? 1 : src.rows(), cols = src.cols();
    const size_t rb = row_bytes(tp.type, cols);
    // [cols] per-column importance, or empty; shared by every row (q/k row permutation leaves columns alone).
    std::vector<float> importance;
    if (o.imatrix && f.quantized && !is_bias) importance = tensor_importance(*o.imatrix, tp, cols);
    GgufWriter::TensorFill fill = [&, pre, head_dim, rows, cols, rb, is_bias, importance = std::move(importance)](std::span<uint8_t> out) {
      const float* imp = importance.empty() ? nullptr : importance.data();
      LOWBIT_ASSERT(out.size() == rb * size_t(rows));
      if (pre) {  // quantized by a method: copy its rows (permuted for q/k)
        if (pre->size() != out.size())
          fail(tp.name, fmt::format("method output has {} bytes, the plan {}", pre->size(), out.size()));
        for (int64_t r = 0; r < rows; ++r)
          std::memcpy(out.data() + size_t(r) * rb, pre->data() + size_t(head_dim ? unpermute_row(r, head_dim) : r) * rb, rb);
        return;
      }
      if (is_bias) {  // one row; a q/k bias is permuted element-wise
        std::vector<float> x(static_cast<size_t>(cols)), y(static_cast<size_t>(cols));
        to_f32(src, 0, cols, x.data());
        for (int64_t e = 0; e < cols; ++e) y[size_t(e)] = x[size_t(head_dim ? unpermute_row(e, head_dim) : e)];
        f.quantize_row_ref(y.data(), out.data(), cols, nullptr);
        return;
      }
#pragma omp parallel num_threads(threads)
      {
        std::vector<float> x(static_cast<size_t>(cols));
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; ++r) {
          int64_t sr = head_dim ? unpermute_row(r, head_dim) : r;
          to_f32(src, sr * cols, cols, x.data());
          f.quantize_row_ref(x.data(), out.data() + size_t(r) * rb, cols, imp);
        }
      }
    };
    w.add_tensor(tp.name, GgmlType(uint32_t(tp.type)), tp.shape, fill);
    if (gpt2_tied_head) w.add_tensor("output.weight", GgmlType(uint32_t(tp.type)), tp.shape, fill);
  }
  log_info(fmt::format("writing {} ({} tensors, {:.3f} bits per weight)", out_path, plan.tensors.size(),
                       plan.bits_per_weight()));
  w.write();
}

}  // namespace lowbit
