// Each format family contributes its rows to the traits table (format_table.cpp).
#pragma once
#include <span>

#include "formats/format.h"

namespace lowbit {
std::span<const FormatTraits> float_formats();   // f32, f16, bf16          (float_formats.cpp)
std::span<const FormatTraits> legacy_formats();  // q4_0, q4_1, q5_0, q5_1, q8_0, q8_1, iq4_nl (legacy_quants.cpp, iq4_nl.cpp)
std::span<const FormatTraits> kquant_formats();  // q2_K, q3_K, q4_K, q5_K, q6_K, q8_K      (k_quants*.cpp)
}  // namespace lowbit
