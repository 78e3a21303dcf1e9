#include "eval/quant_stats.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <tuple>

#include <fmt/format.h>

#include "lowbit/error.h"

namespace lowbit {
namespace {

// N of "blk.N.*", or -1.
int layer_of(const std::string& name) {
  if (!name.starts_with("blk.")) return -1;
  size_t i = 4;
  int n = 0;
  bool any = false;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9') {
    n = n * 10 + (name[i] - '0');
    ++i;
    any = true;
  }
  return any && i < name.size() && name[i] == '.' ? n : -1;
}

std::tuple<int, int, const std::string&> order_key(const std::string& name) {
  const int l = layer_of(name);
  if (l >= 0) return {1, l, name};
  if (name.starts_with("token_embd") || name.starts_with("position_embd")) return {0, 0, name};
  return {2, 0, name};
}

bool is_qk(const std::string& name) {
  return name.ends_with(".attn_q.weight") || name.ends_with(".attn_k.weight") || name.ends_with(".attn_q.bias") ||
         name.ends_with(".attn_k.bias");
}

// Partial sums of one chunk of rows.
struct Sums {
  double ww = 0, qq = 0, qw = 0, dd = 0, max_abs = 0;
};

void accumulate(const float* w, const float* q, int64_t n, Sums& s) {
  for (int64_t i = 0; i < n; ++i) {
    const double a = w[i], b = q[i], d = b - a;
    s.ww += a * a;
    s.qq += b * b;
    s.qw += a * b;
    s.dd += d * d;
    s.max_abs = std::max(s.max_abs, std::abs(d));
  }
}

void add_to(ErrorSummary& s, const TensorErrorStats& t) {
  // mean_rel_rmse holds the weighted sum until finish()
  s.n_tensors++;
  s.numel += t.numel;
  s.mean_rel_rmse += t.rel_rmse * double(t.numel);
  s.min_cosine = std::min(s.min_cosine, t.cosine);
  if (s.worst_tensor.empty() || t.rel_rmse > s.worst_rel_rmse) {
    s.worst_tensor = t.name;
    s.worst_rel_rmse = t.rel_rmse;
  }
}

void finish(ErrorSummary& s) {
  if (s.numel > 0) s.mean_rel_rmse /= double(s.numel);
}

}  // namespace

std::string TensorErrorStats::shape_str() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool quant_stats_name_less(const std::string& a, const std::string& b) { return order_key(a) < order_key(b); }

void sort_tensor_stats(std::vector<TensorErrorStats>& t, QuantStatsSort by) {
  if (by == QuantStatsSort::Name) {
    std::stable_sort(t.begin(), t.end(),
                     [](const auto& a, const auto& b) { return quant_stats_name_less(a.name, b.name); });
    return;
  }
  std::stable_sort(t.begin(), t.end(), [](const auto& a, const auto& b) {
    if (a.rel_rmse != b.rel_rmse) return a.rel_rmse > b.rel_rmse;
    return quant_stats_name_less(a.name, b.name);
  });
}

QuantStats quant_stats(const Model& source, const Model& quant, const QuantStatsOptions& o,
                       const std::function<void(int, int)>& progress) {
  const ModelConfig& sc = source.config;
  const ModelConfig& qc = quant.config;
  if (sc.arch != qc.arch)
    fail(quant.path, fmt::format("architecture '{}' differs from the source's '{}' ({})", qc.arch_name, sc.arch_name,
                                 source.path),
         "compare a quantized model against the model it was made from");
  QuantStats r;
  r.source_path = source.path;
  r.source_format = source.format;
  r.quant_path = quant.path;
  r.quant_format = quant.format;
  r.rope_permuted = sc.arch == Arch::Llama && sc.rope_style != qc.rope_style;
  const int hd = sc.head_dim;
  if (r.rope_permuted && (hd != qc.head_dim || hd <= 0 || hd % 2 != 0))
    fail(quant.path, fmt::format("head_dim {} differs from the source's {}", qc.head_dim, sc.head_dim),
         "compare a quantized model against the model it was made from");
  // Source row (or element, for a bias) that quantized row r came from.
  const bool src_neox = sc.rope_style == RopeStyle::NeoX;
  auto source_row = [hd, src_neox](int64_t r) -> int64_t {
    const int64_t h = r / hd, j = r % hd, half = hd / 2;
    if (src_neox) return h * hd + (j % 2) * half + j / 2;  // interleaved j = 2i + p -> NeoX p*half + i
    return h * hd + 2 * (j % half) + j / half;               // NeoX j = p*half + i -> interleaved 2i + p
  };

  auto selected = [&](const std::string& name) { return o.layer < 0 || layer_of(name) == o.layer; };
  std::vector<std::string> names;
  for (const auto& [name, w] : source.weights) {
    if (!selected(name)) continue;
    if (quant.find_weight(name))
      names.push_back(name);
    else
      r.only_in_source.push_back(name);
  }
  for (const auto& [name, q] : quant.weights)
    if (selected(name) && !source.find_weight(name)) r.only_in_quant.push_back(name);
  for (auto* v : {&names, &r.only_in_source, &r.only_in_quant}) std::sort(v->begin(), v->end(), quant_stats_name_less);

  const int threads = o.n_threads > 0 ? o.n_threads : omp_get_max_threads();
  int done = 0;
  for (const std::string& name : names) {
    const TensorView& w = source.weight(name);
    const TensorView& q = quant.weight(name);
    if (w.shape != q.shape)
      fail(fmt::format("{}: {}", quant.path, name),
           fmt::format("shape {} differs from the source's {} ({})", q.shape_str(), w.shape_str(), source.path),
           "compare a quantized model against the model it was made from");
    TensorErrorStats t;
    t.name = name;
    t.shape = w.shape;
    t.source_type = w.type_name();
    t.quant_type = q.type_name();
    t.numel = w.numel();
    t.layer = layer_of(name);
    t.rows_permuted = r.rope_permuted && is_qk(name);
    const bool is_bias = w.shape.size() == 1;
    const int64_t rows = w.rows(), cols = w.cols();
    if (t.rows_permuted && ((is_bias ? cols : rows) % hd != 0))
      fail(fmt::format("{}: {}", quant.path, name), fmt::format("shape {} does not split into heads of {}", w.shape_str(), hd));

    Sums total;
    if (t.numel > 0 && t.rows_permuted && is_bias) {  // one row, permuted element-wise
      std::vector<float> x(static_cast<size_t>(cols)), y(static_cast<size_t>(cols)), xs(static_cast<size_t>(cols));
      to_f32(w, 0, cols, x.data());
      to_f32(q, 0, cols, y.data());
      for (int64_t e = 0; e < cols; ++e) xs[size_t(e)] = x[size_t(source_row(e))];
      accumulate(xs.data(), y.data(), cols, total);
    } else if (t.numel > 0) {
      // Fixed chunks (independent of the thread count), summed in order.
      const int64_t chunk_rows = std::max<int64_t>(1, 65536 / std::max<int64_t>(1, cols));
      const int64_t n_chunks = (rows + chunk_rows - 1) / chunk_rows;
      std::vector<Sums> part(static_cast<size_t>(n_chunks));
      const bool perm = t.rows_permuted;
#pragma omp parallel num_threads(threads)
      {
        std::vector<float> x(static_cast<size_t>(cols)), y(static_cast<size_t>(cols));
#pragma omp for schedule(dynamic, 1)
        for (int64_t c = 0; c < n_chunks; ++c) {
          Sums s;
          const int64_t end = std::min(rows, (c + 1) * chunk_rows);
          for (int64_t row = c * chunk_rows; row < end; ++row) {
            to_f32(w, (perm ? source_row(row) : row) * cols, cols, x.data());
            to_f32(q, row * cols, cols, y.data());
            accumulate(x.data(), y.data(), cols, s);
          }
          part[size_t(c)] = s;
        }
      }
      for (const Sums& s : part) {
        total.ww += s.ww;
        total.qq += s.qq;
        total.qw += s.qw;
        total.dd += s.dd;
        total.max_abs = std::max(total.max_abs, s.max_abs);
      }
    }
    const double inf = std::numeric_limits<double>::infinity();
    t.max_abs_err = total.max_abs;
    if (total.ww > 0)
      t.rel_rmse = std::sqrt(total.dd / total.ww);
    else
      t.rel_rmse = total.dd > 0 ? inf : 0.0;
    if (total.ww > 0 && total.qq > 0)
      t.cosine = std::clamp(total.qw / std::sqrt(total.ww * total.qq), -1.0, 1.0);
    else
      t.cosine = (total.ww == 0 && total.qq == 0) ? 1.0 : 0.0;
    t.snr_db = t.rel_rmse > 0 ? -20.0 * std::log10(t.rel_rmse) : inf;
    r.tensors.push_back(std::move(t));
    if (progress) progress(++done, int(names.size()));
  }

  std::map<int, ErrorSummary> layers;
  for (const TensorErrorStats& t : r.tensors) {
    add_to(r.model, t);
    if (t.layer >= 0) {
      ErrorSummary& s = layers[t.layer];
      s.layer = t.layer;
      add_to(s, t);
    } else {
      add_to(r.non_layer, t);
    }
  }
  for (auto& [l, s] : layers) {
    finish(s);
    r.layers.push_back(s);
  }
  finish(r.non_layer);
  finish(r.model);
  return r;
}

}  // namespace lowbit
