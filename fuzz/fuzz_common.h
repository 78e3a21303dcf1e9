// Shared helpers for the libFuzzer targets in fuzz/ (see fuzz/README.md).
//
// Contract of every target: for any input bytes, the code under test either
// succeeds or throws lowbit::Error. Anything else is a bug and aborts, so
// libFuzzer saves the input: another exception type, a crash or sanitizer
// report, a LOWBIT_ASSERT (it throws an Error whose message says "internal
// error"), or a violated invariant checked with FUZZ_CHECK.
#pragma once
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <typeinfo>
#include <vector>

#include "core/log.h"
#include "formats/format.h"
#include "io/tokenizer.h"
#include "lowbit/error.h"
#include "lowbit/tensor.h"

namespace lowbit_fuzz {

namespace fs = std::filesystem;

// Aborts (libFuzzer reports a crash and writes the input) when `cond` is false.
#define FUZZ_CHECK(cond, ...)                                                        \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      std::fprintf(stderr, "FUZZ_CHECK failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, "  " __VA_ARGS__);                                        \
      std::fprintf(stderr, "\n");                                                    \
      std::abort();                                                                  \
    }                                                                                \
  } while (0)

// The library reports warnings through its log sink (stderr by default):
// silence it, or a fuzzer prints millions of lines. LOWBIT_FUZZ_VERBOSE=1 keeps them.
inline void quiet_logs() {
  static const bool once = [] {
    if (!std::getenv("LOWBIT_FUZZ_VERBOSE")) lowbit::set_log_sink([](lowbit::LogLevel, const std::string&) {});
    return true;
  }();
  (void)once;
}

// Whether an Error's message comes from LOWBIT_ASSERT: "internal error: assertion `...`",
// possibly after one "WHERE: " prefix (a path, no spaces). Messages that merely
// quote input containing those words have other text in front of them.
inline bool is_assertion(std::string_view msg) {
  constexpr std::string_view kAssert = "internal error: assertion `";
  const size_t p = msg.find(kAssert);
  if (p == std::string_view::npos) return false;
  if (p == 0) return true;
  const std::string_view before = msg.substr(0, p);
  return before.size() >= 2 && before.substr(before.size() - 2) == ": " &&
         before.substr(0, before.size() - 2).find_first_of(" '\"") == std::string_view::npos;
}

// Runs `f`; lowbit::Error is an expected outcome, anything else aborts.
// Returns true when `f` returned normally; the Error's message goes to `error`.
template <class F>
bool expect_ok_or_error(F&& f, std::string* error = nullptr) {
  try {
    f();
    return true;
  } catch (const lowbit::Error& e) {
    if (is_assertion(e.what())) {
      std::fprintf(stderr, "LOWBIT_ASSERT fired (a bug, not a user error): %s\n", e.what());
      std::abort();
    }
    if (error) *error = e.what();
    return false;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "unexpected exception %s (only lowbit::Error is allowed): %s\n", typeid(e).name(), e.what());
    std::abort();
  } catch (...) {
    std::fprintf(stderr, "unexpected non-std exception\n");
    std::abort();
  }
}

// The read-only inputs (../shared): env LOWBIT_SHARED_DIR, else the compile-time default.
inline std::string shared_dir() {
  if (const char* d = std::getenv("LOWBIT_SHARED_DIR"); d && *d) return d;
#ifdef LOWBIT_SHARED_DIR
  return LOWBIT_SHARED_DIR;
#else
  return "../shared";
#endif
}

// A private folder for files the parsers must open by path: one per process
// (libFuzzer -jobs/-fork run several), reused for every input, removed at exit.
class TempDir {
 public:
  explicit TempDir(const std::string& name) {
    std::error_code ec;
    fs::path base = fs::temp_directory_path(ec);
    if (ec) base = "/tmp";
    dir_ = base / ("lowbit-fuzz-" + name + "-" + std::to_string(::getpid()));
    fs::remove_all(dir_, ec);
    fs::create_directories(dir_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const fs::path& path() const { return dir_; }

  // Writes (replaces) dir/name with exactly these bytes and returns its path.
  std::string write(const std::string& name, const void* data, size_t size) const {
    const fs::path p = dir_ / name;
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    if (size) out.write(static_cast<const char*>(data), std::streamsize(size));
    out.close();
    if (!out) {
      std::fprintf(stderr, "fuzz harness: cannot write %s\n", p.c_str());
      std::abort();
    }
    return p.string();
  }
  std::string write(const std::string& name, std::string_view s) const { return write(name, s.data(), s.size()); }

 private:
  fs::path dir_;
};

// Reads every byte of a view (a read past a mapping faults here, in the
// harness, not somewhere later), checks nbytes against shape and dtype, and
// converts a few elements to f32 (for a block-quantized view: its last row,
// dequantized). Views without data (GGUF types lowbit has no kernels for) are skipped.
inline void touch_view(const lowbit::TensorView& t) {
  if (!t.data) return;
  int64_t numel = 1;
  for (int64_t d : t.shape) {
    FUZZ_CHECK(d >= 0, "tensor '%s' has a negative dimension", t.name.c_str());
    FUZZ_CHECK(!__builtin_mul_overflow(numel, d, &numel), "tensor '%s': element count overflows", t.name.c_str());
  }
  if (t.dtype == lowbit::DType::QUANT) {
    const int64_t rows = t.rows(), cols = t.cols();
    const uint64_t want = uint64_t(rows) * lowbit::row_bytes(t.format, cols);
    FUZZ_CHECK(want == t.nbytes, "tensor '%s' (%s): %lld rows of %lld but nbytes = %zu", t.name.c_str(),
               t.type_name().c_str(), (long long)rows, (long long)cols, t.nbytes);
    if (rows > 0 && cols > 0 && cols <= (1 << 16)) {
      std::vector<float> row(static_cast<size_t>(cols));
      lowbit::to_f32(t, (rows - 1) * cols, cols, row.data());
    }
    return;
  }
  FUZZ_CHECK(uint64_t(numel) * lowbit::dtype_size(t.dtype) == t.nbytes,
             "tensor '%s': %lld elements of %zu bytes but nbytes = %zu", t.name.c_str(), (long long)numel,
             lowbit::dtype_size(t.dtype), t.nbytes);
  const auto* p = static_cast<const volatile uint8_t*>(t.data);
  uint8_t acc = 0;
  for (size_t i = 0; i < t.nbytes; i += 64) acc ^= p[i];
  if (t.nbytes) acc ^= p[t.nbytes - 1];
  (void)acc;
  const int64_t n = numel < 64 ? numel : 64;
  if (n > 0 && (t.dtype == lowbit::DType::F32 || t.dtype == lowbit::DType::F16 || t.dtype == lowbit::DType::BF16)) {
    float buf[64];
    lowbit::to_f32(t, numel - n, n, buf);
  }
}

// Encodes `text`, checks every id is in the vocab, decodes every id, and
// returns the ids (the caller checks round trips where they must hold).
inline std::vector<int32_t> encode_checked(const lowbit::Tokenizer& tok, std::string_view text, bool add_bos) {
  std::vector<int32_t> ids = tok.encode(text, add_bos);
  const int32_t n = tok.n_vocab();
  for (size_t i = 0; i < ids.size(); ++i)
    FUZZ_CHECK(ids[i] >= 0 && ids[i] < n, "%s tokenizer: encode gave id %d at position %zu (vocab %d)",
               tok.kind().c_str(), ids[i], i, n);
  if (add_bos && tok.adds_bos())
    FUZZ_CHECK(!ids.empty() && ids[0] == tok.bos_id(), "%s tokenizer: BOS missing", tok.kind().c_str());
  (void)tok.decode(ids);
  return ids;
}

}  // namespace lowbit_fuzz
