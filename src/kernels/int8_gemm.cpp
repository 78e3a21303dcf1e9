// Integer GEMM: scalar reference kernels, the ISA choice, activation
// quantization and the threaded products (formulas in int8_gemm.h).
//
// This file is compiled for x86-64-v2 (no FMA), and every float operation of
// the int8 paths happens here, so the float results depend only on the
// integer sums, which every ISA computes exactly: fast == reference, bit for bit.
#include "kernels/int8_gemm.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "core/cpu_features.h"
#include "kernels/dispatch.h"
#include "lowbit/error.h"

namespace lowbit {

namespace {

// ---------------------------------------------------------------- reference kernels
void ref_dot_i8_4rows(const int8_t* a, const int8_t* b, int64_t ldb, int64_t k, const int32_t*, int32_t* out) {
  for (int r = 0; r < 4; ++r) {
    const int8_t* br = b + r * ldb;
    int32_t s = 0;
    for (int64_t i = 0; i < k; ++i) s += int32_t(a[i]) * int32_t(br[i]);
    out[r] = s;
  }
}

void ref_dot_i8_1row(const int8_t* a, const int8_t* b, int64_t k, int32_t, int32_t* out) {
  int32_t s = 0;
  for (int64_t i = 0; i < k; ++i) s += int32_t(a[i]) * int32_t(b[i]);
  *out = s;
}

void ref_dot_u4_i8_groups(const uint8_t* b, const int8_t* a, int64_t k, int64_t gs, int32_t* out) {
  for (int64_t g = 0; g < k / gs; ++g) {
    int32_t s = 0;
    for (int64_t i = g * gs; i < (g + 1) * gs; i += 2) {
      const uint8_t byte = b[i / 2];
      s += int32_t(byte & 0x0F) * a[i] + int32_t(byte >> 4) * a[i + 1];
    }
    out[g] = s;
  }
}

void ref_dot_n8_i8_groups_4tok(const uint8_t* n, const int8_t* a, int64_t lda, int64_t k, int64_t gs, int32_t* out) {
  const int64_t ng = k / gs;
  for (int t = 0; t < 4; ++t)
    for (int64_t g = 0; g < ng; ++g) {
      int32_t s = 0;
      for (int64_t i = g * gs; i < (g + 1) * gs; ++i) s += int32_t(n[i]) * a[t * lda + i];
      out[t * ng + g] = s;
    }
}

void ref_dot_u4_i8s_groups(const uint8_t* b, const int8_t* as, int64_t k, int64_t gs, int32_t* out) {
  for (int64_t g = 0; g < k / gs; ++g) {
    int32_t s = 0;
    for (int64_t c = g * gs; c < (g + 1) * gs; c += 64)
      for (int64_t j = 0; j < 32; ++j) {
        const uint8_t byte = b[c / 2 + j];
        s += int32_t(byte & 0x0F) * as[c + j] + int32_t(byte >> 4) * as[c + 32 + j];
      }
    out[g] = s;
  }
}

const Int8Kernels kRefKernels{ref_dot_i8_4rows, ref_dot_i8_1row, ref_dot_u4_i8_groups, ref_dot_n8_i8_groups_4tok,
                              ref_dot_u4_i8s_groups};

int threads_or_max(int n) { return n > 0 ? n : omp_get_max_threads(); }

// Output rows per OpenMP work item: a multiple of 4 (the 4-row kernel), fixed,
// so each C element is computed by the same code whatever the thread count.
constexpr int64_t kRowTile = 16;
// Longest dot product whose every partial sum fits int32 on every ISA (VNNI's
// offset sums reach 255 * 127 * k): 65536 * 32385 < 2^31.
constexpr int64_t kMaxK = 65536;

}  // namespace

const char* int8_isa_name(Int8Isa isa) {
  switch (isa) {
    case Int8Isa::Ref: return "ref";
    case Int8Isa::Avx2: return "avx2";
    case Int8Isa::AvxVnni: return "avx-vnni";
    case Int8Isa::Avx512Vnni: return "avx512-vnni";
  }
  return "?";
}

bool int8_isa_supported(Int8Isa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case Int8Isa::Ref: return true;
    case Int8Isa::Avx2: return f.has_avx2_level();
    case Int8Isa::AvxVnni: return f.has_avx2_level() && f.avx_vnni;
    case Int8Isa::Avx512Vnni: return f.has_avx512_level();  // includes avx512bw/vl/vnni
  }
  return false;
}

Int8Isa active_int8_isa() {
  static const Int8Isa isa = [] {
    switch (active_isa()) {
      case IsaLevel::Ref: return Int8Isa::Ref;
      case IsaLevel::Avx2: return int8_isa_supported(Int8Isa::AvxVnni) ? Int8Isa::AvxVnni : Int8Isa::Avx2;
      case IsaLevel::Avx512: return Int8Isa::Avx512Vnni;
    }
    return Int8Isa::Ref;
  }();
  return isa;
}

const Int8Kernels& int8_kernels(Int8Isa isa) {
  LOWBIT_ASSERT(int8_isa_supported(isa));
  switch (isa) {
    case Int8Isa::Ref: return kRefKernels;
    case Int8Isa::Avx2: return int8_kernels_avx2();
    case Int8Isa::AvxVnni: return int8_kernels_avx_vnni();
    case Int8Isa::Avx512Vnni: return int8_kernels_avx512_vnni();
  }
  return kRefKernels;
}

// ---------------------------------------------------------------- activations
void quantize_activations_i8(const float* X, int n_tok, int64_t k, const uint8_t* skip, int8_t* Q, float* sx,
                             const char* where) {
  for (int t = 0; t < n_tok; ++t) {
    const float* x = X + int64_t(t) * k;
    int8_t* q = Q + int64_t(t) * k;
    float amax = 0.0f;
    bool finite = true;
    for (int64_t i = 0; i < k; ++i) {
      finite &= std::isfinite(x[i]);
      if (skip == nullptr || skip[i] == 0) amax = std::max(amax, std::fabs(x[i]));
    }
    if (!finite)
      fail(where, fmt::format("input activations of token {} hold NaN or Inf", t),
           "the layer's input overflowed upstream; check the model's weights and the previous layer");
    sx[t] = amax / 127.0f;
    if (amax == 0.0f) {
      std::fill(q, q + k, int8_t(0));
      continue;
    }
    // In double: 127 / amax overflows float for amax below ~4e-37 (denormal rows).
    const double inv = 127.0 / double(amax);
    for (int64_t i = 0; i < k; ++i) {
      if (skip != nullptr && skip[i] != 0) {
        q[i] = 0;
        continue;
      }
      const double r = std::nearbyint(double(x[i]) * inv);  // round half to even, as torch.round
      q[i] = int8_t(std::clamp(r, -127.0, 127.0));
    }
  }
}

void activation_group_sums(const int8_t* Q, int n_tok, int64_t k, int64_t gs, int32_t* asum) {
  const int64_t ng = k / gs;
  for (int t = 0; t < n_tok; ++t)
    for (int64_t g = 0; g < ng; ++g) {
      int32_t s = 0;
      for (int64_t i = g * gs; i < (g + 1) * gs; ++i) s += Q[int64_t(t) * k + i];
      asum[int64_t(t) * ng + g] = s;
    }
}

void split_even_odd_64(const int8_t* a, int64_t k, int8_t* as) {
  LOWBIT_ASSERT(k % 64 == 0);
  for (int64_t c = 0; c < k; c += 64)
    for (int64_t j = 0; j < 32; ++j) {
      as[c + j] = a[c + 2 * j];
      as[c + 32 + j] = a[c + 2 * j + 1];
    }
}

void int8_row_sums(const int8_t* B, int64_t n_out, int64_t k, int32_t* rsum) {
  for (int64_t o = 0; o < n_out; ++o) {
    int32_t s = 0;
    for (int64_t i = 0; i < k; ++i) s += B[o * k + i];
    rsum[o] = s;
  }
}

// ---------------------------------------------------------------- products
void gemm_i8_i32(const int8_t* A, const int8_t* B, const int32_t* rsum, int n_tok, int64_t n_out, int64_t k, int32_t* C,
                 int n_threads, Int8Isa isa) {
  const Int8Kernels& kern = int8_kernels(isa);
  const bool vnni = isa == Int8Isa::AvxVnni || isa == Int8Isa::Avx512Vnni;
  LOWBIT_ASSERT(!vnni || rsum != nullptr);
  // VNNI sums (a + 128) * b: |.| <= 255 * 127 * k must fit int32.
  LOWBIT_ASSERT(k <= kMaxK);
  const int64_t n_tiles = (n_out + kRowTile - 1) / kRowTile;
  const int nt = threads_or_max(n_threads);
  // Enough work per thread to pay for waking the pool.
  const bool par = nt > 1 && n_tiles > 1 && int64_t(n_tok) * n_out * k >= (int64_t(1) << 18);
#pragma omp parallel for num_threads(nt) schedule(static) if (par)
  for (int64_t tile = 0; tile < n_tiles; ++tile) {
    const int64_t o_end = std::min(n_out, (tile + 1) * kRowTile);
    int64_t o = tile * kRowTile;
    for (; o + 4 <= o_end; o += 4) {
      const int8_t* b = B + o * k;
      const int32_t* bs = vnni ? rsum + o : nullptr;
      for (int t = 0; t < n_tok; ++t) {
        int32_t out[4];
        kern.dot_i8_4rows(A + int64_t(t) * k, b, k, k, bs, out);
        for (int r = 0; r < 4; ++r) C[int64_t(t) * n_out + o + r] = out[r];
      }
    }
    for (; o < o_end; ++o)
      for (int t = 0; t < n_tok; ++t)
        kern.dot_i8_1row(A + int64_t(t) * k, B + o * k, k, vnni ? rsum[o] : 0, &C[int64_t(t) * n_out + o]);
  }
}

void gemv_i8_i32(const int8_t* a, const int8_t* B, const int32_t* rsum, int64_t n_out, int64_t k, int32_t* c,
                 int n_threads, Int8Isa isa) {
  gemm_i8_i32(a, B, rsum, 1, n_out, k, c, n_threads, isa);
}

void gemm_w8a8(const int8_t* A, const float* sx, const int8_t* B, const float* sw, const int32_t* rsum, int n_tok,
               int64_t n_out, int64_t k, float* Y, int n_threads, Int8Isa isa) {
  // Exact int32 products first (threaded), then one float rescale per element.
  std::vector<int32_t> C(size_t(n_tok) * size_t(n_out));
  gemm_i8_i32(A, B, rsum, n_tok, n_out, k, C.data(), n_threads, isa);
  for (int t = 0; t < n_tok; ++t)
    for (int64_t o = 0; o < n_out; ++o) {
      const size_t j = size_t(t) * size_t(n_out) + size_t(o);
      Y[j] = (float(C[j]) * sw[o]) * sx[t];
    }
}

void gemm_w4a8(const int8_t* A, const float* sx, const int32_t* asum, const uint8_t* B, const float* sw, int n_tok,
               int64_t n_out, int64_t k, int64_t gs, float* Y, int n_threads, Int8Isa isa) {
  const Int8Kernels& kern = int8_kernels(isa);
  LOWBIT_ASSERT(k <= kMaxK && gs > 0 && gs % 2 == 0 && k % gs == 0);
  const int64_t ng = k / gs;
  const int64_t n_tiles = (n_out + kRowTile - 1) / kRowTile;
  const int nt = threads_or_max(n_threads);
  const bool par = nt > 1 && n_tiles > 1 && int64_t(n_tok) * n_out * k >= (int64_t(1) << 18);
  // Token counts from this on unpack each weight row's nibbles once and run 4 tokens per call;
  // below, with gs % 64 == 0, the activations are put in split order once per call instead.
  constexpr int kUnpackMinTokens = 4;
  const bool split = n_tok < kUnpackMinTokens && gs % 64 == 0;
  std::vector<int8_t> As(split ? size_t(n_tok) * size_t(k) : 0);  // [n_tok, k] split order
  for (int t = 0; split && t < n_tok; ++t) split_even_odd_64(A + int64_t(t) * k, k, As.data() + int64_t(t) * k);
#pragma omp parallel num_threads(nt) if (par)
  {
    std::vector<int32_t> part(size_t(4 * ng));                                         // [4, n_groups]
    std::vector<uint8_t> nib(n_tok >= kUnpackMinTokens ? static_cast<size_t>(k) : 0);  // [k] one row's nibbles
    // Y[t, o] from the int32 group sums p [n_groups] of token t, row o: always this order.
    auto finish = [&](const int32_t* p, int t, int64_t o) {
      const int32_t* as = asum + int64_t(t) * ng;
      const float* s = sw + o * ng;
      float acc = 0.0f;
      for (int64_t g = 0; g < ng; ++g) acc += float(p[g] - 8 * as[g]) * s[g];
      Y[int64_t(t) * n_out + o] = acc * sx[t];
    };
#pragma omp for schedule(static)
    for (int64_t tile = 0; tile < n_tiles; ++tile) {
      const int64_t o_end = std::min(n_out, (tile + 1) * kRowTile);
      for (int64_t o = tile * kRowTile; o < o_end; ++o) {
        const uint8_t* b = B + o * (k / 2);
        int t = 0;
        if (n_tok >= kUnpackMinTokens) {
          for (int64_t j = 0; j < k / 2; ++j) {
            nib[size_t(2 * j)] = b[j] & 0x0F;
            nib[size_t(2 * j + 1)] = b[j] >> 4;
          }
          for (; t + 4 <= n_tok; t += 4) {
            kern.dot_n8_i8_groups_4tok(nib.data(), A + int64_t(t) * k, k, k, gs, part.data());
            for (int r = 0; r < 4; ++r) finish(part.data() + r * ng, t + r, o);
          }
        }
        for (; t < n_tok; ++t) {
          if (split)
            kern.dot_u4_i8s_groups(b, As.data() + int64_t(t) * k, k, gs, part.data());
          else
            kern.dot_u4_i8_groups(b, A + int64_t(t) * k, k, gs, part.data());
          finish(part.data(), t, o);
        }
      }
    }
  }
}

}  // namespace lowbit
