// Packing at load time and the matmul over packed weights (packed_weights.h).
#include "model/packed_weights.h"

#include <omp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "core/half.h"
#include "kernels/dispatch.h"
#include "kernels/packed_x8.h"
#include "lowbit/error.h"
#include "model/matmul.h"

namespace lowbit {

namespace {

constexpr int64_t kGroupsPerTask = 2;            // 16 rows per OpenMP task, as matmul_quant's tiles
constexpr int64_t kParallelMinBytes = 1 << 16;   // smaller weights run on the calling thread

bool packing_enabled() {
  static const bool on = [] {
    const char* env = std::getenv("LOWBIT_PACK");
    return !(env && std::strcmp(env, "0") == 0) && active_isa() >= IsaLevel::Avx2;
  }();
  return on;
}

// The activation side of one product: X rows as q8_0 plus per-block f32 scales
// and 8 * sum(q), and |q| (packed_x8.h Q8RowSums), in per-thread buffers reused across calls.
struct QuantizedActivations {
  std::vector<BlockQ8_0> blocks;
  std::vector<float> d;
  std::vector<int32_t> sum8;
  std::vector<int8_t> abs_qs;
};

QuantizedActivations& activations(int n_tok, int64_t nb) {
  thread_local QuantizedActivations a;
  const size_t n = size_t(n_tok) * size_t(nb);
  if (a.blocks.size() < n) {
    a.blocks.resize(n);
    a.d.resize(n);
    a.sum8.resize(n);
    a.abs_qs.resize(n * kLegacyBlock);
  }
  return a;
}

// The kernels of a packed format.
struct PackedKernels {
  void (*pack)(const void* src, size_t row_stride, int64_t n_rows, int64_t n_in, void* dst);
  void (*dequantize_row)(const void* group, int lane, float* dst, int64_t n_in);
  void (*gemv)(int64_t n_in, const void* group, const Q8RowSums& y, float* out);
};

const PackedKernels* packed_kernels(FormatId f) {
  static const PackedKernels q4_0{pack_q4_0x8, dequantize_q4_0x8_row_avx2, gemv_q4_0x8_avx2};
  static const PackedKernels q8_0{pack_q8_0x8, dequantize_q8_0x8_row_avx2, gemv_q8_0x8_avx2};
  switch (f) {
    case FormatId::Q4_0: return &q4_0;
    case FormatId::Q8_0: return &q8_0;
    default: return nullptr;
  }
}

// The runtime never reads a packed tensor's source bytes again: ask the kernel
// to reclaim their pages, so a mapped file's pages do not stay resident beside
// the packed copy. A hint only (MADV_PAGEOUT never changes contents: file pages
// come back from the page cache if touched; heap pages are swapped or kept).
void release_pages(const void* p, size_t n) {
  static const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + n) & ~(page - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_PAGEOUT);
}

}  // namespace

bool can_pack(const TensorView& w) {
  return packing_enabled() && w.dtype == DType::QUANT && packed_kernels(w.format) && w.shape.size() == 2 &&
         w.shape[0] % kPackedRows == 0 && w.shape[0] > 0 && w.shape[1] % kLegacyBlock == 0 &&
         w.nbytes >= size_t(w.shape[0]) * row_bytes(w.format, w.shape[1]);
}

uint64_t pack_weights_for_cpu(Model& m, int n_threads) {
  uint64_t packed_bytes = 0;
  for (auto& [name, view] : m.weights) {
    if (!can_pack(view)) continue;
    if (name == "token_embd.weight" && !m.config.tied_embeddings) continue;  // only looked up by row
    auto p = std::make_shared<PackedWeights>();
    p->source = view.data;
    p->format = view.format;
    p->n_out = view.shape[0];
    p->n_in = view.shape[1];
    const size_t row = row_bytes(p->format, p->n_in);
    const PackedKernels& k = *packed_kernels(p->format);
    p->bytes.resize(size_t(p->n_out) * row);
    const int64_t n_groups = p->n_out / kPackedRows, n_in = p->n_in;
    const auto* src = static_cast<const uint8_t*>(view.data);  // OpenMP cannot capture a structured binding
    uint8_t* dst = p->bytes.data();
#pragma omp parallel for num_threads(std::max(1, n_threads)) schedule(static)
    for (int64_t g = 0; g < n_groups; ++g)
      k.pack(src + size_t(g) * kPackedRows * row, row, kPackedRows, n_in, dst + size_t(g) * kPackedRows * row);
    packed_bytes += p->bytes.size();
    release_pages(view.data, p->bytes.size());
    view.packed = p.get();
    m.packed.push_back(std::move(p));
  }
  return packed_bytes;
}

void matmul_packed(const PackedWeights& p, const float* X, int n_tok, float* Y, int nt) {
  const PackedKernels* k = packed_kernels(p.format);
  LOWBIT_ASSERT(k != nullptr);
  const int64_t n_in = p.n_in, n_out = p.n_out, nb = n_in / kLegacyBlock;
  const size_t group_bytes = kPackedRows * row_bytes(p.format, n_in);
  const uint8_t* packed = p.bytes.data();
  if (n_tok >= kQuantSgemmMinTokens) {
    return matmul_rows(
        n_out, n_in,
        [&](int64_t r, float* dst) {
          k->dequantize_row(packed + size_t(r / kPackedRows) * group_bytes, int(r % kPackedRows), dst, n_in);
        },
        X, n_tok, Y, nt);
  }
  // Activations: q8_0 as matmul_quant quantizes them, then each block's f32 scale and 8 * sum.
  const FormatTraits& q8 = format_traits(FormatId::Q8_0);
  QuantizedActivations& a = activations(n_tok, nb);
  for (int t = 0; t < n_tok; ++t) {
    BlockQ8_0* blocks = a.blocks.data() + size_t(t) * nb;
    q8.quantize_row_ref(X + int64_t(t) * n_in, blocks, n_in, nullptr);
    for (int64_t b = 0; b < nb; ++b) {
      int32_t s = 0;
      int8_t* abs_q = a.abs_qs.data() + (size_t(t) * nb + b) * kLegacyBlock;
      for (int i = 0; i < kLegacyBlock; ++i) {
        s += blocks[b].qs[i];
        abs_q[i] = int8_t(blocks[b].qs[i] < 0 ? -blocks[b].qs[i] : blocks[b].qs[i]);
      }
      a.d[size_t(t) * nb + b] = f16_to_f32(blocks[b].d);
      a.sum8[size_t(t) * nb + b] = 8 * s;
    }
  }
  const int64_t n_groups = n_out / kPackedRows;
  const int64_t n_tasks = (n_groups + kGroupsPerTask - 1) / kGroupsPerTask;
  const bool parallel = nt > 1 && n_tasks > 1 && int64_t(group_bytes) * n_groups * n_tok >= kParallelMinBytes;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) if (parallel)
  for (int64_t task = 0; task < n_tasks; ++task) {
    const int64_t g0 = task * kGroupsPerTask, g1 = std::min(n_groups, g0 + kGroupsPerTask);
    for (int t = 0; t < n_tok; ++t) {
      const Q8RowSums y{a.blocks.data() + size_t(t) * nb, a.d.data() + size_t(t) * nb, a.sum8.data() + size_t(t) * nb,
                        a.abs_qs.data() + size_t(t) * nb * kLegacyBlock};
      for (int64_t g = g0; g < g1; ++g)
        k->gemv(n_in, packed + size_t(g) * group_bytes, y, Y + int64_t(t) * n_out + g * kPackedRows);
    }
  }
}

}  // namespace lowbit
