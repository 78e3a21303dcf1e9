// Whole small files (configs, texts) into memory, with a clear error.
#pragma once
#include <string>

namespace lowbit {
// Throws lowbit::Error naming `path` when it cannot be read. `max_bytes` guards
// against accidentally slurping a huge file.
std::string read_text_file(const std::string& path, size_t max_bytes = size_t(1) << 31);
}  // namespace lowbit
