#include "io/gguf_model.h"

#include <climits>
#include <cstring>

#include <fmt/format.h>

#include "core/log.h"
#include "io/gguf.h"
#include "io/tokenizer_bpe.h"
#include "io/tokenizer_spm.h"
#include "lowbit/error.h"

namespace lowbit {

namespace {

constexpr const char* kSupportedArchs = "llama, qwen2, gpt2";

// A non-negative hyperparameter that fits an int (any integer type in the file).
int read_count(const GgufFile& f, const std::string& key) {
  int64_t v = f.get_int(key);
  if (v < 0 || v > INT_MAX)
    fail(f.path(), fmt::format("metadata key '{}' = {} is out of range", key, v), "the file is corrupt");
  return int(v);
}
int read_count(const GgufFile& f, const std::string& key, int def) { return f.has(key) ? read_count(f, key) : def; }

// A token id; absent -> def, u32 0xFFFFFFFF / negative (llama.cpp's "none") -> -1.
int32_t read_token_id(const GgufFile& f, const std::string& key, int32_t def, int n_vocab) {
  if (!f.has(key)) return def;
  int64_t v = f.get_int(key);
  if (v < 0 || v == int64_t(UINT32_MAX)) return -1;
  if (v >= n_vocab)
    fail(f.path(), fmt::format("metadata key '{}' = {} is not a token id (vocab has {})", key, v, n_vocab),
         "the file is corrupt");
  return int32_t(v);
}

ModelConfig read_config(const GgufFile& f, const std::string& arch) {
  ModelConfig c;
  c.arch_name = arch;
  c.arch = arch == "gpt2" ? Arch::GPT2 : Arch::Llama;
  auto key = [&](const char* k) { return arch + "." + k; };

  if (int n = read_count(f, key("expert_count"), 0); n > 0)
    fail(f.path(), fmt::format("metadata key '{}' = {}: mixture-of-experts models are not supported", key("expert_count"), n));

  c.max_seq = read_count(f, key("context_length"));
  c.dim = read_count(f, key("embedding_length"));
  c.n_layers = read_count(f, key("block_count"));
  c.hidden_dim = read_count(f, key("feed_forward_length"));
  c.n_heads = read_count(f, key("attention.head_count"));
  c.n_kv_heads = read_count(f, key("attention.head_count_kv"), c.n_heads);
  c.head_dim = read_count(f, key("attention.key_length"), c.n_heads > 0 ? c.dim / c.n_heads : 0);
  if (int v = read_count(f, key("attention.value_length"), c.head_dim); v != c.head_dim)
    fail(f.path(), fmt::format("metadata key '{}' = {} differs from the key length {}", key("attention.value_length"), v, c.head_dim),
         "models with different key and value head sizes are not supported");

  // Vocab size: the embedded token list, else {arch}.vocab_size.
  if (f.has("tokenizer.ggml.tokens")) c.n_vocab = int(f.get_arr("tokenizer.ggml.tokens").size());
  else c.n_vocab = read_count(f, key("vocab_size"));

  if (c.arch == Arch::GPT2) {
    c.norm_eps = float(f.get_float(key("attention.layer_norm_epsilon")));
  } else {
    c.norm_eps = float(f.get_float(key("attention.layer_norm_rms_epsilon")));
    c.rope_theta = float(f.get_float(key("rope.freq_base"), 10000.0));
    c.rope_style = arch == "qwen2" ? RopeStyle::NeoX : RopeStyle::Interleaved;
    if (int rd = read_count(f, key("rope.dimension_count"), c.head_dim); rd != c.head_dim)
      fail(f.path(), fmt::format("metadata key '{}' = {} differs from the head size {}", key("rope.dimension_count"), rd, c.head_dim),
           "partial rotary embeddings are not supported");
    // RoPE scaling: linear is supported; YaRN and Llama-3.1-style rope_freqs are not yet.
    std::string scaling = f.get_str(key("rope.scaling.type"), "none");
    if (scaling == "linear") {
      c.rope_scaling.type = "linear";
      c.rope_scaling.factor = float(f.get_float(key("rope.scaling.factor")));
    } else if (scaling != "none") {
      fail(f.path(), fmt::format("metadata key '{}' = \"{}\" is not supported", key("rope.scaling.type"), scaling),
           "supported RoPE scaling: none, linear");
    } else if (f.has(key("rope.scale_linear"))) {  // older files
      c.rope_scaling.type = "linear";
      c.rope_scaling.factor = float(f.get_float(key("rope.scale_linear")));
    }
    if (f.find_info("rope_freqs.weight"))
      fail(f.path(), "tensor 'rope_freqs.weight' (Llama-3.1-style RoPE frequency scaling) is not supported yet",
           "load the Hugging Face checkpoint instead; its rope_scaling is supported");
  }
  return c;
}

// The tokenizer embedded in tokenizer.ggml.*; null (with a warning) when its kind is not supported.
std::unique_ptr<Tokenizer> read_tokenizer(const GgufFile& f, const ModelConfig& c) {
  if (!f.has("tokenizer.ggml.model")) {
    log_warn(f.path() + ": no embedded tokenizer (tokenizer.ggml.model is absent)");
    return nullptr;
  }
  const std::string& kind = f.get_str("tokenizer.ggml.model");
  const std::vector<std::string>& tokens = f.get_arr_str("tokenizer.ggml.tokens");
  const int n = int(tokens.size());
  std::vector<int32_t> types;
  if (f.has("tokenizer.ggml.token_type")) types = f.get_arr_i32("tokenizer.ggml.token_type");
  if (!types.empty() && types.size() != tokens.size())
    fail(f.path(), fmt::format("metadata key 'tokenizer.ggml.token_type' has {} entries for {} tokens", types.size(), n),
         "the file is corrupt");

  if (kind == "llama") {
    SpmVocab v;
    v.pieces = tokens;
    v.scores = f.get_arr_f32("tokenizer.ggml.scores");
    if (v.scores.size() != tokens.size())
      fail(f.path(), fmt::format("metadata key 'tokenizer.ggml.scores' has {} entries for {} tokens", v.scores.size(), n),
           "the file is corrupt");
    v.types = std::move(types);
    v.bos_id = read_token_id(f, "tokenizer.ggml.bos_token_id", v.bos_id, n);
    v.eos_id = read_token_id(f, "tokenizer.ggml.eos_token_id", v.eos_id, n);
    v.unk_id = read_token_id(f, "tokenizer.ggml.unknown_token_id", v.unk_id, n);
    v.add_space_prefix = f.get_bool("tokenizer.ggml.add_space_prefix", true);
    return make_spm_tokenizer(std::move(v));
  }
  if (kind == "gpt2") {
    std::string pre_name = f.get_str("tokenizer.ggml.pre", "default");
    // llama.cpp's "default" pre-tokenizer is a regex set of its own, not GPT-2's: refuse it rather than
    // tokenize differently from llama.cpp.
    auto pre = pretokenizer_from_gguf_name(pre_name);
    if (!pre) {
      log_warn(fmt::format("{}: pre-tokenizer 'tokenizer.ggml.pre' = \"{}\" is not supported (supported: "
                           "gpt-2, llama-bpe, qwen2, smollm); no tokenizer loaded, pass --tokenizer",
                           f.path(), pre_name));
      return nullptr;
    }
    BpeVocab v;
    v.tokens = tokens;
    v.merges = f.get_arr_str("tokenizer.ggml.merges");
    v.types = std::move(types);
    v.pre = *pre;
    v.digits = gguf_digit_split(pre_name);
    // As llama.cpp's vocab loader: the Llama 3 names keep a pre-token found whole in the vocab
    // whole (ignore_merges) and add BOS unless the file says otherwise.
    v.ignore_merges = gguf_ignores_merges(pre_name);
    v.bos_id = read_token_id(f, "tokenizer.ggml.bos_token_id", -1, n);
    v.eos_id = read_token_id(f, "tokenizer.ggml.eos_token_id", -1, n);
    v.add_bos = f.get_bool("tokenizer.ggml.add_bos_token", v.ignore_merges);
    return make_bpe_tokenizer(std::move(v));
  }
  log_warn(fmt::format("{}: embedded tokenizer type 'tokenizer.ggml.model' = \"{}\" is not supported (supported: "
                       "llama, gpt2); no tokenizer loaded, pass --tokenizer",
                       f.path(), kind));
  return nullptr;
}

// llama.cpp's llama2.c converter writes the shared embedding twice; an
// output.weight byte-identical to token_embd.weight is the tied matrix.
bool output_duplicates_embedding(const GgufFile& f) {
  const GgufTensorInfo* out = f.find_info("output.weight");
  const GgufTensorInfo* emb = f.find_info("token_embd.weight");
  return out && emb && out->ggml_type == emb->ggml_type && out->ne == emb->ne &&
         std::memcmp(f.raw_data(*out), f.raw_data(*emb), size_t(out->nbytes)) == 0;
}

}  // namespace

void load_gguf_model(const std::string& path, Model& m) {
  auto file = std::make_unique<GgufFile>(path);
  const GgufFile& f = *file;
  if (m.path.empty()) m.path = path;
  m.format = "gguf";

  const std::string& arch = f.get_str("general.architecture");
  if (arch != "llama" && arch != "qwen2" && arch != "gpt2")
    fail(path, fmt::format("architecture '{}' (general.architecture) is not supported", arch),
         fmt::format("supported GGUF architectures: {}", kSupportedArchs));
  m.config = read_config(f, arch);
  ModelConfig& c = m.config;

  // Weights: GGUF names are the canonical names. Quantized tensors are refused by view().
  bool dup_output = output_duplicates_embedding(f);
  if (dup_output) log(LogLevel::Debug, path + ": output.weight equals token_embd.weight; treating embeddings as tied");
  m.weights.clear();
  for (const auto& ti : f.infos()) {
    if (dup_output && ti.name == "output.weight") continue;
    m.weights.emplace(ti.name, f.view(ti.name));
  }
  c.tied_embeddings = !m.find_weight("output.weight");
  // Qwen2 always has q/k/v biases; some llama-architecture models carry them too.
  c.attn_qkv_bias = c.arch == Arch::Llama && (arch == "qwen2" || m.find_weight("blk.0.attn_q.bias"));

  c.bos_id = read_token_id(f, "tokenizer.ggml.bos_token_id", c.bos_id, c.n_vocab);
  c.eos_id = read_token_id(f, "tokenizer.ggml.eos_token_id", c.eos_id, c.n_vocab);

  m.metadata.clear();
  for (const auto& kv : f.kvs()) m.metadata[kv.key] = kv.value.to_string();

  c.validate(path);
  m.sources.push_back(std::move(file));
  m.validate_weights();
  m.tokenizer = read_tokenizer(f, c);
}

}  // namespace lowbit
