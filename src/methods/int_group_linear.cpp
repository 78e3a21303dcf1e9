#include "methods/int_group_linear.h"

#include <fmt/format.h>

#include "core/half.h"
#include "lowbit/error.h"
#include "model/matmul.h"

namespace lowbit {

IntGroupLinear::IntGroupLinear(const IntGroupQuant& q, std::string method)
    : spec_(q.spec), method_(std::move(method)), n_out_(q.n_out), n_in_(q.n_in) {
  LOWBIT_ASSERT(q.spec.bits >= 1 && q.spec.bits <= 8);
  group_cols_ = q.spec.group_columns(q.n_in);
  n_groups_ = q.n_groups();
  LOWBIT_ASSERT(q.q.size() == size_t(n_out_ * n_in_) && q.g_idx.size() == size_t(n_in_));
  LOWBIT_ASSERT(q.scales.size() == size_t(n_groups_ * n_out_) && q.zeros.size() == size_t(n_groups_ * n_out_));
  const int bits = q.spec.bits;
  row_bytes_ = size_t((n_in_ * bits + 7) / 8);
  codes_.assign(size_t(n_out_) * row_bytes_, 0);
  for (int64_t o = 0; o < n_out_; ++o) {
    uint8_t* row = codes_.data() + size_t(o) * row_bytes_;
    for (int64_t i = 0; i < n_in_; ++i) {
      const uint32_t v = q.q[size_t(o * n_in_ + i)];
      const int64_t bit = i * bits;
      // A code spans at most two bytes (bits <= 8).
      const uint32_t shifted = v << (bit & 7);
      row[bit >> 3] |= uint8_t(shifted);
      if ((bit & 7) + bits > 8) row[(bit >> 3) + 1] |= uint8_t(shifted >> 8);
    }
  }
  scales_.resize(size_t(n_out_ * n_groups_));
  zeros_.resize(size_t(n_out_ * n_groups_));
  for (int64_t g = 0; g < n_groups_; ++g)
    for (int64_t o = 0; o < n_out_; ++o) {
      scales_[size_t(o * n_groups_ + g)] = f32_to_f16(q.scales[size_t(g * n_out_ + o)]);
      zeros_[size_t(o * n_groups_ + g)] = uint8_t(q.zeros[size_t(g * n_out_ + o)]);
    }
  bool trivial = true;
  for (int64_t i = 0; i < n_in_; ++i) trivial &= q.g_idx[size_t(i)] == int32_t(i / group_cols_);
  if (!trivial) g_idx_ = q.g_idx;
}

void IntGroupLinear::row_to_f32(int64_t r, float* dst) const {
  const uint8_t* row = codes_.data() + size_t(r) * row_bytes_;
  const int bits = spec_.bits;
  const uint32_t mask = (1u << bits) - 1u;
  const uint16_t* sc = scales_.data() + r * n_groups_;
  const uint8_t* ze = zeros_.data() + r * n_groups_;
  auto code = [&](int64_t i) {
    const int64_t bit = i * bits;
    uint32_t w = row[bit >> 3];
    if ((bit & 7) + bits > 8) w |= uint32_t(row[(bit >> 3) + 1]) << 8;
    return int((w >> (bit & 7)) & mask);
  };
  if (g_idx_.empty()) {
    for (int64_t g = 0; g < n_groups_; ++g) {
      const float s = f16_to_f32(sc[g]);
      const int z = ze[g];  // s * (q - z), as IntGroupQuant::dequantize rounds it
      const int64_t i0 = g * group_cols_, i1 = i0 + group_cols_;
      if (bits == 8) {
        for (int64_t i = i0; i < i1; ++i) dst[i] = s * float(int(row[i]) - z);
      } else if (bits == 4 && i0 % 2 == 0 && i1 % 2 == 0) {  // two codes per byte, even input in the low nibble
        for (int64_t i = i0; i < i1; i += 2) {
          const uint8_t b = row[i >> 1];
          dst[i] = s * float(int(b & 15) - z);
          dst[i + 1] = s * float(int(b >> 4) - z);
        }
      } else {
        for (int64_t i = i0; i < i1; ++i) dst[i] = s * float(code(i) - z);
      }
    }
  } else {
    for (int64_t i = 0; i < n_in_; ++i) {
      const int64_t g = g_idx_[size_t(i)];
      dst[i] = f16_to_f32(sc[g]) * float(code(i) - int(ze[g]));
    }
  }
}

void IntGroupLinear::matmul(const float* X, int n_tok, float* Y, int n_threads) const {
  matmul_rows(n_out_, n_in_, [this](int64_t r, float* dst) { row_to_f32(r, dst); }, X, n_tok, Y, n_threads);
}

void IntGroupLinear::dequantize_rows(int64_t row0, int64_t n_rows, float* W) const {
  LOWBIT_ASSERT(row0 >= 0 && n_rows >= 0 && row0 + n_rows <= n_out_);
  for (int64_t r = 0; r < n_rows; ++r) row_to_f32(row0 + r, W + r * n_in_);
}

size_t IntGroupLinear::nbytes() const {
  return codes_.size() + scales_.size() * 2 + zeros_.size() + g_idx_.size() * 4;
}

std::string IntGroupLinear::type_name() const {
  return fmt::format("{}{}{}{}", method_, spec_.bits, spec_.group_size < 0 ? "row" : fmt::format("g{}", spec_.group_size),
                     spec_.sym ? "sym" : "");
}

std::string IntGroupLinear::describe() const {
  return fmt::format("{}, bits={}, group_size={}, sym={}{}", method_, spec_.bits, spec_.group_size, spec_.sym ? "True" : "False",
                     g_idx_.empty() ? "" : ", desc_act=True");
}

IntGroupQuant IntGroupLinear::to_int_groups() const {
  IntGroupQuant q;
  q.spec = spec_;
  q.n_out = n_out_;
  q.n_in = n_in_;
  q.q.resize(size_t(n_out_ * n_in_));
  q.scales.resize(size_t(n_groups_ * n_out_));
  q.zeros.resize(size_t(n_groups_ * n_out_));
  q.g_idx.resize(size_t(n_in_));
  const int bits = spec_.bits;
  for (int64_t o = 0; o < n_out_; ++o) {
    const uint8_t* p = codes_.data() + size_t(o) * row_bytes_;
    for (int64_t i = 0; i < n_in_; ++i) {
      const int64_t bit = i * bits;
      uint32_t w = p[bit >> 3];
      if ((bit & 7) + bits > 8) w |= uint32_t(p[(bit >> 3) + 1]) << 8;
      q.q[size_t(o * n_in_ + i)] = uint8_t((w >> (bit & 7)) & ((1u << bits) - 1u));
    }
    for (int64_t g = 0; g < n_groups_; ++g) {
      q.scales[size_t(g * n_out_ + o)] = f16_to_f32(scales_[size_t(o * n_groups_ + g)]);
      q.zeros[size_t(g * n_out_ + o)] = zeros_[size_t(o * n_groups_ + g)];
    }
  }
  for (int64_t i = 0; i < n_in_; ++i) q.g_idx[size_t(i)] = g_idx_.empty() ? int32_t(i / group_cols_) : g_idx_[size_t(i)];
  return q;
}

std::shared_ptr<QLinear> IntGroupLinear::with_rows_permuted(std::span<const int64_t> perm) const {
  LOWBIT_ASSERT(int64_t(perm.size()) == n_out_);
  auto out = std::make_shared<IntGroupLinear>(*this);
  for (int64_t r = 0; r < n_out_; ++r) {
    const int64_t s = perm[size_t(r)];
    LOWBIT_ASSERT(s >= 0 && s < n_out_);
    std::copy_n(codes_.data() + size_t(s) * row_bytes_, row_bytes_, out->codes_.data() + size_t(r) * row_bytes_);
    std::copy_n(scales_.data() + s * n_groups_, n_groups_, out->scales_.data() + r * n_groups_);
    std::copy_n(zeros_.data() + s * n_groups_, n_groups_, out->zeros_.data() + r * n_groups_);
  }
  return out;
}

}  // namespace lowbit
