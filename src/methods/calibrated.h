// Calibration-based quantization of a model's linears, layer by layer
// (methods/layer_pipeline.h): GPTQ or AWQ, each linear toward its own target
// grid (an integer group spec for the HF layouts, or the ggml format the
// recipe planned for it), so the same run can produce an HF GPTQ/AWQ folder
// or a GGUF llama.cpp runs.
//
// GPTQ (methods/gptq.h): per layer, per true-sequential group ({q,k,v}, {o},
// {gate,up}, {down}), the group's input Hessian is collected with the layer's
// already-quantized weights in place, then each linear is quantized.
// AWQ (methods/awq.h): per layer, activation-aware scales are searched and
// folded into the preceding norm / linear, weights are clipped, then rounded
// to nearest on the target grid.
// After each layer its outputs, computed with the quantized weights, feed the next.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "eval/calibration_data.h"
#include "methods/awq.h"
#include "methods/gptq.h"
#include "model/model.h"

namespace lowbit {

struct CalibratedOptions {
  std::string method = "gptq";  // "gptq" | "awq"
  GptqOptions gptq;
  AwqOptions awq;
  bool true_sequential = true;  // GPTQ: quantize {q,k,v}, {o}, {gate,up}, {down} in turn
  int threads = 0;
};

// TargetOf (methods/awq.h): the grid of each linear; nullopt: the method leaves it
// alone (the writer quantizes it as planned, e.g. a tensor the recipe keeps in f16).

struct LinearReport {
  std::string name;
  int64_t n_out = 0, n_in = 0;
  std::string target;           // "int4 g128 asym", "q4_K", ...
  double loss_rtn = 0.0;        // proxy loss tr(ΔW H ΔW^T)/n_out of round-to-nearest (GPTQ)
  double loss_method = 0.0;     // ... of the method's weights
  double seconds = 0.0;
};

struct CalibratedResult {
  std::map<std::string, std::vector<uint8_t>> blocks;  // format targets: the tensor's rows of blocks
  std::map<std::string, IntGroupQuant> ints;           // int targets
  std::vector<LinearReport> linears;
  double seconds = 0.0;
  size_t peak_rss = 0;                                 // bytes (VmHWM) at the end
};

// Quantizes every linear of every decoder layer of `m` for which target(name)
// is set. `m` is changed in place: quantized linears hold their dequantized
// values, and AWQ's scales are folded into norms and linears (so the rest of
// the model, written from `m`, matches). Logs one line per linear and shows progress.
CalibratedResult quantize_calibrated(Model& m, const CalibrationSet& calib, const CalibratedOptions& opts,
                                     const TargetOf& target);

}  // namespace lowbit
