// Registry entries for the integer-group methods: "rtn" (round to nearest,
// AutoGPTQ's grid), "gptq" and "awq" (calibrated, methods/calibrated.h). Their
// layers are IntGroupLinear; their Hugging Face layouts are GPTQ v1 (rtn, gptq)
// and AWQ GEMM (awq), io/hf_quant_writer.h.
#pragma once
#include <memory>

#include "methods/int_groups.h"
#include "methods/quantizer.h"

namespace lowbit {

std::unique_ptr<Quantizer> make_rtn_quantizer();
std::unique_ptr<Quantizer> make_gptq_quantizer();
std::unique_ptr<Quantizer> make_awq_quantizer();

// cfg's bits / group_size / sym as an IntGroupSpec.
IntGroupSpec int_group_spec(const QuantConfig& cfg);

}  // namespace lowbit
