// Score-based BPE over SentencePiece-style pieces ("▁" marks a space), as
// SentencePiece's BPE model, llama.cpp's `llama` vocab and llama2.c encode:
// split into UTF-8 characters, repeatedly merge the adjacent pair whose merged
// piece has the highest score (leftmost on ties), then map pieces missing
// from the vocab to <0xXX> byte tokens.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
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

// Encodes exactly as SentencePiece's BPE model with the identity normalizer
// (checked against libsentencepiece on Llama 2's model): invalid UTF-8 becomes
// U+FFFD; user-defined pieces are matched whole and never merged; control,
// unknown and byte pieces are never formed by a merge; unused pieces are
// formed and then split back. decode_token: control -> "", byte -> its byte,
// "▁" -> ' ', and the first piece's leading space is dropped after BOS or at
// the start (prev < 0) when add_space_prefix.
std::unique_ptr<Tokenizer> make_spm_tokenizer(SpmVocab vocab);

// llama2.c tokenizer .bin: int32 max_token_length, then per token: f32 score,
// int32 len, len bytes. The file does not store the count: pass the model's vocab size.
// Pieces come back as in the .model file (' ' -> "▁", "\n<s>\n" -> "<s>") with
// types set (unknown 0, control 1 and 2, <0xXX> byte), as llama.cpp's converter does.
SpmVocab read_llama2c_vocab(const std::string& path, int n_vocab);

// SentencePiece `tokenizer.model` through Debian's libsentencepiece.
std::unique_ptr<Tokenizer> open_sentencepiece(const std::string& path);

// What a SentencePiece model file says about itself (its ModelProto, read
// without libsentencepiece).
struct SentencePieceModelInfo {
  int32_t model_type = 1;                 // TrainerSpec.ModelType: 1 unigram, 2 BPE, 3 word, 4 char
  bool byte_fallback = false;
  std::string normalizer_name;            // "identity", "nmt_nfkc", ...
  bool has_charsmap = false;              // a precompiled normalization map (non-identity)
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
  bool treat_whitespace_as_suffix = false;
};
// The pieces, scores and types of a SentencePiece `tokenizer.model` (types
// include user-defined, which libsentencepiece's API does not expose).
// `info` receives the model's settings when non-null. Reads any model type;
// check spm_bpe_incompatibility(info) before make_spm_tokenizer.
SpmVocab read_sentencepiece_vocab(const std::string& path, SentencePieceModelInfo* info = nullptr);
// The same from the model file's bytes; `where` names it in errors.
SpmVocab parse_sentencepiece_model(std::string_view bytes, const std::string& where, SentencePieceModelInfo* info = nullptr);
// Why make_spm_tokenizer cannot reproduce this model exactly ("" when it can:
// a BPE model with the identity normalizer, spaces escaped, no whitespace removal).
std::string spm_bpe_incompatibility(const SentencePieceModelInfo& info);

// The bytes one SentencePiece-style piece stands for: control -> "", unknown
// -> " ⁇ ", byte "<0xXX>" -> that byte, "▁" -> ' ' (the first one dropped when
// `drop_leading_space`).
std::string spm_piece_text(const std::string& piece, int32_t type, bool drop_leading_space);

}  // namespace lowbit
