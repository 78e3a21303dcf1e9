// Fuzzes encoding arbitrary bytes (invalid UTF-8 included) with two real
// tokenizers built once per process from ../shared (env LOWBIT_SHARED_DIR
// overrides): the score-based BPE of stories260K (models/stories260K/tok512.bin,
// llama2.c format) and GPT-2's byte-level BPE (tokenizers/gpt2/vocab.json +
// merges.txt). Checks: ids inside the vocab; decode(encode(text)) == text
// where it must hold (SPM: valid UTF-8 without U+2581 "▁", which encodes like
// a space; GPT-2: any bytes that do not contain the special "<|endoftext|>");
// every pre-tokenizer regex splits the text into pieces that cover it in order.
// Seeds: fuzz/corpus/tokenize/ and text from ../shared/text.
#include <memory>

#include "fuzz_common.h"
#include "io/tokenizer_bpe.h"
#include "io/tokenizer_spm.h"

using namespace lowbit;
using namespace lowbit_fuzz;

namespace {

// Valid UTF-8 by SentencePiece's rules: shortest form, no surrogates, <= U+10FFFF.
bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
    const auto trail = [&](size_t k) { return i + k < s.size() && (b(k) & 0xC0) == 0x80; };
    const unsigned c = b(0);
    uint32_t cp;
    size_t n;
    if (c < 0x80) {
      n = 1, cp = c;
    } else if ((c & 0xE0) == 0xC0 && trail(1)) {
      n = 2, cp = ((c & 0x1Fu) << 6) | (b(1) & 0x3Fu);
      if (cp < 0x80) return false;
    } else if ((c & 0xF0) == 0xE0 && trail(1) && trail(2)) {
      n = 3, cp = ((c & 0x0Fu) << 12) | ((b(1) & 0x3Fu) << 6) | (b(2) & 0x3Fu);
      if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    } else if ((c & 0xF8) == 0xF0 && trail(1) && trail(2) && trail(3)) {
      n = 4, cp = ((c & 0x07u) << 18) | ((b(1) & 0x3Fu) << 12) | ((b(2) & 0x3Fu) << 6) | (b(3) & 0x3Fu);
      if (cp < 0x10000 || cp > 0x10FFFF) return false;
    } else {
      return false;
    }
    i += n;
  }
  return true;
}

struct Tokenizers {
  std::unique_ptr<Tokenizer> spm, bpe;
  Tokenizers() {
    const std::string shared = shared_dir();
    std::string error;
    bool ok = expect_ok_or_error([&] {
      spm = make_spm_tokenizer(read_llama2c_vocab(shared + "/models/stories260K/tok512.bin", 512));
      bpe = make_bpe_tokenizer(
          read_gpt2_vocab(shared + "/tokenizers/gpt2/vocab.json", shared + "/tokenizers/gpt2/merges.txt"));
    }, &error);
    if (!ok) {
      std::fprintf(stderr, "fuzz_tokenize: cannot build the tokenizers from %s (set LOWBIT_SHARED_DIR): %s\n",
                   shared.c_str(), error.c_str());
      std::exit(2);
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  quiet_logs();
  static Tokenizers t;
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  expect_ok_or_error([&] {
    std::vector<int32_t> ids = encode_checked(*t.spm, text, true);
    if (valid_utf8(text) && text.find("\xE2\x96\x81") == std::string_view::npos) {
      const std::string back = t.spm->decode(ids);
      FUZZ_CHECK(back == text, "SPM round trip: %zu bytes in, %zu bytes back", text.size(), back.size());
    }
  });

  expect_ok_or_error([&] {
    std::vector<int32_t> ids = encode_checked(*t.bpe, text, true);
    if (text.find("<|endoftext|>") == std::string_view::npos) {
      const std::string back = t.bpe->decode(ids);
      FUZZ_CHECK(back == text, "GPT-2 BPE round trip: %zu bytes in, %zu bytes back", text.size(), back.size());
    }
  });

  for (PreTokenizer pre : {PreTokenizer::GPT2, PreTokenizer::Llama3, PreTokenizer::Qwen2}) {
    expect_ok_or_error([&] {
      size_t at = 0;
      for (std::string_view piece : pretokenize(pre, text)) {
        FUZZ_CHECK(!piece.empty(), "pre-tokenizer %d gave an empty piece", int(pre));
        FUZZ_CHECK(piece.data() == text.data() + at, "pre-tokenizer %d: piece at %zu does not continue at %zu",
                   int(pre), size_t(piece.data() - text.data()), at);
        at += piece.size();
      }
      FUZZ_CHECK(at == text.size(), "pre-tokenizer %d covers %zu of %zu bytes", int(pre), at, text.size());
    });
  }
  return 0;
}
