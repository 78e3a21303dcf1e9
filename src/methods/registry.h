// The list of registered methods: one factory call per method. Adding a
// method = its files under src/methods/ + one line in registry.cpp.
#pragma once
#include <memory>
#include <vector>

#include "methods/quantizer.h"

namespace lowbit {

std::vector<std::unique_ptr<Quantizer>> make_registered_quantizers();

}  // namespace lowbit
