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

void quantize_f16(const float* x, void* y, int64_t n, const float*) {
  auto* out = static_cast<uint16_t*>(y);
  for (int64_t i = 0; i < n; ++i) out[i] = f32_to_f16(x[i]);
}
void dequantize_f16(const void* x, float* y, int64_t n) {
  const auto* in = static_cast<const uint16_t*>(x);
  for (int64_t i = 0; i < n; ++i) y[i] = f16_to_f32(in[i]);
}
float dot_f16(int64_t n, const void* x, const void* y) {
  const auto* a = static_cast<const uint16_t*>(x);
  const float* b = static_cast<const float*>(y);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += double(f16_to_f32(a[i])) * b[i];
  return float(s);
}

void quantize_bf16(const float* x, void* y, int64_t n, const float*) {
  auto* out = static_cast<uint16_t*>(y);
  for (int64_t i = 0; i < n; ++i) out[i] = f32_to_bf16(x[i]);
}
void dequantize_bf16(const void* x, float* y, int64_t n) {
  const auto* in = static_cast<const uint16_t*>(x);
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_f32(in[i]);
}
float dot_bf16(int64_t n, const void* x, const void* y) {
  const auto* a = static_cast<const uint16_t*>(x);
  const float* b = static_cast<const float*>(y);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += double(bf16_to_f32(a[i])) * b[i];
  return float(s);
}

const FormatTraits kRows[] = {
    {FormatId::F32, "f32", 1, 4, false, FormatId::F32, quantize_f32, dequantize_f32, dot_f32, dot_f32},
    {FormatId::F16, "f16", 1, 2, false, FormatId::F32, quantize_f16, dequantize_f16, dot_f16, dot_f16},
    {FormatId::BF16, "bf16", 1, 2, false, FormatId::F32, quantize_bf16, dequantize_bf16, dot_bf16, dot_bf16},
};

}  // namespace

std::span<const FormatTraits> float_formats() { return kRows; }

}  // namespace lowbit
