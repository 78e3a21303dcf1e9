#include "io/hf_quant_layouts.h"

#include <cstring>

#include <fmt/format.h>

#include "core/half.h"
#include "lowbit/error.h"

namespace lowbit {

std::string HfQuantScheme::describe() const {
  std::string s = fmt::format("{} {}", method == HfQuantMethod::Gptq ? "gptq" : "awq", spec.name());
  if (desc_act) s += " desc_act";
  if (gptq_v2) s += " (gptq_v2)";
  return s;
}

// ---------------------------------------------------------------- GPTQ bit packing

bool gptq_packable(int64_t n, int bits) {
  if (bits == 3) return n % 32 == 0;
  if (bits != 2 && bits != 4 && bits != 8) return false;
  return n % (32 / bits) == 0;
}

void gptq_pack_sequence(const int32_t* v, int64_t n, int64_t v_stride, int bits, int32_t* w, int64_t w_stride) {
  LOWBIT_ASSERT(gptq_packable(n, bits));
  auto val = [&](int64_t k) { return uint32_t(v[k * v_stride]); };
  if (bits != 3) {
    const int64_t per_word = 32 / bits;
    for (int64_t r = 0; r < n / per_word; ++r) {
      uint32_t word = 0;
      for (int64_t j = 0; j < per_word; ++j) word |= val(r * per_word + j) << (j * bits);
      w[r * w_stride] = int32_t(word);
    }
    return;
  }
  // 3 bits: 32 values -> 3 words; values 10 and 21 straddle word boundaries.
  for (int64_t c = 0; c < n / 32; ++c) {
    const int64_t b = c * 32;
    uint32_t w0 = 0, w1 = 0, w2 = 0;
    for (int j = 0; j < 10; ++j) w0 |= val(b + j) << (3 * j);
    w0 |= val(b + 10) << 30;          // bits 0-1 of v10 (bit 2 shifts out)
    w1 |= (val(b + 10) >> 2) & 1u;    // bit 2 of v10
    for (int j = 0; j < 10; ++j) w1 |= val(b + 11 + j) << (3 * j + 1);
    w1 |= val(b + 21) << 31;          // bit 0 of v21
    w2 |= (val(b + 21) >> 1) & 3u;    // bits 1-2 of v21
    for (int j = 0; j < 10; ++j) w2 |= val(b + 22 + j) << (3 * j + 2);
    w[(3 * c + 0) * w_stride] = int32_t(w0);
    w[(3 * c + 1) * w_stride] = int32_t(w1);
    w[(3 * c + 2) * w_stride] = int32_t(w2);
  }
}

void gptq_unpack_sequence(const int32_t* w, int64_t n, int64_t w_stride, int bits, int32_t* v, int64_t v_stride) {
  LOWBIT_ASSERT(gptq_packable(n, bits));
  auto word = [&](int64_t r) { return uint32_t(w[r * w_stride]); };
  const uint32_t mask = (1u << bits) - 1;
  if (bits != 3) {
    const int64_t per_word = 32 / bits;
    for (int64_t k = 0; k < n; ++k) v[k * v_stride] = int32_t((word(k / per_word) >> ((k % per_word) * bits)) & mask);
    return;
  }
  for (int64_t c = 0; c < n / 32; ++c) {
    const uint32_t w0 = word(3 * c), w1 = word(3 * c + 1), w2 = word(3 * c + 2);
    int32_t* out = v + c * 32 * v_stride;
    auto put = [&](int j, uint32_t x) { out[j * v_stride] = int32_t(x & 7u); };
    for (int j = 0; j < 10; ++j) put(j, w0 >> (3 * j));
    put(10, (w0 >> 30) | ((w1 & 1u) << 2));
    for (int j = 0; j < 10; ++j) put(11 + j, w1 >> (3 * j + 1));
    put(21, (w1 >> 31) | ((w2 & 3u) << 1));
    for (int j = 0; j < 10; ++j) put(22 + j, w2 >> (3 * j + 2));
  }
}

// ---------------------------------------------------------------- shared checks

namespace {

void check_scales_f16(const IntGroupQuant& q, const std::string& what) {
  for (size_t k = 0; k < q.scales.size(); ++k)
    if (f16_to_f32(f32_to_f16(q.scales[k])) != q.scales[k])
      fail(what, fmt::format("scale {} (group {}, row {}) is not an f16 value", q.scales[k], int64_t(k) / q.n_out,
                             int64_t(k) % q.n_out),
           "Hugging Face layouts store scales in f16: round scales to f16 when choosing them (int_group_params does)");
}

void check_sizes(const IntGroupQuant& q, const std::string& what) {
  const int64_t ng = q.n_groups();
  if (q.q.size() != size_t(q.n_out * q.n_in) || q.scales.size() != size_t(ng * q.n_out) ||
      q.zeros.size() != size_t(ng * q.n_out) || q.g_idx.size() != size_t(q.n_in))
    fail(what, "quantized linear has inconsistent sizes", "internal error: IntGroupQuant was not filled completely");
  for (uint8_t c : q.q) LOWBIT_ASSERT(int(c) <= q.spec.maxq());
}

void check_g_idx(const std::vector<int32_t>& g_idx, int64_t n_groups, const std::string& what) {
  for (size_t i = 0; i < g_idx.size(); ++i)
    if (g_idx[i] < 0 || g_idx[i] >= n_groups)
      fail(what, fmt::format("g_idx[{}] = {} is outside [0, {})", i, g_idx[i], n_groups),
           "the checkpoint is corrupt or its group_size does not match");
}

// Expected n_groups for n_in columns, after spec.validate.
int64_t groups_for(const IntGroupSpec& spec, int64_t n_in) { return n_in / spec.group_columns(n_in); }

}  // namespace

// ---------------------------------------------------------------- GPTQ

GptqTensors pack_gptq(const IntGroupQuant& q, bool v2, const std::string& what) {
  const int bits = q.spec.bits;
  q.spec.validate(q.n_in, what);
  check_sizes(q, what);
  if (!gptq_packable(q.n_in, bits) || !gptq_packable(q.n_out, bits))
    fail(what,
         fmt::format("shape [{}, {}] cannot be stored in the GPTQ layout at {} bits", q.n_out, q.n_in, bits),
         fmt::format("GPTQ packs both n_in and n_out into 32-bit words: they must be multiples of {}; quantize this "
                     "linear another way or leave it unquantized",
                     bits == 3 ? 32 : 32 / bits));
  check_scales_f16(q, what);
  const int64_t ng = q.n_groups();
  const int32_t lo = v2 ? 0 : 1, hi = v2 ? q.spec.maxq() : q.spec.maxq() + 1;
  for (size_t k = 0; k < q.zeros.size(); ++k)
    if (q.zeros[k] < lo || q.zeros[k] > hi)
      fail(what, fmt::format("zero point {} (group {}, row {}) cannot be stored in checkpoint format {}", q.zeros[k],
                             int64_t(k) / q.n_out, int64_t(k) % q.n_out, v2 ? "gptq_v2" : "gptq"),
           fmt::format("the v1 format stores zero - 1 in {} bits, so zeros must lie in [1, {}]", bits, hi));
  check_g_idx(q.g_idx, ng, what);

  GptqTensors t;
  t.bits = bits;
  t.n_in = q.n_in;
  t.n_out = q.n_out;
  t.n_groups = ng;
  t.qweight.assign(size_t(q.n_in * bits / 32 * q.n_out), 0);
  std::vector<int32_t> col(size_t(q.n_in));
  for (int64_t o = 0; o < q.n_out; ++o) {
    for (int64_t i = 0; i < q.n_in; ++i) col[size_t(i)] = q.q[size_t(o * q.n_in + i)];
    gptq_pack_sequence(col.data(), q.n_in, 1, bits, t.qweight.data() + o, q.n_out);
  }
  const int64_t zw = q.n_out * bits / 32;
  t.qzeros.assign(size_t(ng * zw), 0);
  std::vector<int32_t> z(size_t(q.n_out));
  for (int64_t g = 0; g < ng; ++g) {
    for (int64_t o = 0; o < q.n_out; ++o) {
      // v1 of zero 2^bits stores maxq (= 2^bits - 1): fits. Mask keeps every value in its field.
      z[size_t(o)] = (q.zeros[size_t(g * q.n_out + o)] - (v2 ? 0 : 1)) & q.spec.maxq();
    }
    gptq_pack_sequence(z.data(), q.n_out, 1, bits, t.qzeros.data() + g * zw, 1);
  }
  t.scales = q.scales;
  t.g_idx = q.g_idx;
  return t;
}

IntGroupQuant unpack_gptq(const GptqTensors& t, const IntGroupSpec& spec, bool v2, const std::string& what) {
  if (t.bits != spec.bits) fail(what, fmt::format("packed at {} bits, config says {}", t.bits, spec.bits));
  spec.validate(t.n_in, what);
  if (!gptq_packable(t.n_in, spec.bits) || !gptq_packable(t.n_out, spec.bits))
    fail(what, fmt::format("shape [{}, {}] is not packable at {} bits", t.n_out, t.n_in, spec.bits),
         "the checkpoint is corrupt");
  const int64_t ng = groups_for(spec, t.n_in), zw = t.n_out * spec.bits / 32;
  if (t.n_groups != ng || t.qweight.size() != size_t(t.n_in * spec.bits / 32 * t.n_out) ||
      t.qzeros.size() != size_t(ng * zw) || t.scales.size() != size_t(ng * t.n_out) || t.g_idx.size() != size_t(t.n_in))
    fail(what, fmt::format("packed tensors do not fit n_out = {}, n_in = {}, {} groups", t.n_out, t.n_in, ng),
         "the checkpoint is corrupt or its group_size does not match");
  check_g_idx(t.g_idx, ng, what);

  IntGroupQuant q;
  q.spec = spec;
  q.n_in = t.n_in;
  q.n_out = t.n_out;
  q.q.resize(size_t(t.n_out * t.n_in));
  std::vector<int32_t> col(size_t(t.n_in));
  for (int64_t o = 0; o < t.n_out; ++o) {
    gptq_unpack_sequence(t.qweight.data() + o, t.n_in, t.n_out, spec.bits, col.data(), 1);
    for (int64_t i = 0; i < t.n_in; ++i) q.q[size_t(o * t.n_in + i)] = uint8_t(col[size_t(i)]);
  }
  q.zeros.resize(size_t(ng * t.n_out));
  for (int64_t g = 0; g < ng; ++g) {
    gptq_unpack_sequence(t.qzeros.data() + g * zw, t.n_out, 1, spec.bits, q.zeros.data() + g * t.n_out, 1);
    if (!v2)
      for (int64_t o = 0; o < t.n_out; ++o) q.zeros[size_t(g * t.n_out + o)] += 1;
  }
  q.scales = t.scales;
  q.g_idx = t.g_idx;
  return q;
}

// ---------------------------------------------------------------- AWQ

namespace {
void check_awq_shape(int bits, int64_t n_out, const std::string& what) {
  if (bits != 4)
    fail(what, fmt::format("the AWQ GEMM layout stores 4-bit codes, not {}-bit", bits), "use --bits 4 or the GPTQ layout");
  if (n_out % 8 != 0)
    fail(what, fmt::format("n_out = {} is not a multiple of 8", n_out),
         "AWQ packs 8 outputs per 32-bit word; leave this linear unquantized or use GPTQ");
}
}  // namespace

AwqTensors pack_awq(const IntGroupQuant& q, const std::string& what) {
  check_awq_shape(q.spec.bits, q.n_out, what);
  q.spec.validate(q.n_in, what);
  check_sizes(q, what);
  check_scales_f16(q, what);
  const int64_t gc = q.spec.group_columns(q.n_in), ng = q.n_groups();
  for (int64_t i = 0; i < q.n_in; ++i)
    if (q.g_idx[size_t(i)] != i / gc)
      fail(what, fmt::format("g_idx[{}] = {} but AWQ stores column i in group i / {} = {}", i, q.g_idx[size_t(i)], gc, i / gc),
           "AWQ checkpoints have no g_idx: act-order (desc_act) results need the GPTQ layout");
  for (size_t k = 0; k < q.zeros.size(); ++k)
    if (q.zeros[k] < 0 || q.zeros[k] > q.spec.maxq())
      fail(what, fmt::format("zero point {} is outside [0, 15]", q.zeros[k]), "AWQ stores 4-bit zero points");

  AwqTensors t;
  t.n_in = q.n_in;
  t.n_out = q.n_out;
  t.n_groups = ng;
  const int64_t nw = q.n_out / 8;
  t.qweight.assign(size_t(q.n_in * nw), 0);
  t.qzeros.assign(size_t(ng * nw), 0);
  for (int64_t i = 0; i < q.n_in; ++i)
    for (int64_t c = 0; c < nw; ++c) {
      uint32_t w = 0;
      for (int k = 0; k < 8; ++k) w |= uint32_t(q.q[size_t((8 * c + kAwqOrder[k]) * q.n_in + i)]) << (4 * k);
      t.qweight[size_t(i * nw + c)] = int32_t(w);
    }
  for (int64_t g = 0; g < ng; ++g)
    for (int64_t c = 0; c < nw; ++c) {
      uint32_t w = 0;
      for (int k = 0; k < 8; ++k) w |= uint32_t(q.zeros[size_t(g * q.n_out + 8 * c + kAwqOrder[k])]) << (4 * k);
      t.qzeros[size_t(g * nw + c)] = int32_t(w);
    }
  t.scales = q.scales;
  return t;
}

IntGroupQuant unpack_awq(const AwqTensors& t, const IntGroupSpec& spec, const std::string& what) {
  check_awq_shape(spec.bits, t.n_out, what);
  spec.validate(t.n_in, what);
  const int64_t gc = spec.group_columns(t.n_in), ng = t.n_in / gc, nw = t.n_out / 8;
  if (t.n_groups != ng || t.qweight.size() != size_t(t.n_in * nw) || t.qzeros.size() != size_t(ng * nw) ||
      t.scales.size() != size_t(ng * t.n_out))
    fail(what, fmt::format("packed tensors do not fit n_out = {}, n_in = {}, {} groups", t.n_out, t.n_in, ng),
         "the checkpoint is corrupt or its group_size does not match");
  IntGroupQuant q;
  q.spec = spec;
  q.n_in = t.n_in;
  q.n_out = t.n_out;
  q.q.resize(size_t(t.n_out * t.n_in));
  q.zeros.resize(size_t(ng * t.n_out));
  for (int64_t i = 0; i < t.n_in; ++i)
    for (int64_t c = 0; c < nw; ++c) {
      const uint32_t w = uint32_t(t.qweight[size_t(i * nw + c)]);
      for (int k = 0; k < 8; ++k) q.q[size_t((8 * c + kAwqOrder[k]) * t.n_in + i)] = uint8_t((w >> (4 * k)) & 15u);
    }
  for (int64_t g = 0; g < ng; ++g)
    for (int64_t c = 0; c < nw; ++c) {
      const uint32_t w = uint32_t(t.qzeros[size_t(g * nw + c)]);
      for (int k = 0; k < 8; ++k) q.zeros[size_t(g * t.n_out + 8 * c + kAwqOrder[k])] = int32_t((w >> (4 * k)) & 15u);
    }
  q.scales = t.scales;
  q.g_idx.resize(size_t(t.n_in));
  for (int64_t i = 0; i < t.n_in; ++i) q.g_idx[size_t(i)] = int32_t(i / gc);
  return q;
}

// ---------------------------------------------------------------- from checkpoint tensors

namespace {

[[noreturn]] void bad_tensor(const std::string& file, const TensorView& t, const std::string& what) {
  fail(file, fmt::format("tensor '{}' ({} {}) {}", t.name, dtype_name(t.dtype), t.shape_str(), what),
       "the checkpoint is corrupt or does not match its quantization_config");
}

void need_2d(const std::string& file, const TensorView& t) {
  if (t.shape.size() != 2) bad_tensor(file, t, "is not 2-D");
}

std::vector<int32_t> read_i32(const std::string& file, const TensorView& t) {
  std::vector<int32_t> v(size_t(t.numel()));
  if (t.dtype == DType::I32) {
    LOWBIT_ASSERT(t.nbytes >= v.size() * 4);
    if (!v.empty()) std::memcpy(v.data(), t.data, v.size() * 4);
  } else if (t.dtype == DType::I64) {
    for (size_t k = 0; k < v.size(); ++k) {
      int64_t x;
      std::memcpy(&x, static_cast<const uint8_t*>(t.data) + 8 * k, 8);
      if (x < INT32_MIN || x > INT32_MAX) bad_tensor(file, t, fmt::format("holds {} at {}", x, k));
      v[k] = int32_t(x);
    }
  } else {
    bad_tensor(file, t, "is not int32");
  }
  return v;
}

std::vector<float> read_scales(const std::string& file, const TensorView& t) {
  if (t.dtype != DType::F16 && t.dtype != DType::BF16 && t.dtype != DType::F32)
    bad_tensor(file, t, "is not f16, bf16 or f32");
  std::vector<float> v(size_t(t.numel()));
  to_f32(t, 0, t.numel(), v.data());
  return v;
}

}  // namespace

IntGroupQuant read_hf_quant_linear(const HfQuantScheme& s, const TensorView& qweight, const TensorView& qzeros,
                                   const TensorView& scales, const TensorView* g_idx, const std::string& file) {
  const int bits = s.spec.bits;
  need_2d(file, qweight);
  need_2d(file, qzeros);
  need_2d(file, scales);
  if (qweight.dtype != DType::I32) bad_tensor(file, qweight, "is not int32");
  if (qzeros.dtype != DType::I32) bad_tensor(file, qzeros, "is not int32");
  const int64_t n_groups = scales.shape[0];
  const int64_t gs = s.spec.group_size;
  if (n_groups <= 0) bad_tensor(file, scales, "has no groups");
  std::string module = qweight.name;
  if (module.ends_with(".qweight")) module.resize(module.size() - 8);

  if (s.method == HfQuantMethod::Awq) {
    const int64_t n_in = qweight.shape[0], n_out = qweight.shape[1] * 8;
    if (scales.shape[1] != n_out)
      bad_tensor(file, scales, fmt::format("does not match '{}': expected [{}, {}]", qweight.name, n_groups, n_out));
    const int64_t expect_groups = gs > 0 ? n_in / gs : 1;
    if ((gs > 0 && n_in % gs != 0) || n_groups != expect_groups)
      bad_tensor(file, qweight,
                 fmt::format("does not match '{}' {}: {} input rows with group_size {} make {} groups", scales.name,
                             scales.shape_str(), n_in, gs, gs > 0 ? n_in / gs : 1));
    if (qzeros.shape[0] != n_groups || qzeros.shape[1] != n_out / 8)
      bad_tensor(file, qzeros, fmt::format("expected [{}, {}]", n_groups, n_out / 8));
    AwqTensors t;
    t.n_in = n_in;
    t.n_out = n_out;
    t.n_groups = n_groups;
    t.qweight = read_i32(file, qweight);
    t.qzeros = read_i32(file, qzeros);
    t.scales = read_scales(file, scales);
    return unpack_awq(t, s.spec, fmt::format("{}: {}", file, module));
  }

  // GPTQ
  const int64_t n_out = qweight.shape[1];
  const int64_t rows = qweight.shape[0];
  if (bits == 3 ? rows % 3 != 0 : false) bad_tensor(file, qweight, "has a row count that is not a multiple of 3 (3 bits)");
  const int64_t n_in = bits == 3 ? rows / 3 * 32 : rows * (32 / bits);
  // The width the other tensors say: g_idx's length, else groups * group_size.
  int64_t n_in_expected = -1;
  if (g_idx) {
    if (g_idx->shape.size() != 1) bad_tensor(file, *g_idx, "is not 1-D");
    n_in_expected = g_idx->shape[0];
  } else if (gs > 0) {
    n_in_expected = n_groups * gs;
  }
  if (n_in_expected >= 0 && n_in != n_in_expected) {
    const int64_t exp_rows = bits == 3 ? n_in_expected / 32 * 3 : n_in_expected * bits / 32;
    bad_tensor(file, qweight,
               fmt::format("holds {} input columns at {} bits, but {} imply {}: expected [{}, {}]", n_in, bits,
                           g_idx ? "'" + g_idx->name + "'" : "'" + scales.name + "' and group_size", n_in_expected,
                           exp_rows, n_out));
  }
  if (scales.shape[1] != n_out)
    bad_tensor(file, scales, fmt::format("does not match '{}' {}: expected [{}, {}]", qweight.name, qweight.shape_str(),
                                         n_groups, n_out));
  const int64_t expect_groups = gs > 0 ? (n_in + gs - 1) / gs : 1;
  if (n_groups != expect_groups)
    bad_tensor(file, scales, fmt::format("has {} groups; {} columns with group_size {} make {}", n_groups, n_in, gs,
                                         expect_groups));
  if (!gptq_packable(n_out, bits) || qzeros.shape[0] != n_groups || qzeros.shape[1] * 32 != n_out * bits)
    bad_tensor(file, qzeros, fmt::format("expected [{}, {} * {} / 32]", n_groups, n_out, bits));
  GptqTensors t;
  t.bits = bits;
  t.n_in = n_in;
  t.n_out = n_out;
  t.n_groups = n_groups;
  t.qweight = read_i32(file, qweight);
  t.qzeros = read_i32(file, qzeros);
  t.scales = read_scales(file, scales);
  if (g_idx) {
    t.g_idx = read_i32(file, *g_idx);
  } else {
    t.g_idx.resize(size_t(n_in));
    const int64_t gc = s.spec.group_columns(n_in);
    for (int64_t i = 0; i < n_in; ++i) t.g_idx[size_t(i)] = int32_t(i / gc);
  }
  return unpack_gptq(t, s.spec, s.gptq_v2, fmt::format("{}: {}", file, module));
}

// ---------------------------------------------------------------- row permutation

IntGroupQuant permute_output_rows(const IntGroupQuant& q, const std::vector<int64_t>& src_row) {
  LOWBIT_ASSERT(int64_t(src_row.size()) == q.n_out);
  IntGroupQuant r = q;
  const int64_t ng = q.n_groups();
  for (int64_t o = 0; o < q.n_out; ++o) {
    const int64_t s = src_row[size_t(o)];
    LOWBIT_ASSERT(s >= 0 && s < q.n_out);
    std::memcpy(&r.q[size_t(o * q.n_in)], &q.q[size_t(s * q.n_in)], size_t(q.n_in));
    for (int64_t g = 0; g < ng; ++g) {
      r.scales[size_t(g * q.n_out + o)] = q.scales[size_t(g * q.n_out + s)];
      r.zeros[size_t(g * q.n_out + o)] = q.zeros[size_t(g * q.n_out + s)];
    }
  }
  return r;
}

}  // namespace lowbit
