// The forward pass: one implementation per family (Llama, GPT-2) over a
// canonical-named Model, with a KV cache for incremental decoding and
// batched prompt processing through OpenBLAS sgemm.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "model/model.h"

namespace lowbit {

// Called with the input of every linear layer just before its product:
// weight's canonical (GGUF) name, X [n_tok, n_in]. Calibration (imatrix,
// GPTQ Hessians, AWQ scales) collects its statistics through this.
using MatmulObserver = std::function<void(const std::string& weight, const float* X, int n_tok, int64_t n_in)>;

class Runner {
 public:
  // n_ctx: KV-cache length (tokens). n_threads <= 0: all cores.
  Runner(const Model& model, int n_ctx, int n_threads = 0);
  ~Runner();
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  // Runs `tokens` at positions [pos, pos + n) (pos = tokens already in the
  // cache, which it must equal or undercut to rewind). Fills `logits` with
  // [n, n_vocab] rows when all_logits, else [1, n_vocab] for the last token.
  void forward(std::span<const int32_t> tokens, int pos, bool all_logits, std::vector<float>& logits);

  // Observer for every linear layer's input (nullptr/empty: none). The
  // output head (output.weight) is observed too.
  void set_matmul_observer(MatmulObserver observer);

  const Model& model() const { return model_; }
  int n_ctx() const { return n_ctx_; }

 private:
  struct State;
  const Model& model_;
  int n_ctx_;
  State* state_;
};

// Y[n_tok, n_out] = X[n_tok, n_in] * W^T for a weight W [n_out, n_in]: f32 / f16 / bf16 or quantized.
void matmul(const TensorView& W, const float* X, int n_tok, float* Y);

}  // namespace lowbit
