// lowbit::Error — the one exception type for user-facing failures.
// Its message names the file, the tensor or field, and a hint; the CLI prints
// it on one line and exits non-zero.
#pragma once
#include <stdexcept>
#include <string>

namespace lowbit {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Builds "WHERE: WHAT (hint: HINT)". `where` is a file path, optionally with a field or tensor.
[[noreturn]] void fail(const std::string& where, const std::string& what, const std::string& hint = "");

[[noreturn]] void assert_failed(const char* expr, const char* file, int line);

}  // namespace lowbit

// Internal invariant, always on (also in Release builds).
#define LOWBIT_ASSERT(expr) \
  ((expr) ? (void)0 : ::lowbit::assert_failed(#expr, __FILE__, __LINE__))
