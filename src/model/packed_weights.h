// Run-time repacking of quantized weights into interleaved layouts that the
// generation kernels read faster (llama.cpp does the same with its "repack"
// CPU buffers). The model keeps its file-backed view of every tensor; a packed
// copy is attached to the view (TensorView::packed) and matmul uses it instead:
//   q4_0 [n_out, n_in], n_out % 8 == 0  ->  q4_0x8 (kernels/packed_x8.h)
// Packed results are deterministic and the same at any thread count; they are
// not bit-identical to the unpacked path (another float summation order).
// Set LOWBIT_PACK=0 to turn packing off (to compare, or to save the memory).
#pragma once
#include <cstdint>
#include <vector>

#include "formats/format.h"
#include "model/model.h"

namespace lowbit {

struct PackedWeights {
  const void* source = nullptr;  // TensorView::data it was packed from: a view with other data ignores it
  FormatId format{};             // the source's format
  int64_t n_out = 0, n_in = 0;
  std::vector<uint8_t> bytes;    // [n_out / 8 groups][n_in / 32 blocks] BlockQ4_0x8 / BlockQ8_0x8
};

// Whether `w` has a packed layout on this CPU (AVX2, and LOWBIT_PACK is not 0).
bool can_pack(const TensorView& w);
// Packs every weight of `m` that matmul reads and can_pack accepts (the token
// embedding only when it is also the output matrix), attaching it to the view.
// Returns the number of bytes packed.
uint64_t pack_weights_for_cpu(Model& m, int n_threads);

// Y[n_tok, n_out] = X[n_tok, n_in] · W^T from the packed copy: prompt-sized
// products dequantize packed rows for sgemm (model/matmul.h matmul_rows), the
// rest quantize X to q8_0 and run the layout's 8-row kernel per group.
void matmul_packed(const PackedWeights& p, const float* X, int n_tok, float* Y, int n_threads);

}  // namespace lowbit
