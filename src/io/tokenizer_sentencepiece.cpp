// SentencePiece `tokenizer.model`: encoding through Debian's libsentencepiece
// (the reference, whatever its model type and normalizer), and a small reader
// of the model's protobuf for the pieces, their types and the settings.
//
// ModelProto fields read (sentencepiece_model.proto):
//   1 pieces (repeated): 1 piece (string), 2 score (float), 3 type (enum, default NORMAL=1)
//   2 trainer_spec: 3 model_type, 24 treat_whitespace_as_suffix, 35 byte_fallback,
//                   40 unk_id, 41 bos_id, 42 eos_id
//   3 normalizer_spec: 1 name, 2 precompiled_charsmap, 3 add_dummy_prefix,
//                      4 remove_extra_whitespaces, 5 escape_whitespaces
// Piece type numbers equal TokenType's (NORMAL 1 ... BYTE 6).
#include <sentencepiece_processor.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "io/tokenizer_spm.h"
#include "lowbit/error.h"

namespace lowbit {
namespace {

// Protobuf wire format, bounds-checked: every read names the message and offset on failure.
class Wire {
 public:
  Wire(std::string_view bytes, const std::string& where, size_t base = 0) : s_(bytes), where_(where), base_(base) {}
  bool done() const { return pos_ >= s_.size(); }

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= s_.size()) bad("truncated varint");
      uint8_t b = uint8_t(s_[pos_++]);
      v |= uint64_t(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    bad("varint longer than 10 bytes");
  }
  // Reads a tag; returns the field number, sets the wire type.
  uint32_t tag(int& wire_type) {
    uint64_t t = varint();
    wire_type = int(t & 7);
    if ((t >> 3) == 0 || (t >> 3) > 0x1FFFFFFF) bad("field number 0 or too large");
    return uint32_t(t >> 3);
  }
  std::string_view bytes() {
    uint64_t n = varint();
    if (n > s_.size() - pos_) bad("length " + std::to_string(n) + " runs past the end");
    std::string_view v = s_.substr(pos_, size_t(n));
    pos_ += size_t(n);
    return v;
  }
  float fixed32_float() {
    if (s_.size() - pos_ < 4) bad("truncated float");
    float f;
    std::memcpy(&f, s_.data() + pos_, 4);
    pos_ += 4;
    return f;
  }
  void skip(int wire_type) {
    switch (wire_type) {
      case 0: varint(); return;
      case 1: advance(8); return;
      case 2: bytes(); return;
      case 5: advance(4); return;
      default: bad("unsupported wire type " + std::to_string(wire_type));
    }
  }
  // The absolute offset of the next byte, for nested messages' error messages.
  size_t offset() const { return base_ + pos_; }
  [[noreturn]] void bad(const std::string& what) const {
    fail(where_, "malformed protobuf at byte " + std::to_string(base_ + pos_) + ": " + what,
         "not a SentencePiece .model file, or a damaged one");
  }
  void expect(int wire_type, int want, const char* field) const {
    if (wire_type != want) bad(std::string("field ") + field + " has wire type " + std::to_string(wire_type));
  }

 private:
  void advance(size_t n) {
    if (s_.size() - pos_ < n) bad("truncated fixed-size field");
    pos_ += n;
  }
  std::string_view s_;
  std::string where_;
  size_t base_;
  size_t pos_ = 0;
};

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, "cannot open", "check the path");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Nested message at the reader's position: a sub-reader with absolute offsets.
Wire sub(Wire& w, const std::string& where) {
  std::string_view b = w.bytes();
  return Wire(b, where, w.offset() - b.size());
}

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(const std::string& path, const std::string& bytes) : path_(path) {
    vocab_ = parse_sentencepiece_model(bytes, path, &info_);
    auto st = sp_.LoadFromSerializedProto(bytes);
    if (!st.ok()) fail(path, std::string("libsentencepiece refused the model: ") + st.ToString(), "not a SentencePiece .model file");
    if (sp_.GetPieceSize() != int(vocab_.pieces.size()))
      fail(path, "libsentencepiece sees " + std::to_string(sp_.GetPieceSize()) + " pieces, the file lists " +
                     std::to_string(vocab_.pieces.size()));
  }

  std::vector<int32_t> encode(std::string_view text, bool add_bos) const override {
    std::vector<int> ids;
    auto st = sp_.Encode(text, &ids);
    if (!st.ok()) fail(path_, std::string("SentencePiece encode failed: ") + st.ToString());
    std::vector<int32_t> out;
    out.reserve(ids.size() + 1);
    if (add_bos && bos_id() >= 0) out.push_back(bos_id());
    out.insert(out.end(), ids.begin(), ids.end());
    return out;
  }

  std::string decode_token(int32_t id, int32_t prev) const override {
    if (id < 0 || id >= n_vocab())
      fail(path_, "token id " + std::to_string(id) + " outside the vocab of " + std::to_string(n_vocab()));
    // SentencePiece drops the dummy-prefix space of the first piece it decodes.
    bool drop = (info_.add_dummy_prefix || info_.remove_extra_whitespaces) && (prev < 0 || prev == bos_id());
    return spm_piece_text(vocab_.pieces[size_t(id)], vocab_.types[size_t(id)], drop);
  }

  int32_t n_vocab() const override { return sp_.GetPieceSize(); }
  int32_t bos_id() const override { return sp_.bos_id(); }
  int32_t eos_id() const override { return sp_.eos_id(); }
  std::string kind() const override { return "sentencepiece"; }

 private:
  std::string path_;
  sentencepiece::SentencePieceProcessor sp_;
  SpmVocab vocab_;
  SentencePieceModelInfo info_;
};

}  // namespace

SpmVocab parse_sentencepiece_model(std::string_view bytes, const std::string& where, SentencePieceModelInfo* info_out) {
  SpmVocab v;
  SentencePieceModelInfo info;
  int32_t unk = 0, bos = 1, eos = 2;  // proto defaults
  Wire w(bytes, where);
  while (!w.done()) {
    int wt = 0;
    uint32_t field = w.tag(wt);
    if (field == 1) {  // SentencePiece
      w.expect(wt, 2, "pieces");
      const std::string at = where + ": pieces[" + std::to_string(v.pieces.size()) + "]";
      Wire p = sub(w, at);
      std::string piece;
      float score = 0;
      int32_t type = kTokNormal;
      while (!p.done()) {
        int pwt = 0;
        uint32_t pf = p.tag(pwt);
        if (pf == 1) p.expect(pwt, 2, "piece"), piece = std::string(p.bytes());
        else if (pf == 2) p.expect(pwt, 5, "score"), score = p.fixed32_float();
        else if (pf == 3) p.expect(pwt, 0, "type"), type = int32_t(p.varint());
        else p.skip(pwt);
      }
      if (type < kTokNormal || type > kTokByte) fail(at + ".type", "unknown piece type " + std::to_string(type));
      v.pieces.push_back(std::move(piece));
      v.scores.push_back(score);
      v.types.push_back(type);
    } else if (field == 2) {  // TrainerSpec
      w.expect(wt, 2, "trainer_spec");
      Wire t = sub(w, where + ": trainer_spec");
      while (!t.done()) {
        int twt = 0;
        uint32_t tf = t.tag(twt);
        if (twt != 0) { t.skip(twt); continue; }
        uint64_t x = t.varint();
        if (tf == 3) info.model_type = int32_t(x);
        else if (tf == 24) info.treat_whitespace_as_suffix = x != 0;
        else if (tf == 35) info.byte_fallback = x != 0;
        else if (tf == 40) unk = int32_t(x);  // int32 -1 is sent as a 10-byte varint; the cast recovers it
        else if (tf == 41) bos = int32_t(x);
        else if (tf == 42) eos = int32_t(x);
      }
    } else if (field == 3) {  // NormalizerSpec
      w.expect(wt, 2, "normalizer_spec");
      Wire n = sub(w, where + ": normalizer_spec");
      while (!n.done()) {
        int nwt = 0;
        uint32_t nf = n.tag(nwt);
        if (nf == 1 && nwt == 2) info.normalizer_name = std::string(n.bytes());
        else if (nf == 2 && nwt == 2) info.has_charsmap = !n.bytes().empty();
        else if (nf == 3 && nwt == 0) info.add_dummy_prefix = n.varint() != 0;
        else if (nf == 4 && nwt == 0) info.remove_extra_whitespaces = n.varint() != 0;
        else if (nf == 5 && nwt == 0) info.escape_whitespaces = n.varint() != 0;
        else n.skip(nwt);
      }
    } else {
      w.skip(wt);
    }
  }
  if (v.pieces.empty()) fail(where, "no pieces", "not a SentencePiece .model file");
  const int32_t n = int32_t(v.pieces.size());
  auto check = [&](int32_t id, const char* name) {
    if (id >= n) fail(where + ": trainer_spec." + name, std::to_string(id) + " is outside the " + std::to_string(n) + " pieces");
    return id < 0 ? -1 : id;
  };
  v.unk_id = check(unk, "unk_id");
  v.bos_id = check(bos, "bos_id");
  v.eos_id = check(eos, "eos_id");
  v.add_space_prefix = info.add_dummy_prefix;
  if (info_out) *info_out = info;
  return v;
}

SpmVocab read_sentencepiece_vocab(const std::string& path, SentencePieceModelInfo* info) {
  return parse_sentencepiece_model(read_file(path), path, info);
}

std::string spm_bpe_incompatibility(const SentencePieceModelInfo& info) {
  if (info.model_type != 2) return "model type " + std::to_string(info.model_type) + " is not BPE (2)";
  if (info.has_charsmap) return "normalizer '" + info.normalizer_name + "' rewrites text (only identity is reproduced)";
  if (info.remove_extra_whitespaces) return "remove_extra_whitespaces is set";
  if (!info.escape_whitespaces) return "escape_whitespaces is off";
  if (info.treat_whitespace_as_suffix) return "treat_whitespace_as_suffix is set";
  return "";
}

std::unique_ptr<Tokenizer> open_sentencepiece(const std::string& path) {
  return std::make_unique<SentencePieceTokenizer>(path, read_file(path));
}

}  // namespace lowbit
