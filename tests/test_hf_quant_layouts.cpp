// Hugging Face GPTQ / AWQ layouts: hand-checked packed words, pack/unpack round
// trips, writing stories260K as a quantized HF folder and loading it back.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/half.h"
#include "io/hf_quant_layouts.h"
#include "io/hf_quant_writer.h"
#include "io/model_loader.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "lowbit/error.h"
#include "model/forward.h"
#include "paths.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string fresh_dir(const std::string& name) {
  fs::path d = fs::path(test::temp_dir()) / name;
  fs::remove_all(d);
  return d.string();
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

void expect_error(const std::function<void()>& f, const std::vector<std::string>& fragments) {
  try {
    f();
    ADD_FAILURE() << "expected lowbit::Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const auto& frag : fragments) EXPECT_NE(msg.find(frag), std::string::npos) << "'" << frag << "' not in: " << msg;
  }
}

uint32_t u(int32_t w) { return uint32_t(w); }

// ---------------------------------------------------------------- hand-built examples

TEST(HfQuantLayouts, GptqPackingOfOneWordByHand) {
  // 4 bits: values 0..7 -> nibble j holds value j -> 0x76543210; 8..15 -> 0xFEDCBA98.
  std::vector<int32_t> v4 = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  int32_t w[4] = {};
  gptq_pack_sequence(v4.data(), 16, 1, 4, w, 1);
  EXPECT_EQ(u(w[0]), 0x76543210u);
  EXPECT_EQ(u(w[1]), 0xFEDCBA98u);
  // 2 bits: 0,1,2,3 repeated -> each byte 0b11'10'01'00 = 0xE4.
  std::vector<int32_t> v2(16);
  for (int j = 0; j < 16; ++j) v2[size_t(j)] = j % 4;
  gptq_pack_sequence(v2.data(), 16, 1, 2, w, 1);
  EXPECT_EQ(u(w[0]), 0xE4E4E4E4u);
  // 8 bits: 1, 2, 3, 4 -> bytes from the low end: 0x04030201.
  std::vector<int32_t> v8 = {1, 2, 3, 4};
  gptq_pack_sequence(v8.data(), 4, 1, 8, w, 1);
  EXPECT_EQ(u(w[0]), 0x04030201u);
  // Strided: two "columns" interleaved in memory, words written with stride 2.
  std::vector<int32_t> two = {0, 15, 1, 14, 2, 13, 3, 12, 4, 11, 5, 10, 6, 9, 7, 8};  // [8 inputs, 2 outputs]
  int32_t ww[2] = {};
  gptq_pack_sequence(two.data() + 1, 8, 2, 4, ww + 1, 2);
  gptq_pack_sequence(two.data(), 8, 2, 4, ww, 2);
  EXPECT_EQ(u(ww[0]), 0x76543210u);
  EXPECT_EQ(u(ww[1]), 0x89ABCDEFu);
}

TEST(HfQuantLayouts, GptqThreeBitSchemeByHand) {
  // 32 values fill 3 words. One non-zero value at a time shows where it lands:
  //   v0 = 7  -> w0 bits 0-2              = 0x00000007
  //   v9 = 7  -> w0 bits 27-29            = 0x38000000
  //   v10 = 5 (0b101): bits 0-1 (01) at w0 bits 30-31 -> w0 = 0x40000000; bit 2 (1) at w1 bit 0 -> w1 = 1
  //   v11 = 7 -> w1 bits 1-3              = 0x0000000E
  //   v20 = 7 -> w1 bits 28-30            = 0x70000000
  //   v21 = 5 (0b101): bit 0 (1) at w1 bit 31 -> w1 = 0x80000000; bits 1-2 (10) at w2 bits 0-1 -> w2 = 2
  //   v21 = 6 (0b110): bit 0 (0) -> w1 = 0; bits 1-2 (11) -> w2 = 3
  //   v22 = 7 -> w2 bits 2-4              = 0x0000001C
  //   v31 = 7 -> w2 bits 29-31            = 0xE0000000
  struct Probe {
    int index, value;
    uint32_t w0, w1, w2;
  };
  const Probe probes[] = {
      {0, 7, 0x7u, 0, 0},           {9, 7, 0x38000000u, 0, 0},  {10, 5, 0x40000000u, 1u, 0},
      {11, 7, 0, 0xEu, 0},          {20, 7, 0, 0x70000000u, 0}, {21, 5, 0, 0x80000000u, 2u},
      {21, 6, 0, 0, 3u},            {22, 7, 0, 0, 0x1Cu},       {31, 7, 0, 0, 0xE0000000u},
  };
  for (const Probe& p : probes) {
    std::vector<int32_t> v(32, 0), back(32, -1);
    v[size_t(p.index)] = p.value;
    int32_t w[3] = {-1, -1, -1};
    gptq_pack_sequence(v.data(), 32, 1, 3, w, 1);
    EXPECT_EQ(u(w[0]), p.w0) << "v" << p.index << " = " << p.value;
    EXPECT_EQ(u(w[1]), p.w1) << "v" << p.index << " = " << p.value;
    EXPECT_EQ(u(w[2]), p.w2) << "v" << p.index << " = " << p.value;
    gptq_unpack_sequence(w, 32, 1, 3, back.data(), 1);
    EXPECT_EQ(back, v);
  }
}

// A tiny linear with codes q[o, i] = (o + i) % 16 and zeros o + 1.
IntGroupQuant tiny_linear(int64_t n_out, int64_t n_in) {
  IntGroupQuant q;
  q.spec = {4, -1, false};
  q.n_out = n_out;
  q.n_in = n_in;
  for (int64_t o = 0; o < n_out; ++o)
    for (int64_t i = 0; i < n_in; ++i) q.q.push_back(uint8_t((o + i) % 16));
  for (int64_t o = 0; o < n_out; ++o) {
    q.scales.push_back(0.5f + float(o));
    q.zeros.push_back(int32_t(o + 1));
  }
  q.g_idx.assign(size_t(n_in), 0);
  return q;
}

TEST(HfQuantLayouts, GptqLinearByHand) {
  const IntGroupQuant q = tiny_linear(8, 8);
  const GptqTensors v1 = pack_gptq(q, false, "tiny");
  // qweight [8 * 4 / 32, 8] = [1, 8]: column o packs q[o, 0..8) = o, o+1, ... along its inputs.
  ASSERT_EQ(v1.qweight.size(), 8u);
  EXPECT_EQ(u(v1.qweight[0]), 0x76543210u);
  EXPECT_EQ(u(v1.qweight[1]), 0x87654321u);
  EXPECT_EQ(u(v1.qweight[7]), 0xEDCBA987u);
  // qzeros [1, 8 * 4 / 32] = [1, 1]: zeros 1..8 along outputs; v1 stores zero - 1 = 0..7.
  ASSERT_EQ(v1.qzeros.size(), 1u);
  EXPECT_EQ(u(v1.qzeros[0]), 0x76543210u);
  const GptqTensors v2 = pack_gptq(q, true, "tiny");
  EXPECT_EQ(u(v2.qzeros[0]), 0x87654321u);  // gptq_v2 stores the zeros themselves
  EXPECT_EQ(v1.scales, q.scales);
  // Unpacking either format gives the zeros back.
  EXPECT_EQ(unpack_gptq(v1, q.spec, false, "tiny").zeros, q.zeros);
  EXPECT_EQ(unpack_gptq(v2, q.spec, true, "tiny").zeros, q.zeros);
}

TEST(HfQuantLayouts, AwqLinearByHand) {
  // 8 outputs, 1 input, codes q[o, 0] = o and zeros o: nibble k of the word holds
  // output kAwqOrder[k] = 0, 2, 4, 6, 1, 3, 5, 7 -> 0x75316420.
  IntGroupQuant q = tiny_linear(8, 1);
  for (int o = 0; o < 8; ++o) q.zeros[size_t(o)] = o;
  const AwqTensors t = pack_awq(q, "tiny");
  ASSERT_EQ(t.qweight.size(), 1u);
  EXPECT_EQ(u(t.qweight[0]), 0x75316420u);
  EXPECT_EQ(u(t.qzeros[0]), 0x75316420u);
  // Two inputs: row i = 1 holds codes o + 1 -> 1, 3, 5, 7, 2, 4, 6, 8 -> 0x86427531.
  const AwqTensors t2 = pack_awq(tiny_linear(8, 2), "tiny2");
  ASSERT_EQ(t2.qweight.size(), 2u);
  EXPECT_EQ(u(t2.qweight[1]), 0x86427531u);
}

// ---------------------------------------------------------------- round trips

IntGroupQuant random_quant(int bits, int group, bool sym, bool act_order, int64_t n_out, int64_t n_in, uint32_t seed,
                           int zero_lo) {
  std::mt19937 rng(seed);
  IntGroupQuant q;
  q.spec = {bits, group, sym};
  q.n_out = n_out;
  q.n_in = n_in;
  const int maxq = q.spec.maxq();
  const int64_t ng = q.n_groups(), gc = q.spec.group_columns(n_in);
  std::uniform_int_distribution<int> code(0, maxq), zero(zero_lo, maxq);
  std::uniform_real_distribution<float> scale(1e-4f, 2.0f);
  for (int64_t k = 0; k < n_out * n_in; ++k) q.q.push_back(uint8_t(code(rng)));
  for (int64_t k = 0; k < ng * n_out; ++k) {
    q.scales.push_back(f16_to_f32(f32_to_f16(scale(rng))));
    q.zeros.push_back(sym ? (maxq + 1) / 2 : zero(rng));
  }
  for (int64_t i = 0; i < n_in; ++i) q.g_idx.push_back(int32_t(i / gc));
  if (act_order) std::shuffle(q.g_idx.begin(), q.g_idx.end(), rng);
  return q;
}

void expect_same(const IntGroupQuant& a, const IntGroupQuant& b) {
  EXPECT_EQ(a.spec.bits, b.spec.bits);
  EXPECT_EQ(a.spec.group_size, b.spec.group_size);
  EXPECT_EQ(a.spec.sym, b.spec.sym);
  EXPECT_EQ(a.n_out, b.n_out);
  EXPECT_EQ(a.n_in, b.n_in);
  EXPECT_EQ(a.q, b.q);
  EXPECT_EQ(a.scales, b.scales);
  EXPECT_EQ(a.zeros, b.zeros);
  EXPECT_EQ(a.g_idx, b.g_idx);
  EXPECT_EQ(a.dequantize(), b.dequantize());
}

TEST(HfQuantLayouts, GptqRoundTripAllBitsGroupsAndOrders) {
  uint32_t seed = 1;
  int cases = 0;
  for (int bits : {2, 3, 4, 8})
    for (int group : {-1, 32, 64})
      for (bool sym : {false, true})
        for (bool act_order : {false, true})
          for (bool v2 : {false, true}) {
            SCOPED_TRACE(testing::Message() << "bits " << bits << " group " << group << " sym " << sym << " act "
                                            << act_order << " v2 " << v2);
            const IntGroupQuant q = random_quant(bits, group, sym, act_order, 64, 128, seed++, v2 ? 0 : 1);
            expect_same(unpack_gptq(pack_gptq(q, v2, "rt"), q.spec, v2, "rt"), q);
            ++cases;
          }
  EXPECT_EQ(cases, 96);
}

TEST(HfQuantLayouts, AwqRoundTrip) {
  uint32_t seed = 100;
  for (int group : {-1, 32, 64})
    for (bool sym : {false, true}) {
      SCOPED_TRACE(testing::Message() << "group " << group << " sym " << sym);
      const IntGroupQuant q = random_quant(4, group, sym, false, 40, 128, seed++, 0);
      expect_same(unpack_awq(pack_awq(q, "rt"), q.spec, "rt"), q);
    }
}

TEST(HfQuantLayouts, PackRefusesWhatTheLayoutCannotHold) {
  IntGroupQuant q = random_quant(4, 32, false, false, 64, 128, 7, 1);
  q.zeros[3] = 0;  // v1 stores zero - 1
  expect_error([&] { pack_gptq(q, false, "blk.0.attn_q.weight"); }, {"blk.0.attn_q.weight", "zero point 0"});
  EXPECT_NO_THROW(pack_gptq(q, true, "v2"));
  const IntGroupQuant odd = random_quant(4, -1, false, false, 172, 64, 8, 1);  // 172 outputs: not a multiple of 8
  expect_error([&] { pack_gptq(odd, false, "blk.0.ffn_up.weight"); }, {"blk.0.ffn_up.weight", "[172, 64]", "multiples of 8"});
  expect_error([&] { pack_awq(odd, "blk.0.ffn_up.weight"); }, {"blk.0.ffn_up.weight", "multiple of 8"});
  const IntGroupQuant act = random_quant(4, 32, false, true, 64, 128, 9, 1);
  expect_error([&] { pack_awq(act, "blk.1.attn_k.weight"); }, {"blk.1.attn_k.weight", "g_idx", "GPTQ layout"});
  IntGroupQuant s = random_quant(4, 32, false, false, 64, 128, 10, 1);
  s.scales[0] = 0.1f;  // not an f16 value
  expect_error([&] { pack_gptq(s, false, "sc"); }, {"sc", "not an f16 value"});
}

TEST(HfQuantLayouts, PermuteOutputRowsMovesCodesScalesAndZeros) {
  const IntGroupQuant q = random_quant(4, 32, false, false, 16, 64, 11, 1);
  std::vector<int64_t> perm(16);
  for (int64_t o = 0; o < 16; ++o) perm[size_t(o)] = (o * 5) % 16;
  const IntGroupQuant p = permute_output_rows(q, perm);
  for (int64_t o = 0; o < 16; ++o)
    for (int64_t i = 0; i < 64; ++i) EXPECT_EQ(p.value(o, i), q.value(perm[size_t(o)], i));
}

// ---------------------------------------------------------------- folders

const std::vector<std::string> kKinds = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
const std::vector<std::string> kAttn = {"attn_q", "attn_k", "attn_v", "attn_output"};

std::map<std::string, IntGroupQuant> rtn_linears(const Model& m, const IntGroupSpec& spec,
                                                 const std::vector<std::string>& kinds) {
  std::map<std::string, IntGroupQuant> out;
  for (int l = 0; l < m.config.n_layers; ++l)
    for (const std::string& k : kinds) {
      const std::string name = "blk." + std::to_string(l) + "." + k + ".weight";
      const TensorView& t = m.weight(name);
      std::vector<float> w(size_t(t.numel()));
      to_f32(t, 0, t.numel(), w.data());
      out.emplace(name, rtn_int_groups(w.data(), t.shape[0], t.shape[1], spec));
    }
  return out;
}

std::vector<float> values(const TensorView& t) {
  std::vector<float> v(size_t(t.numel()));
  to_f32(t, 0, t.numel(), v.data());
  return v;
}

// Every quantized weight of the loaded folder equals dequantize(); every other one the source rounded to f16.
void expect_folder_matches(const Model& src, const Model& out, const std::map<std::string, IntGroupQuant>& linears) {
  EXPECT_EQ(out.weights.size(), src.weights.size());
  for (const auto& [name, t] : src.weights) {
    SCOPED_TRACE(name);
    const TensorView* o = out.find_weight(name);
    ASSERT_NE(o, nullptr);
    ASSERT_EQ(o->shape, t.shape);
    if (auto it = linears.find(name); it != linears.end()) {
      EXPECT_EQ(values(*o), it->second.dequantize());
    } else {
      std::vector<float> expect = values(t);
      for (float& x : expect) x = f16_to_f32(f32_to_f16(x));
      EXPECT_EQ(values(*o), expect);
    }
  }
}

const std::string kHf = "models/stories260K-hf";
const std::string kBin = "models/stories260K/stories260K.bin";
const std::string kTok = "models/stories260K/tok512.bin";

TEST(HfQuantWriter, GptqInt8AllLinearsLoadsBackExactly) {
  auto src = load_model(test::shared(kHf));
  // Group 4 divides both 64 (q/k/v/o, gate/up inputs) and 172 (down's inputs); 8 bits pack 172 outputs.
  const IntGroupSpec spec{8, 4, false};
  const auto linears = rtn_linears(*src, spec, kKinds);
  const std::string dir = fresh_dir("gptq8");
  write_hf_quantized(*src, linears, {"gptq", spec, false, false, true, 0.01}, dir);

  const json cfg = read_json(dir + "/config.json");
  const json& qc = cfg.at("quantization_config");
  EXPECT_EQ(qc.at("quant_method"), "gptq");
  EXPECT_EQ(qc.at("bits"), 8);
  EXPECT_EQ(qc.at("group_size"), 4);
  EXPECT_EQ(qc.at("sym"), false);
  EXPECT_EQ(qc.at("desc_act"), false);
  EXPECT_EQ(qc.at("checkpoint_format"), "gptq");
  EXPECT_FALSE(qc.contains("modules_in_block_to_quantize"));
  EXPECT_EQ(cfg.at("torch_dtype"), "float16");
  EXPECT_EQ(cfg.at("hidden_size"), 64);  // the source's config is kept
  EXPECT_EQ(read_json(dir + "/quantize_config.json"), qc);

  SafetensorsFile st(dir + "/model.safetensors");
  EXPECT_EQ(st.metadata().at("format"), "pt");
  std::map<std::string, const TensorView*> by_name;
  for (const TensorView& t : st.tensors()) by_name[t.name] = &t;
  const TensorView* qw = by_name.at("model.layers.0.mlp.down_proj.qweight");
  EXPECT_EQ(qw->dtype, DType::I32);
  EXPECT_EQ(qw->shape, (std::vector<int64_t>{172 * 8 / 32, 64}));
  EXPECT_EQ(by_name.at("model.layers.0.mlp.down_proj.qzeros")->shape, (std::vector<int64_t>{43, 64 * 8 / 32}));
  EXPECT_EQ(by_name.at("model.layers.0.mlp.down_proj.scales")->dtype, DType::F16);
  EXPECT_EQ(by_name.at("model.layers.0.mlp.down_proj.g_idx")->shape, (std::vector<int64_t>{172}));
  EXPECT_EQ(by_name.at("model.norm.weight")->dtype, DType::F16);
  EXPECT_FALSE(by_name.contains("model.layers.0.mlp.down_proj.weight"));

  auto out = load_model(dir, {test::shared(kTok)});
  EXPECT_EQ(out->metadata.at("quantization"), "gptq int8 g4 asym");
  expect_folder_matches(*src, *out, linears);

  const test::CmdResult r = test::run_cli("ppl " + dir + " --tokenizer " + test::shared(kTok) + " -f " +
                                          test::shared("text/tinystories_val.txt") + " -c 64 --chunks 2 -t 1");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("PPL = "), std::string::npos) << r.out;
}

TEST(HfQuantWriter, PartialGptqAndAwqRecordWhichModulesAreQuantized) {
  auto src = load_model(test::shared(kHf));
  {
    const IntGroupSpec spec{4, 32, true};
    const auto linears = rtn_linears(*src, spec, kAttn);
    const std::string dir = fresh_dir("gptq4-attn");
    write_hf_quantized(*src, linears, {"gptq", spec, true, false, true, 0.01}, dir);
    const json qc = read_json(dir + "/config.json").at("quantization_config");
    EXPECT_EQ(qc.at("modules_in_block_to_quantize"),
              json::parse(R"([["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"]])"));
    EXPECT_EQ(qc.at("desc_act"), true);
    auto out = load_model(dir);
    EXPECT_EQ(out->metadata.at("quantization"), "gptq int4 g32 sym desc_act");
    expect_folder_matches(*src, *out, linears);
  }
  {
    const IntGroupSpec spec{4, 32, false};
    const auto linears = rtn_linears(*src, spec, kAttn);
    const std::string dir = fresh_dir("awq4-attn");
    write_hf_quantized(*src, linears, {"awq", spec}, dir);
    EXPECT_FALSE(fs::exists(dir + "/quantize_config.json"));
    const json qc = read_json(dir + "/config.json").at("quantization_config");
    EXPECT_EQ(qc, json::parse(R"({"quant_method": "awq", "bits": 4, "group_size": 32, "zero_point": true,
        "version": "gemm", "modules_to_not_convert": ["mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]})"));
    SafetensorsFile st(dir + "/model.safetensors");
    int found = 0;
    for (const TensorView& t : st.tensors()) {
      if (t.name != "model.layers.2.self_attn.k_proj.qweight") continue;
      EXPECT_EQ(t.shape, (std::vector<int64_t>{64, 32 / 8}));  // [n_in, n_out / 8]
      ++found;
    }
    EXPECT_EQ(found, 1);
    auto out = load_model(dir);
    EXPECT_EQ(out->metadata.at("quantization"), "awq int4 g32 asym");
    expect_folder_matches(*src, *out, linears);
  }
}

// llama2.c keeps q/k rows in interleaved RoPE order; the writer permutes them into
// HF's order. The two folders then hold the same model: compare their logits.
TEST(HfQuantWriter, InterleavedSourceIsPermutedIntoHfOrder) {
  auto hf = load_model(test::shared(kHf));
  auto bin = load_model(test::shared(kBin));
  ASSERT_EQ(bin->config.rope_style, RopeStyle::Interleaved);
  const IntGroupSpec spec{4, 32, false};
  const std::string d_hf = fresh_dir("from-hf"), d_bin = fresh_dir("from-bin");
  const auto lin_hf = rtn_linears(*hf, spec, kAttn), lin_bin = rtn_linears(*bin, spec, kAttn);
  write_hf_quantized(*hf, lin_hf, {"gptq", spec}, d_hf);
  write_hf_quantized(*bin, lin_bin, {"gptq", spec}, d_bin);
  const json cfg = read_json(d_bin + "/config.json");  // generated from ModelConfig
  EXPECT_EQ(cfg.at("architectures")[0], "LlamaForCausalLM");
  EXPECT_EQ(cfg.at("num_key_value_heads"), 4);
  EXPECT_EQ(cfg.at("intermediate_size"), 172);

  auto a = load_model(d_hf, {test::shared(kTok)});
  auto b = load_model(d_bin, {test::shared(kTok)});
  // Rows quantize independently, so permuting after RTN equals RTN after permuting.
  EXPECT_EQ(values(a->weight("blk.3.attn_q.weight")), values(b->weight("blk.3.attn_q.weight")));
  EXPECT_EQ(values(a->weight("blk.3.attn_k.weight")), values(b->weight("blk.3.attn_k.weight")));
  const std::vector<int32_t> tokens = {1, 403, 407, 261, 378, 429, 270, 260, 396, 432, 266, 412};
  Runner ra(*a, 32, 1), rb(*b, 32, 1);
  std::vector<float> la, lb;
  ra.forward(tokens, 0, true, la);
  rb.forward(tokens, 0, true, lb);
  ASSERT_EQ(la.size(), lb.size());
  double max_diff = 0;
  for (size_t k = 0; k < la.size(); ++k) max_diff = std::max(max_diff, double(std::abs(la[k] - lb[k])));
  EXPECT_LT(max_diff, 1e-3);
}

TEST(HfQuantWriter, RefusesWhatItCannotWrite) {
  auto src = load_model(test::shared(kHf));
  const IntGroupSpec spec{4, 32, false};
  auto linears = rtn_linears(*src, spec, kAttn);
  // Some layers' q_proj only: the config cannot say so.
  auto partial = linears;
  partial.erase("blk.2.attn_q.weight");
  expect_error([&] { write_hf_quantized(*src, partial, {"gptq", spec}, fresh_dir("partial")); },
               {"blk.2.attn_q.weight", "other layers"});
  // 4-bit FFN: 172 outputs do not pack.
  const auto ffn = rtn_linears(*src, {4, -1, false}, {"ffn_up"});
  expect_error([&] { write_hf_quantized(*src, ffn, {"gptq", {4, -1, false}}, fresh_dir("ffn4")); },
               {"blk.0.ffn_up.weight", "[172, 64]"});
  // A folder holding someone else's files.
  const std::string busy = fresh_dir("busy");
  fs::create_directories(busy);
  std::ofstream(busy + "/notes.txt") << "mine";
  expect_error([&] { write_hf_quantized(*src, linears, {"gptq", spec}, busy); }, {busy, "notes.txt"});
  EXPECT_TRUE(fs::exists(busy + "/notes.txt"));
  // An earlier output is replaced.
  const std::string again = fresh_dir("again");
  write_hf_quantized(*src, linears, {"gptq", spec}, again);
  write_hf_quantized(*src, linears, {"awq", spec}, again);
  EXPECT_FALSE(fs::exists(again + "/quantize_config.json"));
  EXPECT_FALSE(fs::exists(again + ".tmp"));
  // GPT-2.
  Model gpt2;
  gpt2.path = "gpt2";
  gpt2.config.arch = Arch::GPT2;
  expect_error([&] { write_hf_quantized(gpt2, {}, {"gptq", spec}, fresh_dir("gpt2")); }, {"Llama family", "GPT-2"});
}

TEST(HfQuantWriter, CopiesTokenizerFilesFromAnHfSource) {
  const std::string src_dir = fresh_dir("src-with-tokenizer-files");
  fs::create_directories(src_dir);
  fs::copy_file(test::shared(kHf + "/config.json"), src_dir + "/config.json");
  fs::create_symlink(test::shared(kHf + "/model.safetensors"), src_dir + "/model.safetensors");
  std::ofstream(src_dir + "/tokenizer_config.json") << R"({"model_max_length": 512})";
  std::ofstream(src_dir + "/generation_config.json") << R"({"bos_token_id": 1})";
  auto src = load_model(src_dir);
  const IntGroupSpec spec{4, 32, false};
  const std::string dir = fresh_dir("copied-tokenizer-files");
  write_hf_quantized(*src, rtn_linears(*src, spec, kAttn), {"gptq", spec}, dir);
  EXPECT_EQ(read_json(dir + "/tokenizer_config.json").at("model_max_length"), 512);
  EXPECT_EQ(read_json(dir + "/generation_config.json").at("bos_token_id"), 1);
  EXPECT_FALSE(fs::exists(dir + "/tokenizer.json"));  // the source has none
}

// ---------------------------------------------------------------- corrupt / unsupported checkpoints

// Copies `from`'s folder to `to`, with model.safetensors rewritten by `edit` (name, view) -> keep?
void copy_folder_editing(const std::string& from, const std::string& to,
                         const std::function<bool(SafetensorsWriter&, const TensorView&)>& edit) {
  fs::create_directories(to);
  for (const auto& e : fs::directory_iterator(from))
    if (e.path().filename() != "model.safetensors") fs::copy_file(e.path(), to / e.path().filename());
  SafetensorsFile st(from + "/model.safetensors");
  SafetensorsWriter w(to + "/model.safetensors");
  for (const TensorView& t : st.tensors())
    if (!edit(w, t)) w.add_view(t);
  w.finish();
}

TEST(HfQuantLoader, CorruptAndUnsupportedCheckpointsFailClearly) {
  auto src = load_model(test::shared(kHf));
  const IntGroupSpec spec{4, 32, false};
  const std::string good = fresh_dir("good");
  write_hf_quantized(*src, rtn_linears(*src, spec, kAttn), {"gptq", spec}, good);

  // qweight of the wrong shape: half its rows.
  const std::string bad = fresh_dir("bad-qweight");
  copy_folder_editing(good, bad, [](SafetensorsWriter& w, const TensorView& t) {
    if (t.name != "model.layers.1.self_attn.q_proj.qweight") return false;
    w.add(t.name, t.dtype, {t.shape[0] / 2, t.shape[1]},
          {static_cast<const uint8_t*>(t.data), t.nbytes / 2});
    return true;
  });
  expect_error([&] { load_model(bad); }, {"model.layers.1.self_attn.q_proj.qweight", "[4, 64]", "expected [8, 64]"});

  // A module without its scales.
  const std::string missing = fresh_dir("missing-scales");
  copy_folder_editing(good, missing, [](SafetensorsWriter&, const TensorView& t) {
    return t.name == "model.layers.0.self_attn.v_proj.scales";  // "handled": dropped
  });
  expect_error([&] { load_model(missing); }, {"model.layers.0.self_attn.v_proj.scales", "missing"});

  // Another quantization method.
  const std::string bnb = fresh_dir("bnb");
  fs::create_directories(bnb);
  json cfg = read_json(test::shared(kHf + "/config.json"));
  cfg["quantization_config"] = {{"quant_method", "aqlm"}, {"in_group_size", 8}};
  std::ofstream(bnb + "/config.json") << cfg.dump(2);
  fs::copy_file(test::shared(kHf + "/model.safetensors"), bnb + "/model.safetensors");
  expect_error([&] { load_model(bnb); }, {"config.json", "quant_method", "aqlm", "not supported"});


  // gptq_v2 zeros are read without the + 1: v2 folder built from the v1 one.
  const std::string v2 = fresh_dir("v2");
  copy_folder_editing(good, v2, [&](SafetensorsWriter& w, const TensorView& t) {
    if (!t.name.ends_with(".qzeros")) return false;
    GptqTensors p;
    p.bits = 4;
    p.n_out = t.shape[1] * 8;
    p.n_groups = t.shape[0];
    p.qzeros.resize(size_t(t.numel()));
    std::memcpy(p.qzeros.data(), t.data, t.nbytes);
    std::vector<int32_t> z(size_t(p.n_out));
    std::vector<int32_t> out(p.qzeros.size());
    for (int64_t g = 0; g < p.n_groups; ++g) {
      gptq_unpack_sequence(p.qzeros.data() + g * t.shape[1], p.n_out, 1, 4, z.data(), 1);
      for (int32_t& x : z) x += 1;  // v1 -> v2
      gptq_pack_sequence(z.data(), p.n_out, 1, 4, out.data() + g * t.shape[1], 1);
    }
    w.add(t.name, t.dtype, t.shape, {reinterpret_cast<const uint8_t*>(out.data()), out.size() * 4});
    return true;
  });
  json c2 = read_json(v2 + "/config.json");
  c2["quantization_config"]["checkpoint_format"] = "gptq_v2";
  std::ofstream(v2 + "/config.json") << c2.dump(2);
  fs::remove(v2 + "/quantize_config.json");
  auto a = load_model(good), b = load_model(v2);
  EXPECT_EQ(b->metadata.at("quantization"), "gptq int4 g32 asym (gptq_v2)");
  EXPECT_EQ(values(a->weight("blk.4.attn_v.weight")), values(b->weight("blk.4.attn_v.weight")));
}

}  // namespace
}  // namespace lowbit
