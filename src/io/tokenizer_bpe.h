// Byte-level BPE (GPT-2, Llama 3, Qwen2): text is split by a pre-tokenizer
// regex, each piece's bytes are mapped to printable code points (GPT-2's
// bytes_to_unicode), then merged by merge rank.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "io/tokenizer.h"

namespace lowbit {

enum class PreTokenizer { GPT2, Llama3, Qwen2 };

// HF's Digits pre-tokenizer, run before the regex: every digit (\p{N}) a piece
// of its own (individual_digits: true), or every run of digits one piece (false).
enum class DigitSplit { None, Individual, Runs };

struct BpeVocab {
  std::vector<std::string> tokens;  // [n_vocab] byte-level strings as in vocab.json ("Ġthe")
  std::vector<std::string> merges;  // "Ġ t" lines, in rank order
  std::vector<int32_t> types;       // [n_vocab] TokenType (see tokenizer_spm.h); empty = all normal
  PreTokenizer pre = PreTokenizer::GPT2;
  DigitSplit digits = DigitSplit::None;  // a Digits step before the regex (SmolLM: Individual)
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  bool add_bos = false;             // GPT-2: no; Llama 3: yes
  bool add_prefix_space = false;    // HF ByteLevel add_prefix_space: ' ' before each text segment not starting with one
  bool ignore_merges = false;       // HF BPE ignore_merges (Llama 3): a pre-token found whole in the vocab is kept whole
};

// Tokens of type control or user-defined are matched in the text first
// (leftmost, longest) and never pre-tokenized, as HF does with added tokens;
// decode_token gives "" for control tokens. Throws lowbit::Error for a merge
// naming a token missing from the vocab, or a vocab lacking a byte token.
std::unique_ptr<Tokenizer> make_bpe_tokenizer(BpeVocab vocab);

// The pre-tokenizer regex of `pre`, as spelled in HF tokenizer.json (PCRE2 syntax).
const char* pretokenizer_pattern(PreTokenizer pre);
// The pre-tokenizer regex a GGUF `tokenizer.ggml.pre` name stands for ("gpt-2",
// "llama-bpe", "qwen2", "smollm", ...), or nullopt for names lowbit does not implement.
std::optional<PreTokenizer> pretokenizer_from_gguf_name(std::string_view name);
// The digit split that name runs before its regex (Individual for "smollm").
DigitSplit gguf_digit_split(std::string_view name);
// Whether llama.cpp sets ignore_merges for that name (the Llama 3 names: "llama-bpe", ...).
bool gguf_ignores_merges(std::string_view name);
// Splits `text` into pre-tokens (views into `text`, covering all of it in order):
// first into digits and the text between them when `digits` says so, then each
// piece by the regex. Bytes no pattern branch matches (invalid UTF-8) come back
// as pieces of their own.
std::vector<std::string_view> pretokenize(PreTokenizer pre, std::string_view text,
                                          DigitSplit digits = DigitSplit::None);
// GPT-2 bytes_to_unicode: the printable code point standing for byte `b`, as UTF-8.
const std::string& byte_to_unicode(uint8_t b);
// The inverse: the byte code point `cp` stands for, or -1 when it is none of the 256.
int unicode_to_byte(uint32_t cp);

// HF tokenizer.json with "model": {"type": "BPE"} and a ByteLevel pre-tokenizer
// (alone, or after a Split with one of the three regexes), optionally after a
// Digits step (SmolLM: Sequence [Digits, ByteLevel]); merges as "a b" or
// ["a", "b"]; added_tokens become control (special) or user-defined tokens;
// a TemplateProcessing post-processor starting with a special token sets
// bos_id + add_bos; eos_id comes from tokenizer_config.json beside the file,
// else from a known name. Anything else -> lowbit::Error naming the field.
BpeVocab read_hf_tokenizer_json(const std::string& path);
// GPT-2's original vocab.json + merges.txt pair (<|endoftext|> is BOS and EOS, not added).
BpeVocab read_gpt2_vocab(const std::string& vocab_json, const std::string& merges_txt);

}  // namespace lowbit
