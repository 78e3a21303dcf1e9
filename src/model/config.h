// Hyperparameters of a decoder-only transformer, independent of the file it came from.
#pragma once
#include <cstdint>
#include <string>

namespace lowbit {

enum class Arch { Llama, GPT2 };

// How RoPE pairs the dimensions of one head.
//  Interleaved: pairs (2i, 2i+1) — Meta's original layout, llama2.c, GGUF `llama`.
//  NeoX:        pairs (i, i + d/2) — Hugging Face "rotate_half" (q/k rows permuted), GGUF `qwen2`.
enum class RopeStyle { Interleaved, NeoX };

// rope_scaling of type "llama3" (Llama 3.1+): frequency-dependent scaling of inv_freq.
struct RopeScaling {
  std::string type;  // "" (none), "linear", "llama3"
  float factor = 1.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int original_max_position = 8192;
};

struct ModelConfig {
  Arch arch = Arch::Llama;
  std::string arch_name;      // as the file says it: "LlamaForCausalLM", "llama", "llama2.c", "gpt2", ...
  int n_vocab = 0;
  int dim = 0;                // hidden size
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;         // GQA: n_heads % n_kv_heads == 0
  int head_dim = 0;           // usually dim / n_heads
  int hidden_dim = 0;         // FFN width
  int max_seq = 0;            // context the model was trained for
  float norm_eps = 1e-5f;     // RMSNorm (Llama) or LayerNorm (GPT-2) epsilon
  float rope_theta = 10000.0f;
  RopeStyle rope_style = RopeStyle::Interleaved;
  RopeScaling rope_scaling;
  bool tied_embeddings = false;  // output projection = token_embd
  bool attn_qkv_bias = false;    // Qwen2 q/k/v bias
  int bos_id = 1;
  int eos_id = 2;

  int q_dim() const { return n_heads * head_dim; }
  int kv_dim() const { return n_kv_heads * head_dim; }
  // Throws lowbit::Error naming `source` and the field when values are inconsistent.
  void validate(const std::string& source) const;
};

// Canonical tensor names (GGUF's). Every loader maps its file's names onto these.
//   Llama: token_embd.weight [n_vocab, dim]; blk.N.attn_norm.weight [dim];
//          blk.N.attn_q.weight [q_dim, dim] (+ .bias); blk.N.attn_k/attn_v.weight [kv_dim, dim] (+ .bias);
//          blk.N.attn_output.weight [dim, q_dim]; blk.N.ffn_norm.weight [dim];
//          blk.N.ffn_gate/ffn_up.weight [hidden, dim]; blk.N.ffn_down.weight [dim, hidden];
//          output_norm.weight [dim]; output.weight [n_vocab, dim] (absent when tied).
//   GPT-2: token_embd.weight [n_vocab, dim]; position_embd.weight [max_seq, dim];
//          blk.N.attn_norm.{weight,bias} [dim]; blk.N.attn_qkv.{weight [3*dim, dim], bias [3*dim]};
//          blk.N.attn_output.{weight [dim, dim], bias}; blk.N.ffn_norm.{weight,bias};
//          blk.N.ffn_up.{weight [hidden, dim], bias}; blk.N.ffn_down.{weight [dim, hidden], bias};
//          output_norm.{weight,bias}; output.weight (absent when tied).
std::string layer_tensor_name(int layer, const char* suffix);  // ("attn_q.weight", 3) -> "blk.3.attn_q.weight"

}  // namespace lowbit
