// Quantize a model the optimum-quanto way and run it (methods/quanto_api.h):
//
//   build/example_quantize_and_run MODEL [WEIGHTS [ACTIVATIONS]]
//   build/example_quantize_and_run ../shared/models/stories260K/stories260K-f32.gguf qint4 qint8
//
// Loads MODEL, marks its linears with quantize(), prints the module tree,
// materialises them with freeze(), prints the tree again (now with QLinear
// modules), then greedily generates a few tokens with the quantized model
// next to the original's and prints both.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "io/model_loader.h"
#include "lowbit/error.h"
#include "methods/quanto_api.h"
#include "model/forward.h"
#include "model/module_tree.h"

namespace {

// Greedy continuation of `prompt` for n tokens.
std::string greedy(const lowbit::Model& m, const std::string& prompt, int n) {
  const lowbit::Tokenizer& tok = m.tok();
  std::vector<int32_t> ids = tok.encode(prompt, true);
  lowbit::Runner runner(m, int(ids.size()) + n, 1);
  std::vector<float> logits;
  runner.forward(ids, 0, false, logits);
  std::vector<int32_t> gen;
  for (int i = 0; i < n; ++i) {
    int32_t best = 0;
    for (int32_t v = 1; v < int32_t(logits.size()); ++v)
      if (logits[size_t(v)] > logits[size_t(best)]) best = v;
    gen.push_back(best);
    const int32_t next[1] = {best};
    runner.forward(next, int(ids.size()) + i, false, logits);
  }
  return tok.decode(gen);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL [WEIGHTS=qint8|qint4|nf4|... [ACTIVATIONS=none|qint8]]\n", argv[0]);
    return 2;
  }
  try {
    auto model = lowbit::load_model(argv[1]);
    auto original = lowbit::load_model(argv[1]);
    lowbit::QuantoSpec spec;
    if (argc > 2) spec.weights = argv[2];
    if (argc > 3) spec.activations = argv[3];
    spec.group_size = 32;  // stories260K's rows are 64 and 172 wide
    const lowbit::QuantConfig cfg = lowbit::quantize(*model, spec);
    std::printf("quantize(model, weights=%s, activations=%s) -> %s\n", spec.weights.c_str(), spec.activations.c_str(),
                cfg.describe().c_str());
    const lowbit::QuantizeReport rep = lowbit::freeze(*model);
    std::printf("freeze(model): %zu linears quantized, %zu left as they were\n\n", rep.quantized.size(), rep.skipped.size());
    std::printf("%s\n", lowbit::module_tree(*model).c_str());
    const std::string prompt = "Once upon a time";
    std::printf("original:  %s%s\n", prompt.c_str(), greedy(*original, prompt, 24).c_str());
    std::printf("quantized: %s%s\n", prompt.c_str(), greedy(*model, prompt, 24).c_str());
    return rep.quantized.empty() ? 1 : 0;
  } catch (const lowbit::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
