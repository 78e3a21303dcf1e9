#include "methods/calibrated.h"

#include <chrono>
#include <set>

#include <fmt/format.h>

#include "core/log.h"
#include "lowbit/error.h"
#include "methods/input_stats.h"
#include "methods/layer_pipeline.h"

namespace lowbit {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string target_name(const GptqTarget& t) { return t.ints ? t.ints->name() : format_traits(*t.format).name; }

struct Run {
  Model& m;
  LayerPipeline& p;
  const CalibratedOptions& o;
  const TargetOf& target;
  CalibratedResult& r;
  Progress& progress;
  int64_t done = 0;

  // Keeps a linear's quantized form and puts its values into the model.
  void store(const std::string& name, const GptqTarget& t, GptqResult&& q, LinearReport rep) {
    if (t.ints) r.ints[name] = std::move(q.ints);
    else r.blocks[name] = std::move(q.blocks);
    p.set_weight(name, std::move(q.dequantized));
    log(LogLevel::Debug, fmt::format("{} [{} x {}] {}: loss rtn {:.4g} -> {} {:.4g} ({:.2f} s)", name, rep.n_out, rep.n_in,
                                     rep.target, rep.loss_rtn, o.method, rep.loss_method, rep.seconds));
    const int layer = std::stoi(name.substr(4));  // "blk.N...."
    progress.update(++done, fmt::format("layer {}/{} {} [{}x{}] {} loss {:.3g} -> {:.3g}, {:.2f} s, peak {:.0f} MiB",
                                        layer + 1, p.n_layers(), name.substr(name.find('.', 4) + 1), rep.n_out,
                                        rep.n_in, rep.target, rep.loss_rtn, rep.loss_method, rep.seconds,
                                        double(peak_rss_bytes()) / (1 << 20)));
    r.linears.push_back(std::move(rep));
  }

  void gptq_layer(int l) {
    std::vector<std::vector<std::string>> groups = p.sequential_groups(l);
    if (!o.true_sequential) {
      std::vector<std::string> all;
      for (auto& g : groups) all.insert(all.end(), g.begin(), g.end());
      groups = {all};
    }
    for (const auto& group : groups) {
      std::vector<std::string> names;
      for (const auto& n : group)
        if (target(n)) names.push_back(n);
      if (names.empty()) continue;
      // One accumulator per distinct input: linears after the same norm share it.
      std::map<std::string, std::string> site_of;  // linear -> the linear whose input it shares
      std::map<std::string, HessianAccumulator> acc;
      for (const auto& n : names) {
        const std::string norm = p.norm_before(n);
        std::string leader = n;
        for (const auto& [other, lead] : site_of)
          if (!norm.empty() && p.norm_before(other) == norm) leader = lead;
        site_of[n] = leader;
        if (leader == n) acc.emplace(n, HessianAccumulator(m.weight(n).cols()));
      }
      bool attention_only = true;
      for (const auto& n : names) attention_only &= n.find(".attn_") != std::string::npos;
      p.run_layer(l, [&](const std::string& w, const float* X, int n_tok, int64_t) {
        if (auto it = acc.find(w); it != acc.end()) it->second.add(X, n_tok);
      }, attention_only);
      std::map<std::string, std::vector<double>> hessians;
      for (auto& [n, a] : acc) hessians[n] = a.hessian();
      acc.clear();
      for (const auto& n : names) {
        const auto t0 = std::chrono::steady_clock::now();
        const GptqTarget t = *target(n);
        const TensorView& w = m.weight(n);
        const std::vector<float> W = p.weight_f32(n);
        GptqOptions go = o.gptq;
        go.threads = o.threads;
        GptqResult q = gptq_quantize(W.data(), w.rows(), w.cols(), hessians.at(site_of.at(n)).data(), t, go);
        if (q.dead_columns) log(LogLevel::Debug, fmt::format("{}: {} dead input columns", n, q.dead_columns));
        LinearReport rep{n, w.rows(), w.cols(), target_name(t), q.loss_rtn, q.loss_gptq, seconds_since(t0)};
        store(n, t, std::move(q), std::move(rep));
      }
    }
  }

  void awq_layer_all(int l) {
    std::vector<AwqGroupReport> reports;
    AwqOptions ao = o.awq;
    ao.threads = o.threads;
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<float> fp_out = awq_layer(p, l, ao, target, reports);
    const double search_s = seconds_since(t0);
    for (const auto& g : reports)
      log(LogLevel::Debug, fmt::format("blk.{} AWQ {}: alpha {:.2f}, block error {:.4g} -> {:.4g}", l,
                                       g.linears.size() == 1 ? g.linears[0] : g.linears[0] + ", ...", g.alpha, g.err_rtn,
                                       g.err_awq));
    for (const auto& group : p.sequential_groups(l))
      for (const auto& n : group) {
        const auto t = target(n);
        if (!t) continue;
        const TensorView& w = m.weight(n);
        const std::vector<float> W = p.weight_f32(n);
        GptqResult q = rtn_quantize(W.data(), w.rows(), w.cols(), *t, nullptr);
        double err_rtn = 0.0, err_awq = 0.0;
        for (const auto& g : reports)
          for (const auto& gl : g.linears)
            if (gl == n) err_rtn = g.err_rtn, err_awq = g.err_awq;
        LinearReport rep{n, w.rows(), w.cols(), target_name(*t), err_rtn, err_awq, search_s / 7.0};
        store(n, *t, std::move(q), std::move(rep));
      }
    p.set_inputs(std::move(fp_out));  // llm-awq feeds the next layer the fp layer's outputs
  }
};

}  // namespace

CalibratedResult quantize_calibrated(Model& m, const CalibrationSet& calib, const CalibratedOptions& o, const TargetOf& target) {
  if (o.method != "gptq" && o.method != "awq") fail("quantize", fmt::format("unknown calibrated method '{}'", o.method), "use gptq or awq");
  const auto t0 = std::chrono::steady_clock::now();
  CalibratedResult r;
  LayerPipeline p(m, calib, o.threads);
  int64_t total = 0;
  for (int l = 0; l < p.n_layers(); ++l)
    for (const auto& g : p.sequential_groups(l))
      for (const auto& n : g) total += target(n) ? 1 : 0;
  log_info(fmt::format("{}: {} linears in {} layers, calibration {}", o.method, total, p.n_layers(), calib.describe()));
  Progress progress(o.method, total);
  Run run{m, p, o, target, r, progress};
  for (int l = 0; l < p.n_layers(); ++l) {
    if (o.method == "awq") {
      run.awq_layer_all(l);
    } else {
      run.gptq_layer(l);
      p.advance(l);
    }
  }
  r.seconds = seconds_since(t0);
  r.peak_rss = peak_rss_bytes();
  progress.finish(fmt::format("{:.1f} s, peak memory {:.0f} MiB", r.seconds, double(r.peak_rss) / (1 << 20)));
  return r;
}

}  // namespace lowbit
