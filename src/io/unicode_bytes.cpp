// Byte-level BPE helpers: GPT-2's bytes_to_unicode table and the pre-tokenizer
// regexes (GPT-2, Llama 3, Qwen2; optionally after HF's Digits split) run through PCRE2.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <array>
#include <memory>
#include <mutex>

#include "io/tokenizer_bpe.h"
#include "lowbit/error.h"

namespace lowbit {
namespace {

std::string utf8_encode(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else if (cp < 0x800) {
    s += char(0xC0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += char(0xE0 | (cp >> 12));
    s += char(0x80 | ((cp >> 6) & 0x3F));
    s += char(0x80 | (cp & 0x3F));
  } else {
    s += char(0xF0 | (cp >> 18));
    s += char(0x80 | ((cp >> 12) & 0x3F));
    s += char(0x80 | ((cp >> 6) & 0x3F));
    s += char(0x80 | (cp & 0x3F));
  }
  return s;
}

// bytes_to_unicode: the printable bytes '!'..'~', '¡'..'¬', '®'..'ÿ' stand for
// themselves; the other 68 bytes (controls, space, DEL, NBSP, soft hyphen) get
// U+0100, U+0101, ... in byte order, so every byte is a visible character.
struct ByteTable {
  std::array<uint32_t, 256> cp{};
  std::array<std::string, 256> utf8;
  ByteTable() {
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      cp[b] = printable ? b : next++;
      utf8[b] = utf8_encode(cp[b]);
    }
  }
};

const ByteTable& byte_table() {
  static const ByteTable t;
  return t;
}

// The patterns as HF tokenizer.json spells them (GPT-2: ByteLevel use_regex).
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// HF's Digits pre-tokenizer (char::is_numeric is \p{N}): each digit, or each run of digits.
constexpr const char* kDigitPattern = R"(\p{N})";
constexpr const char* kDigitRunPattern = R"(\p{N}+)";

struct CompiledPattern {
  pcre2_code* code = nullptr;
  ~CompiledPattern() { pcre2_code_free(code); }
};

// Compiled once per slot. PCRE2_UCP makes \s, \p{..} Unicode-aware;
// PCRE2_MATCH_INVALID_UTF lets invalid UTF-8 through (it matches nothing and
// is returned as a gap). JIT when available; pcre2_match uses it automatically.
// Slots 0..2 are the PreTokenizer regexes, 3 and 4 the Digits patterns.
const pcre2_code* compiled_slot(int i, const char* pat) {
  static std::array<CompiledPattern, 5> cache;
  static std::once_flag once[5];
  std::call_once(once[i], [&] {
    int err = 0;
    PCRE2_SIZE err_off = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pat), PCRE2_ZERO_TERMINATED,
                                     PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &err_off, nullptr);
    if (!code) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      fail("pre-tokenizer regex", "PCRE2 compile failed at " + std::to_string(err_off) + ": " +
                                      reinterpret_cast<const char*>(msg));
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // optional: falls back to the interpreter
    cache[size_t(i)].code = code;
  });
  return cache[size_t(i)].code;
}

const pcre2_code* compiled(PreTokenizer pre) { return compiled_slot(int(pre), pretokenizer_pattern(pre)); }

// Length of the UTF-8 sequence starting with lead byte c (1 for stray bytes).
size_t utf8_len(unsigned char c) {
  if (c >= 0xF0 && c <= 0xF7) return 4;
  if (c >= 0xE0) return c <= 0xEF ? 3 : 1;
  if (c >= 0xC0) return 2;
  return 1;
}

}  // namespace

const char* pretokenizer_pattern(PreTokenizer pre) {
  switch (pre) {
    case PreTokenizer::GPT2: return kGpt2Pattern;
    case PreTokenizer::Llama3: return kLlama3Pattern;
    case PreTokenizer::Qwen2: return kQwen2Pattern;
  }
  return kGpt2Pattern;
}

std::optional<PreTokenizer> pretokenizer_from_gguf_name(std::string_view name) {
  // llama.cpp's names (llama-vocab.cpp) whose regex is exactly one of ours.
  if (name == "gpt-2" || name == "gpt2") return PreTokenizer::GPT2;
  if (name == "llama-bpe" || name == "llama3" || name == "llama-v3" || name == "falcon3") return PreTokenizer::Llama3;
  if (name == "smollm") return PreTokenizer::GPT2;  // after a split into single digits: gguf_digit_split
  if (name == "qwen2") return PreTokenizer::Qwen2;
  return std::nullopt;
}

DigitSplit gguf_digit_split(std::string_view name) {
  // llama.cpp's smollm: regexes "\p{N}" then GPT-2's (llama-vocab.cpp), as HF's Digits(individual) + ByteLevel.
  return name == "smollm" ? DigitSplit::Individual : DigitSplit::None;
}

bool gguf_ignores_merges(std::string_view name) {
  // llama-vocab.cpp sets ignore_merges for the Llama 3 names (and tekken, which lowbit does not read).
  return pretokenizer_from_gguf_name(name) == PreTokenizer::Llama3;
}

const std::string& byte_to_unicode(uint8_t b) { return byte_table().utf8[b]; }

int unicode_to_byte(uint32_t cp) {
  // Bytes map to themselves or to U+0100..U+0143.
  if (cp < 256) {
    const auto& t = byte_table();
    return t.cp[cp] == cp ? int(cp) : -1;
  }
  if (cp < 256 + 68) {
    static const std::array<int, 68> inv = [] {
      std::array<int, 68> a{};
      const auto& t = byte_table();
      for (int b = 0; b < 256; ++b)
        if (t.cp[b] >= 256) a[t.cp[b] - 256] = b;
      return a;
    }();
    return inv[cp - 256];
  }
  return -1;
}

namespace {

// Appends the matches of `code` in `text` and the gaps between them (HF's
// Isolated split): pieces covering all of `text`, in order. The subject is
// `text` alone, so a lookahead sees its end as the end of the input.
void regex_split(const pcre2_code* code, std::string_view text, std::vector<std::string_view>& out) {
  if (text.empty()) return;
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
      pcre2_match_data_create_from_pattern(code, nullptr), &pcre2_match_data_free);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos < text.size()) {
    int rc = pcre2_match(code, subject, text.size(), pos, 0, md.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) {
      out.push_back(text.substr(pos));  // trailing bytes nothing matches
      break;
    }
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      fail("pre-tokenizer regex", std::string("PCRE2 match failed: ") + reinterpret_cast<const char*>(msg));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
    size_t begin = ov[0], end = ov[1];
    if (begin > pos) out.push_back(text.substr(pos, begin - pos));  // unmatched gap
    if (end == begin) {
      // None of the patterns can match empty, but never loop forever.
      end = std::min(text.size(), begin + utf8_len(static_cast<unsigned char>(text[begin])));
    }
    out.push_back(text.substr(begin, end - begin));
    pos = end;
  }
}

}  // namespace

std::vector<std::string_view> pretokenize(PreTokenizer pre, std::string_view text, DigitSplit digits) {
  std::vector<std::string_view> out;
  if (digits == DigitSplit::None) {
    regex_split(compiled(pre), text, out);
    return out;
  }
  // HF runs the steps of a Sequence one after the other, each on every piece
  // the previous one made: Digits first, then the regex within each piece.
  std::vector<std::string_view> parts;
  regex_split(digits == DigitSplit::Individual ? compiled_slot(3, kDigitPattern) : compiled_slot(4, kDigitRunPattern),
              text, parts);
  const pcre2_code* code = compiled(pre);
  for (std::string_view p : parts) regex_split(code, p, out);
  return out;
}

}  // namespace lowbit
