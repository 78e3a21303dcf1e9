// Loader for the legacy llama2.c checkpoint format (Karpathy's run.c "version 0").
//
// Layout (little-endian):
//   header: 7 x int32  dim, hidden_dim, n_layers, n_heads, n_kv_heads,
//                      vocab_size (negative = unshared classifier), seq_len
//   then f32 arrays, in this order (q_dim = n_heads*head_dim, kv_dim = n_kv_heads*head_dim,
//   head_dim = dim / n_heads):
//     token_embedding [vocab, dim]
//     rms_att         [L, dim]
//     wq              [L, q_dim, dim]
//     wk              [L, kv_dim, dim]
//     wv              [L, kv_dim, dim]
//     wo              [L, dim, q_dim]
//     rms_ffn         [L, dim]
//     w1              [L, hidden, dim]   -> ffn_gate
//     w2              [L, dim, hidden]   -> ffn_down
//     w3              [L, hidden, dim]   -> ffn_up
//     rms_final       [dim]
//     freq_cis_real   [seq_len, head_dim/2]  (skipped: RoPE is recomputed)
//     freq_cis_imag   [seq_len, head_dim/2]  (skipped)
//     wcls            [vocab, dim]           (only when vocab_size < 0)
#pragma once
#include <string>

#include "model/model.h"

namespace lowbit {

// Memory-maps `path` and fills `m` with canonical-named views into the mapping
// (RoPE interleaved, theta 10000, RMSNorm eps 1e-5, BOS 1, EOS 2). The
// tokenizer is looked up beside the checkpoint: tok{vocab}.bin, then
// tokenizer.bin; when neither exists m.tokenizer stays null.
// Throws lowbit::Error naming the file when the header is implausible or the
// file size does not match what the header implies.
void load_llama2c_model(const std::string& path, Model& m);

// True when the file starts with a plausible llama2.c header and its size
// matches it exactly (used to recognise a .bin checkpoint). Never throws.
bool looks_like_llama2c(const std::string& path);

}  // namespace lowbit
