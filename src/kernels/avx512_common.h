// Building blocks of the AVX-512 kernels (dot_avx512.cpp), in two builds of the
// same source:
//
//  * native (the library): every function carries LB_AVX512, the target
//    attribute of the AVX-512 level (AVX-512 F/BW/VL + VNNI, with AVX2, FMA,
//    F16C), and is reached only through kernels/dispatch.cpp after
//    cpu_features().has_avx512_level(). AVX-512 DQ is not part of that check,
//    so no DQ instruction is used.
//  * emulated (tests, -DLOWBIT_AVX512_EMULATED): the same intrinsics executed
//    in software by SIMDe (header-only, Debian libsimde-dev 0.7.4), so the
//    kernels run and are compared with the scalar references on CPUs without
//    AVX-512. No target attribute; everything lives in the namespace
//    lowbit::avx512_emulated instead of lowbit::avx512_native, so both copies
//    link into one test binary.
//
// SIMDe 0.7.4 lacks a few 512-bit intrinsics the kernels use; the emulated build
// defines those below from two 256-bit halves, and its fmadd rounds twice, so the
// emulated build rounds once with std::fma (see "SIMDe gaps"). With that, the
// emulated kernels are meant to give the native ones' floats bit for bit (the
// kernels write scalar multiply-adds as std::fma too, so no build contracts them
// differently); test_avx512_emulated checks it on CPUs with AVX-512.
//
// Integer dot products use VNNI, exactly: dpbusd(acc, u, s) adds to int32 lane k
// the four products u[4k + i] * s[4k + i] (u unsigned bytes, s signed bytes);
// dpwssd(acc, a, b) adds the two int16 products a[2k] * b[2k] + a[2k+1] * b[2k+1].
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/kquant_scales.h"

#ifdef LOWBIT_AVX512_EMULATED
#include "core/half.h"
// SIMDe's vector types pass by value without -mavx512f: the compilers' note that this
// ABI differs from a native build's is moot for code that is never mixed with one.
#pragma GCC diagnostic ignored "-Wpsabi"
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#include <simde/x86/f16c.h>
#define LB_AVX512
#define LB_AVX512_NS avx512_emulated
#else
#include <immintrin.h>
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's avx512fintrin.h makes "undefined" vectors by self-initialisation, which
// -Wall reports at every inlined cast (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#define LB_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define LB_AVX512_NS avx512_native
#endif

#ifdef LOWBIT_AVX512_EMULATED
// ---------------------------------------------------------------- SIMDe gaps
// Intrinsics missing from SIMDe 0.7.4 (or with a broken native alias), built
// from the 256-bit intrinsics it does emulate: each is the exact definition
// of the instruction applied to the two halves.
namespace lowbit::avx512_emulated::gaps {
inline __m512i join(__m256i lo, __m256i hi) { return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); }
inline __m512 join(__m256 lo, __m256 hi) {
  return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(lo)), _mm256_castps_pd(hi), 1));
}
inline __m256i lo256(__m512i v) { return _mm512_castsi512_si256(v); }
inline __m256i hi256(__m512i v) { return _mm512_extracti64x4_epi64(v, 1); }
inline __m512 cvtepi32_ps(__m512i v) { return join(_mm256_cvtepi32_ps(lo256(v)), _mm256_cvtepi32_ps(hi256(v))); }
inline __m512 cvtph_ps(__m256i h) {
  return join(_mm256_cvtph_ps(_mm256_castsi256_si128(h)), _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1)));
}
inline __m512i cvtepu16_epi32(__m256i v) {
  return join(_mm256_cvtepu16_epi32(_mm256_castsi256_si128(v)), _mm256_cvtepu16_epi32(_mm256_extracti128_si256(v, 1)));
}
// SIMDe computes fmadd as a * b + c with two roundings; the instruction rounds once.
inline __m512 fmadd512(__m512 a, __m512 b, __m512 c) {
  float fa[16], fb[16], fc[16];
  _mm512_storeu_ps(fa, a), _mm512_storeu_ps(fb, b), _mm512_storeu_ps(fc, c);
  for (int i = 0; i < 16; ++i) fa[i] = std::fma(fa[i], fb[i], fc[i]);
  return _mm512_loadu_ps(fa);
}
inline __m256 fmadd256(__m256 a, __m256 b, __m256 c) {
  float fa[8], fb[8], fc[8];
  _mm256_storeu_ps(fa, a), _mm256_storeu_ps(fb, b), _mm256_storeu_ps(fc, c);
  for (int i = 0; i < 8; ++i) fa[i] = std::fma(fa[i], fb[i], fc[i]);
  return _mm256_loadu_ps(fa);
}
}  // namespace lowbit::avx512_emulated::gaps
#undef _mm512_fmadd_ps
#define _mm512_fmadd_ps(a, b, c) lowbit::avx512_emulated::gaps::fmadd512(a, b, c)
#undef _mm256_fmadd_ps
#define _mm256_fmadd_ps(a, b, c) lowbit::avx512_emulated::gaps::fmadd256(a, b, c)
#define _mm512_cvtepi32_ps(v) lowbit::avx512_emulated::gaps::cvtepi32_ps(v)
#define _mm512_cvtph_ps(v) lowbit::avx512_emulated::gaps::cvtph_ps(v)
#define _mm512_cvtepu16_epi32(v) lowbit::avx512_emulated::gaps::cvtepu16_epi32(v)
#undef _mm512_madd_epi16  // SIMDe 0.7.4 aliases it with the 4 arguments of the masked form
#define _mm512_madd_epi16(a, b) simde_mm512_madd_epi16(a, b)
#define _mm512_shuffle_i64x2(a, b, imm) simde_mm512_shuffle_i64x2(a, b, imm)  // exists, alias missing
#endif

namespace lowbit::LB_AVX512_NS {

#ifdef LOWBIT_AVX512_EMULATED
using mask64 = simde__mmask64;
inline float fp16(uint16_t h) { return f16_to_f32(h); }
#else
using mask64 = __mmask64;
LB_AVX512 inline float fp16(uint16_t h) { return _cvtsh_ss(h); }
#endif

LB_AVX512 inline __m128i load16(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
LB_AVX512 inline __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
LB_AVX512 inline __m512i load64(const void* p) { return _mm512_loadu_si512(p); }

inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// [lo, hi] as one 512-bit register.
LB_AVX512 inline __m512i join(__m256i lo, __m256i hi) { return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); }
// v in the low half, zeros in the high half.
LB_AVX512 inline __m512i zext(__m256i v) { return _mm512_inserti64x4(_mm512_setzero_si512(), v, 0); }

LB_AVX512 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
LB_AVX512 inline float hsum(__m512 v) {
  const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
  return hsum(_mm256_add_ps(_mm512_castps512_ps256(v), hi));
}

// acc += scale * float(sumi), lane by lane.
LB_AVX512 inline __m512 add_scaled(__m512 acc, float scale, __m512i sumi) {
  return _mm512_fmadd_ps(_mm512_set1_ps(scale), _mm512_cvtepi32_ps(sumi), acc);
}

// v >> n in each 16-bit lane, n a run-time count (constant after inlining: the compilers
// then emit the immediate form; SIMDe under clang insists that srli's count is a literal).
LB_AVX512 inline __m512i srl16(__m512i v, int n) { return _mm512_srl_epi16(v, _mm_cvtsi32_si128(n)); }

// Int16 lanes j = 0..31 -> v[first + j / per], per = 2^log2_per lanes per group:
// the scale of each lane's group, picked from up to 32 int16 scales by one permute.
LB_AVX512 inline __m512i spread16(__m512i v, int first, int log2_per) {
  const __m512i iota = _mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13,
                                        12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i idx = _mm512_add_epi16(_mm512_set1_epi16(short(first)), srl16(iota, log2_per));
  return _mm512_permutexvar_epi16(idx, v);
}

// k-quant scale unpacking (scalar, shared with AVX2): kernels/kquant_scales.h.
using kquant_scales::unpack_scales_mins_k4;

// q3_K: the 16 sub-block scales sc - 32 as signed bytes.
LB_AVX512 inline __m128i unpack_scales_q3_K(const uint8_t* s) {
  uint32_t w[4];
  kquant_scales::unpack_scales_q3_K(s, w);
  return _mm_sub_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w)), _mm_set1_epi8(32));
}

}  // namespace lowbit::LB_AVX512_NS
