#include "model/config.h"

#include <fmt/format.h>

#include "lowbit/error.h"

namespace lowbit {

std::string layer_tensor_name(int layer, const char* suffix) { return fmt::format("blk.{}.{}", layer, suffix); }

void ModelConfig::validate(const std::string& source) const {
  auto need = [&](bool ok, const char* field, const std::string& what) {
    if (!ok) fail(source, fmt::format("field '{}' {}", field, what), "the model config is inconsistent or corrupt");
  };
  const int kMax = 1 << 24;
  need(n_vocab > 0 && n_vocab < kMax, "vocab_size", fmt::format("= {} is out of range", n_vocab));
  need(dim > 0 && dim < kMax, "hidden_size", fmt::format("= {} is out of range", dim));
  need(n_layers > 0 && n_layers < 100000, "num_hidden_layers", fmt::format("= {} is out of range", n_layers));
  need(n_heads > 0 && n_heads < 100000, "num_attention_heads", fmt::format("= {} is out of range", n_heads));
  need(n_kv_heads > 0 && n_kv_heads <= n_heads && n_heads % n_kv_heads == 0, "num_key_value_heads",
       fmt::format("= {} must divide num_attention_heads = {}", n_kv_heads, n_heads));
  need(head_dim > 0 && head_dim < 65536, "head_dim", fmt::format("= {} is out of range", head_dim));
  need(arch == Arch::GPT2 || head_dim % 2 == 0, "head_dim", "must be even for RoPE");
  need(int64_t(n_heads) * head_dim < kMax, "head_dim", fmt::format("* num_attention_heads = {} * {} is out of range", head_dim, n_heads));
  need(hidden_dim > 0 && hidden_dim < kMax, "intermediate_size", fmt::format("= {} is out of range", hidden_dim));
  need(max_seq > 0 && max_seq <= (1 << 24), "max_position_embeddings", fmt::format("= {} is out of range", max_seq));
  need(norm_eps > 0 && norm_eps < 1, "rms_norm_eps", fmt::format("= {} is out of range", norm_eps));
  need(rope_theta > 0, "rope_theta", "must be positive");
}

}  // namespace lowbit
