#include "io/llama2c.h"

#include <fmt/format.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>

#include "core/mapped_file.h"
#include "io/tensor_source.h"
#include "lowbit/error.h"

namespace lowbit {

namespace {

constexpr uint64_t kHeaderBytes = 7 * sizeof(int32_t);

// The header, checked for plausibility, and the sizes it implies.
struct Llama2cHeader {
  int64_t dim = 0, hidden = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, vocab = 0, seq_len = 0;
  bool shared_classifier = true;
  int64_t head_dim = 0, q_dim = 0, kv_dim = 0;
  uint64_t expected_bytes = 0;  // header + every array, exactly
};

// Parses the 7 int32 and computes the exact file size they imply. Returns an
// error description (empty on success). Dimensions are bounded first so that
// the size arithmetic below cannot overflow 64 bits.
std::string parse_header(const uint8_t* bytes, Llama2cHeader& h) {
  int32_t v[7];
  std::memcpy(v, bytes, sizeof(v));
  h.dim = v[0];
  h.hidden = v[1];
  h.n_layers = v[2];
  h.n_heads = v[3];
  h.n_kv_heads = v[4];
  h.shared_classifier = v[5] > 0;
  h.vocab = v[5] < 0 ? -int64_t(v[5]) : int64_t(v[5]);
  h.seq_len = v[6];

  auto bad = [](const char* field, int64_t value) {
    return fmt::format("header field '{}' = {} is out of range", field, value);
  };
  const int64_t kMaxDim = 1 << 20;  // generous: real models have dim <= 32768, hidden <= 65536
  if (h.dim <= 0 || h.dim > kMaxDim) return bad("dim", h.dim);
  if (h.hidden <= 0 || h.hidden > kMaxDim) return bad("hidden_dim", h.hidden);
  if (h.n_layers <= 0 || h.n_layers > 4096) return bad("n_layers", h.n_layers);
  if (h.n_heads <= 0 || h.n_heads > h.dim || h.dim % h.n_heads != 0)
    return fmt::format("header field 'n_heads' = {} does not divide dim = {}", h.n_heads, h.dim);
  if (h.n_kv_heads <= 0 || h.n_kv_heads > h.n_heads || h.n_heads % h.n_kv_heads != 0)
    return fmt::format("header field 'n_kv_heads' = {} does not divide n_heads = {}", h.n_kv_heads, h.n_heads);
  if (h.vocab == 0 || h.vocab > (1 << 24)) return bad("vocab_size", v[5]);
  if (h.seq_len <= 0 || h.seq_len > (1 << 24)) return bad("seq_len", h.seq_len);
  h.head_dim = h.dim / h.n_heads;
  if (h.head_dim % 2 != 0) return fmt::format("head dim {} (dim / n_heads) is odd; RoPE needs it even", h.head_dim);
  h.q_dim = h.n_heads * h.head_dim;
  h.kv_dim = h.n_kv_heads * h.head_dim;

  // Every term is < 2^12 * 2^20 * 2^20 = 2^52 floats: no overflow in uint64.
  const uint64_t L = uint64_t(h.n_layers), D = uint64_t(h.dim), H = uint64_t(h.hidden);
  uint64_t floats = uint64_t(h.vocab) * D                     // token_embedding
                    + L * D                                    // rms_att
                    + L * uint64_t(h.q_dim) * D                // wq
                    + 2 * L * uint64_t(h.kv_dim) * D           // wk, wv
                    + L * D * uint64_t(h.q_dim)                // wo
                    + L * D                                    // rms_ffn
                    + 3 * L * H * D                            // w1, w2, w3
                    + D                                        // rms_final
                    + uint64_t(h.seq_len) * uint64_t(h.head_dim);  // freq_cis_real + imag ([seq, hd/2] each)
  if (!h.shared_classifier) floats += uint64_t(h.vocab) * D;  // wcls
  h.expected_bytes = kHeaderBytes + floats * sizeof(float);
  return {};
}

// The mapped checkpoint and the views into it.
class Llama2cSource : public TensorSource {
 public:
  explicit Llama2cSource(const std::string& path) : file_(path) {}
  const std::vector<TensorView>& tensors() const override { return views_; }
  const std::string& path() const override { return file_.path(); }

  const MappedFile& file() const { return file_; }
  void add(std::string name, std::vector<int64_t> shape, uint64_t& offset) {
    TensorView t;
    t.name = std::move(name);
    t.dtype = DType::F32;
    t.shape = std::move(shape);
    t.nbytes = size_t(t.numel()) * sizeof(float);
    LOWBIT_ASSERT(offset + t.nbytes <= file_.size());
    t.data = file_.data() + offset;
    offset += t.nbytes;
    views_.push_back(std::move(t));
  }

 private:
  MappedFile file_;
  std::vector<TensorView> views_;
};

// tok{vocab}.bin, then tokenizer.bin, beside the checkpoint.
std::optional<std::string> find_tokenizer(const std::string& model_path, int64_t vocab) {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(model_path).parent_path();
  for (const std::string& name : {fmt::format("tok{}.bin", vocab), std::string("tokenizer.bin")}) {
    fs::path p = dir / name;
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  return std::nullopt;
}

}  // namespace

bool looks_like_llama2c(const std::string& path) {
  std::error_code ec;
  uint64_t size = std::filesystem::file_size(path, ec);
  if (ec || size < kHeaderBytes) return false;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  uint8_t bytes[kHeaderBytes];
  bool ok = std::fread(bytes, 1, kHeaderBytes, f) == kHeaderBytes;
  std::fclose(f);
  Llama2cHeader h;
  return ok && parse_header(bytes, h).empty() && h.expected_bytes == size;
}

void load_llama2c_model(const std::string& path, Model& m) {
  auto src = std::make_unique<Llama2cSource>(path);
  const MappedFile& file = src->file();
  const char* hint = "is this a llama2.c checkpoint (run.c format, version 0)? a truncated download also causes this";
  if (file.size() < kHeaderBytes)
    fail(path, fmt::format("file is {} bytes, shorter than the 28-byte llama2.c header", file.size()), hint);

  Llama2cHeader h;
  if (std::string err = parse_header(file.data(), h); !err.empty()) fail(path, err, hint);
  if (file.size() != h.expected_bytes)
    fail(path,
         fmt::format("file is {} bytes, but its header (dim {}, hidden {}, {} layers, {} heads, {} kv heads, "
                     "vocab {}{}, seq_len {}) implies exactly {} bytes",
                     file.size(), h.dim, h.hidden, h.n_layers, h.n_heads, h.n_kv_heads, h.vocab,
                     h.shared_classifier ? "" : " unshared", h.seq_len, h.expected_bytes),
         hint);

  // Per-layer arrays are stacked [L, rows, cols]; each layer becomes one view.
  uint64_t off = kHeaderBytes;
  const int L = int(h.n_layers);
  auto per_layer = [&](const char* suffix, std::vector<int64_t> shape) {
    for (int l = 0; l < L; ++l) src->add(layer_tensor_name(l, suffix), shape, off);
  };
  src->add("token_embd.weight", {h.vocab, h.dim}, off);
  per_layer("attn_norm.weight", {h.dim});
  per_layer("attn_q.weight", {h.q_dim, h.dim});
  per_layer("attn_k.weight", {h.kv_dim, h.dim});
  per_layer("attn_v.weight", {h.kv_dim, h.dim});
  per_layer("attn_output.weight", {h.dim, h.q_dim});
  per_layer("ffn_norm.weight", {h.dim});
  per_layer("ffn_gate.weight", {h.hidden, h.dim});  // w1
  per_layer("ffn_down.weight", {h.dim, h.hidden});  // w2
  per_layer("ffn_up.weight", {h.hidden, h.dim});    // w3
  src->add("output_norm.weight", {h.dim}, off);
  off += uint64_t(h.seq_len) * uint64_t(h.head_dim) * sizeof(float);  // freq_cis_real + freq_cis_imag
  if (!h.shared_classifier) src->add("output.weight", {h.vocab, h.dim}, off);
  LOWBIT_ASSERT(off == file.size());

  m.path = path;
  m.format = "llama2.c";
  ModelConfig& c = m.config;
  c = ModelConfig{};
  c.arch = Arch::Llama;
  c.arch_name = "llama2.c";
  c.n_vocab = int(h.vocab);
  c.dim = int(h.dim);
  c.n_layers = L;
  c.n_heads = int(h.n_heads);
  c.n_kv_heads = int(h.n_kv_heads);
  c.head_dim = int(h.head_dim);
  c.hidden_dim = int(h.hidden);
  c.max_seq = int(h.seq_len);
  c.norm_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  c.rope_style = RopeStyle::Interleaved;
  c.tied_embeddings = h.shared_classifier;
  c.bos_id = 1;
  c.eos_id = 2;

  m.weights.clear();
  for (const TensorView& t : src->tensors()) m.weights[t.name] = t;
  m.metadata["llama2c.header"] =
      fmt::format("dim={} hidden_dim={} n_layers={} n_heads={} n_kv_heads={} vocab_size={} seq_len={}", h.dim,
                  h.hidden, h.n_layers, h.n_heads, h.n_kv_heads, h.shared_classifier ? h.vocab : -h.vocab,
                  h.seq_len);
  m.sources.push_back(std::move(src));

  c.validate(path);
  m.validate_weights();

  if (auto tok_path = find_tokenizer(path, h.vocab)) {
    m.tokenizer = open_tokenizer(*tok_path, int(h.vocab));
    m.metadata["tokenizer.path"] = *tok_path;
  }
}

}  // namespace lowbit
