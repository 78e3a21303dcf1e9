// Fuzzes Hugging Face folder loading through its config.json: read_hf_config,
// then load_hf_model on a folder holding the fuzzed config.json beside a tiny,
// fixed model.safetensors (written once per process with SafetensorsWriter).
// Three fixture folders match three tiny configs (see fuzz/corpus/hf_config/):
// Llama (dim 4, 1 layer, 2 heads, 1 KV head, vocab 8), the same with Qwen2's
// q/k/v biases, and GPT-2 (Conv1D weights, n_inner 8, 4 positions). The input
// goes to the GPT-2 folder when it mentions "GPT2", to the Qwen2 one when it
// mentions "Qwen2", else to the Llama one.
#include <numeric>

#include "fuzz_common.h"
#include "io/hf_model.h"
#include "io/safetensors_writer.h"
#include "model/model.h"

using namespace lowbit;
using namespace lowbit_fuzz;

namespace {

struct Fixture {
  TempDir dir{"hf-config"};
  std::string llama, qwen2, gpt2;  // folder paths

  Fixture() {
    llama = make("llama", false, false);
    qwen2 = make("qwen2", false, true);
    gpt2 = make("gpt2", true, false);
  }

  // f32 values 0.01 * i, converted to the dtype's bytes.
  static std::vector<uint8_t> bytes(DType dt, int64_t n) {
    std::vector<float> f(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) f[size_t(i)] = 0.01f * float(i + 1);
    std::vector<uint8_t> out;
    if (dt == DType::F32) {
      out.resize(f.size() * 4);
      std::memcpy(out.data(), f.data(), out.size());
    } else {  // f16 / bf16: a plain truncation is enough for a fixture (bf16) / 1.0 (f16)
      for (float x : f) {
        uint32_t u;
        std::memcpy(&u, &x, 4);
        uint16_t h = dt == DType::BF16 ? uint16_t(u >> 16) : uint16_t(0x3C00);
        out.push_back(uint8_t(h)), out.push_back(uint8_t(h >> 8));
      }
    }
    return out;
  }

  std::string make(const std::string& name, bool gpt2_layout, bool qkv_bias) {
    const fs::path d = dir.path() / name;
    fs::create_directories(d);
    SafetensorsWriter w((d / "model.safetensors").string());
    auto add = [&](const std::string& n, std::vector<int64_t> shape, DType dt = DType::F32) {
      int64_t numel = std::accumulate(shape.begin(), shape.end(), int64_t(1), std::multiplies<>());
      std::vector<uint8_t> b = bytes(dt, numel);
      w.add(n, dt, std::move(shape), b);
    };
    if (gpt2_layout) {
      add("transformer.wte.weight", {8, 4}, DType::F16);
      add("transformer.wpe.weight", {4, 4});
      add("transformer.ln_f.weight", {4});
      add("transformer.ln_f.bias", {4});
      add("h.0.ln_1.weight", {4});
      add("h.0.ln_1.bias", {4});
      add("h.0.attn.c_attn.weight", {4, 12});  // Conv1D [in, out]
      add("h.0.attn.c_attn.bias", {12});
      add("h.0.attn.c_proj.weight", {4, 4}, DType::BF16);
      add("h.0.attn.c_proj.bias", {4});
      add("h.0.attn.bias", {1, 1, 4, 4});  // causal mask buffer, ignored
      add("h.0.ln_2.weight", {4});
      add("h.0.ln_2.bias", {4});
      add("h.0.mlp.c_fc.weight", {4, 8});
      add("h.0.mlp.c_fc.bias", {8});
      add("h.0.mlp.c_proj.weight", {8, 4});
      add("h.0.mlp.c_proj.bias", {4});
    } else {
      add("model.embed_tokens.weight", {8, 4}, DType::F16);
      add("lm_head.weight", {8, 4});  // used when tie_word_embeddings is false
      add("model.norm.weight", {4}, DType::BF16);
      add("model.layers.0.input_layernorm.weight", {4});
      add("model.layers.0.self_attn.q_proj.weight", {4, 4});
      add("model.layers.0.self_attn.k_proj.weight", {2, 4});
      add("model.layers.0.self_attn.v_proj.weight", {2, 4});
      if (qkv_bias) {
        add("model.layers.0.self_attn.q_proj.bias", {4});
        add("model.layers.0.self_attn.k_proj.bias", {2});
        add("model.layers.0.self_attn.v_proj.bias", {2});
      }
      add("model.layers.0.self_attn.o_proj.weight", {4, 4});
      add("model.layers.0.self_attn.rotary_emb.inv_freq", {1});  // ignored buffer
      add("model.layers.0.post_attention_layernorm.weight", {4});
      add("model.layers.0.mlp.gate_proj.weight", {4, 4});
      add("model.layers.0.mlp.up_proj.weight", {4, 4});
      add("model.layers.0.mlp.down_proj.weight", {4, 4});
    }
    w.set_metadata("format", "pt");
    w.finish();
    return d.string();
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  quiet_logs();
  static Fixture fx;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::string& folder = text.find("GPT2") != std::string_view::npos    ? fx.gpt2
                              : text.find("Qwen2") != std::string_view::npos ? fx.qwen2
                                                                             : fx.llama;
  const std::string config_path = fx.dir.write(fs::path(folder).filename().string() + "/config.json", data, size);

  expect_ok_or_error([&] {
    ModelConfig c = read_hf_config(config_path);
    // Not validated yet: validate() must refuse with an Error, never crash.
    expect_ok_or_error([&] { c.validate(config_path); });
    for (const char* canonical : {"token_embd.weight", "blk.0.attn_q.weight", "blk.3.ffn_down.weight", "output.weight"})
      (void)hf_tensor_name(c.arch, canonical);
  });

  expect_ok_or_error([&] {
    Model m;
    load_hf_model(folder, m);
    for (const auto& [name, t] : m.weights) {
      FUZZ_CHECK(t.data != nullptr, "weight '%s' has no data", name.c_str());
      touch_view(t);
    }
    (void)m.n_params();
  });
  return 0;
}
