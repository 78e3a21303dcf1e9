// The llama2.c loader, matmul, the CPU forward pass (Llama and GPT-2), the
// sampler and generation — checked against stories260K's documented output and
// against naive scalar reference implementations written here (plain loops,
// double accumulation, no BLAS, no code shared with the library).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "io/llama2c.h"
#include "lowbit/error.h"
#include "model/forward.h"
#include "model/matmul.h"
#include "paths.h"
#include "runtime/generate.h"
#include "runtime/sampler.h"

using namespace lowbit;

namespace {

const std::string kStories = "models/stories260K/stories260K.bin";
const std::string kStoryPrefix =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.";

const Model& stories() {
  static std::unique_ptr<Model> m = [] {
    auto p = std::make_unique<Model>();
    load_llama2c_model(test::shared(kStories), *p);
    return p;
  }();
  return *m;
}

// ---- a tiny independent reader of llama2.c's tok512.bin, to decode ids ----
std::vector<std::string> read_tok_pieces(const std::string& path, int n_vocab) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << path;
  int32_t max_len = 0;
  f.read(reinterpret_cast<char*>(&max_len), 4);
  std::vector<std::string> pieces(static_cast<size_t>(n_vocab));
  for (auto& p : pieces) {
    float score = 0;
    int32_t len = 0;
    f.read(reinterpret_cast<char*>(&score), 4);
    f.read(reinterpret_cast<char*>(&len), 4);
    p.resize(size_t(len));
    f.read(p.data(), len);
  }
  return pieces;
}

// llama2.c's decode: drop the leading space after BOS, map <0xXX> to its byte.
std::string local_decode(const std::vector<std::string>& pieces, const std::vector<int32_t>& ids, int32_t prev) {
  std::string out;
  for (int32_t id : ids) {
    std::string p = pieces[size_t(id)];
    if (prev == 1 && !p.empty() && p[0] == ' ') p.erase(0, 1);
    unsigned byte = 0;
    if (p.size() == 6 && std::sscanf(p.c_str(), "<0x%02X>", &byte) == 1) p = std::string(1, char(byte));
    out += p;
    prev = id;
  }
  return out;
}

std::vector<float> f32_of(const TensorView& t) {
  std::vector<float> v(size_t(t.numel()));
  to_f32(t, 0, t.numel(), v.data());
  return v;
}

// y[n_out] = W[n_out, n_in] · x[n_in]   (double accumulation)
std::vector<float> ref_matvec(const std::vector<float>& W, const std::vector<float>& x, size_t n_out) {
  const size_t n_in = x.size();
  std::vector<float> y(n_out);
  for (size_t r = 0; r < n_out; ++r) {
    double s = 0;
    for (size_t j = 0; j < n_in; ++j) s += double(W[r * n_in + j]) * x[j];
    y[r] = float(s);
  }
  return y;
}

std::vector<float> ref_rmsnorm(const std::vector<float>& x, const std::vector<float>& w, double eps) {
  double ss = 0;
  for (float v : x) ss += double(v) * v;
  const double scale = 1.0 / std::sqrt(ss / double(x.size()) + eps);
  std::vector<float> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = float(w[i] * (x[i] * scale));
  return y;
}

std::vector<float> ref_layernorm(const std::vector<float>& x, const std::vector<float>& w,
                                 const std::vector<float>& b, double eps) {
  double mean = 0, var = 0;
  for (float v : x) mean += v;
  mean /= double(x.size());
  for (float v : x) var += (v - mean) * (v - mean);
  var /= double(x.size());
  std::vector<float> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = float((x[i] - mean) / std::sqrt(var + eps) * w[i] + b[i]);
  return y;
}

// Causal softmax attention of one query position over keys/values [0, n_keys).
// q: [n_heads*hd]; keys/values: per position [n_kv*hd].
std::vector<float> ref_attention(const std::vector<float>& q, const std::vector<std::vector<float>>& keys,
                                 const std::vector<std::vector<float>>& values, int n_heads, int n_kv, int hd) {
  std::vector<float> out(size_t(n_heads) * hd, 0.0f);
  for (int h = 0; h < n_heads; ++h) {
    const int g = h / (n_heads / n_kv);
    std::vector<double> s(keys.size());
    double mx = -1e300;
    for (size_t t = 0; t < keys.size(); ++t) {
      double d = 0;
      for (int e = 0; e < hd; ++e) d += double(q[size_t(h * hd + e)]) * keys[t][size_t(g * hd + e)];
      s[t] = d / std::sqrt(double(hd));
      mx = std::max(mx, s[t]);
    }
    double sum = 0;
    for (double& v : s) sum += (v = std::exp(v - mx));
    for (int e = 0; e < hd; ++e) {
      double o = 0;
      for (size_t t = 0; t < keys.size(); ++t) o += s[t] / sum * values[t][size_t(g * hd + e)];
      out[size_t(h * hd + e)] = float(o);
    }
  }
  return out;
}

// RoPE frequencies with rope_scaling, written from the published formulas.
std::vector<double> ref_inv_freq(const ModelConfig& c) {
  std::vector<double> f(size_t(c.head_dim / 2));
  for (size_t i = 0; i < f.size(); ++i) {
    double base = 1.0 / std::pow(double(c.rope_theta), double(2 * i) / c.head_dim);
    const RopeScaling& r = c.rope_scaling;
    if (r.type == "linear") base /= r.factor;
    if (r.type == "llama3") {
      double wavelen = 2 * std::numbers::pi / base;
      double lo = r.original_max_position / r.low_freq_factor, hi = r.original_max_position / r.high_freq_factor;
      if (wavelen > lo) {
        base = base / r.factor;
      } else if (wavelen >= hi) {
        double smooth = (r.original_max_position / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
        base = (1 - smooth) * base / r.factor + smooth * base;
      }
    }
    f[i] = base;
  }
  return f;
}

void ref_rope(std::vector<float>& v, int n_heads, int hd, int pos, const std::vector<double>& inv_freq, bool neox) {
  for (int h = 0; h < n_heads; ++h)
    for (int j = 0; j < hd / 2; ++j) {
      const size_t a = size_t(h * hd + (neox ? j : 2 * j)), b = size_t(h * hd + (neox ? j + hd / 2 : 2 * j + 1));
      const double ang = pos * inv_freq[size_t(j)], x0 = v[a], x1 = v[b];
      v[a] = float(x0 * std::cos(ang) - x1 * std::sin(ang));
      v[b] = float(x0 * std::sin(ang) + x1 * std::cos(ang));
    }
}

// Naive Llama: logits [n, n_vocab] for `tokens` at positions 0..n-1, one token at a time.
std::vector<float> naive_llama(const Model& m, const std::vector<int32_t>& tokens) {
  const ModelConfig& c = m.config;
  const int hd = c.head_dim;
  const auto inv_freq = ref_inv_freq(c);
  auto W = [&](int l, const char* s) { return f32_of(m.weight(layer_tensor_name(l, s))); };
  auto B = [&](int l, const char* s) {
    const TensorView* t = m.find_weight(layer_tensor_name(l, s));
    return t ? f32_of(*t) : std::vector<float>();
  };
  auto add = [](std::vector<float>& y, const std::vector<float>& b) {
    for (size_t i = 0; i < b.size(); ++i) y[i] += b[i];
  };
  const auto emb = f32_of(m.weight("token_embd.weight"));
  const auto out_w = f32_of(m.weight(c.tied_embeddings ? "token_embd.weight" : "output.weight"));
  std::vector<std::vector<std::vector<float>>> K(size_t(c.n_layers)), V(size_t(c.n_layers));
  std::vector<float> logits;
  for (size_t p = 0; p < tokens.size(); ++p) {
    std::vector<float> x(emb.begin() + int64_t(tokens[p]) * c.dim, emb.begin() + int64_t(tokens[p] + 1) * c.dim);
    for (int l = 0; l < c.n_layers; ++l) {
      auto xn = ref_rmsnorm(x, W(l, "attn_norm.weight"), c.norm_eps);
      auto q = ref_matvec(W(l, "attn_q.weight"), xn, size_t(c.q_dim()));
      auto k = ref_matvec(W(l, "attn_k.weight"), xn, size_t(c.kv_dim()));
      auto v = ref_matvec(W(l, "attn_v.weight"), xn, size_t(c.kv_dim()));
      add(q, B(l, "attn_q.bias"));
      add(k, B(l, "attn_k.bias"));
      add(v, B(l, "attn_v.bias"));
      ref_rope(q, c.n_heads, hd, int(p), inv_freq, c.rope_style == RopeStyle::NeoX);
      ref_rope(k, c.n_kv_heads, hd, int(p), inv_freq, c.rope_style == RopeStyle::NeoX);
      K[size_t(l)].push_back(k);
      V[size_t(l)].push_back(v);
      auto att = ref_attention(q, K[size_t(l)], V[size_t(l)], c.n_heads, c.n_kv_heads, hd);
      add(x, ref_matvec(W(l, "attn_output.weight"), att, size_t(c.dim)));
      xn = ref_rmsnorm(x, W(l, "ffn_norm.weight"), c.norm_eps);
      auto g = ref_matvec(W(l, "ffn_gate.weight"), xn, size_t(c.hidden_dim));
      auto u = ref_matvec(W(l, "ffn_up.weight"), xn, size_t(c.hidden_dim));
      for (size_t i = 0; i < g.size(); ++i) g[i] = float(g[i] / (1.0 + std::exp(-double(g[i]))) * u[i]);
      add(x, ref_matvec(W(l, "ffn_down.weight"), g, size_t(c.dim)));
    }
    auto y = ref_matvec(out_w, ref_rmsnorm(x, f32_of(m.weight("output_norm.weight")), c.norm_eps), size_t(c.n_vocab));
    logits.insert(logits.end(), y.begin(), y.end());
  }
  return logits;
}

// Naive GPT-2: logits [n, n_vocab].
std::vector<float> naive_gpt2(const Model& m, const std::vector<int32_t>& tokens) {
  const ModelConfig& c = m.config;
  const int hd = c.head_dim, d = c.dim;
  auto W = [&](int l, const char* s) { return f32_of(m.weight(layer_tensor_name(l, s))); };
  auto add = [](std::vector<float>& y, const std::vector<float>& b) {
    for (size_t i = 0; i < b.size(); ++i) y[i] += b[i];
  };
  const auto emb = f32_of(m.weight("token_embd.weight"));
  const auto pos_emb = f32_of(m.weight("position_embd.weight"));
  std::vector<std::vector<std::vector<float>>> K(size_t(c.n_layers)), V(size_t(c.n_layers));
  std::vector<float> logits;
  for (size_t p = 0; p < tokens.size(); ++p) {
    std::vector<float> x(static_cast<size_t>(d));
    for (int i = 0; i < d; ++i) x[size_t(i)] = emb[size_t(tokens[p]) * d + i] + pos_emb[p * d + size_t(i)];
    for (int l = 0; l < c.n_layers; ++l) {
      auto xn = ref_layernorm(x, W(l, "attn_norm.weight"), W(l, "attn_norm.bias"), c.norm_eps);
      auto qkv = ref_matvec(W(l, "attn_qkv.weight"), xn, size_t(3 * d));
      add(qkv, W(l, "attn_qkv.bias"));
      std::vector<float> q(qkv.begin(), qkv.begin() + d), k(qkv.begin() + d, qkv.begin() + 2 * d),
          v(qkv.begin() + 2 * d, qkv.end());
      K[size_t(l)].push_back(k);
      V[size_t(l)].push_back(v);
      auto att = ref_attention(q, K[size_t(l)], V[size_t(l)], c.n_heads, c.n_heads, hd);
      auto o = ref_matvec(W(l, "attn_output.weight"), att, size_t(d));
      add(o, W(l, "attn_output.bias"));
      add(x, o);
      xn = ref_layernorm(x, W(l, "ffn_norm.weight"), W(l, "ffn_norm.bias"), c.norm_eps);
      auto h = ref_matvec(W(l, "ffn_up.weight"), xn, size_t(c.hidden_dim));
      add(h, W(l, "ffn_up.bias"));
      for (float& e : h) {
        const double t = e;
        e = float(0.5 * t * (1 + std::tanh(std::sqrt(2 / std::numbers::pi) * (t + 0.044715 * t * t * t))));
      }
      auto dn = ref_matvec(W(l, "ffn_down.weight"), h, size_t(d));
      add(dn, W(l, "ffn_down.bias"));
      add(x, dn);
    }
    auto xn = ref_layernorm(x, f32_of(m.weight("output_norm.weight")), f32_of(m.weight("output_norm.bias")), c.norm_eps);
    auto y = ref_matvec(emb, xn, size_t(c.n_vocab));
    logits.insert(logits.end(), y.begin(), y.end());
  }
  return logits;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

std::vector<float> run_batched(const Model& m, const std::vector<int32_t>& toks, int threads, int n_ctx = 128) {
  Runner r(m, n_ctx, threads);
  std::vector<float> logits;
  r.forward(toks, 0, true, logits);
  return logits;
}

// A copy of `src` (config, names) whose tensors are owned buffers produced by `convert`.
struct OwnedModel {
  Model model;
  std::deque<std::vector<uint8_t>> buffers;
};

std::unique_ptr<OwnedModel> copy_model(const Model& src, DType dtype,
                                       const std::function<void(const std::string&, std::vector<float>&)>& edit = {}) {
  auto o = std::make_unique<OwnedModel>();
  o->model.path = src.path + " (copy)";
  o->model.format = src.format;
  o->model.config = src.config;
  for (const auto& [name, t] : src.weights) {
    std::vector<float> v = f32_of(t);
    if (edit) edit(name, v);
    TensorView nt = t;
    nt.dtype = dtype;
    std::vector<uint8_t>& buf = o->buffers.emplace_back(v.size() * dtype_size(dtype));
    for (size_t i = 0; i < v.size(); ++i) {
      if (dtype == DType::F32) std::memcpy(buf.data() + 4 * i, &v[i], 4);
      uint16_t h = dtype == DType::F16 ? f32_to_f16(v[i]) : f32_to_bf16(v[i]);
      if (dtype != DType::F32) std::memcpy(buf.data() + 2 * i, &h, 2);
    }
    nt.data = buf.data();
    nt.nbytes = buf.size();
    o->model.weights[name] = nt;
  }
  return o;
}

void add_owned(OwnedModel& o, const std::string& name, std::vector<int64_t> shape, const std::vector<float>& v) {
  TensorView t;
  t.name = name;
  t.dtype = DType::F32;
  t.shape = std::move(shape);
  std::vector<uint8_t>& buf = o.buffers.emplace_back(v.size() * 4);
  std::memcpy(buf.data(), v.data(), buf.size());
  t.data = buf.data();
  t.nbytes = buf.size();
  o.model.weights[name] = t;
}

// Story tokens (greedy continuation of BOS) to run sequences through.
std::vector<int32_t> story_tokens(int n) {
  Runner r(stories(), 512, 1);
  Sampler greedy(SamplerParams{.temperature = 0});
  std::vector<int32_t> ids = {1};
  auto res = generate(r, stories().tokenizer.get(), ids, n - 1, greedy);
  ids.insert(ids.end(), res.tokens.begin(), res.tokens.end());
  return ids;
}

}  // namespace

// ------------------------------------------------------------- loader ----

TEST(Llama2c, LoadsStories260K) {
  const Model& m = stories();
  const ModelConfig& c = m.config;
  EXPECT_EQ(m.format, "llama2.c");
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.hidden_dim, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.n_vocab, 512);
  EXPECT_EQ(c.max_seq, 512);
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_EQ(c.rope_style, RopeStyle::Interleaved);
  EXPECT_EQ(m.n_params(), 260032);  // the documented parameter count
  EXPECT_EQ(m.weight("blk.4.ffn_down.weight").shape, (std::vector<int64_t>{64, 172}));
  // tok512.bin beside the checkpoint is found and opened.
  ASSERT_NE(m.tokenizer, nullptr);
  EXPECT_EQ(m.tokenizer->n_vocab(), 512);
  EXPECT_TRUE(looks_like_llama2c(test::shared(kStories)));
  EXPECT_FALSE(looks_like_llama2c(test::shared("models/stories260K/tok512.bin")));
}

namespace {
std::string write_temp(const std::string& name, const std::vector<char>& bytes) {
  std::string p = test::temp_dir() + "/" + name;
  std::ofstream(p, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
  return p;
}
std::vector<char> stories_bytes() {
  std::ifstream f(test::shared(kStories), std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}
void expect_load_error(const std::string& path, const std::string& must_contain) {
  Model m;
  try {
    load_llama2c_model(path, m);
    ADD_FAILURE() << "no error for " << path;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(must_contain), std::string::npos) << msg;
    EXPECT_NE(msg.find("hint"), std::string::npos) << msg;
  }
}
}  // namespace

TEST(Llama2c, CorruptFilesNameTheFile) {
  std::vector<char> good = stories_bytes();
  ASSERT_EQ(good.size(), 1056540u);

  std::vector<char> truncated(good.begin(), good.end() - 100);
  expect_load_error(write_temp("truncated.bin", truncated), "implies exactly 1056540 bytes");
  std::vector<char> longer = good;
  longer.resize(good.size() + 4);
  expect_load_error(write_temp("longer.bin", longer), "1056544 bytes");
  expect_load_error(write_temp("tiny.bin", {'a', 'b'}), "shorter than");

  auto with_header = [&](int idx, int32_t value) {
    std::vector<char> b = good;
    std::memcpy(b.data() + 4 * idx, &value, 4);
    return b;
  };
  expect_load_error(write_temp("huge_dim.bin", with_header(0, 1 << 30)), "'dim'");
  expect_load_error(write_temp("neg_layers.bin", with_header(2, -5)), "'n_layers'");
  expect_load_error(write_temp("bad_heads.bin", with_header(3, 7)), "'n_heads'");
  expect_load_error(write_temp("bad_kv.bin", with_header(4, 3)), "'n_kv_heads'");
  expect_load_error(write_temp("zero_vocab.bin", with_header(5, 0)), "'vocab_size'");
  // Plausible header, wrong size: 6 layers where the file holds 5.
  expect_load_error(write_temp("more_layers.bin", with_header(2, 6)), "6 layers");
  expect_load_error(test::temp_dir() + "/does_not_exist.bin", "cannot open");
}

// ------------------------------------------------------------- matmul ----

TEST(Matmul, AllTypesMatchNaive) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1, 1);
  // The tiled regime (< 2^31 multiply-adds). (n_out, n_in): odd sizes, and several 64-row tiles.
  // f16/bf16: n_tok < 16 converts row by row, n_tok >= 16 converts panels for sgemm.
  for (auto [n_out, n_in] : {std::pair{37, 53}, std::pair{64, 172}, std::pair{300, 4096}}) {
    std::vector<float> w(size_t(n_out) * n_in);
    for (float& v : w) v = u(rng);
    for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
      // Weights rounded to dt, and the f32 values the reference uses.
      std::vector<uint8_t> buf(w.size() * dtype_size(dt));
      std::vector<float> wr(w.size());
      for (size_t i = 0; i < w.size(); ++i) {
        if (dt == DType::F32) {
          std::memcpy(buf.data() + 4 * i, &w[i], 4);
          wr[i] = w[i];
        } else {
          uint16_t h = dt == DType::F16 ? f32_to_f16(w[i]) : f32_to_bf16(w[i]);
          std::memcpy(buf.data() + 2 * i, &h, 2);
          wr[i] = dt == DType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
        }
      }
      TensorView W;
      W.name = "w";
      W.dtype = dt;
      W.shape = {n_out, n_in};
      W.data = buf.data();
      W.nbytes = buf.size();
      for (int n_tok : {1, 3, 8, 16, 20, 600}) {
        if (n_out > 200 && n_tok > 16) continue;  // keep the naive loop quick
        std::vector<float> X(size_t(n_tok) * n_in), Y(size_t(n_tok) * n_out);
        for (float& v : X) v = u(rng);
        matmul(W, X.data(), n_tok, Y.data());
        float err = 0;
        for (int t = 0; t < n_tok; ++t) {
          std::vector<float> x(X.begin() + int64_t(t) * n_in, X.begin() + int64_t(t + 1) * n_in);
          auto y = ref_matvec(wr, x, size_t(n_out));
          for (int r = 0; r < n_out; ++r) err = std::max(err, std::abs(y[size_t(r)] - Y[size_t(t) * n_out + r]));
        }
        EXPECT_LT(err, 2e-3f) << dtype_name(dt) << " " << n_out << "x" << n_in << " n_tok " << n_tok;
      }
    }
  }
}

TEST(Matmul, ThreadedBlasRegimeMatchesNaive) {
  // >= 2^31 multiply-adds with 2 threads: one threaded sgemm (f16/bf16: two converted panels).
  const int n_out = 2100, n_in = 4096, n_tok = 256;
  std::mt19937 rng(8);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> w(size_t(n_out) * n_in), X(size_t(n_tok) * n_in), Y(size_t(n_tok) * n_out);
  for (float& v : w) v = u(rng);
  for (float& v : X) v = u(rng);
  for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
    std::vector<uint8_t> buf(w.size() * dtype_size(dt));
    std::vector<float> wr(w.size());
    for (size_t i = 0; i < w.size(); ++i) {
      uint16_t h = dt == DType::F16 ? f32_to_f16(w[i]) : f32_to_bf16(w[i]);
      wr[i] = dt == DType::F32 ? w[i] : dt == DType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
      if (dt == DType::F32) std::memcpy(buf.data() + 4 * i, &w[i], 4);
      else std::memcpy(buf.data() + 2 * i, &h, 2);
    }
    TensorView W{"w", dt, {n_out, n_in}, buf.data(), buf.size()};
    matmul(W, X.data(), n_tok, Y.data(), 2);
    // Check a sample of outputs (the naive product of all of them would take seconds).
    float err = 0;
    for (int k = 0; k < 3000; ++k) {
      const int t = int(rng() % n_tok), r = int(rng() % n_out);
      double ref = 0;
      for (int j = 0; j < n_in; ++j) ref += double(wr[size_t(r) * n_in + j]) * X[size_t(t) * n_in + j];
      err = std::max(err, std::abs(float(ref) - Y[size_t(t) * n_out + r]));
    }
    EXPECT_LT(err, 2e-3f) << dtype_name(dt);
  }
}

// ---------------------------------------------------------- generation ----

TEST(Forward, GreedyStoryFromBos) {
  const Model& m = stories();
  Runner r(m, 256, 2);
  Sampler greedy(SamplerParams{.temperature = 0});
  std::vector<int32_t> prompt = {1};
  std::string streamed;
  auto res = generate(r, m.tokenizer.get(), prompt, 40, greedy, [&](int32_t, const std::string& piece) {
    streamed += piece;
    return true;
  });
  ASSERT_EQ(res.tokens.size(), 40u);
  EXPECT_EQ(res.n_prompt, 1);
  EXPECT_EQ(res.n_decode, 39);
  // Decode with an independent reader of tok512.bin, and with the library's tokenizer.
  auto pieces = read_tok_pieces(test::shared("models/stories260K/tok512.bin"), 512);
  std::string text = local_decode(pieces, res.tokens, 1);
  EXPECT_EQ(text.substr(0, kStoryPrefix.size()), kStoryPrefix) << text;
  ASSERT_NE(m.tokenizer, nullptr);
  EXPECT_EQ(streamed.substr(0, kStoryPrefix.size()), kStoryPrefix) << streamed;
}

TEST(Forward, KvCacheMatchesBatched) {
  const Model& m = stories();
  const std::vector<int32_t> toks = story_tokens(24);
  const int V = m.config.n_vocab;
  for (int threads : {1, 2}) {
    Runner r(m, 64, threads);
    std::vector<float> batched, step, chunk;
    r.forward(toks, 0, true, batched);
    ASSERT_EQ(batched.size(), toks.size() * size_t(V));
    // One token at a time through the cache.
    Runner r2(m, 64, threads);
    for (size_t i = 0; i < toks.size(); ++i) {
      r2.forward(std::span(&toks[i], 1), int(i), false, step);
      ASSERT_EQ(step.size(), size_t(V));
      std::vector<float> row(batched.begin() + int64_t(i) * V, batched.begin() + int64_t(i + 1) * V);
      EXPECT_LT(max_abs_diff(step, row), 1e-4f) << "threads " << threads << " token " << i;
    }
    // Two chunks (10 + 14), and a rewind to position 5 recomputing the rest.
    Runner r3(m, 64, threads);
    r3.forward(std::span(toks).first(10), 0, true, chunk);
    r3.forward(std::span(toks).subspan(10), 10, true, chunk);
    std::vector<float> tail(batched.begin() + 10 * V, batched.end());
    EXPECT_LT(max_abs_diff(chunk, tail), 1e-4f);
    r3.forward(std::span(toks).subspan(5), 5, false, chunk);
    std::vector<float> last(batched.end() - V, batched.end());
    EXPECT_LT(max_abs_diff(chunk, last), 1e-4f);
  }
  // Prompt-sized matmuls run OpenBLAS threaded, which may change the last bits with the thread count.
  EXPECT_LT(max_abs_diff(run_batched(m, toks, 1), run_batched(m, toks, 2)), 1e-4f);
  // Decoding (fixed tiles) is bit-identical for any thread count.
  auto decode_all = [&](int threads) {
    Runner r(m, 64, threads);
    std::vector<float> step, all;
    for (size_t i = 0; i < toks.size(); ++i) {
      r.forward(std::span(&toks[i], 1), int(i), false, step);
      all.insert(all.end(), step.begin(), step.end());
    }
    return all;
  };
  EXPECT_EQ(decode_all(1), decode_all(2));
}

TEST(Forward, LongPromptCrossesBatchChunks) {
  // 600 tokens > the 512-token internal chunk; positions past max_seq are fine for RoPE.
  const Model& m = stories();
  std::mt19937 rng(3);
  std::vector<int32_t> toks(600);
  for (auto& t : toks) t = int32_t(rng() % 512);
  std::vector<float> all, part;
  Runner a(m, 640, 2), b(m, 640, 2);
  a.forward(toks, 0, true, all);
  b.forward(std::span(toks).first(300), 0, false, part);
  b.forward(std::span(toks).subspan(300), 300, true, part);
  EXPECT_LT(max_abs_diff(part, std::vector<float>(all.begin() + 300 * 512, all.end())), 1e-4f);
}

TEST(Forward, MatchesNaiveLlama) {
  const Model& m = stories();
  const std::vector<int32_t> toks = story_tokens(12);
  EXPECT_LT(max_abs_diff(run_batched(m, toks, 2), naive_llama(m, toks)), 1e-4f);
}

TEST(Forward, NeoXRopeOnPermutedWeightsIsIdentical) {
  // Rotate-half (NeoX) order: within each head, row j <- row 2j and row j + hd/2 <- row 2j + 1.
  const Model& m = stories();
  const int hd = m.config.head_dim;
  auto permute = [&](const std::string& name, std::vector<float>& v) {
    if (name.find("attn_q.weight") == std::string::npos && name.find("attn_k.weight") == std::string::npos) return;
    const int cols = m.config.dim, rows = int(v.size()) / cols;
    std::vector<float> out(v.size());
    for (int h = 0; h < rows / hd; ++h)
      for (int j = 0; j < hd / 2; ++j)
        for (int c = 0; c < cols; ++c) {
          out[size_t((h * hd + j) * cols + c)] = v[size_t((h * hd + 2 * j) * cols + c)];
          out[size_t((h * hd + j + hd / 2) * cols + c)] = v[size_t((h * hd + 2 * j + 1) * cols + c)];
        }
    v = out;
  };
  auto neox = copy_model(m, DType::F32, permute);
  neox->model.config.rope_style = RopeStyle::NeoX;
  const std::vector<int32_t> toks = story_tokens(12);
  const auto base = run_batched(m, toks, 2);
  // Identical math; only float rounding differs (the q·k sums run over permuted elements).
  EXPECT_LT(max_abs_diff(run_batched(neox->model, toks, 2), base), 1e-4f);
  EXPECT_LT(max_abs_diff(run_batched(neox->model, toks, 1), naive_llama(neox->model, toks)), 1e-4f);
}

TEST(Forward, RopeScalingMatchesNaive) {
  const Model& m = stories();
  const std::vector<int32_t> toks = story_tokens(48);
  const auto unscaled = run_batched(m, toks, 2);
  // head_dim 8, theta 1e4: wavelengths 6.3, 63, 628, 6283. With original_max_position
  // 1024 and factors (1, 4) they fall in: kept, kept, smooth band, scaled.
  for (const char* type : {"llama3", "linear"}) {
    auto scaled = copy_model(m, DType::F32);
    scaled->model.config.rope_scaling = RopeScaling{type, 8.0f, 1.0f, 4.0f, 1024};
    const auto got = run_batched(scaled->model, toks, 2);
    EXPECT_GT(max_abs_diff(got, unscaled), 1e-2f) << type << ": scaling should change the logits";
    EXPECT_LT(max_abs_diff(got, naive_llama(scaled->model, toks)), 1e-4f) << type;
  }
  auto bad = copy_model(m, DType::F32);
  bad->model.config.rope_scaling.type = "yarn";
  EXPECT_THROW(Runner(bad->model, 16, 1), Error);
}

TEST(Forward, QkvBiasMatchesNaive) {
  // Qwen2-style q/k/v biases added to stories260K.
  const Model& m = stories();
  auto o = copy_model(m, DType::F32);
  o->model.config.attn_qkv_bias = true;
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0, 0.3f);
  const ModelConfig& c = m.config;
  for (int l = 0; l < c.n_layers; ++l)
    for (auto [s, n] : {std::pair{"attn_q.bias", c.q_dim()}, std::pair{"attn_k.bias", c.kv_dim()},
                        std::pair{"attn_v.bias", c.kv_dim()}}) {
      std::vector<float> b(static_cast<size_t>(n));
      for (float& v : b) v = nd(rng);
      add_owned(*o, layer_tensor_name(l, s), {n}, b);
    }
  const std::vector<int32_t> toks = story_tokens(10);
  const auto got = run_batched(o->model, toks, 2);
  EXPECT_GT(max_abs_diff(got, run_batched(m, toks, 2)), 1e-2f);
  EXPECT_LT(max_abs_diff(got, naive_llama(o->model, toks)), 1e-4f);
}

TEST(Forward, HalfPrecisionWeights) {
  const Model& m = stories();
  const std::vector<int32_t> toks = story_tokens(20);  // >= 8 tokens: the f16 panel path; steps: the row path
  const auto ref = run_batched(m, toks, 2);
  for (DType dt : {DType::F16, DType::BF16}) {
    auto half = copy_model(m, dt);
    // The same rounded values held as f32: isolates the f16/bf16 kernels from the rounding itself.
    auto rounded = copy_model(m, DType::F32, [&](const std::string&, std::vector<float>& v) {
      for (float& x : v) x = dt == DType::F16 ? f16_to_f32(f32_to_f16(x)) : bf16_to_f32(f32_to_bf16(x));
    });
    const auto got = run_batched(half->model, toks, 2);
    EXPECT_LT(max_abs_diff(got, run_batched(rounded->model, toks, 2)), 1e-4f) << dtype_name(dt);
    EXPECT_LT(max_abs_diff(got, ref), dt == DType::F16 ? 0.02f : 0.2f) << dtype_name(dt);
    // Incremental decoding uses the row-by-row path.
    Runner r(half->model, 32, 2);
    std::vector<float> step;
    for (size_t i = 0; i < toks.size(); ++i) r.forward(std::span(&toks[i], 1), int(i), false, step);
    EXPECT_LT(max_abs_diff(step, std::vector<float>(got.end() - 512, got.end())), 1e-4f) << dtype_name(dt);
  }
}

// --------------------------------------------------------------- GPT-2 ----

namespace {
std::unique_ptr<OwnedModel> tiny_gpt2() {
  auto o = std::make_unique<OwnedModel>();
  ModelConfig& c = o->model.config;
  c.arch = Arch::GPT2;
  c.arch_name = "gpt2";
  c.n_vocab = 61;
  c.dim = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 4;
  c.head_dim = 8;
  c.hidden_dim = 128;
  c.max_seq = 40;
  c.norm_eps = 1e-5f;
  c.tied_embeddings = true;
  o->model.path = "tiny-gpt2 (in memory)";
  o->model.format = "synthetic";
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0, 1);
  auto rnd = [&](std::vector<int64_t> shape, float scale, float offset = 0) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = offset + scale * nd(rng);
    return v;
  };
  const int64_t d = c.dim, h = c.hidden_dim;
  add_owned(*o, "token_embd.weight", {c.n_vocab, d}, rnd({c.n_vocab, d}, 0.5f));
  add_owned(*o, "position_embd.weight", {c.max_seq, d}, rnd({c.max_seq, d}, 0.2f));
  for (int l = 0; l < c.n_layers; ++l) {
    auto add = [&](const char* s, std::vector<int64_t> shape, float scale, float offset = 0) {
      add_owned(*o, layer_tensor_name(l, s), shape, rnd(shape, scale, offset));
    };
    add("attn_norm.weight", {d}, 0.1f, 1.0f);
    add("attn_norm.bias", {d}, 0.1f);
    add("attn_qkv.weight", {3 * d, d}, 0.3f);
    add("attn_qkv.bias", {3 * d}, 0.1f);
    add("attn_output.weight", {d, d}, 0.2f);
    add("attn_output.bias", {d}, 0.1f);
    add("ffn_norm.weight", {d}, 0.1f, 1.0f);
    add("ffn_norm.bias", {d}, 0.1f);
    add("ffn_up.weight", {h, d}, 0.2f);
    add("ffn_up.bias", {h}, 0.1f);
    add("ffn_down.weight", {d, h}, 0.1f);
    add("ffn_down.bias", {d}, 0.1f);
  }
  add_owned(*o, "output_norm.weight", {d}, rnd({d}, 0.1f, 1.0f));
  add_owned(*o, "output_norm.bias", {d}, rnd({d}, 0.1f));
  return o;
}
}  // namespace

TEST(Forward, Gpt2MatchesNaive) {
  auto o = tiny_gpt2();
  const Model& m = o->model;
  std::vector<int32_t> toks = {3, 17, 60, 0, 42, 42, 9, 33, 21, 5, 58, 1};
  const auto ref = naive_gpt2(m, toks);
  for (int threads : {1, 2}) {
    EXPECT_LT(max_abs_diff(run_batched(m, toks, threads, 40), ref), 1e-4f) << threads;
    Runner r(m, 40, threads);
    std::vector<float> step;
    for (size_t i = 0; i < toks.size(); ++i) {
      r.forward(std::span(&toks[i], 1), int(i), false, step);
      EXPECT_LT(max_abs_diff(step, std::vector<float>(ref.begin() + int64_t(i) * 61, ref.begin() + int64_t(i + 1) * 61)),
                1e-4f);
    }
  }
  // Beyond the learned positions.
  Runner r(m, 64, 1);
  std::vector<int32_t> long_toks(41, 1);
  std::vector<float> logits;
  EXPECT_THROW(r.forward(long_toks, 0, false, logits), Error);
}

// -------------------------------------------------------------- errors ----

TEST(Forward, RejectsBadPositionsAndTokens) {
  const Model& m = stories();
  Runner r(m, 8, 1);
  std::vector<float> logits;
  std::vector<int32_t> nine(9, 1), two = {1, 2};
  auto expect_error = [&](auto fn, const std::string& what) {
    try {
      fn();
      ADD_FAILURE() << "no error: " << what;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  expect_error([&] { r.forward(nine, 0, false, logits); }, "context of 8 tokens");
  expect_error([&] { r.forward(std::vector<int32_t>{1, 512}, 0, false, logits); }, "token id 512");
  expect_error([&] { r.forward(std::vector<int32_t>{-1}, 0, false, logits); }, "token id -1");
  expect_error([&] { r.forward(two, 3, false, logits); }, "beyond the 0 tokens");
  r.forward(two, 0, false, logits);
  expect_error([&] { r.forward(nine, 2, false, logits); }, "context of 8 tokens");
  EXPECT_NO_THROW(r.forward(std::vector<int32_t>(6, 1), 2, false, logits));  // exactly fills the context
}

// ------------------------------------------------------------- sampler ----

TEST(Sampler, GreedyAndDeterministic) {
  std::vector<float> logits = {0.1f, 2.0f, -1.0f, 2.0f, 0.5f};
  Sampler greedy(SamplerParams{.temperature = 0});
  EXPECT_EQ(greedy.sample(logits), 1);  // first of the tied maxima
  Sampler top1(SamplerParams{.temperature = 1.0f, .top_k = 1, .top_p = 1.0f, .seed = 1});
  Sampler nucleus(SamplerParams{.temperature = 1.0f, .top_k = 0, .top_p = 1e-6f, .seed = 1});
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(top1.sample(logits), 1);
    EXPECT_EQ(nucleus.sample(logits), 1);
  }
  auto draw = [&](uint64_t seed) {
    Sampler s(SamplerParams{.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = seed});
    std::vector<int32_t> out;
    for (int i = 0; i < 2000; ++i) out.push_back(s.sample(logits));
    return out;
  };
  auto a = draw(9);
  EXPECT_EQ(a, draw(9));
  EXPECT_NE(a, draw(10));
  // Frequencies follow the softmax.
  double z = 0;
  for (float l : logits) z += std::exp(l);
  for (int id = 0; id < 5; ++id) {
    double freq = double(std::count(a.begin(), a.end(), id)) / double(a.size());
    EXPECT_NEAR(freq, std::exp(logits[size_t(id)]) / z, 0.04) << id;
  }
  // top_k = 2 never picks outside the two largest.
  Sampler k2(SamplerParams{.temperature = 2.0f, .top_k = 2, .top_p = 1.0f, .seed = 3});
  for (int i = 0; i < 200; ++i) {
    int32_t t = k2.sample(logits);
    EXPECT_TRUE(t == 1 || t == 3) << t;
  }
  EXPECT_THROW(Sampler(SamplerParams{.temperature = -1}), Error);
}

TEST(Generate, SampledStoryIsReproducible) {
  const Model& m = stories();
  auto run = [&](int threads) {
    Runner r(m, 128, threads);
    Sampler s(SamplerParams{.temperature = 0.9f, .top_k = 40, .top_p = 0.9f, .seed = 1234});
    std::vector<int32_t> prompt = {1};
    return generate(r, m.tokenizer.get(), prompt, 60, s).tokens;
  };
  auto a = run(1);
  EXPECT_FALSE(a.empty());
  EXPECT_EQ(a, run(2));
}
