// Unquantized storage: f32 (32 bpw), f16 (16 bpw, IEEE half), bf16 (16 bpw, bfloat16).
// Their dot products pair with f32 activations, as in ggml's CPU backend.
#include <cstring>

#include "core/half.h"
#include "formats/families.h"

namespace lowbit {
namespace {

void quantize_f32(const float* x, void* y, int64_t n, const float*) { std::memcpy(y, x, size_t(n) * 4); }
void dequantize_f32(const void* x, float* y, int64_t n) { std::memcpy(y, x, size_t(n) * 4); }
float dot_f32(int64_t n, const void* x, const void* y) {
  const float* a = static_cast<const float*>(x);
  const float* b = static_cast<const float*>(y);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += double(a[i]) * b[i];
  return float(s);
}

// f16 and bf16: one 16-bit value per weight; only the conversion differs.
template <uint16_t (*from_f32)(float)>
void quantize_16bit(const float* x, void* y, int64_t n, const float*) {
  auto* out = static_cast<uint16_t*>(y);
  for (int64_t i = 0; i < n; ++i) out[i] = from_f32(x[i]);
}
template <float (*to_f32)(uint16_t)>
void dequantize_16bit(const void* x, float* y, int64_t n) {
  const auto* in = static_cast<const uint16_t*>(x);
  for (int64_t i = 0; i < n; ++i) y[i] = to_f32(in[i]);
}
template <float (*to_f32)(uint16_t)>
float dot_16bit(int64_t n, const void* x, const void* y) {
  const auto* a = static_cast<const uint16_t*>(x);
  const float* b = static_cast<const float*>(y);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += double(to_f32(a[i])) * b[i];
  return float(s);
}

const FormatTraits kRows[] = {
    {FormatId::F32, "f32", 1, 4, false, FormatId::F32, quantize_f32, dequantize_f32, dot_f32, dot_f32},
    {FormatId::F16, "f16", 1, 2, false, FormatId::F32, quantize_16bit<f32_to_f16>, dequantize_16bit<f16_to_f32>,
     dot_16bit<f16_to_f32>, dot_16bit<f16_to_f32>},
    {FormatId::BF16, "bf16", 1, 2, false, FormatId::F32, quantize_16bit<f32_to_bf16>, dequantize_16bit<bf16_to_f32>,
     dot_16bit<bf16_to_f32>, dot_16bit<bf16_to_f32>},
};

}  // namespace

std::span<const FormatTraits> float_formats() { return kRows; }

}  // namespace lowbit
