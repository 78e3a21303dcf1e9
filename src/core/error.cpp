#include "lowbit/error.h"

#include <fmt/format.h>

namespace lowbit {

void fail(const std::string& where, const std::string& what, const std::string& hint) {
  std::string msg = where.empty() ? what : where + ": " + what;
  if (!hint.empty()) msg += " (hint: " + hint + ")";
  throw Error(msg);
}

void assert_failed(const char* expr, const char* file, int line) {
  throw Error(fmt::format("internal error: assertion `{}` failed at {}:{}", expr, file, line));
}

}  // namespace lowbit
