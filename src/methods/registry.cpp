#include "methods/registry.h"

#include "methods/int_group_quantizers.h"

namespace lowbit {

std::vector<std::unique_ptr<Quantizer>> make_registered_quantizers() {
  std::vector<std::unique_ptr<Quantizer>> r;
  r.push_back(make_rtn_quantizer());
  r.push_back(make_gptq_quantizer());
  r.push_back(make_awq_quantizer());
  return r;
}

}  // namespace lowbit
