// matmul with an explicit thread count (the forward pass passes its own).
// The public matmul(W, X, n_tok, Y) in model/forward.h uses omp_get_max_threads().
#pragma once
#include "lowbit/tensor.h"

namespace lowbit {

// Y[n_tok, n_out] = X[n_tok, n_in] · W[n_out, n_in]^T; W f32 / f16 / bf16.
// Work is split into fixed tiles that do not depend on n_threads, so results
// are bit-identical for any thread count.
void matmul(const TensorView& W, const float* X, int n_tok, float* Y, int n_threads);

}  // namespace lowbit
