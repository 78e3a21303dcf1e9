// Tokenizers against references:
//  - SPM BPE (make_spm_tokenizer) vs libsentencepiece itself on the Llama-2
//    tokenizer.model: a table of varied strings and 20 KB of TinyStories must
//    give identical ids, also with pieces retyped to user-defined / unused /
//    control in the model (so SentencePiece's handling of those is checked too).
//  - llama2.c tok512.bin: pieces/scores/types equal those llama.cpp's converter
//    wrote into stories260K-f32.gguf; encodings derived independently.
//  - GPT-2 byte-level BPE: ids derived independently of lowbit (see GPT-2 test).
//  - Llama-3 / Qwen2 / GPT-2 pre-tokenizer regex splits, hand-derived.
//  - HF tokenizer.json parsing on small files written here; error paths.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sentencepiece_processor.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "io/tokenizer.h"
#include "io/tokenizer_bpe.h"
#include "io/tokenizer_spm.h"
#include "lowbit/error.h"
#include "paths.h"

namespace lowbit {
namespace {

using Ids = std::vector<int32_t>;

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string write_temp(const std::string& name, const std::string& bytes) {
  auto dir = std::filesystem::path(test::temp_dir()) / std::to_string(std::hash<std::string>{}(name + bytes));
  std::filesystem::create_directories(dir);
  auto p = (dir / name).string();
  std::ofstream(p, std::ios::binary) << bytes;
  return p;
}

// Runs f, expects a lowbit::Error whose message contains every one of `parts`.
template <class F>
void expect_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no lowbit::Error thrown";
  } catch (const Error& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << "\n  lacks: " << p;
  }
}

// ---------------------------------------------------------------- SentencePiece reference

const std::vector<std::string>& spm_cases() {
  static const std::vector<std::string> cases = {
      "",
      " ",
      "  ",
      "Hello world",
      " Hello world",
      "Hello world ",
      "Hello  world",
      "   multiple   spaces   ",
      "\n",
      "line1\nline2\n\n",
      "\ttab\tseparated\t",
      "\r\n windows line end",
      "1234567890 0.5 -42 1e10",
      "3.14159 and 2,718",
      "Hello, world! How's it going? (fine) [ok] {x} <y>",
      "<s> and </s> and <unk> are just text",
      "café résumé naïve façade",
      "ÜNÏCÖDÉ ÀÉÎÕÜ ß",
      "日本語のテキストです。",
      "中文测试，标点符号！",
      "한국어 텍스트",
      "Привет, мир!",
      "مرحبا بالعالم",
      "emoji 🙂🚀 and a family 👩‍👩‍👧 ✨",
      "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 mathematical letters",
      std::string("\x01\x02 control chars \x7f and NUL \0 inside", 35),
      "invalid \xff\xfe utf8 \xc3 and overlong \xc0\xaf and surrogate \xed\xa0\x80",
      "ab\xE2\x96\x81" "cd has a literal U+2581",
      "Once upon a time, there was a little girl named Lily. She loved to play outside.",
      std::string(300, 'a') + " " + std::string(50, '!'),
      "the theme of the thesis: thereafter, then, there, their, them",
  };
  return cases;
}

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    unsigned char c = s[i];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    if ((c == 0xC0 || c == 0xC1) || (c == 0xED && static_cast<unsigned char>(s[i + 1]) >= 0xA0)) return false;
    i += n;
  }
  return true;
}

// The vocab as libsentencepiece's API reports it (the API has no user-defined
// query; `user_defined` lists ids known to be of that type).
SpmVocab vocab_from_api(const sentencepiece::SentencePieceProcessor& sp, bool add_dummy_prefix,
                        const std::vector<int>& user_defined = {}) {
  SpmVocab v;
  for (int i = 0; i < sp.GetPieceSize(); ++i) {
    v.pieces.push_back(sp.IdToPiece(i));
    v.scores.push_back(sp.GetScore(i));
    int32_t t = kTokNormal;
    if (sp.IsControl(i)) t = kTokControl;
    else if (sp.IsUnknown(i)) t = kTokUnknown;
    else if (sp.IsByte(i)) t = kTokByte;
    else if (sp.IsUnused(i)) t = kTokUnused;
    v.types.push_back(t);
  }
  for (int id : user_defined) v.types[size_t(id)] = kTokUserDefined;
  v.bos_id = sp.bos_id();
  v.eos_id = sp.eos_id();
  v.unk_id = sp.unk_id();
  v.add_space_prefix = add_dummy_prefix;
  return v;
}

Ids sp_encode(const sentencepiece::SentencePieceProcessor& sp, const std::string& s) {
  std::vector<int> ids;
  EXPECT_TRUE(sp.Encode(s, &ids).ok());
  return Ids(ids.begin(), ids.end());
}

class Llama2Spm : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = test::shared("tokenizers/llama2/tokenizer.model");
    ASSERT_TRUE(sp_.Load(path_).ok());
  }
  std::string path_;
  sentencepiece::SentencePieceProcessor sp_;
};

TEST_F(Llama2Spm, ModelSettingsAreWhatMakeSpmReproduces) {
  // Llama-2's tokenizer.model: BPE, byte fallback, identity normalizer (no
  // precompiled map, so no NFKC), dummy prefix on, extra whitespace kept.
  SentencePieceModelInfo info;
  SpmVocab v = read_sentencepiece_vocab(path_, &info);
  EXPECT_EQ(info.model_type, 2);
  EXPECT_TRUE(info.byte_fallback);
  EXPECT_EQ(info.normalizer_name, "identity");
  EXPECT_FALSE(info.has_charsmap);
  EXPECT_TRUE(info.add_dummy_prefix);
  EXPECT_FALSE(info.remove_extra_whitespaces);
  EXPECT_TRUE(info.escape_whitespaces);
  EXPECT_EQ(spm_bpe_incompatibility(info), "");
  // The file reader agrees with the library's API piece by piece.
  SpmVocab api = vocab_from_api(sp_, true);
  ASSERT_EQ(v.pieces.size(), 32000u);
  EXPECT_EQ(v.pieces, api.pieces);
  EXPECT_EQ(v.scores, api.scores);
  EXPECT_EQ(v.types, api.types);
  EXPECT_EQ(v.bos_id, 1);
  EXPECT_EQ(v.eos_id, 2);
  EXPECT_EQ(v.unk_id, 0);
}

TEST_F(Llama2Spm, EncodeMatchesSentencePiece) {
  auto tok = make_spm_tokenizer(vocab_from_api(sp_, true));
  auto lib = open_sentencepiece(path_);
  EXPECT_EQ(tok->kind(), "spm-bpe");
  EXPECT_EQ(lib->kind(), "sentencepiece");
  for (const std::string& s : spm_cases()) {
    Ids ref = sp_encode(sp_, s);
    EXPECT_EQ(tok->encode(s, false), ref) << "text: " << s;
    EXPECT_EQ(lib->encode(s, false), ref) << "text: " << s;
    Ids with_bos = ref;
    with_bos.insert(with_bos.begin(), 1);
    EXPECT_EQ(tok->encode(s, true), with_bos) << "text: " << s;
    // Decoding: SentencePiece's own DecodeIds (it drops the dummy-prefix space).
    // Invalid UTF-8 is skipped: SentencePiece decodes stray bytes to U+FFFD, lowbit keeps the bytes.
    if (!valid_utf8(s)) continue;
    std::string ref_text;
    ASSERT_TRUE(sp_.Decode(std::vector<int>(ref.begin(), ref.end()), &ref_text).ok());
    EXPECT_EQ(tok->decode(ref), ref_text) << "text: " << s;
    EXPECT_EQ(tok->decode(with_bos), ref_text) << "text: " << s;
    EXPECT_EQ(lib->decode(with_bos), ref_text) << "text: " << s;
  }
}

TEST_F(Llama2Spm, TinyStoriesSampleMatchesSentencePiece) {
  std::string text = read_all(test::shared("text/tinystories_val.txt"));
  ASSERT_GT(text.size(), 20000u);
  text.resize(20000);
  while (!text.empty() && (static_cast<unsigned char>(text.back()) & 0xC0) == 0x80) text.pop_back();  // whole chars
  if (!text.empty() && static_cast<unsigned char>(text.back()) >= 0xC0) text.pop_back();
  auto tok = make_spm_tokenizer(vocab_from_api(sp_, true));
  Ids ref = sp_encode(sp_, text);
  Ids got = tok->encode(text, false);
  EXPECT_GT(ref.size(), 4000u);
  EXPECT_EQ(got, ref);
  // Line by line too (each line gets its own dummy prefix).
  std::istringstream lines(text);
  std::string line;
  int n = 0;
  while (std::getline(lines, line) && n++ < 200) EXPECT_EQ(tok->encode(line, false), sp_encode(sp_, line)) << line;
}

// Protobuf varint, for rewriting the model below.
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) out += char(0x80 | (v & 0x7F)), v >>= 7;
  out += char(v);
}
uint64_t get_varint(const std::string& s, size_t& i) {
  uint64_t v = 0;
  for (int sh = 0;; sh += 7) {
    uint8_t b = uint8_t(s[i++]);
    v |= uint64_t(b & 0x7F) << sh;
    if (!(b & 0x80)) return v;
  }
}

// Copies a ModelProto, giving the pieces in `retype` new types and appending
// `extra` pieces (user-defined, score 0). Only the pieces field is rewritten.
std::string rewrite_model(const std::string& model, const std::map<std::string, int>& retype,
                          const std::vector<std::string>& extra) {
  auto piece_msg = [](const std::string& piece, float score, int type) {
    std::string m;
    m += char(0x0A), put_varint(m, piece.size()), m += piece;
    m += char(0x15), m.append(reinterpret_cast<const char*>(&score), 4);
    m += char(0x18), put_varint(m, uint64_t(type));
    std::string f(1, char(0x0A));
    put_varint(f, m.size());
    return f + m;
  };
  std::string out, pieces_out;
  size_t i = 0;
  while (i < model.size()) {
    size_t start = i;
    uint64_t tag = get_varint(model, i);
    if ((tag & 7) != 2) {  // only length-delimited fields occur at the top level
      ADD_FAILURE() << "unexpected wire type";
      return model;
    }
    uint64_t len = get_varint(model, i);
    std::string body = model.substr(i, len);
    i += len;
    if ((tag >> 3) != 1) {
      out += model.substr(start, i - start);
      continue;
    }
    // Parse the piece (fields 1 piece, 2 score, 3 type).
    std::string piece;
    float score = 0;
    int type = 1;
    for (size_t j = 0; j < body.size();) {
      uint64_t t = get_varint(body, j);
      if (t == 0x0A) {
        uint64_t n = get_varint(body, j);
        piece = body.substr(j, n);
        j += n;
      } else if (t == 0x15) {
        std::memcpy(&score, body.data() + j, 4);
        j += 4;
      } else if (t == 0x18) {
        type = int(get_varint(body, j));
      }
    }
    if (auto it = retype.find(piece); it != retype.end()) type = it->second;
    pieces_out += piece_msg(piece, score, type);
  }
  for (const auto& p : extra) pieces_out += piece_msg(p, 0.0f, 4);
  return pieces_out + out;  // pieces first, as SentencePiece writes them
}

TEST_F(Llama2Spm, UserDefinedUnusedAndControlPiecesMatchSentencePiece) {
  // Retype some pieces that the case table forms: unused pieces are merged and
  // then split back; control pieces never form; user-defined pieces are
  // matched whole in the text and never merged further.
  const std::string u = "\xE2\x96\x81";
  std::map<std::string, int> retype = {
      {u + "the", kTokUnused}, {"ing", kTokUnused}, {u + "world", kTokControl}, {u + "Hello", kTokUnused},
      {"ello", kTokUserDefined}, {u + "time", kTokUserDefined}, {"ere", kTokControl}};
  std::vector<std::string> extra = {"<tag>", "ab" + u + "cd", "🙂🚀"};
  std::string model = rewrite_model(read_all(path_), retype, extra);
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.LoadFromSerializedProto(model).ok());
  ASSERT_EQ(sp.GetPieceSize(), 32003);

  SpmVocab v = parse_sentencepiece_model(model, "rewritten model");
  std::vector<int> user;
  for (size_t i = 0; i < v.types.size(); ++i)
    if (v.types[i] == kTokUserDefined) user.push_back(int(i));
  EXPECT_EQ(user.size(), 5u);
  SpmVocab api = vocab_from_api(sp, true, user);
  EXPECT_EQ(v.types, api.types);  // the file reader sees the same types
  auto tok = make_spm_tokenizer(v);

  std::vector<std::string> cases = spm_cases();
  for (std::string s : {"Hello <tag>world", "<tag><tag> x<tag>", "Hello Hello hello Jello yellow", "the theme bathing",
                        "there where here", "once upon a time sometimes", "abcd ab cd ab\xE2\x96\x81" "cd"})
    cases.push_back(s);
  for (const std::string& s : cases) EXPECT_EQ(tok->encode(s, false), sp_encode(sp, s)) << "text: " << s;

  // Without unused pieces (and without "▁" inside a piece) lowbit merges word
  // by word and reuses repeated words; check that path with user-defined and
  // control pieces too, on the case table and 20 KB of TinyStories.
  std::map<std::string, int> retype2 = {{"ello", kTokUserDefined}, {u + "time", kTokUserDefined},
                                        {u + "world", kTokControl}, {"ere", kTokControl}, {u + "little", kTokUserDefined}};
  std::string model2 = rewrite_model(read_all(path_), retype2, {"<tag>", "🙂🚀"});
  sentencepiece::SentencePieceProcessor sp2;
  ASSERT_TRUE(sp2.LoadFromSerializedProto(model2).ok());
  auto tok2 = make_spm_tokenizer(parse_sentencepiece_model(model2, "rewritten model"));
  std::string story = read_all(test::shared("text/tinystories_val.txt")).substr(0, 20000);
  cases.push_back(story.substr(0, story.rfind('\n')));
  for (const std::string& s : cases) EXPECT_EQ(tok2->encode(s, false), sp_encode(sp2, s)) << "text: " << s;
}

TEST(SpmTokenizer, DecodeTokenRules) {
  SpmVocab v;
  v.pieces = {"<unk>", "<s>", "</s>", "<0x0A>", "\xE2\x96\x81" "hi", "\xE2\x96\x81", "a\xE2\x96\x81" "b"};
  v.scores = {0, 0, 0, 0, -1, -2, -3};
  auto tok = make_spm_tokenizer(v);  // types inferred
  EXPECT_EQ(tok->decode_token(1, -1), "");     // control
  EXPECT_EQ(tok->decode_token(2, 4), "");      // control
  EXPECT_EQ(tok->decode_token(3, 4), "\n");    // byte
  EXPECT_EQ(tok->decode_token(4, 1), "hi");    // after BOS: leading space dropped
  EXPECT_EQ(tok->decode_token(4, -1), "hi");   // at the start too (as SentencePiece's Decode)
  EXPECT_EQ(tok->decode_token(4, 4), " hi");
  EXPECT_EQ(tok->decode_token(6, 4), "a b");
  EXPECT_EQ(tok->decode_token(0, 4), " \xE2\x81\x87 ");  // unk surface
  expect_error([&] { tok->decode_token(7, 4); }, {"token id 7"});
  // The unknown-character path without byte tokens: a run of unknowns -> one unk.
  SpmVocab nb;
  nb.pieces = {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a"};
  nb.scores = {0, 0, 0, -1, -2};
  auto t2 = make_spm_tokenizer(nb);
  EXPECT_EQ(t2->encode("a\xC3\xA9\xC3\xA9" "a", false), (Ids{3, 4, 0, 4}));
  nb.unk_id = -1;
  expect_error([&] { make_spm_tokenizer(nb); }, {"byte token"});
}

// ---------------------------------------------------------------- llama2.c tok512.bin

// The three vocab arrays of a GGUF file (a minimal reader, independent of lowbit's GGUF code).
struct GgufVocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
};
GgufVocab read_gguf_vocab(const std::string& path) {
  std::string d = read_all(path);
  size_t o = 0;
  auto rd = [&](void* p, size_t n) { std::memcpy(p, d.data() + o, n), o += n; };
  auto u64 = [&] { uint64_t x; rd(&x, 8); return x; };
  auto u32 = [&] { uint32_t x; rd(&x, 4); return x; };
  auto str = [&] { uint64_t n = u64(); std::string s = d.substr(o, n); o += n; return s; };
  const size_t scalar[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
  GgufVocab v;
  o = 8;
  u64();
  uint64_t n_kv = u64();
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = str();
    uint32_t t = u32();
    if (t == 8) { str(); continue; }
    if (t != 9) { o += scalar[t]; continue; }
    uint32_t at = u32();
    uint64_t n = u64();
    for (uint64_t i = 0; i < n; ++i) {
      if (at == 8) {
        std::string s = str();
        if (key == "tokenizer.ggml.tokens") v.tokens.push_back(s);
      } else {
        const char* p = d.data() + o;
        if (key == "tokenizer.ggml.scores") { float f; std::memcpy(&f, p, 4); v.scores.push_back(f); }
        if (key == "tokenizer.ggml.token_type") { int32_t x; std::memcpy(&x, p, 4); v.types.push_back(x); }
        o += scalar[at];
      }
    }
  }
  return v;
}

TEST(Llama2cVocab, MatchesLlamaCppConverterOutput) {
  // llama.cpp's converter turned the same tok512 vocab into stories260K-f32.gguf:
  // "▁" for spaces, "<s>"/"</s>" without the exporter's newlines, GGUF token types.
  SpmVocab v = read_llama2c_vocab(test::shared("models/stories260K/tok512.bin"), 512);
  GgufVocab g = read_gguf_vocab(test::shared("models/stories260K/stories260K-f32.gguf"));
  ASSERT_EQ(g.tokens.size(), 512u);
  EXPECT_EQ(v.pieces, g.tokens);
  EXPECT_EQ(v.scores, g.scores);
  EXPECT_EQ(v.types, g.types);
  EXPECT_EQ(v.pieces[259], "\xE2\x96\x81t");
  EXPECT_EQ(v.pieces[1], "<s>");
}

TEST(Llama2cVocab, EncodeDecode) {
  auto tok = open_tokenizer(test::shared("models/stories260K/tok512.bin"), 512);
  EXPECT_EQ(tok->kind(), "spm-bpe");
  EXPECT_EQ(tok->n_vocab(), 512);
  // Derived by hand from the file's pieces and scores (and checked with a naive
  // O(n^2) score-merge loop in Python, llama2.c run.c style): "▁time" forms as
  // ▁t(-0) -> im(-29) -> ime(-110) -> ▁time(-119); ids 403 ▁Once, 407 ▁upon, 261 ▁a, 378 ▁time.
  EXPECT_EQ(tok->encode("Once upon a time", true), (Ids{1, 403, 407, 261, 378}));
  // ▁Lily 317, ▁saw 394, ▁a 261, ▁big 370, ',' 432, ▁r 352 + ed 266 (no "▁red" piece),
  // ▁b 268 + all 388 (no "▁ball"), '.' 426.
  EXPECT_EQ(tok->encode("Lily saw a big, red ball.", false), (Ids{317, 394, 261, 370, 432, 352, 266, 268, 388, 426}));
  // é (485) is a piece; 😀 is not: bytes F0 9F 98 80 -> ids byte+3.
  EXPECT_EQ(tok->encode("\xC3\xA9\xF0\x9F\x98\x80", false), (Ids{410, 485, 243, 162, 155, 131}));
  EXPECT_EQ(tok->decode({1, 403, 407, 261, 378}), "Once upon a time");
  EXPECT_EQ(tok->decode({410, 485, 243, 162, 155, 131}), "\xC3\xA9\xF0\x9F\x98\x80");
}

TEST(Llama2cVocab, BadFilesNameFileAndToken) {
  const std::string good = read_all(test::shared("models/stories260K/tok512.bin"));
  auto path = write_temp("tok512.bin", good.substr(0, good.size() - 3));
  expect_error([&] { read_llama2c_vocab(path, 512); }, {path, "truncated", "token 511"});
  std::string bad_len = good;
  int32_t huge = 1000;
  std::memcpy(bad_len.data() + 4 + 4, &huge, 4);  // token 0's length
  path = write_temp("tok512.bin", bad_len);
  expect_error([&] { read_llama2c_vocab(path, 512); }, {path, "token 0", "length 1000"});
  path = test::shared("models/stories260K/tok512.bin");
  expect_error([&] { read_llama2c_vocab(path, 511); }, {path, "511"});
  expect_error([&] { read_llama2c_vocab(path, 513); }, {path, "token 512"});
  expect_error([&] { open_tokenizer(path); }, {path, "vocab size"});
}

// ---------------------------------------------------------------- GPT-2

std::unique_ptr<Tokenizer> gpt2() {
  return open_tokenizer(test::shared("tokenizers/gpt2/vocab.json"));
}

TEST(Gpt2Bpe, KnownEncodings) {
  // How the expected ids were derived, independently of lowbit: with the
  // original GPT-2 encoder.py algorithm in Python (the `regex` module with
  // GPT-2's pattern, bytes_to_unicode, and the naive "merge the lowest-rank
  // pair of merges.txt until none applies" loop), then each token string
  // looked up in vocab.json by hand (e.g. "Hello" 15496, "Ġworld" 995,
  // "'s" 338, "Ġ" 220, "Ċ" 198, "ĉ" 197). Notes per case:
  //  - "a  b": \s+(?!\S) takes only the first space, so "a" "Ġ" "Ġb".
  //  - numbers: " ?\p{N}+" keeps "Ġ2024" whole; "Ġ1000000" merges to Ġ100 + 0000.
  //  - é is C3 A9 -> "Ã©" (2634); 日本語 is six bytes: æĹ ¥ æľ ¬ èª ŀ.
  //  - ❤️ = E2 9D A4 EF B8 8F; 🙂 = F0 9F 99 82 -> "ĠðŁĻĤ" (32485) with its space.
  //  - "STOP's": the contraction "'s" (338) is its own pre-token.
  struct Case {
    std::string text;
    Ids ids;
  };
  const std::vector<Case> cases = {
      {"Hello world", {15496, 995}},
      {"Hello, world!", {15496, 11, 995, 0}},
      {"It's a test. They'll say we've won't", {1026, 338, 257, 1332, 13, 1119, 1183, 910, 356, 1053, 1839, 470}},
      {"a  b", {64, 220, 275}},
      {"The year 2024 had 365 days and 1000000 seconds", {464, 614, 48609, 550, 21268, 1528, 290, 1802, 2388, 4201}},
      {"line1\nline2\n\nend", {1370, 16, 198, 1370, 17, 198, 198, 437}},
      {"caf\xC3\xA9 na\xC3\xAFve", {66, 1878, 2634, 41492}},
      {"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E", {33768, 98, 17312, 105, 45739, 252}},
      {"I \xE2\x9D\xA4\xEF\xB8\x8F \xF0\x9F\x99\x82 emoji", {40, 43074, 97, 37929, 32485, 44805}},
      {"  leading", {220, 3756}},
      {"trailing  ", {9535, 4386, 220, 220}},
      {"\ttab\t and spaces   ", {197, 8658, 197, 290, 9029, 220, 220, 220}},
      {"", {}},
      {" ", {220}},
      {"$100.50 + 3% = x", {3, 3064, 13, 1120, 1343, 513, 4, 796, 2124}},
      {"don't STOP's", {9099, 470, 44934, 338}},
      // <|endoftext|> (50256) is split out before pre-tokenization; "a" 64, "b" 65.
      {"a<|endoftext|>b", {64, 50256, 65}},
  };
  auto tok = gpt2();
  EXPECT_EQ(tok->kind(), "byte-bpe");
  EXPECT_EQ(tok->n_vocab(), 50257);
  EXPECT_EQ(tok->eos_id(), 50256);
  EXPECT_FALSE(tok->adds_bos());
  for (const Case& c : cases) {
    EXPECT_EQ(tok->encode(c.text, false), c.ids) << "text: " << c.text;
    EXPECT_EQ(tok->encode(c.text, true), c.ids) << "GPT-2 adds no BOS: " << c.text;
  }
}

TEST(Gpt2Bpe, DecodeInvertsEncode) {
  auto tok = gpt2();
  std::vector<std::string> texts = spm_cases();
  texts.push_back("Hello, world! It's 2024.\n\n\tIndented 🙂 日本語");
  std::string sample = read_all(test::shared("text/wiki.test.raw")).substr(0, 30000);
  texts.push_back(sample);
  for (const std::string& s : texts) EXPECT_EQ(tok->decode(tok->encode(s, false)), s) << "text: " << s;
  EXPECT_EQ(tok->decode_token(50256, -1), "");  // control token: no text
}

// ---------------------------------------------------------------- pre-tokenizers

TEST(PreTokenizer, SplitsAsTheReferenceRegexes) {
  // Hand-derived (and cross-checked with Python's `regex` module on the same patterns):
  //  - Llama 3 splits digits in groups of up to 3 (\p{N}{1,3}); Qwen2 one digit at
  //    a time (\p{N}); GPT-2 keeps a space-led number whole (" ?\p{N}+").
  //  - A space before digits is its own piece for Llama 3 / Qwen2 (\s+(?!\S) fails
  //    before a non-space, \s+ takes it).
  //  - (?i:'s|...) makes "'M" one piece for Llama 3 / Qwen2 but not GPT-2.
  //  - \s*[\r\n]+ takes "\n\n" and stops; the next space pair splits " " + " ok".
  //  - ` ?[^\s\p{L}\p{N}]+[\r\n]*` takes ";\r\n"; "[^\r\n\p{L}\p{N}]?\p{L}+" takes "\tdone".
  using P = PreTokenizer;
  struct Case {
    P pre;
    std::string text;
    std::vector<std::string> pieces;
  };
  const std::vector<Case> cases = {
      {P::GPT2, "Hello world 12345 and 1234567!", {"Hello", " world", " 12345", " and", " 1234567", "!"}},
      {P::Llama3, "Hello world 12345 and 1234567!", {"Hello", " world", " ", "123", "45", " and", " ", "123", "456", "7", "!"}},
      {P::Qwen2, "Hello world 12345 and 1234567!",
       {"Hello", " world", " ", "1", "2", "3", "4", "5", " and", " ", "1", "2", "3", "4", "5", "6", "7", "!"}},
      {P::GPT2, "I'M here\n\n  ok", {"I", "'", "M", " here", "\n\n ", " ok"}},
      {P::Llama3, "I'M here\n\n  ok", {"I", "'M", " here", "\n\n", " ", " ok"}},
      {P::Qwen2, "I'M here\n\n  ok", {"I", "'M", " here", "\n\n", " ", " ok"}},
      {P::Llama3, "...hello .world", {"...", "hello", " .", "world"}},
      {P::GPT2, "x = 3.14159;\r\n\tdone", {"x", " =", " 3", ".", "14159", ";", "\r\n", "\t", "done"}},
      {P::Llama3, "x = 3.14159;\r\n\tdone", {"x", " =", " ", "3", ".", "141", "59", ";\r\n", "\tdone"}},
      {P::Qwen2, "x = 3.14159;\r\n\tdone", {"x", " =", " ", "3", ".", "1", "4", "1", "5", "9", ";\r\n", "\tdone"}},
      {P::Llama3, "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xE3\x83\x86\xE3\x82\xAD\xE3\x82\xB9\xE3\x83\x88 42",
       {"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E", " \xE3\x83\x86\xE3\x82\xAD\xE3\x82\xB9\xE3\x83\x88", " ", "42"}},
      {P::GPT2, "a  b  ", {"a", " ", " b", "  "}},
      // Invalid UTF-8 matches no branch and comes back as its own piece.
      {P::GPT2, "ab\xFFgh", {"ab", "\xFF", "gh"}},
  };
  for (const Case& c : cases) {
    auto got = pretokenize(c.pre, c.text);
    EXPECT_EQ(std::vector<std::string>(got.begin(), got.end()), c.pieces) << pretokenizer_pattern(c.pre) << "\ntext: " << c.text;
  }
}

// HF's Digits step before the GPT-2 regex (SmolLM's Sequence [Digits, ByteLevel]).
// Digits (Isolated) cuts "abc 12345 x9y 2024-11-25" into "abc ", digits, " x", "9",
// "y ", digits, "-", ...; the regex then runs on each piece alone, so the space
// before a number ends its own piece ("abc " -> "abc" " ": \s+(?!\S) at the piece's
// end) instead of starting " 12345" as plain GPT-2 does. individual_digits false
// keeps each run of digits as one piece.
TEST(PreTokenizer, DigitsBeforeTheRegex) {
  using P = PreTokenizer;
  using D = DigitSplit;
  struct Case {
    D digits;
    std::string text;
    std::vector<std::string> pieces;
  };
  const std::vector<Case> cases = {
      {D::None, "abc 12345 x9y 2024-11-25", {"abc", " 12345", " x", "9", "y", " 2024", "-", "11", "-", "25"}},
      {D::Individual, "abc 12345 x9y 2024-11-25",
       {"abc", " ", "1", "2", "3", "4", "5", " x", "9", "y", " ", "2", "0", "2", "4", "-", "1", "1", "-", "2", "5"}},
      {D::Runs, "abc 12345 x9y 2024-11-25", {"abc", " ", "12345", " x", "9", "y", " ", "2024", "-", "11", "-", "25"}},
      // A lookahead stops at a piece's end: "x  " is one piece, its "  " matches \s+(?!\S) whole.
      {D::Individual, "x  1 ", {"x", "  ", "1", " "}},
      {D::None, "x  1 ", {"x", " ", " 1", " "}},
      // \p{N} is Unicode: Arabic-Indic digits and vulgar fractions split too.
      {D::Individual, "\xD9\xA3\xD9\xA4" "a\xC2\xBD", {"\xD9\xA3", "\xD9\xA4", "a", "\xC2\xBD"}},
      {D::Individual, "", {}},
      {D::Individual, "42", {"4", "2"}},
  };
  for (const Case& c : cases) {
    auto got = pretokenize(P::GPT2, c.text, c.digits);
    EXPECT_EQ(std::vector<std::string>(got.begin(), got.end()), c.pieces) << int(c.digits) << " text: " << c.text;
  }
}

TEST(PreTokenizer, ByteTableRoundTrips) {
  for (int b = 0; b < 256; ++b) {
    const std::string& s = byte_to_unicode(uint8_t(b));
    uint32_t cp = 0;
    if (s.size() == 1) cp = uint8_t(s[0]);
    else cp = ((uint8_t(s[0]) & 0x1F) << 6) | (uint8_t(s[1]) & 0x3F);
    EXPECT_EQ(unicode_to_byte(cp), b);
  }
  EXPECT_EQ(byte_to_unicode(' '), "\xC4\xA0");   // Ġ U+0120
  EXPECT_EQ(byte_to_unicode('\n'), "\xC4\x8A");  // Ċ U+010A
  EXPECT_EQ(byte_to_unicode('A'), "A");
  EXPECT_EQ(unicode_to_byte(0x2581), -1);
}

// ---------------------------------------------------------------- HF tokenizer.json

// A small byte-level tokenizer.json: ids 0..255 are GPT-2's byte tokens (its
// vocab.json lists them first, in bytes_to_unicode order: '!' is 0, 't' is 83,
// 'Ġ' (space) is 220); a few merges in both spellings; two added tokens.
std::string tiny_tokenizer_json(const std::string& pre_tokenizer, const std::string& post = "null",
                                 const std::string& model_type = "BPE") {
  nlohmann::json gpt2 = nlohmann::json::parse(read_all(test::shared("tokenizers/gpt2/vocab.json")));
  nlohmann::json vocab = nlohmann::json::object();
  for (auto& [tok, id] : gpt2.items())
    if (id.get<int>() < 256) vocab[tok] = id;
  vocab["\xC4\xA0t"] = 256;  // Ġt
  vocab["he"] = 257;
  vocab["\xC4\xA0the"] = 258;
  vocab["12"] = 259;
  vocab["45"] = 260;
  vocab["34"] = 261;
  nlohmann::json j = {
      {"version", "1.0"},
      {"added_tokens",
       {{{"id", 300}, {"content", "<|begin_of_text|>"}, {"special", true}},
        {{"id", 301}, {"content", "<|user|>"}, {"special", false}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer", nlohmann::json::parse(pre_tokenizer)},
      {"post_processor", nlohmann::json::parse(post)},
      {"model",
       {{"type", model_type},
        {"vocab", vocab},
        {"merges", nlohmann::json::array({"\xC4\xA0 t", nlohmann::json::array({"h", "e"}), "\xC4\xA0t he", "1 2", "3 4", "4 5"})}}},
  };
  return j.dump();
}

std::string llama3_pre() {
  nlohmann::json pre = {{"type", "Sequence"},
                        {"pretokenizers",
                         {{{"type", "Split"},
                           {"pattern", {{"Regex", pretokenizer_pattern(PreTokenizer::Llama3)}}},
                           {"behavior", "Isolated"},
                           {"invert", false}},
                          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
  return pre.dump();
}

const char* kBosTemplate = R"({"type": "Sequence", "processors": [{"type": "ByteLevel"}, {"type": "TemplateProcessing",
  "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
  "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [300], "tokens": ["<|begin_of_text|>"]}}}]})";

TEST(HfTokenizerJson, ParsesLlama3StyleFile) {
  auto path = write_temp("tokenizer.json", tiny_tokenizer_json(llama3_pre(), kBosTemplate));
  BpeVocab v = read_hf_tokenizer_json(path);
  EXPECT_EQ(v.tokens.size(), 302u);  // holes 262..299 are unused
  EXPECT_EQ(v.types[280], kTokUnused);
  EXPECT_EQ(v.types[300], kTokControl);
  EXPECT_EQ(v.types[301], kTokUserDefined);
  EXPECT_EQ(v.pre, PreTokenizer::Llama3);
  EXPECT_TRUE(v.add_bos);
  EXPECT_EQ(v.bos_id, 300);
  EXPECT_EQ(v.merges[1], "h e");  // pair form joined
  auto tok = open_tokenizer(path);
  EXPECT_EQ(tok->kind(), "byte-bpe");
  EXPECT_TRUE(tok->adds_bos());
  // "the the": pre-tokens "the", " the". "the": t h e -> rank 1 "h e" -> [t(83), he(257)].
  // " the": Ġ t h e -> rank 0 "Ġ t" -> Ġt; rank 1 "h e" -> he; rank 2 "Ġt he" -> Ġthe (258).
  EXPECT_EQ(tok->encode("the the", true), (Ids{300, 83, 257, 258}));
  // Llama-3 digit groups: "12345" -> "123" "45": "123" -> 12(259) 3(18); "45" -> 45(260).
  // (Without the grouping, "3 4" would merge across the split.)
  EXPECT_EQ(tok->encode("12345", false), (Ids{259, 18, 260}));
  // Added tokens are split out first, special or not.
  EXPECT_EQ(tok->encode("<|user|>the<|begin_of_text|>", false), (Ids{301, 83, 257, 300}));
  EXPECT_EQ(tok->decode({300, 301, 83, 257, 258}), "<|user|>the the");
}

TEST(HfTokenizerJson, ByteLevelWithPrefixSpace) {
  auto path = write_temp("tokenizer.json",
                         tiny_tokenizer_json(R"({"type": "ByteLevel", "add_prefix_space": true, "use_regex": true})"));
  BpeVocab v = read_hf_tokenizer_json(path);
  EXPECT_EQ(v.pre, PreTokenizer::GPT2);
  EXPECT_FALSE(v.add_bos);
  auto tok = make_bpe_tokenizer(v);
  // " the" after the prefix space: [Ġthe]; GPT-2 regex keeps "12345" whole: 12, 34, 5(20).
  EXPECT_EQ(tok->encode("the", false), (Ids{258}));
  EXPECT_EQ(tok->encode("12345", false), (Ids{220, 259, 261, 20}));
}

// SmolLM's pre_tokenizer, as its tokenizer.json spells it.
const char* kSmolLmPre = R"({"type": "Sequence", "pretokenizers": [
  {"type": "Digits", "individual_digits": true},
  {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}]})";

// Ids by hand: bytes '!'..'~' are ids 0..93 (byte - 33), space (Ġ) is 220; merges
// "1 2", "3 4", "4 5" never apply when every digit is its own pre-token.
TEST(HfTokenizerJson, SmolLmDigitsThenByteLevel) {
  auto path = write_temp("tokenizer.json", tiny_tokenizer_json(kSmolLmPre));
  BpeVocab v = read_hf_tokenizer_json(path);
  EXPECT_EQ(v.pre, PreTokenizer::GPT2);
  EXPECT_EQ(v.digits, DigitSplit::Individual);
  EXPECT_FALSE(v.add_prefix_space);
  auto tok = make_bpe_tokenizer(v);
  // abc | " " | 1 2 3 4 5 | " x" | 9 | y | " " | 2 0 2 4 | - | 1 1 | - | 2 5
  EXPECT_EQ(tok->encode("abc 12345 x9y 2024-11-25", false),
            (Ids{64, 65, 66, 220, 16, 17, 18, 19, 20, 220, 87, 24, 88, 220, 17, 15, 17, 19, 12, 16, 16, 12, 17, 20}));
  EXPECT_EQ(tok->encode("the the", false), (Ids{83, 257, 258}));  // words are as GPT-2 splits them
  // The same file without Digits: " 12345" is one pre-token and merges: Ġ 12 34 5.
  auto plain = make_bpe_tokenizer(read_hf_tokenizer_json(
      write_temp("tokenizer.json", tiny_tokenizer_json(R"({"type": "ByteLevel", "add_prefix_space": false})"))));
  EXPECT_EQ(plain->encode("abc 12345", false), (Ids{64, 65, 66, 220, 259, 261, 20}));
  // individual_digits false: runs of digits, merged within the run: 12 34 5.
  std::string runs = kSmolLmPre;
  runs.replace(runs.find("true"), 4, "false");
  BpeVocab vr = read_hf_tokenizer_json(write_temp("tokenizer.json", tiny_tokenizer_json(runs)));
  EXPECT_EQ(vr.digits, DigitSplit::Runs);
  EXPECT_EQ(make_bpe_tokenizer(vr)->encode("abc 12345", false), (Ids{64, 65, 66, 220, 259, 261, 20}));
  EXPECT_EQ(make_bpe_tokenizer(vr)->encode("x12345", false), (Ids{87, 259, 261, 20}));
  EXPECT_EQ(tok->encode("x12345", false), (Ids{87, 16, 17, 18, 19, 20}));
}

TEST(HfTokenizerJson, DigitsCombinationsLowbitDoesNotRunAreErrors) {
  // Digits after the regex split: a different split, refused.
  auto after = write_temp("tokenizer.json", tiny_tokenizer_json(R"({"type": "Sequence", "pretokenizers": [
    {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}, {"type": "Digits", "individual_digits": true}]})"));
  expect_error([&] { read_hf_tokenizer_json(after); }, {after, "pretokenizers[1]", "Digits"});
  // HF's ByteLevel prefixes every piece Digits made: refused rather than tokenized differently.
  auto prefix = write_temp("tokenizer.json", tiny_tokenizer_json(R"({"type": "Sequence", "pretokenizers": [
    {"type": "Digits", "individual_digits": true}, {"type": "ByteLevel", "add_prefix_space": true, "use_regex": true}]})"));
  expect_error([&] { read_hf_tokenizer_json(prefix); }, {prefix, "Digits", "add_prefix_space"});
}

TEST(HfTokenizerJson, ErrorsNameTheField) {
  auto path = write_temp("tokenizer.json", tiny_tokenizer_json(llama3_pre(), "null", "WordPiece"));
  expect_error([&] { open_tokenizer(path); }, {path, "model.type", "WordPiece"});
  nlohmann::json pre = nlohmann::json::parse(llama3_pre());
  pre["pretokenizers"][0]["pattern"]["Regex"] = "\\w+";
  path = write_temp("tokenizer.json", tiny_tokenizer_json(pre.dump()));
  expect_error([&] { open_tokenizer(path); }, {path, "pre_tokenizer.pretokenizers[0].pattern.Regex"});
  path = write_temp("tokenizer.json", tiny_tokenizer_json("null"));
  expect_error([&] { open_tokenizer(path); }, {path, "pre_tokenizer"});
  path = write_temp("tokenizer.json", tiny_tokenizer_json(R"({"type": "Metaspace"})"));
  expect_error([&] { open_tokenizer(path); }, {path, "pre_tokenizer.type", "Metaspace"});
  path = write_temp("tokenizer.json", "{\"model\": {\"vocab\": ");
  expect_error([&] { open_tokenizer(path); }, {path, "invalid JSON"});
  path = write_temp("tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": "x"}}})");
  expect_error([&] { open_tokenizer(path); }, {path, "model.vocab"});
  nlohmann::json j = nlohmann::json::parse(tiny_tokenizer_json(llama3_pre()));
  j["model"]["merges"].push_back("zz qq");
  path = write_temp("tokenizer.json", j.dump());
  expect_error([&] { open_tokenizer(path); }, {path, "merge 6", "zz qq"});
}

// ---------------------------------------------------------------- open_tokenizer

TEST(OpenTokenizer, PicksTheReaderAndReportsBadFiles) {
  EXPECT_EQ(open_tokenizer(test::shared("tokenizers/llama2/tokenizer.model"))->kind(), "sentencepiece");
  EXPECT_EQ(open_tokenizer(test::shared("tokenizers/llama2"))->kind(), "sentencepiece");  // a folder
  EXPECT_EQ(open_tokenizer(test::shared("tokenizers/gpt2"))->kind(), "byte-bpe");
  expect_error([] { open_tokenizer("/nonexistent/tokenizer.model"); }, {"/nonexistent/tokenizer.model", "no such file"});
  auto path = write_temp("tokenizer.model", "this is not a protobuf at all");
  expect_error([&] { open_tokenizer(path); }, {path});
  path = write_temp("tokenizer.model", "");
  expect_error([&] { open_tokenizer(path); }, {path, "no pieces"});
  std::string model = read_all(test::shared("tokenizers/llama2/tokenizer.model"));
  path = write_temp("tokenizer.model", model.substr(0, model.size() / 2));
  expect_error([&] { open_tokenizer(path); }, {path, "malformed protobuf"});
  path = write_temp("tokenizer.xyz", "x");
  expect_error([&] { open_tokenizer(path); }, {path, "unknown tokenizer file kind"});
  path = write_temp("vocab.json", R"({"a": 0})");
  expect_error([&] { open_tokenizer(path); }, {path, "merges.txt"});
}

// Not a timing test (speed belongs in bench/): 1 MiB of text goes through both
// kinds and back (byte-level BPE decodes to the exact input).
TEST(Tokenizers, OneMegabyteOfText) {
  std::string text = read_all(test::shared("text/wiki.test.raw")).substr(0, 1 << 20);
  auto spm = make_spm_tokenizer(read_sentencepiece_vocab(test::shared("tokenizers/llama2/tokenizer.model")));
  auto bpe = gpt2();
  EXPECT_GT(spm->encode(text, false).size(), 200000u);
  EXPECT_EQ(bpe->decode(bpe->encode(text, false)), text);
}

}  // namespace
}  // namespace lowbit
