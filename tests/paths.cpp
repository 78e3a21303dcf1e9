#include "paths.h"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>

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

CmdResult run_cli(const std::string& args) {
  const std::string cmd = cli() + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int status = pclose(p);
  return {WEXITSTATUS(status), out};
}

}  // namespace lowbit::test
