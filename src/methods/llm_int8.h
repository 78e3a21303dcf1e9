// LLM.int8() (Dettmers, Lewis, Belkada, Zettlemoyer 2022, "LLM.int8(): 8-bit
// Matrix Multiplication for Transformers at Scale"), inference as bitsandbytes
// runs a `load_in_8bit` model (Linear8bitLt, has_fp16_weights=False):
//
//   weights   vector-wise int8 (sec. 3.2): per output row o, SCB[o] = max_i |W[o, i]|,
//             code = round(W * 127 / SCB[o]) in [-127, 127]. 8 + 32 / n_in bits per weight.
//   product   mixed-precision decomposition (sec. 3.3), per call of matmul on X [n_tok, n_in]:
//             O = { i : max_t |X[t, i]| >= threshold }   (default 6.0; +inf: none)
//             Y = X[:, O] · (W8[:, O] * SCB / 127)^T          in f32 (the weight columns
//                                                            dequantized from int8, as
//                                                            bitsandbytes does without fp16 weights)
//               + (C * SCB[o] / 127) * s_x[t],  C = X8 · W8^T in int32, where X8 is X
//                 quantized per token (absmax / 127) with the columns in O set to 0,
//                 absmax taken over the columns not in O.
//   (bitsandbytes zeroes only the elements >= threshold before taking the row absmax, so its
//   absmax may include sub-threshold values of outlier columns; lowbit uses X without the
//   outlier columns, the X_I8 of sec. 3.3. Both keep the int8 part's range below threshold.)
//
// Hugging Face layout (transformers + bitsandbytes save_pretrained of a load_in_8bit model,
// Linear8bitLt._save_to_state_dict):
//   <module>.weight         I8  [n_out, n_in]   Int8Params CB, row-major
//   <module>.SCB            F32 [n_out]         row absmax
//   <module>.weight_format  U8  []              0 = "row" (bitsandbytes' LINEAR_8BIT_WEIGHTS_FORMAT_MAPPING;
//                                               1..3 = col32 / col_turing / col_ampere tiles, refused)
// Marker: "SCB". quantization_config: quant_method "bitsandbytes", load_in_8bit, llm_int8_threshold.
//
// The layer is an Int8Linear (methods/w8a8.h) in mode LlmInt8; it counts the outlier columns
// of every call: Int8Linear::outlier_share() is the running share per layer.
#pragma once
#include <memory>

#include "methods/quantizer.h"
#include "methods/w8a8.h"

namespace lowbit {

std::unique_ptr<Quantizer> make_llm_int8_quantizer();

}  // namespace lowbit
