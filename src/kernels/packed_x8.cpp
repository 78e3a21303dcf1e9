// q4_0x8 layout (packed_q4_0x8.h): packing, and the scalar reference kernels
// that define what the AVX2 ones (packed_x8_avx2.cpp) must compute.
#include "kernels/packed_x8.h"

#include <cmath>
#include <cstring>

#include "core/half.h"

namespace lowbit {

namespace {

// Chunk k of packed block b takes 4 bytes of each row's quants (packed_x8.h).
template <class Block, class Packed>
void pack_x8(const void* src, size_t row_stride, int64_t n_rows, int64_t n_in, void* dst) {
  constexpr int kChunks = sizeof(Block::qs) / 4;
  const int64_t nb = n_in / kLegacyBlock;
  auto* out = static_cast<Packed*>(dst);
  for (int64_t g = 0; g < n_rows / kPackedRows; ++g)
    for (int64_t b = 0; b < nb; ++b, ++out)
      for (int r = 0; r < kPackedRows; ++r) {
        const auto* row = reinterpret_cast<const Block*>(static_cast<const uint8_t*>(src) +
                                                         size_t(g * kPackedRows + r) * row_stride);
        out->d[r] = row[b].d;
        for (int k = 0; k < kChunks; ++k) std::memcpy(out->qs + 32 * k + 4 * r, row[b].qs + 4 * k, 4);
      }
}

}  // namespace

void pack_q4_0x8(const void* src, size_t row_stride, int64_t n_rows, int64_t n_in, void* dst) {
  pack_x8<BlockQ4_0, BlockQ4_0x8>(src, row_stride, n_rows, n_in, dst);
}

void pack_q8_0x8(const void* src, size_t row_stride, int64_t n_rows, int64_t n_in, void* dst) {
  pack_x8<BlockQ8_0, BlockQ8_0x8>(src, row_stride, n_rows, n_in, dst);
}

void dequantize_q4_0x8_row_ref(const void* group, int lane, float* dst, int64_t n_in) {
  const auto* x = static_cast<const BlockQ4_0x8*>(group);
  for (int64_t b = 0; b < n_in / kLegacyBlock; ++b, dst += kLegacyBlock) {
    const float d = f16_to_f32(x[b].d[lane]);
    for (int k = 0; k < 4; ++k)
      for (int i = 0; i < 4; ++i) {
        const uint8_t byte = x[b].qs[32 * k + 4 * lane + i];
        dst[4 * k + i] = float(int(byte & 0x0F) - 8) * d;
        dst[16 + 4 * k + i] = float(int(byte >> 4) - 8) * d;
      }
  }
}

void gemv_q4_0x8_ref(int64_t n_in, const void* group, const Q8RowSums& y, float* out) {
  const auto* x = static_cast<const BlockQ4_0x8*>(group);
  float acc[kPackedRows] = {};
  for (int64_t b = 0; b < n_in / kLegacyBlock; ++b) {
    const int8_t* qy = y.blocks[b].qs;
    for (int r = 0; r < kPackedRows; ++r) {
      int32_t sum = 0;  // sum of q * y with q in 0..15; the offset 8 comes off below
      for (int k = 0; k < 4; ++k)
        for (int i = 0; i < 4; ++i) {
          const uint8_t byte = x[b].qs[32 * k + 4 * r + i];
          sum += int32_t(byte & 0x0F) * qy[4 * k + i] + int32_t(byte >> 4) * qy[16 + 4 * k + i];
        }
      acc[r] = std::fma(float(sum - y.sum8[b]), f16_to_f32(x[b].d[r]) * y.d[b], acc[r]);
    }
  }
  for (int r = 0; r < kPackedRows; ++r) out[r] = acc[r];
}

void dequantize_q8_0x8_row_ref(const void* group, int lane, float* dst, int64_t n_in) {
  const auto* x = static_cast<const BlockQ8_0x8*>(group);
  for (int64_t b = 0; b < n_in / kLegacyBlock; ++b, dst += kLegacyBlock) {
    const float d = f16_to_f32(x[b].d[lane]);
    for (int k = 0; k < 8; ++k)
      for (int i = 0; i < 4; ++i) dst[4 * k + i] = float(x[b].qs[32 * k + 4 * lane + i]) * d;
  }
}

void gemv_q8_0x8_ref(int64_t n_in, const void* group, const Q8RowSums& y, float* out) {
  const auto* x = static_cast<const BlockQ8_0x8*>(group);
  float acc[kPackedRows] = {};
  for (int64_t b = 0; b < n_in / kLegacyBlock; ++b) {
    const int8_t* qy = y.blocks[b].qs;
    for (int r = 0; r < kPackedRows; ++r) {
      int32_t sum = 0;
      for (int k = 0; k < 8; ++k)
        for (int i = 0; i < 4; ++i) sum += int32_t(x[b].qs[32 * k + 4 * r + i]) * qy[4 * k + i];
      acc[r] = std::fma(float(sum), f16_to_f32(x[b].d[r]) * y.d[b], acc[r]);
    }
  }
  for (int r = 0; r < kPackedRows; ++r) out[r] = acc[r];
}

}  // namespace lowbit
