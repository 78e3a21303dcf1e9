// Y[n_tok, n_out] = X[n_tok, n_in] · W[n_out, n_in]^T for block-quantized weights.
//
// Prompt-sized products (n_tok >= kQuantSgemmMinTokens) dequantize row panels to f32
// and run sgemm (matmul_converted in matmul.cpp): the dequantization is paid
// once per weight row for all n_tok tokens, and sgemm's register blocking beats
// one vec_dot per (row, token). Below that (generation, short prompts), as ggml
// does: each activation row of X is first quantized to the format the weight
// format's dot product pairs with (FormatTraits::dot_with: q8_0, q8_1 or q8_K),
// then every output element is one vec_dot of a weight row with an activation
// row, run by the fastest kernel for this CPU (kernels/dispatch.h); formats
// with a 4-row kernel (vec_dot_4rows, bit-identical) do 4 rows per call.
//
//   1. Xq[n_tok] = quantize(X rows)            OpenMP over tokens (when many)
//   2. weight rows in fixed tiles of kRowTile rows, OpenMP threads take tiles
//      (schedule dynamic); inside a tile, token-major: one activation row
//      (~1.1 bytes/value, in L1) against the tile's rows (in L2), so W is read
//      from memory exactly once per call.
//
// Each Y element is one vec_dot whose inputs do not depend on the thread count,
// so results are bit-identical for any n_threads (the sgemm regime: see matmul.cpp).
#include <omp.h>

#include <algorithm>
#include <vector>

#include <fmt/format.h>

#include "formats/format.h"
#include "lowbit/error.h"
#include "model/matmul.h"
#include "model/packed_weights.h"

namespace lowbit {

namespace {

constexpr int64_t kRowTile = 16;                 // weight rows per task
constexpr int64_t kParallelMinBytes = 1 << 16;   // smaller weights run on the calling thread
constexpr int kQuantizeParallelMinTokens = 8;    // activation quantization in parallel from here on

// Per-thread activation buffer, reused across calls (grows once).
uint8_t* activation_buffer(size_t n) {
  thread_local std::vector<uint8_t> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

}  // namespace

void matmul_quant(const TensorView& W, const float* X, int n_tok, float* Y, int nt) {
  if (W.packed && W.packed->source == W.data && W.packed->format == W.format && W.packed->n_out == W.shape[0] &&
      W.packed->n_in == W.shape[1])
    return matmul_packed(*W.packed, X, n_tok, Y, nt);
  const FormatTraits& wf = format_traits(W.format);
  const FormatTraits& af = format_traits(wf.dot_with);
  const int64_t n_out = W.shape[0], n_in = W.shape[1];
  if (n_in % wf.block_size != 0 || n_in % af.block_size != 0)
    fail(W.name,
         fmt::format("a {} row of {} values is not a multiple of the block sizes of {} ({}) and {} ({})", wf.name,
                     n_in, wf.name, wf.block_size, af.name, af.block_size),
         "the file is corrupt, or was written for another block size");
  const size_t w_row = row_bytes(wf.id, n_in), x_row = row_bytes(af.id, n_in);
  LOWBIT_ASSERT(size_t(n_out) * w_row <= W.nbytes);
  const auto* w = static_cast<const uint8_t*>(W.data);
  if (n_tok >= kQuantSgemmMinTokens) return matmul_converted(w, w_row, n_out, n_in, wf.dequantize_row_fast, X, n_tok, Y, nt);

  // 1. Xq [n_tok, x_row bytes]: the activations in the dot product's format.
  uint8_t* xq = activation_buffer(size_t(n_tok) * x_row);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1 && n_tok >= kQuantizeParallelMinTokens)
  for (int t = 0; t < n_tok; ++t) af.quantize_row_ref(X + int64_t(t) * n_in, xq + size_t(t) * x_row, n_in, nullptr);

  // 2. Row tiles.
  const VecDotFn dot = wf.vec_dot;
  const VecDot4RowsFn dot4 = wf.vec_dot_4rows;  // 4 rows per activation load, when the format has one
  const int64_t n_tiles = (n_out + kRowTile - 1) / kRowTile;
  const bool parallel = nt > 1 && n_tiles > 1 && int64_t(w_row) * n_out * n_tok >= kParallelMinBytes;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) if (parallel)
  for (int64_t tile = 0; tile < n_tiles; ++tile) {
    const int64_t r0 = tile * kRowTile, r1 = std::min(n_out, r0 + kRowTile);
    for (int t = 0; t < n_tok; ++t) {
      const uint8_t* xt = xq + size_t(t) * x_row;
      float* yt = Y + int64_t(t) * n_out;
      int64_t r = r0;
      if (dot4)
        for (; r + 4 <= r1; r += 4) dot4(n_in, w + size_t(r) * w_row, w_row, xt, yt + r);
      for (; r < r1; ++r) yt[r] = dot(n_in, w + size_t(r) * w_row, xt);
    }
  }
}

}  // namespace lowbit
