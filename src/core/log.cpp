#include "core/log.h"

#include <unistd.h>

#include <cstdio>
#include <mutex>

#include <fmt/format.h>

namespace lowbit {
namespace {
std::mutex g_mutex;
LogLevel g_level = LogLevel::Info;
LogSink g_sink = [](LogLevel level, const std::string& msg) {
  const char* tag = level == LogLevel::Warn ? "warning: " : level == LogLevel::Error ? "error: " : "";
  std::fprintf(stderr, "%s%s\n", tag, msg.c_str());
};

std::string format_seconds(double s) {
  if (s < 0 || s > 1e7) return "?";
  int t = int(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02}m", t / 3600, t / 60 % 60);
  if (t >= 60) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}
}  // namespace

void set_log_sink(LogSink sink) {
  std::lock_guard lock(g_mutex);
  g_sink = std::move(sink);
}

void set_log_level(LogLevel min_level) { g_level = min_level; }

void log(LogLevel level, const std::string& msg) {
  if (level < g_level) return;
  std::lock_guard lock(g_mutex);
  if (g_sink) g_sink(level, msg);
}

Progress::Progress(std::string label, int64_t total)
    : label_(std::move(label)), total_(total), tty_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

void Progress::update(int64_t done, const std::string& extra) {
  if (g_level > LogLevel::Info) return;
  auto now = std::chrono::steady_clock::now();
  double elapsed = std::chrono::duration<double>(now - start_).count();
  double frac = total_ > 0 ? double(done) / double(total_) : 1.0;
  double eta = frac > 0 ? elapsed * (1 - frac) / frac : -1;
  std::string line = fmt::format("{} {}/{} {:3.0f}% elapsed {} ETA {}{}{}", label_, done, total_, 100 * frac,
                                 format_seconds(elapsed), format_seconds(eta), extra.empty() ? "" : "  ", extra);
  if (tty_) {
    if (std::chrono::duration<double>(now - last_draw_).count() < 0.1 && done < total_) return;
    last_draw_ = now;
    std::lock_guard lock(g_mutex);
    std::fprintf(stderr, "\r\033[K%s", line.c_str());
    std::fflush(stderr);
  } else {
    int decile = int(frac * 10);
    if (decile == last_decile_) return;
    last_decile_ = decile;
    log_info(line);
  }
}

void Progress::finish(const std::string& extra) {
  update(total_, extra);
  if (tty_ && g_level <= LogLevel::Info) {
    std::lock_guard lock(g_mutex);
    std::fprintf(stderr, "\n");
  }
}

}  // namespace lowbit
