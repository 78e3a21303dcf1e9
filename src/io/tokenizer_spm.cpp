// Score-based BPE over SentencePiece pieces, following SentencePiece's BPE
// model (bpe_model.cc + the identity normalizer) step for step:
//
//   normalize  ' ' -> "▁"; "▁" prepended once when add_space_prefix (non-empty
//              text only); invalid UTF-8 -> U+FFFD, one byte at a time.
//   split      into UTF-8 characters; a user-defined piece found at a position
//              (longest first) becomes one frozen symbol that never merges.
//   merge      repeatedly merge the adjacent pair whose concatenation is a
//              normal / user-defined / unused piece with the highest score,
//              leftmost on ties. Control, unknown and byte pieces never form.
//   resegment  an unused piece is split back into the two symbols it was made
//              of (as SentencePiece remembers them).
//   map        pieces not in the vocab -> <0xXX> byte tokens (when the vocab has
//              them), else one unk per run of unknown pieces.
//
// llama2.c vocabs are read here too and normalised to the same conventions.
#include <algorithm>
#include <array>
#include <cstring>
#include <fstream>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "io/tokenizer_spm.h"
#include "lowbit/error.h"

namespace lowbit {
namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // "▁" U+2581
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

struct StrHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// Length of the valid UTF-8 character at s[i] (SentencePiece's DecodeUTF8
// rules: no overlongs, no surrogates, <= U+10FFFF), or 0 when invalid.
size_t valid_utf8_len(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  auto trail = [&](size_t k) { return (b(k) & 0xC0) == 0x80; };
  const size_t left = s.size() - i;
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  uint32_t cp;
  if ((c & 0xE0) == 0xC0 && left >= 2 && trail(1)) {
    cp = ((c & 0x1Fu) << 6) | (b(1) & 0x3Fu);
    return cp >= 0x80 ? 2 : 0;
  }
  if ((c & 0xF0) == 0xE0 && left >= 3 && trail(1) && trail(2)) {
    cp = ((c & 0x0Fu) << 12) | ((b(1) & 0x3Fu) << 6) | (b(2) & 0x3Fu);
    return cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF) ? 3 : 0;
  }
  if ((c & 0xF8) == 0xF0 && left >= 4 && trail(1) && trail(2) && trail(3)) {
    cp = ((c & 0x07u) << 18) | ((b(1) & 0x3Fu) << 12) | ((b(2) & 0x3Fu) << 6) | (b(3) & 0x3Fu);
    return cp >= 0x10000 && cp <= 0x10FFFF ? 4 : 0;
  }
  return 0;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// "<0xAB>" -> 0xAB, else -1.
int parse_byte_piece(std::string_view p) {
  if (p.size() != 6 || p.substr(0, 3) != "<0x" || p[5] != '>') return -1;
  int hi = hex_digit(p[3]), lo = hex_digit(p[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

class SpmTokenizer final : public Tokenizer {
 public:
  explicit SpmTokenizer(SpmVocab v) : v_(std::move(v)) {
    const size_t n = v_.pieces.size();
    if (n == 0) fail("SPM vocab", "no pieces");
    if (v_.scores.size() != n)
      fail("SPM vocab", std::to_string(v_.scores.size()) + " scores for " + std::to_string(n) + " pieces");
    if (!v_.types.empty() && v_.types.size() != n)
      fail("SPM vocab", std::to_string(v_.types.size()) + " types for " + std::to_string(n) + " pieces");
    if (v_.types.empty()) {  // infer: <0xXX> byte, <s> </s> control, <unk> unknown
      v_.types.resize(n, kTokNormal);
      for (size_t i = 0; i < n; ++i) {
        const std::string& p = v_.pieces[i];
        if (parse_byte_piece(p) >= 0) v_.types[i] = kTokByte;
        else if (p == "<s>" || p == "</s>") v_.types[i] = kTokControl;
        else if (p == "<unk>") v_.types[i] = kTokUnknown;
      }
    }
    for (int32_t* id : {&v_.bos_id, &v_.eos_id, &v_.unk_id})
      if (*id >= int32_t(n)) fail("SPM vocab", "special id " + std::to_string(*id) + " outside the vocab of " + std::to_string(n));

    byte_ids_.fill(-1);
    for (size_t i = 0; i < n; ++i) {
      const std::string& p = v_.pieces[i];
      ids_.emplace(p, int32_t(i));  // first wins on duplicates
      if (v_.types[i] == kTokByte) {
        int b = parse_byte_piece(p);
        if (b < 0) fail("SPM vocab", "piece " + std::to_string(i) + " '" + p + "' has type byte but is not <0xXX>");
        if (byte_ids_[size_t(b)] < 0) byte_ids_[size_t(b)] = int32_t(i);
        has_bytes_ = true;
      }
      if (v_.types[i] == kTokUserDefined && !p.empty()) {
        user_defined_.emplace(p);
      }
    }
    // Can a merge join "x" and "▁y" (x not "▁")? Only if some mergeable piece has
    // "▁" right after another character; vocabs trained with split_by_whitespace
    // (the default; Llama 2) have none. Unused pieces are resegmented with the
    // whole-text merge history, so a vocab with any keeps the whole-text loop.
    words_independent_ = true;
    for (size_t i = 0; i < n && words_independent_; ++i) {
      if (v_.types[i] == kTokUnused) words_independent_ = false;
      if (!mergeable(int32_t(i))) continue;
      const std::string& p = v_.pieces[i];
      for (size_t at = p.find(kSpace, 1); at != std::string::npos; at = p.find(kSpace, at + 1))
        if (at < kSpace.size() || p.compare(at - kSpace.size(), kSpace.size(), kSpace) != 0) words_independent_ = false;
    }
    for (const std::string& p : user_defined_) user_lens_.push_back(p.size());
    std::sort(user_lens_.begin(), user_lens_.end(), std::greater<>());
    user_lens_.erase(std::unique(user_lens_.begin(), user_lens_.end()), user_lens_.end());
    // Every byte must map to some id: its <0xXX> token, else the unknown token.
    if (v_.unk_id < 0 || v_.unk_id >= int32_t(n))
      for (int c = 0; c < 256; ++c)
        if (byte_ids_[c] < 0)
          fail("SPM vocab", fmt::format("no byte token <0x{:02X}> and no valid unknown token (unk id {})", c, v_.unk_id),
               "the vocab cannot encode every byte");
  }

  std::vector<int32_t> encode(std::string_view text, bool add_bos) const override;

  std::string decode_token(int32_t id, int32_t prev) const override {
    if (id < 0 || id >= n_vocab())
      fail("decode", "token id " + std::to_string(id) + " outside the vocab of " + std::to_string(n_vocab()));
    bool drop = v_.add_space_prefix && (prev < 0 || prev == v_.bos_id);
    return spm_piece_text(v_.pieces[size_t(id)], v_.types[size_t(id)], drop);
  }

  int32_t n_vocab() const override { return int32_t(v_.pieces.size()); }
  int32_t bos_id() const override { return v_.bos_id; }
  int32_t eos_id() const override { return v_.eos_id; }
  std::string kind() const override { return "spm-bpe"; }

 private:
  int32_t find(std::string_view piece) const {
    auto it = ids_.find(piece);
    return it == ids_.end() ? -1 : it->second;
  }
  bool mergeable(int32_t id) const {
    int32_t t = v_.types[size_t(id)];
    return t == kTokNormal || t == kTokUserDefined || t == kTokUnused;
  }
  // Length of the longest user-defined piece at s[i], 0 when none.
  size_t user_defined_at(std::string_view s, size_t i) const {
    for (size_t len : user_lens_)
      if (len <= s.size() - i && user_defined_.contains(s.substr(i, len))) return len;
    return 0;
  }

  SpmVocab v_;
  std::unordered_map<std::string, int32_t, StrHash, std::equal_to<>> ids_;  // every piece
  std::array<int32_t, 256> byte_ids_{};
  bool has_bytes_ = false;
  bool words_independent_ = false;  // merges never cross the start of a "▁" run (see encode)
  std::unordered_set<std::string, StrHash, std::equal_to<>> user_defined_;
  std::vector<size_t> user_lens_;  // distinct lengths of user-defined pieces, longest first
};

std::vector<int32_t> SpmTokenizer::encode(std::string_view text, bool add_bos) const {
  std::vector<int32_t> out;
  if (add_bos && v_.bos_id >= 0) out.push_back(v_.bos_id);
  if (text.empty()) return out;

  // 1. Normalize.
  std::string norm;
  norm.reserve(text.size() + text.size() / 4 + 3);
  if (v_.add_space_prefix) norm += kSpace;
  for (size_t i = 0; i < text.size();) {
    size_t len = valid_utf8_len(text, i);
    if (len == 0) {
      norm += kReplacement;
      i += 1;
    } else if (text[i] == ' ') {
      norm += kSpace;
      i += 1;
    } else {
      norm.append(text, i, len);
      i += len;
    }
  }

  // 2. Split into characters (user-defined pieces whole and frozen).
  struct Sym {
    uint32_t off, len;  // span of `norm`; len 0 once merged into its left neighbour
    int prev, next;
    bool frozen;
  };
  std::vector<Sym> sym;
  sym.reserve(norm.size());
  for (size_t i = 0; i < norm.size();) {
    size_t len = user_lens_.empty() ? 0 : user_defined_at(norm, i);
    bool frozen = len > 0;
    if (!frozen) len = std::max<size_t>(1, valid_utf8_len(norm, i));
    int k = int(sym.size());
    sym.push_back({uint32_t(i), uint32_t(len), k - 1, -1, frozen});
    if (k > 0) sym[size_t(k - 1)].next = k;
    i += len;
  }

  // 3. Merge by score. Queue entries go stale when either side changes; a
  //    symbol only grows or empties, so an unchanged total size means unchanged.
  struct Pair {
    float score;
    int left, right;
    uint32_t size;
    bool operator<(const Pair& o) const {  // top = highest score, then leftmost
      return score != o.score ? score < o.score : left > o.left;
    }
  };
  std::vector<Pair> agenda;  // a max-heap (std::push_heap / pop_heap)
  std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>> rev_merge;  // unused pieces
  auto span = [&](const Sym& s) { return std::string_view(norm).substr(s.off, s.len); };
  auto maybe_add = [&](int l, int r) {
    if (l < 0 || r < 0 || sym[size_t(l)].frozen || sym[size_t(r)].frozen) return;
    std::string_view piece(norm.data() + sym[size_t(l)].off, sym[size_t(l)].len + sym[size_t(r)].len);
    int32_t id = find(piece);
    if (id < 0 || !mergeable(id)) return;
    agenda.push_back({v_.scores[size_t(id)], l, r, uint32_t(piece.size())});
    std::push_heap(agenda.begin(), agenda.end());
    if (v_.types[size_t(id)] == kTokUnused) rev_merge[piece] = {span(sym[size_t(l)]), span(sym[size_t(r)])};
  };
  // When no piece has "▁" after another character (words_independent_), no
  // merge can cross the boundary in front of a word's "▁": each word is merged
  // on its own, which gives the same result with a small, cache-resident heap,
  // and a word seen before is not merged again (its result depends only on its
  // text: user-defined symbols never cross the boundary either).
  auto is_space = [&](const Sym& s) { return s.len == kSpace.size() && norm.compare(s.off, s.len, kSpace) == 0; };
  auto word_start = [&](size_t i) {  // i > 0; symbols are still single characters here
    return words_independent_ && norm.compare(sym[i].off, kSpace.size(), kSpace) == 0 && !is_space(sym[i - 1]);
  };
  std::unordered_map<std::string_view, std::pair<uint32_t, uint32_t>> seen;  // word -> [first, count) in seen_lens
  std::vector<uint32_t> seen_lens;
  for (size_t begin = 0; begin < sym.size();) {
    size_t end = begin + 1;
    while (end < sym.size() && !word_start(end)) ++end;
    const uint32_t word_off = sym[begin].off, word_len = sym[end - 1].off + sym[end - 1].len - word_off;
    std::string_view word(norm.data() + word_off, word_len);
    if (auto it = words_independent_ ? seen.find(word) : seen.end(); it != seen.end()) {
      // Replay the merged lengths: symbol i covers characters [i, j); inner ones empty.
      size_t i = begin;
      for (uint32_t k = 0; k < it->second.second; ++k) {
        const uint32_t len = seen_lens[it->second.first + k], stop = sym[i].off + len;
        size_t j = i + 1;
        for (; j < end && sym[j].off < stop; ++j) sym[j].len = 0;
        sym[i].len = len;
        sym[i].next = j < sym.size() ? int(j) : -1;
        if (j < sym.size()) sym[j].prev = int(i);
        i = j;
      }
      begin = end;
      continue;
    }
    for (size_t i = begin + 1; i < end; ++i) maybe_add(int(i - 1), int(i));
    while (!agenda.empty()) {
      std::pop_heap(agenda.begin(), agenda.end());
      Pair p = agenda.back();
      agenda.pop_back();
      Sym& l = sym[size_t(p.left)];
      Sym& r = sym[size_t(p.right)];
      if (l.len == 0 || r.len == 0 || l.len + r.len != p.size) continue;
      l.len += r.len;
      r.len = 0;
      l.next = r.next;
      if (r.next >= 0) sym[size_t(r.next)].prev = p.left;
      maybe_add(l.prev, p.left);
      maybe_add(p.left, l.next);
    }
    if (words_independent_) {
      auto& entry = seen[word];
      entry.first = uint32_t(seen_lens.size());
      for (int i = int(begin); i >= 0 && size_t(i) < end; i = sym[size_t(i)].next) seen_lens.push_back(sym[size_t(i)].len);
      entry.second = uint32_t(seen_lens.size()) - entry.first;
    }
    begin = end;
  }

  // 4. Resegment unused pieces, then map to ids with byte fallback.
  bool prev_unk = false;
  auto emit = [&](std::string_view piece) {
    int32_t id = find(piece);
    if (id < 0) id = v_.unk_id;
    bool is_unk = id < 0 || v_.types[size_t(id)] == kTokUnknown;
    if (is_unk && has_bytes_) {
      for (unsigned char c : piece) out.push_back(byte_ids_[c] >= 0 ? byte_ids_[c] : v_.unk_id);
    } else if (!(is_unk && prev_unk)) {  // a run of unknown pieces becomes one unk
      out.push_back(id);
    }
    prev_unk = is_unk;
  };
  auto resegment = [&](auto&& self, std::string_view piece) -> void {
    int32_t id = find(piece);
    auto it = id >= 0 && v_.types[size_t(id)] == kTokUnused ? rev_merge.find(piece) : rev_merge.end();
    if (it == rev_merge.end()) return emit(piece);
    self(self, it->second.first);
    self(self, it->second.second);
  };
  for (int i = 0; i >= 0; i = sym[size_t(i)].next) resegment(resegment, span(sym[size_t(i)]));
  return out;
}

}  // namespace

std::string spm_piece_text(const std::string& piece, int32_t type, bool drop_leading_space) {
  if (type == kTokControl) return "";
  if (type == kTokUnknown) return " \xE2\x81\x87 ";  // SentencePiece's unk surface " ⁇ "
  if (type == kTokByte) {
    int b = parse_byte_piece(piece);
    if (b >= 0) return std::string(1, char(b));
  }
  std::string out;
  out.reserve(piece.size());
  size_t i = 0;
  if (drop_leading_space && piece.compare(0, kSpace.size(), kSpace) == 0) i = kSpace.size();
  for (; i < piece.size();) {
    if (piece.compare(i, kSpace.size(), kSpace) == 0) {
      out += ' ';
      i += kSpace.size();
    } else {
      out += piece[i++];
    }
  }
  return out;
}

std::unique_ptr<Tokenizer> make_spm_tokenizer(SpmVocab vocab) { return std::make_unique<SpmTokenizer>(std::move(vocab)); }

// llama2.c's exporter wrote SentencePiece pieces with "▁" replaced by ' ' and
// BOS/EOS as "\n<s>\n" / "\n</s>\n"; undo both so the pieces read as in the
// .model file (and as llama.cpp's converter writes them into GGUF).
SpmVocab read_llama2c_vocab(const std::string& path, int n_vocab) {
  if (n_vocab <= 0) fail(path, "vocab size " + std::to_string(n_vocab) + " is not positive", "pass the model's vocab size");
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, "cannot open", "check the path");
  auto read = [&](void* dst, size_t n, const std::string& what) {
    if (!f.read(static_cast<char*>(dst), std::streamsize(n))) fail(path, "truncated while reading " + what, "the file is cut short or not a llama2.c tokenizer");
  };
  int32_t max_len = 0;
  read(&max_len, 4, "max_token_length");
  if (max_len <= 0 || max_len > 4096)
    fail(path, "max_token_length " + std::to_string(max_len) + " is not in [1, 4096]", "not a llama2.c tokenizer .bin");
  SpmVocab v;
  v.pieces.resize(size_t(n_vocab));
  v.scores.resize(size_t(n_vocab));
  v.types.assign(size_t(n_vocab), kTokNormal);
  for (int i = 0; i < n_vocab; ++i) {
    const std::string tok = "token " + std::to_string(i);
    int32_t len = 0;
    read(&v.scores[size_t(i)], 4, tok + " score");
    read(&len, 4, tok + " length");
    if (len < 0 || len > max_len)
      fail(path, tok + ": length " + std::to_string(len) + " is outside [0, max_token_length " + std::to_string(max_len) + "]",
           "the file is corrupt or --vocab does not match it");
    std::string p(size_t(len), '\0');
    read(p.data(), size_t(len), tok + " bytes");
    std::string norm;
    for (char c : p) {
      if (c == ' ') norm += kSpace;
      else norm += c;
    }
    v.pieces[size_t(i)] = norm;
  }
  if (f.peek() != std::char_traits<char>::eof())
    fail(path, "data left after " + std::to_string(n_vocab) + " tokens", "the model's vocab size does not match this tokenizer");
  for (int i = 0; i < n_vocab; ++i) {
    std::string& p = v.pieces[size_t(i)];
    if (p == "\n<s>\n" || p == "<s>") p = "<s>", v.types[size_t(i)] = kTokControl;
    else if (p == "\n</s>\n" || p == "</s>") p = "</s>", v.types[size_t(i)] = kTokControl;
    else if (p == "<unk>") v.types[size_t(i)] = kTokUnknown;
    else if (parse_byte_piece(p) >= 0) v.types[size_t(i)] = kTokByte;
  }
  v.unk_id = 0, v.bos_id = 1, v.eos_id = 2;  // llama2.c's fixed ids
  return v;
}

}  // namespace lowbit
