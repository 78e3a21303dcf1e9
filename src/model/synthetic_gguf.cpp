// write_synthetic_gguf (declared in model/synthetic.h): a random-weight Llama
// written straight to an f16 GGUF, for speed benchmarks of lowbit and
// llama.cpp at real layer shapes without a real checkpoint.
//
// Values: linear weights and embeddings ~ N(0, weight_std) (Box-Muller over a
// splitmix64 stream seeded per (seed, tensor, row)), rounded to f16; norms 1.0.
#include <omp.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <numbers>

#include <fmt/format.h>

#include "core/half.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "lowbit/error.h"
#include "model/synthetic.h"

namespace lowbit {
namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Fills f16 row `row` of tensor number `tensor` with N(0, std) values.
void fill_row_f16(uint16_t* out, int64_t n, uint64_t seed, uint64_t tensor, uint64_t row, float std) {
  uint64_t state = seed;
  state = splitmix64(state) ^ (tensor * 0xd1b54a32d192ed03ULL);
  state = splitmix64(state) ^ (row * 0x8cb92ba72f3d8dd7ULL);
  const double two_pi = 2.0 * std::numbers::pi;
  for (int64_t i = 0; i < n; i += 2) {
    // Two uniforms in (0, 1] from the top 53 bits -> two independent normals.
    const double u1 = (double(splitmix64(state) >> 11) + 1.0) * 0x1.0p-53;
    const double u2 = double(splitmix64(state) >> 11) * 0x1.0p-53;
    const double r = std::sqrt(-2.0 * std::log(u1)) * double(std);
    out[i] = f32_to_f16(float(r * std::cos(two_pi * u2)));
    if (i + 1 < n) out[i + 1] = f32_to_f16(float(r * std::sin(two_pi * u2)));
  }
}

}  // namespace

ModelConfig synthetic_llama_config(int n_layers, int dim, int hidden_dim, int n_heads, int n_kv_heads, int n_vocab) {
  ModelConfig c;
  c.arch = Arch::Llama;
  c.arch_name = "llama";
  c.n_vocab = n_vocab;
  c.dim = dim;
  c.n_layers = n_layers;
  c.n_heads = n_heads;
  c.n_kv_heads = n_kv_heads;
  c.head_dim = n_heads > 0 ? dim / n_heads : 0;
  c.hidden_dim = hidden_dim;
  c.max_seq = 4096;
  c.norm_eps = 1e-5f;
  return c;
}

int64_t write_synthetic_gguf(const std::string& path, const SyntheticGgufOptions& o) {
  ModelConfig c = o.config;
  if (c.arch != Arch::Llama) fail(path, "synthetic GGUF files are Llama only", "use synthetic_llama_config()");
  if (c.n_heads <= 0 || c.dim % c.n_heads != 0)
    fail(path, fmt::format("hidden size {} is not a multiple of {} heads", c.dim, c.n_heads),
         "pick --hidden and --heads so that hidden / heads is a whole head size");

  GgufWriter w(path);
  w.set("general.architecture", "llama");
  std::unique_ptr<GgufFile> vocab;
  if (!o.vocab_gguf.empty()) {
    vocab = std::make_unique<GgufFile>(o.vocab_gguf);
    if (!vocab->has("tokenizer.ggml.tokens"))
      fail(o.vocab_gguf, "has no tokenizer.ggml.tokens", "pass a GGUF that carries a vocab (e.g. stories260K)");
    c.n_vocab = int(vocab->get_arr("tokenizer.ggml.tokens").size());
  }
  c.validate(path);
  const int64_t d = c.dim, h = c.hidden_dim, v = c.n_vocab;

  w.set("general.name", fmt::format("synthetic-llama-{}L-{}x{}", c.n_layers, c.dim, c.hidden_dim));
  w.set("general.file_type", uint32_t(1));  // MOSTLY_F16
  w.set("llama.context_length", uint32_t(c.max_seq));
  w.set("llama.embedding_length", uint32_t(c.dim));
  w.set("llama.block_count", uint32_t(c.n_layers));
  w.set("llama.feed_forward_length", uint32_t(c.hidden_dim));
  w.set("llama.attention.head_count", uint32_t(c.n_heads));
  w.set("llama.attention.head_count_kv", uint32_t(c.n_kv_heads));
  w.set("llama.attention.layer_norm_rms_epsilon", float(c.norm_eps));
  w.set("llama.rope.freq_base", float(c.rope_theta));
  w.set("llama.rope.dimension_count", uint32_t(c.head_dim));
  w.set("llama.vocab_size", uint32_t(c.n_vocab));
  if (vocab)
    for (const auto& kv : vocab->kvs())
      if (kv.key.starts_with("tokenizer.")) w.set(kv.key, kv.value);
  w.set("lowbit.synthetic.seed", uint64_t(o.seed));
  w.set("lowbit.synthetic.weight_std", float(o.weight_std));

  const int threads = o.threads > 0 ? o.threads : omp_get_max_threads();
  int64_t n_params = 0;
  uint64_t tensor_no = 0;
  auto random_f16 = [&](const std::string& name, int64_t rows, int64_t cols) {  // [rows, cols]
    const uint64_t tn = tensor_no++;
    const uint64_t seed = o.seed;
    const float sd = o.weight_std;
    n_params += rows * cols;
    w.add_tensor(name, GgmlType::F16, {rows, cols}, [=](std::span<uint8_t> out) {
      LOWBIT_ASSERT(out.size() == size_t(rows * cols) * 2);
      auto* p = reinterpret_cast<uint16_t*>(out.data());
#pragma omp parallel for schedule(static) num_threads(threads)
      for (int64_t r = 0; r < rows; ++r) fill_row_f16(p + r * cols, cols, seed, tn, uint64_t(r), sd);
    });
  };
  auto ones_f32 = [&](const std::string& name, int64_t n) {
    ++tensor_no;
    n_params += n;
    w.add_tensor(name, GgmlType::F32, {n}, [](std::span<uint8_t> out) {
      const float one = 1.0f;
      for (size_t i = 0; i + 4 <= out.size(); i += 4) std::memcpy(out.data() + i, &one, 4);
    });
  };

  random_f16("token_embd.weight", v, d);  // [n_vocab, dim]
  for (int l = 0; l < c.n_layers; ++l) {
    auto n = [l](const char* s) { return layer_tensor_name(l, s); };
    ones_f32(n("attn_norm.weight"), d);
    random_f16(n("attn_q.weight"), c.q_dim(), d);
    random_f16(n("attn_k.weight"), c.kv_dim(), d);
    random_f16(n("attn_v.weight"), c.kv_dim(), d);
    random_f16(n("attn_output.weight"), d, c.q_dim());
    ones_f32(n("ffn_norm.weight"), d);
    random_f16(n("ffn_gate.weight"), h, d);
    random_f16(n("ffn_up.weight"), h, d);
    random_f16(n("ffn_down.weight"), d, h);
  }
  ones_f32("output_norm.weight", d);
  random_f16("output.weight", v, d);  // [n_vocab, dim]
  w.write();
  return n_params;
}

}  // namespace lowbit
