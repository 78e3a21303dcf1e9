#include "paths.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

namespace lowbit::test {

std::string shared(const std::string& rel) {
  return (std::filesystem::path(LOWBIT_SHARED_DIR) / rel).lexically_normal().string();
}

std::string cli() { return LOWBIT_CLI_PATH; }

std::string temp_dir() {
  static std::string dir = [] {
    auto p = std::filesystem::temp_directory_path() / ("lowbit-test-" + std::to_string(getpid()));
    std::filesystem::create_directories(p);
    return p.string();
  }();
  return dir;
}

}  // namespace lowbit::test
