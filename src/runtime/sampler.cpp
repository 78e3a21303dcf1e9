#include "runtime/sampler.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "lowbit/error.h"

namespace lowbit {

int32_t argmax(std::span<const float> logits) {
  if (logits.empty()) fail("sampler", "empty logits row", "this is a bug in the caller");
  return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

Sampler::Sampler(SamplerParams params) : params_(params), rng_(params.seed) {
  if (!(params_.temperature >= 0.0f) || !std::isfinite(params_.temperature))
    fail("sampler", fmt::format("temperature {} must be >= 0", params_.temperature), "use 0 for greedy decoding");
  if (!(params_.top_p > 0.0f))
    fail("sampler", fmt::format("top_p {} must be > 0", params_.top_p), "use 1 to disable nucleus sampling");
}

int32_t Sampler::sample(std::span<const float> logits) {
  if (params_.temperature == 0.0f) return argmax(logits);
  if (logits.empty()) fail("sampler", "empty logits row", "this is a bug in the caller");
  const int32_t n = int32_t(logits.size());

  // Candidates sorted by logit, descending; ties broken by id so the order is total (deterministic).
  auto higher = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  candidates_.resize(size_t(n));
  for (int32_t i = 0; i < n; ++i) candidates_[size_t(i)] = {logits[size_t(i)], i};
  size_t keep = size_t(n);
  if (params_.top_k > 0 && params_.top_k < n) keep = size_t(params_.top_k);
  std::partial_sort(candidates_.begin(), candidates_.begin() + ptrdiff_t(keep), candidates_.end(), higher);
  candidates_.resize(keep);

  // Softmax of logit / temperature over the kept candidates (max first, so exp <= 1).
  const float inv_t = 1.0f / params_.temperature;
  const float top = candidates_[0].first;
  double total = 0.0;
  for (auto& [v, id] : candidates_) {
    v = std::exp((v - top) * inv_t);
    total += v;
  }

  // Nucleus: the shortest prefix whose probability reaches top_p (at least one token).
  if (params_.top_p < 1.0f) {
    double cum = 0.0;
    size_t cut = 0;
    while (cut < candidates_.size()) {
      cum += candidates_[cut].first / total;
      ++cut;
      if (cum >= params_.top_p) break;
    }
    candidates_.resize(cut);
    total = 0.0;
    for (const auto& [p, id] : candidates_) total += p;
  }

  // u uniform in [0, 1) from the top 53 bits of one generator output.
  const double u = double(rng_() >> 11) * 0x1.0p-53;
  double target = u * total, cum = 0.0;
  for (const auto& [p, id] : candidates_) {
    cum += p;
    if (target < cum) return id;
  }
  return candidates_.back().second;  // rounding left target at the very end
}

}  // namespace lowbit
