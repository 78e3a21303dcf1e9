// Where tests find ../shared and the built CLI.
#pragma once
#include <string>

namespace lowbit::test {
std::string shared(const std::string& rel);  // ../shared/<rel>, absolute
std::string cli();                           // path of the built `lowbit` binary
std::string temp_dir();                      // a fresh per-test-process temp folder

// Runs the built CLI with `args` (shell syntax), capturing stdout + stderr.
struct CmdResult {
  int code;         // exit status
  std::string out;  // stdout + stderr
};
CmdResult run_cli(const std::string& args);
}  // namespace lowbit::test
