#include "methods/awq.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "core/log.h"
#include "lowbit/error.h"
#include "methods/layer_pipeline.h"
#include "model/matmul.h"

namespace lowbit {

namespace {

int resolve(int threads) { return threads > 0 ? threads : std::max(1, omp_get_max_threads()); }

// Columns a target rounds together: an int group, or a format block.
int64_t group_columns(const GptqTarget& t, int64_t n_in) {
  return t.ints ? t.ints->group_columns(n_in) : format_traits(*t.format).block_size;
}

// Dequantized round-to-nearest of one group/block segment x [n] into out [n].
void fake_quantize_segment(const float* x, int64_t n, const GptqTarget& t, float* out, std::vector<uint8_t>& buf) {
  if (t.ints) {
    const IntGroupParams p = int_group_params(x, n, 1, *t.ints);
    for (int64_t i = 0; i < n; ++i) out[i] = int_group_value(int_group_code(x[i], p, t.ints->maxq()), p);
    return;
  }
  const FormatTraits& f = format_traits(*t.format);
  buf.resize(row_bytes(f.id, n));
  f.quantize_row_ref(x, buf.data(), n, nullptr);
  f.dequantize_row(buf.data(), out, n);
}

}  // namespace

std::vector<float> fake_quantize(const float* W, int64_t n_out, int64_t n_in, const GptqTarget& t, int threads) {
  std::vector<float> out(size_t(n_out * n_in));
  const int64_t gc = group_columns(t, n_in);
  if (n_in % gc != 0)
    fail(t.ints ? t.ints->name() : format_traits(*t.format).name,
         fmt::format("a row of {} values does not split into groups of {}", n_in, gc), "pick a group size that divides it");
#pragma omp parallel num_threads(resolve(threads))
  {
    std::vector<uint8_t> buf;
#pragma omp for schedule(static)
    for (int64_t o = 0; o < n_out; ++o)
      for (int64_t g = 0; g < n_in; g += gc) fake_quantize_segment(W + o * n_in + g, gc, t, out.data() + o * n_in + g, buf);
  }
  return out;
}

namespace {

// One AWQ scaling group: linears sharing an input, what precedes them, and the loss to watch.
struct ScaleGroup {
  std::vector<std::string> linears;
  std::string prev;            // norm weight, or the linear whose output rows feed the group
  std::string prev_bias;       // that linear's bias ("" when none)
  std::vector<float>* x;       // captured input [N, n_in] (scaled in place when the scale is applied)
  enum Loss { Attention, Mlp, Linear } loss;
};

double mse(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = double(a[i]) - double(b[i]);
    s += d * d;
  }
  return a.empty() ? 0.0 : s / double(a.size());
}

// Y [N, n_out] = X [N, n_in] W^T
std::vector<float> linear_out(const std::vector<float>& X, const std::vector<float>& W, int64_t n_out, int64_t n_in) {
  const int64_t N = int64_t(X.size()) / n_in;
  std::vector<float> Y(size_t(N * n_out));
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(N), int(n_out), int(n_in), 1.0f, X.data(), int(n_in), W.data(),
              int(n_in), 0.0f, Y.data(), int(n_out));
  return Y;
}

void scale_columns(std::vector<float>& W, int64_t n_in, const std::vector<float>& s, bool divide) {
  for (size_t r = 0; r < W.size() / size_t(n_in); ++r)
    for (int64_t i = 0; i < n_in; ++i) W[r * size_t(n_in) + size_t(i)] = divide ? W[r * size_t(n_in) + size_t(i)] / s[size_t(i)]
                                                                                : W[r * size_t(n_in) + size_t(i)] * s[size_t(i)];
}

// llm-awq clipping search (auto_clip_layer) for one linear: W [n_out, n_in], X [T, n_in] (subsampled inputs).
// Clamps W in place per (row, group) to the max that minimises the group's output error.
void clip_linear(std::vector<float>& W, int64_t n_out, int64_t n_in, const std::vector<float>& X, int64_t T,
                 const GptqTarget& t, const AwqOptions& o) {
  const int64_t gc = group_columns(t, n_in);
  const int steps = int(o.max_shrink * o.n_grid);
  const int threads = resolve(o.threads);
  std::vector<float> Xg(size_t(T * gc)), Wg(size_t(n_out * gc)), Qg(size_t(n_out * gc));
  std::vector<float> org(size_t(T * n_out)), cur(size_t(T * n_out));
  std::vector<float> org_max(static_cast<size_t>(n_out)), best_max(static_cast<size_t>(n_out));
  std::vector<double> best_err(static_cast<size_t>(n_out));
  for (int64_t g = 0; g < n_in; g += gc) {
    for (int64_t tk = 0; tk < T; ++tk) std::copy_n(&X[size_t(tk * n_in + g)], gc, &Xg[size_t(tk * gc)]);
    for (int64_t r = 0; r < n_out; ++r) {
      std::copy_n(&W[size_t(r * n_in + g)], gc, &Wg[size_t(r * gc)]);
      float m = 0.0f;
      for (int64_t i = 0; i < gc; ++i) m = std::max(m, std::fabs(Wg[size_t(r * gc + i)]));
      org_max[size_t(r)] = best_max[size_t(r)] = m;
      best_err[size_t(r)] = std::numeric_limits<double>::infinity();
    }
    // org [T, n_out] = Xg · Wg^T
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(T), int(n_out), int(gc), 1.0f, Xg.data(), int(gc), Wg.data(),
                int(gc), 0.0f, org.data(), int(n_out));
    for (int step = 0; step < steps; ++step) {
#pragma omp parallel num_threads(threads)
      {
        std::vector<float> clamped(static_cast<size_t>(gc));
        std::vector<uint8_t> buf;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < n_out; ++r) {
          const float mx = org_max[size_t(r)] * (1.0f - float(step) / float(o.n_grid));
          for (int64_t i = 0; i < gc; ++i) clamped[size_t(i)] = std::clamp(Wg[size_t(r * gc + i)], -mx, mx);
          fake_quantize_segment(clamped.data(), gc, t, &Qg[size_t(r * gc)], buf);
        }
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(T), int(n_out), int(gc), 1.0f, Xg.data(), int(gc),
                  Qg.data(), int(gc), 0.0f, cur.data(), int(n_out));
      for (int64_t r = 0; r < n_out; ++r) {
        double e = 0.0;
        for (int64_t tk = 0; tk < T; ++tk) {
          const double d = double(cur[size_t(tk * n_out + r)]) - double(org[size_t(tk * n_out + r)]);
          e += d * d;
        }
        e /= double(T);
        if (e < best_err[size_t(r)]) {
          best_err[size_t(r)] = e;
          best_max[size_t(r)] = org_max[size_t(r)] * (1.0f - float(step) / float(o.n_grid));
        }
      }
    }
    for (int64_t r = 0; r < n_out; ++r)
      for (int64_t i = 0; i < gc; ++i) {
        float& w = W[size_t(r * n_in + g + i)];
        w = std::clamp(w, -best_max[size_t(r)], best_max[size_t(r)]);
      }
  }
}

}  // namespace

std::vector<float> awq_layer(LayerPipeline& p, int l, const AwqOptions& o, const TargetOf& target,
                             std::vector<AwqGroupReport>& reports) {
  // The loss products below use single-threaded BLAS: OpenBLAS's threading
  // partitions by thread count, which could flip a near-tie between candidates.
  ScopedBlasThreads single_blas(1);
  const Model& m = p.model();
  const ModelConfig& c = m.config;
  if (c.arch != Arch::Llama)
    fail(m.path, "AWQ supports the Llama family only", "use --method gptq or rtn for GPT-2");
  auto name = [l](const char* s) { return layer_tensor_name(l, s); };
  const int64_t N = p.n_tokens();

  // Inputs of each scaling group, with the layer's original weights, and the fp outputs.
  std::vector<float> x_attn, x_o, x_mlp, x_down;
  const std::string q = name("attn_q.weight"), wo = name("attn_output.weight"), gate = name("ffn_gate.weight"),
                    down = name("ffn_down.weight");
  MatmulObserver capture = [&](const std::string& w, const float* X, int n_tok, int64_t n_in) {
    std::vector<float>* dst = w == q ? &x_attn : w == wo ? &x_o : w == gate ? &x_mlp : w == down ? &x_down : nullptr;
    if (dst) dst->insert(dst->end(), X, X + int64_t(n_tok) * n_in);
  };
  std::vector<float> fp_out, mid_org;
  p.run_layer(l, capture, false, &fp_out);
  p.run_layer(l, nullptr, true, &mid_org);
  std::vector<float> final_org = fp_out;  // the layer output with the original weights (MLP loss reference)

  std::vector<ScaleGroup> groups;
  groups.push_back({{q, name("attn_k.weight"), name("attn_v.weight")}, name("attn_norm.weight"), "", &x_attn, ScaleGroup::Attention});
  const TensorView& v = m.weight(name("attn_v.weight"));
  const TensorView& ov = m.weight(wo);
  if (v.shape == ov.shape)  // v's output channels are o's input channels only without GQA
    groups.push_back({{wo}, name("attn_v.weight"), m.find_weight(name("attn_v.bias")) ? name("attn_v.bias") : "", &x_o,
                      ScaleGroup::Linear});
  groups.push_back({{gate, name("ffn_up.weight")}, name("ffn_norm.weight"), "", &x_mlp, ScaleGroup::Mlp});
  groups.push_back({{down}, name("ffn_up.weight"), "", &x_down, ScaleGroup::Linear});

  // 1. scale search for every group (each against the original weights), then apply all.
  std::vector<std::vector<float>> chosen(groups.size());
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    ScaleGroup& G = groups[gi];
    const int64_t n_in = m.weight(G.linears[0]).cols();
    std::vector<double> sum(static_cast<size_t>(n_in));
    for (int64_t t = 0; t < N; ++t)
      for (int64_t i = 0; i < n_in; ++i) sum[size_t(i)] += std::fabs((*G.x)[size_t(t * n_in + i)]);
    std::vector<float> x_mean(static_cast<size_t>(n_in));
    for (int64_t i = 0; i < n_in; ++i) x_mean[size_t(i)] = float(sum[size_t(i)] / double(N));

    std::vector<std::vector<float>> orig;
    for (const auto& n : G.linears) orig.push_back(p.weight_f32(n));
    std::vector<float> ref;  // block output with the original weights
    if (G.loss == ScaleGroup::Linear) ref = linear_out(*G.x, orig[0], m.weight(G.linears[0]).rows(), n_in);

    AwqGroupReport rep;
    rep.linears = G.linears;
    double best = std::numeric_limits<double>::infinity();
    std::vector<float> best_s;
    for (int r = 0; r < o.n_grid; ++r) {
      const double alpha = double(r) / o.n_grid;
      std::vector<float> s(static_cast<size_t>(n_in));
      float smax = 0.0f, smin = std::numeric_limits<float>::infinity();
      for (int64_t i = 0; i < n_in; ++i) {
        s[size_t(i)] = std::max(float(std::pow(double(x_mean[size_t(i)]), alpha)), 1e-4f);
        smax = std::max(smax, s[size_t(i)]);
        smin = std::min(smin, s[size_t(i)]);
      }
      const float norm = std::sqrt(smax * smin);
      for (float& si : s) si /= norm;
      // candidate weights Q(W diag(s)) diag(s)^-1
      std::vector<std::vector<float>> cand;
      for (size_t k = 0; k < G.linears.size(); ++k) {
        const auto t = target(G.linears[k]);
        std::vector<float> w = orig[k];
        if (t) {
          const int64_t n_out = int64_t(w.size()) / n_in;
          scale_columns(w, n_in, s, false);
          w = fake_quantize(w.data(), n_out, n_in, *t, o.threads);
          scale_columns(w, n_in, s, true);
        }
        cand.push_back(std::move(w));
      }
      double err;
      if (G.loss == ScaleGroup::Linear) {
        err = mse(linear_out(*G.x, cand[0], int64_t(cand[0].size()) / n_in, n_in), ref);
      } else {
        for (size_t k = 0; k < G.linears.size(); ++k) p.set_weight(G.linears[k], cand[k]);
        std::vector<float> out;
        if (G.loss == ScaleGroup::Attention) {
          p.run_layer(l, nullptr, true, &out);
          err = mse(out, mid_org);
        } else {
          p.run_ffn(l, mid_org, nullptr, out);
          err = mse(out, final_org);
        }
        for (size_t k = 0; k < G.linears.size(); ++k) p.set_weight(G.linears[k], orig[k]);
      }
      if (r == 0) rep.err_rtn = err;
      if (err < best) {
        best = err;
        best_s = s;
        rep.alpha = alpha;
      }
    }
    if (best_s.empty()) fail(G.linears[0], "AWQ found no finite loss", "the calibration inputs or weights contain NaN or Inf");
    rep.err_awq = best;
    reports.push_back(rep);
    chosen[gi] = std::move(best_s);
  }

  // Fold: W <- W diag(s) for the group's linears; prev / s (norm weight, or the previous linear's rows and bias).
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    const ScaleGroup& G = groups[gi];
    const std::vector<float>& s = chosen[gi];
    const int64_t n_in = int64_t(s.size());
    for (const auto& n : G.linears) {
      std::vector<float> w = p.weight_f32(n);
      scale_columns(w, n_in, s, false);
      p.set_weight(n, std::move(w));
    }
    std::vector<float> prev = p.weight_f32(G.prev);  // norm [n_in], or linear [n_in, its n_in]: rows / s
    const int64_t row = int64_t(prev.size()) / n_in;
    for (int64_t r = 0; r < n_in; ++r)
      for (int64_t i = 0; i < row; ++i) prev[size_t(r * row + i)] /= s[size_t(r)];
    p.set_weight(G.prev, std::move(prev));
    if (!G.prev_bias.empty()) {
      std::vector<float> b = p.weight_f32(G.prev_bias);
      for (int64_t r = 0; r < n_in; ++r) b[size_t(r)] /= s[size_t(r)];
      p.set_weight(G.prev_bias, std::move(b));
    }
    scale_columns(*G.x, n_in, s, true);  // the inputs the scaled weights now see
  }

  // 2. clipping search, on the scaled weights and inputs, for every quantized linear except q and k.
  if (o.clip) {
    for (size_t gi = 0; gi < groups.size(); ++gi) {
      const ScaleGroup& G = groups[gi];
      const int64_t n_in = m.weight(G.linears[0]).cols();
      const int64_t stride = std::max<int64_t>(1, N / std::max(1, o.clip_tokens));
      std::vector<float> X;  // tokens 0, stride, 2 stride, ... (llm-awq: input_feat[:, 0::stride])
      for (int64_t t = 0; t < N; t += stride) X.insert(X.end(), G.x->begin() + t * n_in, G.x->begin() + (t + 1) * n_in);
      const int64_t T = int64_t(X.size()) / n_in;
      for (const auto& n : G.linears) {
        if (n.ends_with("attn_q.weight") || n.ends_with("attn_k.weight")) continue;
        const auto t = target(n);
        if (!t) continue;
        std::vector<float> w = p.weight_f32(n);
        clip_linear(w, int64_t(w.size()) / n_in, n_in, X, T, *t, o);
        p.set_weight(n, std::move(w));
      }
    }
  }
  return fp_out;
}

}  // namespace lowbit
