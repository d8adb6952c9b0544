// LogCapture: the glog lines logged while it exists, for tests that check
// what the daemon says.
#ifndef FOXWORKER_TESTS_SUPPORT_LOG_CAPTURE_H_
#define FOXWORKER_TESTS_SUPPORT_LOG_CAPTURE_H_

#include <glog/logging.h>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace foxworker {

// glog lines while it exists.
class LogCapture : public google::LogSink {
 public:
  LogCapture() { google::AddLogSink(this); }
  ~LogCapture() override { google::RemoveLogSink(this); }
  using google::LogSink::send;
  void send(google::LogSeverity severity, const char*, const char*, int,
            const google::LogMessageTime&, const char* message, size_t len) override {
    std::lock_guard<std::mutex> lock(mu_);
    lines_.push_back({severity, std::string(message, len)});
  }
  std::vector<std::string> Matching(google::LogSeverity severity, const std::string& needle) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (const auto& [s, text] : lines_)
      if (s == severity && text.find(needle) != std::string::npos) out.push_back(text);
    return out;
  }
  // Any severity.
  size_t Count(const std::string& needle) {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (const auto& [s, text] : lines_) n += text.find(needle) != std::string::npos;
    return n;
  }
  bool Has(const std::string& needle) { return Count(needle) > 0; }
  // The first line at `severity` that contains `needle`; "" if none.
  std::string First(google::LogSeverity severity, const std::string& needle) {
    std::vector<std::string> m = Matching(severity, needle);
    return m.empty() ? std::string() : m.front();
  }
  bool WaitFor(google::LogSeverity severity, const std::string& needle,
               std::chrono::milliseconds limit = std::chrono::milliseconds(10000)) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      if (!Matching(severity, needle).empty()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

 private:
  std::mutex mu_;
  std::vector<std::pair<google::LogSeverity, std::string>> lines_;
};

}  // namespace foxworker

#endif  // FOXWORKER_TESTS_SUPPORT_LOG_CAPTURE_H_
