// The optimum-quanto way of quantizing a model in C++:
//
//   auto model = load_model("stories260K.gguf");
//   quantize(*model, {.weights = "qint4", .activations = "qint8"});  // marks the linears
//   freeze(*model);                                                   // materialises quantized weights
//   std::cout << module_tree(*model);   // QLinear(in_features=64, out_features=172, bias=False, w4a8 ...)
//   Runner runner(*model, 256);         // runs as usual
//
// quantize() only records what each block linear will become (as quanto swaps
// in QLinear modules that still hold float weights); freeze() runs the method
// from the registry (methods/quantizer.h) and replaces the weights. The
// (weights, activations) pair picks the method:
//   qint8 / none   -> rtn, 8 bits, symmetric, one scale per output row (quanto's qint8)
//   qint4 / none   -> rtn, 4 bits, asymmetric groups of group_size (quanto's qint4, group 128)
//   qint2 / none   -> rtn, 2 bits, asymmetric groups
//   qint8 / qint8  -> w8a8: int8 rows, activations int8 per token at run time
//   qint4 / qint8  -> w4a8
//   nf4 | fp4 / none -> bitsandbytes 4-bit, blocks of 64
// Any other registry method can be named directly as `weights` ("hqq", "kmeans").
#pragma once
#include <string>
#include <vector>

#include "methods/quant_config.h"
#include "methods/quantizer.h"
#include "model/model.h"

namespace lowbit {

struct QuantoSpec {
  std::string weights = "qint8";      // qint8 | qint4 | qint2 | nf4 | fp4 | a registry method name
  std::string activations = "none";   // none | qint8
  int group_size = 128;               // qint4 / qint2 groups (falls back per layer: see freeze())
  std::vector<std::string> exclude;   // modules to leave as they are ("lm_head", "mlp.down_proj")
};

// The registry config a spec means; throws lowbit::Error for pairs no method implements.
QuantConfig quanto_config(const QuantoSpec& spec);

// Marks the model for quantization (nothing is computed yet); returns the config freeze() will apply.
QuantConfig quantize(Model& m, const QuantoSpec& spec);

// Quantizes every marked linear. Linears whose shape the groups do not divide
// are left as they were and named in the report.
QuantizeReport freeze(Model& m);

}  // namespace lowbit
