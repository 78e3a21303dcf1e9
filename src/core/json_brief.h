// A short printable form of a JSON value for error messages. Never recurses:
// dump() on hostile, deeply nested input would overflow the stack.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace lowbit {

inline std::string json_brief(const nlohmann::json& j) {
  if (j.is_array()) {
    bool flat = true;
    for (const auto& e : j) flat = flat && e.is_primitive();
    if (flat && j.size() <= 16) return j.dump();
    return "an array of " + std::to_string(j.size()) + " elements";
  }
  if (j.is_object()) return "an object with " + std::to_string(j.size()) + " keys";
  std::string s = j.dump();
  return s.size() > 80 ? s.substr(0, 77) + "..." : s;
}

}  // namespace lowbit
