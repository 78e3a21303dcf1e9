#include "kernels/dispatch.h"

#include <cstdlib>
#include <cstring>

#include "core/cpu_features.h"

namespace lowbit {

const char* isa_name(IsaLevel level) {
  switch (level) {
    case IsaLevel::Ref: return "ref";
    case IsaLevel::Avx2: return "avx2";
    case IsaLevel::Avx512: return "avx512";
  }
  return "?";
}

IsaLevel best_isa_supported() {
  const CpuFeatures& f = cpu_features();
  if (f.has_avx512_level()) return IsaLevel::Avx512;
  if (f.has_avx2_level()) return IsaLevel::Avx2;
  return IsaLevel::Ref;
}

namespace {
IsaLevel clamp(IsaLevel want) { return want < best_isa_supported() ? want : best_isa_supported(); }
}  // namespace

IsaLevel active_isa() {
  static const IsaLevel level = [] {
    const char* env = std::getenv("LOWBIT_ISA");
    if (env == nullptr || *env == 0) return best_isa_supported();
    if (std::strcmp(env, "ref") == 0) return IsaLevel::Ref;
    if (std::strcmp(env, "avx2") == 0) return clamp(IsaLevel::Avx2);
    if (std::strcmp(env, "avx512") == 0) return clamp(IsaLevel::Avx512);
    return best_isa_supported();  // unknown value: ignore it
  }();
  return level;
}

VecDotFn vec_dot_for_isa(FormatId id, IsaLevel level) {
  level = clamp(level);
  if (level >= IsaLevel::Avx512) {
    if (VecDotFn k = avx512_vec_dot(id)) return k;
  }
  // Formats without an AVX-512 kernel use the AVX2 ones at the AVX-512 level (a superset ISA).
  if (level >= IsaLevel::Avx2) {
    if (VecDotFn k = avx2_kquant_vec_dot(id)) return k;
    return avx2_vec_dot(id);
  }
  return nullptr;
}

VecDotFn best_vec_dot(FormatId id) { return vec_dot_for_isa(id, active_isa()); }

VecDot4RowsFn best_vec_dot_4rows(FormatId id) {
  // A 4-row kernel must give vec_dot's floats bit for bit: where the AVX-512 vec_dot is
  // in use, only its own 4-row kernel (or none), never the AVX2 one.
  if (active_isa() >= IsaLevel::Avx512 && avx512_vec_dot(id)) return avx512_vec_dot_4rows(id);
  return active_isa() >= IsaLevel::Avx2 ? avx2_vec_dot_4rows(id) : nullptr;
}

DequantizeRowFn best_dequantize_row(FormatId id) {
  return active_isa() >= IsaLevel::Avx2 ? avx2_dequantize_row(id) : nullptr;
}

}  // namespace lowbit
