// Tokenizer metadata in exported GGUF files: synthetic Hugging Face folders
// (GPT-2's real byte-level BPE vocab under GPT-2, Llama 3 and Qwen2
// pre-tokenizers; Llama 2's SentencePiece model) -> quantize --type F16 ->
// load the GGUF with lowbit -> the same token ids as the source tokenizer.
//
// llama.cpp check (commit c392e50), by hand on the files these tests write
// (LOWBIT_KEEP_TOKENIZER_GGUF=DIR copies them to DIR):
//   llama-tokenize -m DIR/llama3.gguf -p "Hello world! It's 2024: 1234567 tokens" --ids --log-disable
// printed the ids marked "llama.cpp's" below; with -f FILE it gave lowbit's ids
// for every text of kTexts (and a few more) on every file these tests write.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/log.h"
#include "io/gguf.h"
#include "io/model_loader.h"
#include "io/safetensors_writer.h"
#include "io/tokenizer.h"
#include "io/tokenizer_bpe.h"
#include "io/tokenizer_spm.h"
#include "lowbit/error.h"
#include "paths.h"
#include "quant/gguf_export.h"
#include "quant/gguf_tokenizer.h"
#include "quant/recipe.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr int kDim = 8, kHeads = 2, kHidden = 16;

std::string fresh_dir(const std::string& name) {
  fs::path d = fs::path(test::temp_dir()) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

json read_json(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return json::parse(ss.str());
}

// A one-layer model of `arch` with `n_vocab` tokens, zero weights (only the vocab matters here).
void write_model(const std::string& dir, const std::string& arch, int n_vocab) {
  json cfg;
  std::vector<std::pair<std::string, std::vector<int64_t>>> t;
  if (arch == "GPT2LMHeadModel") {
    cfg = {{"architectures", {arch}}, {"model_type", "gpt2"}, {"vocab_size", n_vocab}, {"n_embd", kDim},
           {"n_layer", 1}, {"n_head", kHeads}, {"n_positions", 32}, {"n_inner", nullptr},
           {"layer_norm_epsilon", 1e-5}, {"activation_function", "gelu_new"}};
    t = {{"wte.weight", {n_vocab, kDim}}, {"wpe.weight", {32, kDim}}, {"ln_f.weight", {kDim}}, {"ln_f.bias", {kDim}},
         {"h.0.ln_1.weight", {kDim}}, {"h.0.ln_1.bias", {kDim}}, {"h.0.ln_2.weight", {kDim}}, {"h.0.ln_2.bias", {kDim}},
         {"h.0.attn.c_attn.weight", {kDim, 3 * kDim}}, {"h.0.attn.c_attn.bias", {3 * kDim}},
         {"h.0.attn.c_proj.weight", {kDim, kDim}}, {"h.0.attn.c_proj.bias", {kDim}},
         {"h.0.mlp.c_fc.weight", {kDim, 4 * kDim}}, {"h.0.mlp.c_fc.bias", {4 * kDim}},
         {"h.0.mlp.c_proj.weight", {4 * kDim, kDim}}, {"h.0.mlp.c_proj.bias", {kDim}}};
  } else {
    cfg = {{"architectures", {arch}}, {"vocab_size", n_vocab}, {"hidden_size", kDim}, {"num_hidden_layers", 1},
           {"num_attention_heads", kHeads}, {"num_key_value_heads", kHeads}, {"intermediate_size", kHidden},
           {"max_position_embeddings", 64}, {"rms_norm_eps", 1e-6}, {"rope_theta", 10000.0},
           {"tie_word_embeddings", true}, {"torch_dtype", "float32"}};
    const std::string p = "model.layers.0.";
    t = {{"model.embed_tokens.weight", {n_vocab, kDim}}, {"model.norm.weight", {kDim}},
         {p + "input_layernorm.weight", {kDim}}, {p + "post_attention_layernorm.weight", {kDim}},
         {p + "self_attn.q_proj.weight", {kDim, kDim}}, {p + "self_attn.k_proj.weight", {kDim, kDim}},
         {p + "self_attn.v_proj.weight", {kDim, kDim}}, {p + "self_attn.o_proj.weight", {kDim, kDim}},
         {p + "mlp.gate_proj.weight", {kHidden, kDim}}, {p + "mlp.up_proj.weight", {kHidden, kDim}},
         {p + "mlp.down_proj.weight", {kDim, kHidden}}};
    if (arch == "Qwen2ForCausalLM")
      for (const char* b : {"q_proj", "k_proj", "v_proj"}) t.push_back({p + "self_attn." + b + ".bias", {kDim}});
  }
  write_text(dir + "/config.json", cfg.dump(2));
  SafetensorsWriter w(dir + "/model.safetensors");
  for (auto& [name, shape] : t) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> v(static_cast<size_t>(n), 0.01f);
    w.add_f32(name, shape, v);
  }
  w.finish();
}

// GPT-2's vocab.json + merges.txt as an HF tokenizer.json with the given pre-tokenizer.
json gpt2_tokenizer_json(const json& pre_tokenizer, bool ignore_merges) {
  json vocab = read_json(test::shared("tokenizers/gpt2/vocab.json"));
  json merges = json::array();
  std::ifstream f(test::shared("tokenizers/gpt2/merges.txt"), std::ios::binary);
  for (std::string line; std::getline(f, line);)
    if (!line.empty() && !line.starts_with("#version")) merges.push_back(line);
  return {{"version", "1.0"},
          {"added_tokens", json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer", pre_tokenizer},
          {"post_processor", {{"type", "ByteLevel"}, {"trim_offsets", false}}},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model", {{"type", "BPE"}, {"ignore_merges", ignore_merges}, {"vocab", vocab}, {"merges", merges}}}};
}

json split_then_bytelevel(PreTokenizer pre) {
  return {{"type", "Sequence"},
          {"pretokenizers",
           {{{"type", "Split"}, {"pattern", {{"Regex", pretokenizer_pattern(pre)}}}, {"behavior", "Isolated"}, {"invert", false}},
            {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
}

json added(int id, const std::string& content, bool special) {
  return {{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", special}};
}

constexpr int kGpt2Vocab = 50257;
const char* kTemplate = "{% for m in messages %}<|start|>{{ m['content'] }}<|eot_id|>{% endfor %}";

// Texts every case must tokenize as its source does.
const std::vector<std::string> kTexts = {
    "Hello world! It's 2024: 1234567 tokens, 3.14 and 3..3 or 3...3",
    "multiple   spaces\n\n\ttabs\t\t and\r\nCRLF  \n \n\n   trailing   ",
    "I'VE been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL",
    "Ünïcödé café — 日本語 🚀🦙 Привет កាន់ 😶\u200d🌫️ ?我想在apple工作1314151天～",
    "0 12 345 6789 1234567890 ------======= '''''' ``````` \"\"\"\" ......!!!!!!??????",
    "<|begin_of_text|>Hi<|eot_id|>\n<|user|> [TOOL] x<|endoftext|>y<|end_of_text|>",
    "",
    " ",
};

RecipeOptions recipe(const char* type) {
  RecipeOptions o;
  o.type = type;
  return o;
}

const char* kHello = "Hello world! It's 2024: 1234567 tokens";

// `lowbit quantize DIR -o NAME.gguf --type F16`.
std::string export_f16(const std::string& dir, const std::string& name) {
  const std::string out = test::temp_dir() + "/" + name + ".gguf";
  const std::string cmd = test::cli() + " quantize " + dir + " -o " + out + " --type F16 >" + out + ".log 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  if (const char* keep = std::getenv("LOWBIT_KEEP_TOKENIZER_GGUF"))
    fs::copy_file(out, fs::path(keep) / (name + ".gguf"), fs::copy_options::overwrite_existing);
  return out;
}

void expect_same_ids(const Tokenizer& src, const Tokenizer& gguf) {
  EXPECT_LE(src.n_vocab(), gguf.n_vocab());  // the GGUF list is padded to the model's vocab
  EXPECT_EQ(src.bos_id(), gguf.bos_id());
  EXPECT_EQ(src.eos_id(), gguf.eos_id());
  EXPECT_EQ(src.adds_bos(), gguf.adds_bos());
  for (const std::string& t : kTexts) {
    SCOPED_TRACE(t);
    EXPECT_EQ(src.encode(t, true), gguf.encode(t, true));
    EXPECT_EQ(src.encode(t, false), gguf.encode(t, false));
  }
}

// ---------------------------------------------------------------- byte-level BPE

TEST(GgufTokenizer, PreTokenizerNames) {
  EXPECT_STREQ(gguf_pre_tokenizer_name(PreTokenizer::GPT2), "gpt-2");
  EXPECT_STREQ(gguf_pre_tokenizer_name(PreTokenizer::Llama3), "llama-bpe");
  EXPECT_STREQ(gguf_pre_tokenizer_name(PreTokenizer::Qwen2), "qwen2");
  for (PreTokenizer p : {PreTokenizer::GPT2, PreTokenizer::Llama3, PreTokenizer::Qwen2})
    EXPECT_EQ(pretokenizer_from_gguf_name(gguf_pre_tokenizer_name(p)), p);
  // SmolLM: single digits, then GPT-2's regex (llama.cpp's "smollm": "\p{N}", then the GPT-2 regex).
  EXPECT_STREQ(gguf_pre_tokenizer_name(PreTokenizer::GPT2, DigitSplit::Individual), "smollm");
  EXPECT_EQ(pretokenizer_from_gguf_name("smollm"), PreTokenizer::GPT2);
  EXPECT_EQ(gguf_digit_split("smollm"), DigitSplit::Individual);
  EXPECT_EQ(gguf_digit_split("gpt-2"), DigitSplit::None);
  // No llama.cpp name: the regex's, and the digit split of that name differs (the writer warns).
  EXPECT_STREQ(gguf_pre_tokenizer_name(PreTokenizer::GPT2, DigitSplit::Runs), "gpt-2");
  EXPECT_STREQ(gguf_pre_tokenizer_name(PreTokenizer::Llama3, DigitSplit::Individual), "llama-bpe");
  // llama.cpp sets ignore_merges for the Llama 3 names only.
  for (const char* n : {"llama-bpe", "llama3", "llama-v3", "falcon3"}) EXPECT_TRUE(gguf_ignores_merges(n)) << n;
  for (const char* n : {"gpt-2", "qwen2", "smollm", "default"}) EXPECT_FALSE(gguf_ignores_merges(n)) << n;
}

TEST(GgufTokenizer, AddedTokenTypes) {
  EXPECT_EQ(added_token_type("<|eot_id|>", true), kTokControl);
  EXPECT_EQ(added_token_type("<|user|>", false), kTokControl);  // looks special
  EXPECT_EQ(added_token_type("<pad>", false), kTokControl);
  EXPECT_EQ(added_token_type("<unused7>", false), kTokControl);
  EXPECT_EQ(added_token_type("[TOOL]", false), kTokUserDefined);
  EXPECT_EQ(added_token_type("<|", false), kTokUserDefined);
}

// GPT-2 as shipped (vocab.json + merges.txt) under GPT2LMHeadModel.
TEST(GgufTokenizer, Gpt2VocabJsonRoundTrip) {
  const std::string dir = fresh_dir("gpt2");
  write_model(dir, "GPT2LMHeadModel", kGpt2Vocab);
  fs::create_symlink(test::shared("tokenizers/gpt2/vocab.json"), dir + "/vocab.json");
  fs::create_symlink(test::shared("tokenizers/gpt2/merges.txt"), dir + "/merges.txt");
  const std::string out = export_f16(dir, "gpt2");

  GgufFile f(out);
  EXPECT_EQ(f.get_str("general.architecture"), "gpt2");
  EXPECT_EQ(f.get_str("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(f.get_str("tokenizer.ggml.pre"), "gpt-2");
  EXPECT_EQ(f.get_arr_str("tokenizer.ggml.tokens").size(), size_t(kGpt2Vocab));
  EXPECT_EQ(f.get_arr_str("tokenizer.ggml.merges").size(), 50000u);
  EXPECT_EQ(f.get_arr_str("tokenizer.ggml.merges")[0], "\xC4\xA0 t");  // "Ġ t"
  EXPECT_EQ(f.get_arr_i32("tokenizer.ggml.token_type")[50256], kTokControl);
  EXPECT_EQ(f.get_arr_i32("tokenizer.ggml.token_type")[0], kTokNormal);
  EXPECT_EQ(f.get_int("tokenizer.ggml.bos_token_id"), 50256);
  EXPECT_EQ(f.get_int("tokenizer.ggml.eos_token_id"), 50256);
  EXPECT_FALSE(f.get_bool("tokenizer.ggml.add_bos_token"));
  EXPECT_FALSE(f.has("tokenizer.chat_template"));

  auto src = open_tokenizer(dir + "/vocab.json");
  auto m = load_model(out);
  ASSERT_NE(m->tokenizer, nullptr);
  expect_same_ids(*src, *m->tokenizer);
  EXPECT_EQ(m->tokenizer->encode(kHello, true),
            (std::vector<int32_t>{15496, 995, 0, 632, 338, 48609, 25, 17031, 2231, 3134, 16326}));  // llama.cpp's
}

struct BpeCase {
  const char* name;
  const char* arch;
  PreTokenizer pre;
  const char* gguf_pre;
  std::vector<int32_t> llama_cpp_ids;  // of kHello
  bool smollm = false;                 // SmolLM's pre-tokenizer: Digits (individual), then ByteLevel's regex
};

// SmolLM's tokenizer.json pre_tokenizer.
json smollm_pre() {
  return {{"type", "Sequence"},
          {"pretokenizers",
           {{{"type", "Digits"}, {"individual_digits", true}},
            {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}}}};
}

class HfBpe : public ::testing::TestWithParam<BpeCase> {};

// A Llama-3 / Qwen2-style tokenizer.json (Split regex + ByteLevel, added tokens,
// a BOS-adding template) with tokenizer_config.json and a padded vocab.
TEST_P(HfBpe, TokenizerJsonRoundTrip) {
  const BpeCase& c = GetParam();
  const std::string dir = fresh_dir(c.name);
  const int n_vocab = kGpt2Vocab + 8;  // 5 added tokens, then 3 padding ids
  write_model(dir, c.arch, n_vocab);
  json tj = gpt2_tokenizer_json(c.smollm ? smollm_pre() : split_then_bytelevel(c.pre), c.pre == PreTokenizer::Llama3);
  // <|endoftext|> (GPT-2's, id 50256) is special here as in Qwen2: llama.cpp makes a token of that text
  // control whatever the file says, so an ordinary one would tokenize differently there.
  tj["added_tokens"] = {added(50256, "<|endoftext|>", true), added(50257, "<|begin_of_text|>", true), added(50258, "<|end_of_text|>", true),
                        added(50259, "<|eot_id|>", true), added(50260, "<|user|>", false), added(50261, "[TOOL]", false)};
  tj["post_processor"] = {{"type", "TemplateProcessing"},
                          {"single", {{{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}},
                                      {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                          {"pair", json::array()},
                          {"special_tokens", json::object()}};
  write_text(dir + "/tokenizer.json", tj.dump());
  write_text(dir + "/tokenizer_config.json",
             json{{"bos_token", "<|begin_of_text|>"}, {"eos_token", "<|eot_id|>"}, {"chat_template", kTemplate}}.dump(2));
  const std::string out = export_f16(dir, c.name);

  GgufFile f(out);
  EXPECT_EQ(f.get_str("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(f.get_str("tokenizer.ggml.pre"), c.gguf_pre);
  const auto& tokens = f.get_arr_str("tokenizer.ggml.tokens");
  const auto types = f.get_arr_i32("tokenizer.ggml.token_type");
  ASSERT_EQ(tokens.size(), size_t(n_vocab));
  ASSERT_EQ(types.size(), size_t(n_vocab));
  EXPECT_EQ(tokens[50260], "<|user|>");
  EXPECT_EQ(types[50257], kTokControl);
  EXPECT_EQ(types[50260], kTokControl);      // not special in HF, but looks special
  EXPECT_EQ(types[50261], kTokUserDefined);
  EXPECT_EQ(types[50256], kTokControl);
  EXPECT_EQ(types[1000], kTokNormal);
  EXPECT_EQ(tokens[50262], "[PAD50262]");
  EXPECT_EQ(types[50264 - 1], kTokUnused);
  EXPECT_EQ(f.get_int("tokenizer.ggml.bos_token_id"), 50257);
  EXPECT_EQ(f.get_int("tokenizer.ggml.eos_token_id"), 50259);
  EXPECT_TRUE(f.get_bool("tokenizer.ggml.add_bos_token"));
  EXPECT_EQ(f.get_str("tokenizer.chat_template"), kTemplate);

  auto src = open_tokenizer(dir + "/tokenizer.json");
  auto m = load_model(out);
  ASSERT_NE(m->tokenizer, nullptr);
  expect_same_ids(*src, *m->tokenizer);
  EXPECT_EQ(m->tokenizer->encode(kHello, true), c.llama_cpp_ids);
}

INSTANTIATE_TEST_SUITE_P(
    Styles, HfBpe,
    ::testing::Values(BpeCase{"llama3", "LlamaForCausalLM", PreTokenizer::Llama3, "llama-bpe",
                              {50257, 15496, 995, 0, 632, 338, 220, 19004, 19, 25, 220, 10163, 29228, 22, 16326}},
                      BpeCase{"qwen2", "Qwen2ForCausalLM", PreTokenizer::Qwen2, "qwen2",
                              {50257, 15496, 995, 0, 632, 338, 220, 17, 15, 17, 19, 25, 220, 16, 17, 18, 19, 20, 21, 22, 16326}},
                      BpeCase{"gpt2split", "LlamaForCausalLM", PreTokenizer::GPT2, "gpt-2",
                              {50257, 15496, 995, 0, 632, 338, 48609, 25, 17031, 2231, 3134, 16326}},
                      BpeCase{"smollm", "LlamaForCausalLM", PreTokenizer::GPT2, "smollm",
                              {50257, 15496, 995, 0, 632, 338, 220, 17, 15, 17, 19, 25, 220, 16, 17, 18, 19, 20, 21, 22, 16326},
                              true}),
                         [](const auto& info) { return std::string(info.param.name); });

// A GGUF vocab named "llama-bpe" keeps a pre-token found whole in the vocab whole
// (llama.cpp's ignore_merges for the Llama 3 names), as the tokenizer.json it came
// from does. "zzqx" is in the vocab, but no merge builds it.
TEST(GgufTokenizer, LlamaBpeGgufIgnoresMerges) {
  const std::string dir = fresh_dir("llama3_ignore");
  const int n_vocab = kGpt2Vocab + 1;
  write_model(dir, "LlamaForCausalLM", n_vocab);
  json tj = gpt2_tokenizer_json(split_then_bytelevel(PreTokenizer::Llama3), true);
  tj["model"]["vocab"]["zzqx"] = kGpt2Vocab;  // id 50257
  write_text(dir + "/tokenizer.json", tj.dump());
  const std::string out = export_f16(dir, "llama3_ignore");
  EXPECT_EQ(GgufFile(out).get_str("tokenizer.ggml.pre"), "llama-bpe");

  auto src = open_tokenizer(dir + "/tokenizer.json");
  auto m = load_model(out);
  ASSERT_NE(m->tokenizer, nullptr);
  const std::vector<int32_t> whole = {kGpt2Vocab};
  EXPECT_EQ(src->encode("zzqx", false), whole);
  EXPECT_EQ(m->tokenizer->encode("zzqx", false), whole);
  EXPECT_EQ(m->tokenizer->encode("zzqx zzqx", false), src->encode("zzqx zzqx", false));  // " zzqx" is merged
  EXPECT_NE(m->tokenizer->encode("zzqx zzqx", false).size(), 2u);

  // The same vocab under "gpt-2" (no ignore_merges in llama.cpp): merges build "zzqx" from pieces.
  tj["model"]["ignore_merges"] = false;
  tj["pre_tokenizer"] = split_then_bytelevel(PreTokenizer::GPT2);
  write_text(dir + "/tokenizer.json", tj.dump());
  auto g = load_model(export_f16(dir, "gpt2_no_ignore"));
  ASSERT_NE(g->tokenizer, nullptr);
  EXPECT_GT(g->tokenizer->encode("zzqx", false).size(), 1u);
  EXPECT_EQ(g->tokenizer->encode("zzqx", false), open_tokenizer(dir + "/tokenizer.json")->encode("zzqx", false));
}

// ---------------------------------------------------------------- SentencePiece

TEST(GgufTokenizer, HfSentencePieceFolderRoundTrip) {
  const std::string dir = fresh_dir("llama2");
  write_model(dir, "LlamaForCausalLM", 32000);
  fs::create_symlink(test::shared("tokenizers/llama2/tokenizer.model"), dir + "/tokenizer.model");
  write_text(dir + "/tokenizer_config.json",
             json{{"bos_token", {{"content", "<s>"}, {"special", true}}}, {"eos_token", "</s>"}, {"unk_token", "<unk>"},
                  {"add_bos_token", true}, {"add_eos_token", false}, {"chat_template", kTemplate}}
                 .dump(2));
  const std::string out = export_f16(dir, "llama2");

  GgufFile f(out);
  EXPECT_EQ(f.get_str("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(f.get_arr_str("tokenizer.ggml.tokens").size(), 32000u);
  EXPECT_EQ(f.get_arr_f32("tokenizer.ggml.scores").size(), 32000u);
  EXPECT_EQ(f.get_int("tokenizer.ggml.bos_token_id"), 1);
  EXPECT_EQ(f.get_int("tokenizer.ggml.eos_token_id"), 2);
  EXPECT_EQ(f.get_int("tokenizer.ggml.unknown_token_id"), 0);
  EXPECT_TRUE(f.get_bool("tokenizer.ggml.add_bos_token"));
  EXPECT_FALSE(f.get_bool("tokenizer.ggml.add_eos_token"));
  EXPECT_TRUE(f.get_bool("tokenizer.ggml.add_space_prefix"));
  EXPECT_EQ(f.get_str("tokenizer.chat_template"), kTemplate);
  EXPECT_EQ(f.get_arr_i32("tokenizer.ggml.token_type")[3], kTokByte);

  auto src = open_tokenizer(dir + "/tokenizer.model");
  auto m = load_model(out);
  ASSERT_NE(m->tokenizer, nullptr);
  for (const std::string& t : kTexts) {
    SCOPED_TRACE(t);
    EXPECT_EQ(src->encode(t, true), m->tokenizer->encode(t, true));
  }
  EXPECT_EQ(m->tokenizer->encode(kHello, true),
            (std::vector<int32_t>{1, 15043, 3186, 29991, 739, 29915, 29879, 29871, 29906, 29900, 29906, 29946, 29901,
                                  29871, 29896, 29906, 29941, 29946, 29945, 29953, 29955, 18897}));  // llama.cpp's
}

// HF added tokens in a SentencePiece folder, a vocab padded past the model file.
TEST(GgufTokenizer, SentencePieceAddedTokensAndPadding) {
  const std::string dir = fresh_dir("llama2-added");
  write_model(dir, "LlamaForCausalLM", 32004);
  fs::create_symlink(test::shared("tokenizers/llama2/tokenizer.model"), dir + "/tokenizer.model");
  write_text(dir + "/tokenizer_config.json",
             json{{"added_tokens_decoder",
                   {{"32000", {{"content", "<|im_start|>"}, {"special", false}}},
                    {"32001", {{"content", "\xE2\x96\x81tool"}, {"special", false}}}}},
                  {"pad_token", "<|im_start|>"}}
                 .dump(2));
  const std::string out = export_f16(dir, "llama2-added");
  GgufFile f(out);
  const auto& tokens = f.get_arr_str("tokenizer.ggml.tokens");
  const auto types = f.get_arr_i32("tokenizer.ggml.token_type");
  ASSERT_EQ(tokens.size(), 32004u);
  EXPECT_EQ(tokens[32000], "<|im_start|>");
  EXPECT_EQ(types[32000], kTokControl);
  EXPECT_EQ(tokens[32001], " tool");
  EXPECT_EQ(types[32001], kTokUserDefined);
  EXPECT_EQ(tokens[32003], "[PAD32003]");
  EXPECT_EQ(types[32003], kTokUnused);
  EXPECT_EQ(f.get_int("tokenizer.ggml.padding_token_id"), 32000);
  EXPECT_FALSE(f.has("tokenizer.ggml.add_bos_token"));  // not given: llama.cpp's default (add) applies
}

TEST(GgufTokenizer, VocabLargerThanModelIsRefused) {
  const std::string dir = fresh_dir("small-model"), tok_dir = fresh_dir("gpt2-tokenizer-json");
  write_model(dir, "LlamaForCausalLM", 1000);
  write_text(tok_dir + "/tokenizer.json",
             gpt2_tokenizer_json({{"type", "ByteLevel"}, {"add_prefix_space", false}}, false).dump());
  auto m = load_model(dir);
  const std::string out = test::temp_dir() + "/refused.gguf";
  ExportOptions eo;
  eo.vocab_path = tok_dir + "/tokenizer.json";
  try {
    export_gguf(*m, make_plan(*m, recipe("F16")), out, eo);
    ADD_FAILURE() << "expected lowbit::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("50257"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(out));
}

// A tokenizer lowbit cannot read (a Punctuation pre-tokenizer) found beside the
// weights: the model is still quantized, without a vocab, and a warning says why.
TEST(GgufTokenizer, UnreadableFoundTokenizerIsAWarning) {
  const std::string dir = fresh_dir("unsupported-pre");
  write_model(dir, "LlamaForCausalLM", 32);
  json pre = {{"type", "Sequence"},
              {"pretokenizers",
               {{{"type", "Punctuation"}, {"behavior", "Isolated"}},
                {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}}}};
  write_text(dir + "/tokenizer.json",
             json{{"model", {{"type", "BPE"}, {"vocab", {{"a", 0}}}, {"merges", json::array()}}}, {"pre_tokenizer", pre}}
                 .dump());
  std::vector<std::string> warnings;
  set_log_sink([&](LogLevel l, const std::string& msg) {
    if (l == LogLevel::Warn) warnings.push_back(msg);
  });
  auto m = load_model(dir);
  const std::string out = test::temp_dir() + "/unsupported-pre.gguf";
  export_gguf(*m, make_plan(*m, recipe("F16")), out);
  set_log_sink(nullptr);
  GgufFile f(out);
  EXPECT_FALSE(f.has("tokenizer.ggml.model"));
  bool said = false;
  for (const auto& w : warnings) said |= w.find("tokenizer not embedded") != std::string::npos && w.find("Punctuation") != std::string::npos;
  EXPECT_TRUE(said) << ::testing::PrintToString(warnings);
}

}  // namespace
}  // namespace lowbit
