// Logging and progress. The library never prints to stdout: it reports
// through a callback the CLI installs (default: stderr).
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace lowbit {

enum class LogLevel { Debug, Info, Warn, Error };
using LogSink = std::function<void(LogLevel, const std::string&)>;

void set_log_sink(LogSink sink);
void set_log_level(LogLevel min_level);
void log(LogLevel level, const std::string& msg);
inline void log_info(const std::string& m) { log(LogLevel::Info, m); }
inline void log_warn(const std::string& m) { log(LogLevel::Warn, m); }

// A progress line "label  i/n  xx%  elapsed  ETA" redrawn in place on a
// terminal (stderr is a tty), a plain log line every ~10% otherwise.
class Progress {
 public:
  Progress(std::string label, int64_t total);
  void update(int64_t done, const std::string& extra = "");
  void finish(const std::string& extra = "");

 private:
  std::string label_;
  int64_t total_;
  int last_decile_ = -1;
  bool tty_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace lowbit
