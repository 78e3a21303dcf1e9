// `lowbit quantize --method rtn|gptq|awq`: runs a method over a model and
// writes either a GGUF (the recipe's format per tensor, GPTQ/AWQ optimising
// each block linear toward that format) or a Hugging Face GPTQ / AWQ folder
// (integer groups: --bits, --group-size, --sym).
//
// Which linears a method quantizes: the decoder layers' q/k/v (or fused qkv),
// o, gate, up and down projections. Embeddings and the output head are left
// to the recipe (GGUF: round-to-nearest in their planned format; HF: f16),
// as AutoGPTQ and AutoAWQ leave them. In a GGUF, a layer linear the recipe
// keeps in a float format, or plans in a format without a fixed-scale grid,
// is rounded as planned and named in the log.
#pragma once
#include <map>
#include <string>

#include "eval/calibration_data.h"
#include "methods/calibrated.h"
#include "methods/int_groups.h"
#include "methods/quantizer.h"
#include "model/model.h"
#include "quant/gguf_export.h"
#include "quant/recipe.h"

namespace lowbit {

struct MethodOptions {
  std::string method = "rtn";   // rtn | gptq | awq
  IntGroupSpec spec;            // HF output: the integer groups
  CalibrationOptions calib;     // gptq / awq
  CalibratedOptions run;        // gptq / awq options (run.method is set from `method`)
};

// True for the decoder-layer linears a method quantizes ("blk.N.attn_q.weight", ...).
bool is_block_linear(const std::string& name);

// GGUF: quantizes `m` (changed in place) per `plan` with the method and writes `out_path`.
void quantize_gguf_with_method(Model& m, const QuantPlan& plan, const MethodOptions& mo, const std::string& out_path,
                               ExportOptions eo);

// Integer groups (mo.spec) for every block linear, then (out_dir not empty)
// an HF folder: the GPTQ layout for rtn and gptq, the AWQ layout for awq. A
// kind of linear (e.g. every ffn_down) that the groups or the layout cannot
// hold — group size not dividing its inputs, or widths that do not pack into
// 32-bit words — is left unquantized (f16 in the folder) and named in a warning.
// `m` is changed in place: quantized linears hold their dequantized values, so
// it can be evaluated as the folder would load. Returns the linears quantized.
std::map<std::string, IntGroupQuant> quantize_hf_with_method(Model& m, const MethodOptions& mo, const std::string& out_dir);

// Any registry method (methods/quantizer.h) over `m` in place: its block
// linears become the method's QLinear layers (calibration windows are loaded
// from calib when the method needs them), then, when out_dir is not empty, the
// model is written as a Hugging Face folder in the method's layout.
QuantizeReport quantize_with_registry(Model& m, const QuantConfig& cfg, const CalibrationOptions& calib, int threads,
                                      const std::string& out_dir);

}  // namespace lowbit
