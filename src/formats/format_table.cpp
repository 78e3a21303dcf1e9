#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "formats/families.h"
#include "formats/format.h"
#include "kernels/dispatch.h"
#include "lowbit/error.h"

namespace lowbit {

namespace {
const std::vector<FormatTraits>& table() {
  static const std::vector<FormatTraits> rows = [] {
    std::vector<FormatTraits> r;
    for (auto family : {float_formats(), legacy_formats(), kquant_formats()}) r.insert(r.end(), family.begin(), family.end());
    std::sort(r.begin(), r.end(), [](const FormatTraits& a, const FormatTraits& b) { return a.id < b.id; });
    for (auto& f : r) {  // fastest kernels for this CPU (kernels/dispatch.h); the references when none
      if (VecDotFn fast = best_vec_dot(f.id)) f.vec_dot = fast;
      const DequantizeRowFn deq = best_dequantize_row(f.id);
      f.dequantize_row_fast = deq ? deq : f.dequantize_row;
      f.vec_dot_4rows = best_vec_dot_4rows(f.id);
    }
    return r;
  }();
  return rows;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return std::tolower(x) == std::tolower(y); });
}
}  // namespace

std::span<const FormatTraits> all_formats() { return table(); }

const FormatTraits& format_traits(FormatId id) {
  for (const auto& f : table())
    if (f.id == id) return f;
  fail("formats", fmt::format("format id {} is not in the traits table", uint32_t(id)));
}

const FormatTraits* find_format_by_id(uint32_t id) {
  for (const auto& f : table())
    if (uint32_t(f.id) == id) return &f;
  return nullptr;
}

const FormatTraits* find_format(std::string_view name) {
  for (const auto& f : table())
    if (iequals(f.name, name)) return &f;
  return nullptr;
}

size_t row_bytes(FormatId id, int64_t n) {
  const FormatTraits& f = format_traits(id);
  if (n < 0 || n % f.block_size != 0)
    fail(f.name, fmt::format("a row of {} values is not a multiple of the block size {}", n, f.block_size),
         "pick a format whose block size divides the row length");
  return size_t(n / f.block_size) * f.block_bytes;
}

}  // namespace lowbit
