// Runtime choice of the fastest dot-product kernel for each format.
//
// The ISA level is picked once: the best this CPU supports (core/cpu_features.h),
// or the level forced by the environment variable LOWBIT_ISA=ref|avx2|avx512
// (tests and benchmarks use it; a level the CPU lacks falls back to the best one
// it has, never to an illegal instruction).
#pragma once
#include "formats/format.h"

namespace lowbit {

enum class IsaLevel { Ref = 0, Avx2 = 1, Avx512 = 2 };

const char* isa_name(IsaLevel level);
// Highest level this CPU supports.
IsaLevel best_isa_supported();
// Level in use: LOWBIT_ISA (clamped to what the CPU supports) or best_isa_supported().
IsaLevel active_isa();

// Fastest kernel for `id` at `level` (clamped to the CPU), or nullptr when the
// level has none for this format (the caller keeps the reference kernel).
VecDotFn vec_dot_for_isa(FormatId id, IsaLevel level);
// vec_dot_for_isa(id, active_isa()).
VecDotFn best_vec_dot(FormatId id);

// 4-row dot kernel for `id` at the active level, or nullptr.
VecDot4RowsFn best_vec_dot_4rows(FormatId id);
// Fastest dequantize_row for `id` at the active level, or nullptr (keep the reference).
DequantizeRowFn best_dequantize_row(FormatId id);

// Per-ISA kernel tables (dot_avx2.cpp, dot_avx512.cpp); nullptr = none.
VecDotFn avx2_vec_dot(FormatId id);
VecDot4RowsFn avx2_vec_dot_4rows(FormatId id);  // dot_avx2.cpp
// AVX2 k-quant kernels q2_K..q6_K (dot_avx2_kquants.cpp); avx2_vec_dot has the
// legacy and float formats (dot_avx2.cpp).
VecDotFn avx2_kquant_vec_dot(FormatId id);
DequantizeRowFn avx2_dequantize_row(FormatId id);  // dequant_avx2.cpp
// AVX-512 (F, BW, VL + VNNI) kernels of the legacy, k-quant and float formats (dot_avx512.cpp).
VecDotFn avx512_vec_dot(FormatId id);
VecDot4RowsFn avx512_vec_dot_4rows(FormatId id);  // bit-identical to avx512_vec_dot row by row
// The same kernels executed in software by SIMDe: defined only in test binaries that
// compile dot_avx512.cpp a second time with LOWBIT_AVX512_EMULATED (CMakeLists.txt).
VecDotFn avx512_emulated_vec_dot(FormatId id);
VecDot4RowsFn avx512_emulated_vec_dot_4rows(FormatId id);

}  // namespace lowbit
