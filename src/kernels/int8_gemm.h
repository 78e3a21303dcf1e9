// Integer GEMM / GEMV for activations quantized at run time (W8A8, W4A8,
// LLM.int8()): int8 activations times int8 or packed int4 weights with exact
// int32 accumulation, then one float rescale per output.
//
//   W8A8: C[t, o] = sum_i A[t, i] * B[o, i]                (int32, exact)
//         Y[t, o] = (float(C[t, o]) * s_w[o]) * s_x[t]
//   W4A8: per group g of G values along i:
//         C_g[t, o] = sum_{i in g} A[t, i] * (N[o, i] - 8)  (int32, exact; N = stored nibble)
//         Y[t, o] = (sum_g float(C_g[t, o]) * s_w[o, g]) * s_x[t]   (g ascending)
//
// Value ranges the fast kernels rely on (callers guarantee them: the
// quantizers clamp, the loaders validate):
//   A (activations) and int8 B in [-127, 127] — never -128. AVX2 computes
//   a·b as maddubs(|a|, sign(b, a)): |a| <= 127 and |b| <= 127 give int16 pair
//   sums <= 2 * 127 * 127 = 32258 < 32767, so maddubs never saturates, and
//   sign(-128) is never needed.
//   Nibbles N in [0, 15]: maddubs(N, a) pairs are <= 2 * 15 * 127 = 3810.
//   The -8 offset is folded out exactly: sum N * a - 8 * sum a, with the
//   per-group activation sums computed once per token (quantize_activations).
//   VNNI (vpdpbusd, u8 x s8 -> int32, no saturation) multiplies (a + 128) by b
//   for int8 weights and subtracts 128 * rowsum(B[o]) (precomputed per weight
//   row), and multiplies N by a directly for int4.
//
// Packed int4 row layout (lowbit's own, see methods/w8a8.h): byte j of a row
// holds value 2j in its low nibble and value 2j+1 in its high nibble.
//
// All float work (activation quantization, rescaling) is in int8_gemm.cpp,
// compiled without FMA, so every ISA gives bit-identical float results; the
// ISA kernels only return integer sums. OpenMP runs over fixed tiles of output
// rows: identical results at any thread count.
#pragma once
#include <cstddef>
#include <cstdint>

namespace lowbit {

// Integer kernel families, best last. Chosen from cpu_features() and
// LOWBIT_ISA (ref | avx2 | avx512; kernels/dispatch.h): avx2 gives AVX-VNNI when
// the CPU has it, avx512 gives AVX-512 VNNI.
enum class Int8Isa { Ref = 0, Avx2 = 1, AvxVnni = 2, Avx512Vnni = 3 };

const char* int8_isa_name(Int8Isa isa);
// Whether this CPU (and OS) can run `isa`.
bool int8_isa_supported(Int8Isa isa);
// The family matmuls use: the best the CPU has at the active level (kernels/dispatch.h active_isa()).
Int8Isa active_int8_isa();

// One ISA's integer kernels. a: one activation row [k]; b: weight rows.
struct Int8Kernels {
  // out[r] = sum_i a[i] * b[r * ldb + i] for r = 0..3. bsum[r] = sum_i b[r * ldb + i]
  // (used only by VNNI for its +128 correction; may be nullptr for the others).
  void (*dot_i8_4rows)(const int8_t* a, const int8_t* b, int64_t ldb, int64_t k, const int32_t* bsum, int32_t* out);
  // out = sum_i a[i] * b[i]; bsum as above for one row.
  void (*dot_i8_1row)(const int8_t* a, const int8_t* b, int64_t k, int32_t bsum, int32_t* out);
  // out[g] = sum_{i in group g} a[i] * N[i] (raw nibbles 0..15, no -8) for g = 0..k/gs-1.
  // b: one packed row [k / 2]; k and gs even, k % gs == 0.
  void (*dot_u4_i8_groups)(const uint8_t* b, const int8_t* a, int64_t k, int64_t gs, int32_t* out);
  // The same for 4 activation rows a + t * lda (t = 0..3) against one weight row whose
  // nibbles were unpacked to bytes n [k] (values 0..15, in value order):
  // out[t * (k / gs) + g] = sum_{i in g} a[t * lda + i] * n[i]. The GEMM path, where one
  // unpacked row serves every token.
  void (*dot_n8_i8_groups_4tok)(const uint8_t* n, const int8_t* a, int64_t lda, int64_t k, int64_t gs, int32_t* out);
  // dot_u4_i8_groups for gs % 64 == 0 with the activations in split order (split_even_odd_64):
  // 32 packed bytes then pair with their low nibbles against 32 even-index activations and their
  // high nibbles against 32 odd-index ones, no nibble interleaving needed. The GEMV path.
  void (*dot_u4_i8s_groups)(const uint8_t* b, const int8_t* as, int64_t k, int64_t gs, int32_t* out);
};

// Activations in split order for dot_u4_i8s_groups: for every chunk c of 64 values,
// as[64c + j] = a[64c + 2j] and as[64c + 32 + j] = a[64c + 2j + 1] (j < 32). k % 64 == 0.
void split_even_odd_64(const int8_t* a, int64_t k, int8_t* as);

// Kernels of `isa` (must be supported; Ref always is).
const Int8Kernels& int8_kernels(Int8Isa isa);
// ISA tables defined in int8_gemm_avx2.cpp (nullptr-free; only called when supported).
const Int8Kernels& int8_kernels_avx2();
const Int8Kernels& int8_kernels_avx_vnni();
const Int8Kernels& int8_kernels_avx512_vnni();

// --- activation quantization (per token, symmetric absmax / 127) ---
// Q[t, i] = clamp(round(X[t, i] * 127 / amax_t), -127, 127), s_x[t] = amax_t / 127
// where amax_t = max_i |X[t, i]| over the columns with skip[i] == 0 (skip may be
// nullptr); skipped columns get Q = 0. A row of zeros gets s_x = 0, Q = 0.
// Throws lowbit::Error naming `where` when X holds NaN or Inf.
// X: [n_tok, k], Q: [n_tok, k], sx: [n_tok].
void quantize_activations_i8(const float* X, int n_tok, int64_t k, const uint8_t* skip, int8_t* Q, float* sx,
                             const char* where);
// Per-group sums of quantized activations: asum[t, g] = sum_{i in g} Q[t, i]. asum: [n_tok, k / gs].
void activation_group_sums(const int8_t* Q, int n_tok, int64_t k, int64_t gs, int32_t* asum);
// rsum[o] = sum_i B[o, i] (the VNNI correction of a weight matrix B [n_out, k]).
void int8_row_sums(const int8_t* B, int64_t n_out, int64_t k, int32_t* rsum);

// --- products ---
// C[n_tok, n_out] (int32) = A[n_tok, k] · B[n_out, k]^T. rsum: [n_out] from int8_row_sums
// (required by the VNNI families; the others ignore it and accept nullptr).
// n_threads <= 0: omp_get_max_threads().
void gemm_i8_i32(const int8_t* A, const int8_t* B, const int32_t* rsum, int n_tok, int64_t n_out, int64_t k, int32_t* C,
                 int n_threads, Int8Isa isa);
// The n_tok = 1 path: c[n_out] = B · a.
void gemv_i8_i32(const int8_t* a, const int8_t* B, const int32_t* rsum, int64_t n_out, int64_t k, int32_t* c,
                 int n_threads, Int8Isa isa);
// W8A8 end to end on quantized activations: Y[t, o] = (float(C[t, o]) * sw[o]) * sx[t].
// A: [n_tok, k], sx: [n_tok], B: [n_out, k], sw: [n_out], rsum: [n_out], Y: [n_tok, n_out].
void gemm_w8a8(const int8_t* A, const float* sx, const int8_t* B, const float* sw, const int32_t* rsum, int n_tok,
               int64_t n_out, int64_t k, float* Y, int n_threads, Int8Isa isa);
// W4A8: B packed [n_out, k / 2], sw [n_out, k / gs], asum [n_tok, k / gs]; formula at the top.
void gemm_w4a8(const int8_t* A, const float* sx, const int32_t* asum, const uint8_t* B, const float* sw, int n_tok,
               int64_t n_out, int64_t k, int64_t gs, float* Y, int n_threads, Int8Isa isa);

}  // namespace lowbit
