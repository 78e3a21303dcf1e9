#include "methods/registry.h"

#include "methods/bnb4.h"
#include "methods/hqq.h"
#include "methods/int_group_quantizers.h"
#include "methods/kmeans.h"
#include "methods/llm_int8.h"
#include "methods/w8a8.h"

namespace lowbit {

std::vector<std::unique_ptr<Quantizer>> make_registered_quantizers() {
  std::vector<std::unique_ptr<Quantizer>> r;
  r.push_back(make_rtn_quantizer());
  r.push_back(make_gptq_quantizer());
  r.push_back(make_awq_quantizer());
  r.push_back(make_nf4_quantizer());
  r.push_back(make_fp4_quantizer());
  r.push_back(make_hqq_quantizer());
  r.push_back(make_kmeans_quantizer());
  r.push_back(make_llm_int8_quantizer());
  r.push_back(make_w8a8_quantizer());
  r.push_back(make_w4a8_quantizer());
  return r;
}

}  // namespace lowbit
