#include "model/qlinear.h"

#include <fmt/format.h>

namespace lowbit {

std::string qlinear_repr(const QLinear& q, bool bias) {
  return fmt::format("QLinear(in_features={}, out_features={}, bias={}, {})", q.n_in(), q.n_out(),
                     bias ? "True" : "False", q.describe());
}

}  // namespace lowbit
