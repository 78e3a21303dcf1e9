// Score-based BPE over SentencePiece-style pieces ("▁" marks a space), as
// SentencePiece's BPE model, llama.cpp's `llama` vocab and llama2.c encode:
// split into UTF-8 characters, repeatedly merge the adjacent pair whose merged
// piece has the highest score (leftmost on ties), then map pieces missing
// from the vocab to <0xXX> byte tokens.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "io/tokenizer.h"

namespace lowbit {

// GGUF token types (tokenizer.ggml.token_type), also used for other vocabs.
enum TokenType : int32_t { kTokNormal = 1, kTokUnknown = 2, kTokControl = 3, kTokUserDefined = 4, kTokUnused = 5, kTokByte = 6 };

struct SpmVocab {
  std::vector<std::string> pieces;  // [n_vocab] UTF-8, "▁" for space, "<0x0A>" for byte tokens
  std::vector<float> scores;        // [n_vocab] merge priority (higher merges first)
  std::vector<int32_t> types;       // [n_vocab] TokenType; empty = infer (<0xXX> byte, <s>/</s>/<unk> control)
  int32_t bos_id = 1;
  int32_t eos_id = 2;
  int32_t unk_id = 0;
  bool add_space_prefix = true;     // prepend "▁" to the text, as SentencePiece does
};

std::unique_ptr<Tokenizer> make_spm_tokenizer(SpmVocab vocab);

// llama2.c tokenizer .bin: int32 max_token_length, then per token: f32 score,
// int32 len, len bytes. The file does not store the count: pass the model's vocab size.
SpmVocab read_llama2c_vocab(const std::string& path, int n_vocab);

// SentencePiece `tokenizer.model` through Debian's libsentencepiece.
std::unique_ptr<Tokenizer> open_sentencepiece(const std::string& path);

}  // namespace lowbit
