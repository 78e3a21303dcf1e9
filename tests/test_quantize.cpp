// Quantization recipes (llama.cpp's mix rules and fallbacks) and GGUF export:
// plan for stories260K, mix assignments on a synthetic 256-multiple llama,
// export -> read back -> dequantize, determinism across thread counts, errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "formats/format.h"
#include "io/gguf.h"
#include "io/model_loader.h"
#include "lowbit/error.h"
#include "model/synthetic.h"
#include "paths.h"
#include "quant/gguf_export.h"
#include "quant/recipe.h"

using namespace lowbit;
namespace fs = std::filesystem;

namespace {

std::string tmp(const std::string& name) { return lowbit::test::temp_dir() + "/" + name; }

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(f), {});
}

// 8 layers, every row length a multiple of 256.
ModelConfig synth_config() {
  ModelConfig c;
  c.arch = Arch::Llama;
  c.arch_name = "synthetic";
  c.n_vocab = 512;
  c.dim = 256;
  c.n_layers = 8;
  c.n_heads = 4;
  c.n_kv_heads = 4;
  c.head_dim = 64;
  c.hidden_dim = 512;
  c.max_seq = 256;
  return c;
}

FormatId type_of(const QuantPlan& p, const std::string& name) {
  const TensorPlan* t = p.find(name);
  EXPECT_NE(t, nullptr) << name;
  return t ? t->type : FormatId::F32;
}

}  // namespace

TEST(Recipe, Stories260KQ4KMFallsBackWithReasons) {
  auto m = load_model(lowbit::test::shared("models/stories260K/stories260K-f32.gguf"));
  QuantPlan p = make_plan(*m, {.type = "Q4_K_M"});
  EXPECT_EQ(p.file_type, 15u);
  for (const auto& t : p.tensors) {
    if (t.shape.size() == 1) {
      EXPECT_EQ(t.type, FormatId::F32) << t.name;
    } else if (t.name == "token_embd.weight") {  // tied: output rule, 64 % 256 != 0 -> q8_0
      EXPECT_EQ(t.type, FormatId::Q8_0);
      EXPECT_NE(t.note.find("q8_0"), std::string::npos) << t.note;
    } else {
      EXPECT_TRUE(t.fallback) << t.name;
      EXPECT_NE(t.note.find("not divisible by 256"), std::string::npos) << t.note;
    }
  }
  EXPECT_EQ(type_of(p, "blk.0.ffn_down.weight"), FormatId::F16);   // 172 % 32 != 0
  EXPECT_EQ(type_of(p, "blk.0.attn_q.weight"), FormatId::Q5_0);    // q4_K -> q5_0
  EXPECT_EQ(type_of(p, "blk.2.attn_v.weight"), FormatId::Q8_0);    // q6_K (use_more_bits) -> q8_0
  EXPECT_EQ(type_of(p, "blk.1.attn_v.weight"), FormatId::Q5_0);
  EXPECT_NE(format_plan(p).find("bits per weight"), std::string::npos);
}

TEST(Recipe, SyntheticMixesFollowLlamaCpp) {
  auto m = make_synthetic_model(synth_config(), 1);
  auto blk = [](int i, const char* s) { return "blk." + std::to_string(i) + "." + s; };
  QuantPlan p = make_plan(*m, {.type = "Q4_K_M"});
  EXPECT_EQ(type_of(p, "output.weight"), FormatId::Q6_K);
  EXPECT_EQ(type_of(p, "token_embd.weight"), FormatId::Q4_K);
  for (int i = 0; i < 8; ++i) {  // use_more_bits(i, 8): 0, 3, 6, 7
    FormatId up = (i == 0 || i == 3 || i == 6 || i == 7) ? FormatId::Q6_K : FormatId::Q4_K;
    EXPECT_EQ(type_of(p, blk(i, "attn_v.weight")), up) << i;
    EXPECT_EQ(type_of(p, blk(i, "ffn_down.weight")), up) << i;
    EXPECT_EQ(type_of(p, blk(i, "attn_q.weight")), FormatId::Q4_K);
    EXPECT_EQ(type_of(p, blk(i, "ffn_gate.weight")), FormatId::Q4_K);
    EXPECT_EQ(type_of(p, blk(i, "attn_norm.weight")), FormatId::F32);
  }
  QuantPlan q3 = make_plan(*m, {.type = "Q3_K_M"});
  EXPECT_EQ(type_of(q3, blk(0, "attn_v.weight")), FormatId::Q5_K);
  EXPECT_EQ(type_of(q3, blk(2, "attn_v.weight")), FormatId::Q4_K);
  EXPECT_EQ(type_of(q3, blk(3, "attn_output.weight")), FormatId::Q4_K);
  EXPECT_EQ(type_of(q3, blk(3, "ffn_down.weight")), FormatId::Q4_K);
  EXPECT_EQ(type_of(q3, blk(3, "ffn_up.weight")), FormatId::Q3_K);
  QuantPlan q2 = make_plan(*m, {.type = "Q2_K"});
  EXPECT_EQ(type_of(q2, blk(5, "attn_v.weight")), FormatId::Q3_K);
  EXPECT_EQ(type_of(q2, blk(5, "ffn_down.weight")), FormatId::Q3_K);
  EXPECT_EQ(type_of(q2, blk(5, "attn_output.weight")), FormatId::Q3_K);
  EXPECT_EQ(type_of(q2, blk(5, "ffn_up.weight")), FormatId::Q2_K);
  QuantPlan k4s = make_plan(*m, {.type = "Q4_K_S"});
  EXPECT_EQ(type_of(k4s, blk(3, "attn_v.weight")), FormatId::Q5_K);
  EXPECT_EQ(type_of(k4s, blk(4, "attn_v.weight")), FormatId::Q4_K);
  EXPECT_EQ(type_of(k4s, blk(0, "ffn_down.weight")), FormatId::Q5_K);
  QuantPlan q8 = make_plan(*m, {.type = "Q8_0"});
  EXPECT_EQ(type_of(q8, "output.weight"), FormatId::Q8_0);
  QuantPlan q40 = make_plan(*m, {.type = "Q4_0"});
  EXPECT_EQ(type_of(q40, "output.weight"), FormatId::Q6_K);
  // A single format is "pure": no upgrades.
  QuantPlan pure = make_plan(*m, {.type = "q4_K"});
  EXPECT_EQ(type_of(pure, "output.weight"), FormatId::Q4_K);
  EXPECT_EQ(type_of(pure, blk(0, "attn_v.weight")), FormatId::Q4_K);
  // Overrides.
  QuantPlan ov = make_plan(*m, {.type = "Q4_K_M", .tensor_types = {"attn_v=q8_0"}, .output_type = "q5_K"});
  EXPECT_EQ(type_of(ov, blk(1, "attn_v.weight")), FormatId::Q8_0);
  EXPECT_EQ(type_of(ov, "output.weight"), FormatId::Q5_K);
  QuantPlan keep = make_plan(*m, {.type = "Q4_K_M", .keep_output = true});
  EXPECT_EQ(type_of(keep, "output.weight"), FormatId::F32);
  EXPECT_THROW(make_plan(*m, {.type = "Q9_X"}), Error);
  EXPECT_THROW(make_plan(*m, {.type = "Q4_K_M", .tensor_types = {"attn_v=q9"}}), Error);
  EXPECT_THROW(make_plan(*m, {.type = "Q4_K_M", .tensor_types = {"(=q8_0"}}), Error);
}

// llama.cpp's has_imatrix rule: with an importance matrix, the Q4_0 mix stores
// ffn_down of the first n_layer/8 layers as q4_1 (16 layers: 0 and 1); without
// one nothing changes. No other rule of lowbit's mixes depends on the imatrix.
TEST(Recipe, ImatrixTurnsEarlyFfnDownOfQ4_0IntoQ4_1) {
  ModelConfig c = synth_config();
  c.n_layers = 16;
  auto m = make_synthetic_model(c, 4);
  auto blk = [](int i, const char* s) { return "blk." + std::to_string(i) + "." + s; };
  QuantPlan plain = make_plan(*m, {.type = "Q4_0"});
  QuantPlan with = make_plan(*m, {.type = "Q4_0", .has_imatrix = true});
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(type_of(plain, blk(i, "ffn_down.weight")), FormatId::Q4_0) << i;
    EXPECT_EQ(plain.find(blk(i, "ffn_down.weight"))->note, "") << i;
    EXPECT_EQ(type_of(with, blk(i, "ffn_down.weight")), i < 2 ? FormatId::Q4_1 : FormatId::Q4_0) << i;
    EXPECT_EQ(type_of(with, blk(i, "ffn_up.weight")), FormatId::Q4_0) << i;
  }
  const std::string note = with.find(blk(0, "ffn_down.weight"))->note;
  EXPECT_NE(note.find("imatrix"), std::string::npos) << note;
  EXPECT_NE(note.find("q4_1"), std::string::npos) << note;
  EXPECT_GT(with.total_bytes, plain.total_bytes);  // q4_1 carries a min per block
  EXPECT_EQ(with.total_bytes - plain.total_bytes, 2u * 256u * (512u / 32u) * 2u);  // 2 tensors x 256 rows x blocks x 2 B

  // Every other mix plans the same with and without an imatrix.
  for (const char* t : {"Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "Q8_0",
                        "F16", "BF16", "q4_0"}) {
    QuantPlan a = make_plan(*m, {.type = t}), b = make_plan(*m, {.type = t, .has_imatrix = true});
    ASSERT_EQ(a.tensors.size(), b.tensors.size());
    for (size_t k = 0; k < a.tensors.size(); ++k) EXPECT_EQ(a.tensors[k].type, b.tensors[k].type) << t << " " << a.tensors[k].name;
  }
}

TEST(Export, RoundTripDequantizesWithinFormatError) {
  auto m = make_synthetic_model(synth_config(), 2);
  QuantPlan p = make_plan(*m, {.type = "Q4_K_M"});
  const std::string out = tmp("synth_q4km.gguf");
  ExportOptions eo;
  eo.vocab_path = lowbit::test::shared("models/stories260K/tok512.bin");
  export_gguf(*m, p, out, eo);
  if (const char* keep = std::getenv("LOWBIT_QUANT_KEEP_F32")) {  // for manual llama.cpp checks
    export_gguf(*m, make_plan(*m, {.type = "f32"}), keep, eo);
  }
  GgufFile f(out);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get_str("general.architecture"), "llama");
  EXPECT_EQ(f.get_u32("general.file_type"), 15u);
  EXPECT_EQ(f.get_u32("general.quantization_version"), 2u);
  EXPECT_EQ(f.get_u32("llama.block_count"), 8u);
  EXPECT_EQ(f.get_u32("llama.embedding_length"), 256u);
  EXPECT_EQ(f.get_u32("llama.rope.dimension_count"), 64u);
  EXPECT_EQ(f.get_str("lowbit.recipe"), "Q4_K_M");
  EXPECT_EQ(f.get_str("lowbit.version"), LOWBIT_VERSION);
  EXPECT_EQ(f.get_str("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(f.get_arr("tokenizer.ggml.tokens").size(), 512u);
  ASSERT_EQ(f.infos().size(), p.tensors.size());
  for (const TensorPlan& t : p.tensors) {
    const GgufTensorInfo& info = f.info(t.name);
    EXPECT_EQ(info.ggml_type, uint32_t(t.type)) << t.name;
    EXPECT_EQ(info.nbytes, t.bytes) << t.name;
    const TensorView& src = m->weight(t.name);
    std::vector<int64_t> ne(src.shape.rbegin(), src.shape.rend());
    EXPECT_EQ(info.ne, ne) << t.name;
    const FormatTraits& ft = format_traits(t.type);
    const int64_t n = src.numel(), cols = src.cols();
    std::vector<float> x(static_cast<size_t>(n)), y(static_cast<size_t>(n));
    to_f32(src, 0, n, x.data());
    const size_t rb = row_bytes(t.type, cols);
    for (int64_t r = 0; r < n / cols; ++r)
      ft.dequantize_row(f.raw_data(info) + size_t(r) * rb, y.data() + r * cols, cols);
    double se = 0, ss = 0;
    for (int64_t i = 0; i < n; ++i) se += double(x[i] - y[i]) * (x[i] - y[i]), ss += double(x[i]) * x[i];
    double rel = std::sqrt(se / std::max(ss, 1e-30));
    double bound = t.type == FormatId::F32 ? 0 : t.type == FormatId::Q6_K ? 0.04 : t.type == FormatId::Q4_K ? 0.12 : 0.01;
    EXPECT_LE(rel, bound) << t.name << " " << ft.name;
  }
}

TEST(Export, BytesIdenticalAtOneAndTwoThreads) {
  auto m = make_synthetic_model(synth_config(), 3);
  QuantPlan p = make_plan(*m, {.type = "Q3_K_M"});
  ExportOptions a, b;
  a.threads = 1;
  b.threads = 2;
  export_gguf(*m, p, tmp("t1.gguf"), a);
  export_gguf(*m, p, tmp("t2.gguf"), b);
  EXPECT_EQ(read_bytes(tmp("t1.gguf")), read_bytes(tmp("t2.gguf")));
}

TEST(Export, CliBadTensorTypeLeavesNoFile) {
  const std::string out = tmp("bad.gguf");
  std::string cmd = lowbit::test::cli() + " quantize " + lowbit::test::shared("models/stories260K/stories260K-f32.gguf") +
                    " -o " + out + " --type Q8_0 --tensor-type 'attn_v=q9_9' >/dev/null 2>&1";
  EXPECT_NE(std::system(cmd.c_str()), 0);
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".tmp"));
  cmd = lowbit::test::cli() + " quantize " + lowbit::test::shared("models/stories260K/stories260K-f32.gguf") + " -o " +
        out + " --type Q8_0 >/dev/null 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  GgufFile f(out);
  EXPECT_EQ(f.get_u32("general.file_type"), 7u);
  EXPECT_TRUE(f.has("tokenizer.ggml.tokens"));
}
