#include "methods/quanto_api.h"

#include <fmt/format.h>

#include "lowbit/error.h"

namespace lowbit {

QuantConfig quanto_config(const QuantoSpec& spec) {
  const bool act8 = spec.activations == "qint8";
  if (!act8 && spec.activations != "none")
    fail("activations", fmt::format("'{}' is not supported", spec.activations), "activations: none or qint8");
  QuantConfig c;
  if (spec.weights == "qint8" || spec.weights == "qint4" || spec.weights == "qint2") {
    const int bits = spec.weights[4] - '0';
    if (act8) {
      if (bits == 2) fail("weights", "qint2 weights with qint8 activations are not implemented", "use qint4 or qint8 weights");
      c = find_quantizer(bits == 8 ? "w8a8" : "w4a8").default_config();
      if (bits == 4) c.group_size = spec.group_size;
    } else {
      c = find_quantizer("rtn").default_config();
      c.bits = bits;
      c.sym = bits == 8;
      c.group_size = bits == 8 ? -1 : spec.group_size;
    }
  } else {
    if (act8) fail("activations", fmt::format("{} weights with qint8 activations are not implemented", spec.weights),
                   "use qint8 or qint4 weights for quantized activations");
    c = find_quantizer(spec.weights).default_config();
  }
  c.skip_modules = spec.exclude;
  return c;
}

namespace {
// The configs marked by quantize(), per model (a Model carries no method state of its own).
std::map<const Model*, QuantConfig>& marked() {
  static std::map<const Model*, QuantConfig> m;
  return m;
}
}  // namespace

QuantConfig quantize(Model& m, const QuantoSpec& spec) {
  QuantConfig c = quanto_config(spec);
  find_quantizer(c.method).validate(c);
  marked()[&m] = c;
  return c;
}

QuantizeReport freeze(Model& m) {
  auto it = marked().find(&m);
  if (it == marked().end()) fail(m.path, "freeze() before quantize()", "call quantize(model, spec) first");
  const QuantConfig c = it->second;
  marked().erase(it);
  const Quantizer& q = find_quantizer(c.method);
  if (q.needs_calibration())
    fail(c.method, "needs calibration data, which the quanto-style API does not take", "use quantize_with_registry");
  return q.quantize_model(m, c, QuantizeContext{});
}

}  // namespace lowbit
