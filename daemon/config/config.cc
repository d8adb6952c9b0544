#include "daemon/config/config.h"

#include <glog/logging.h>

#include <algorithm>
#include <array>
#include <utility>

namespace foxworker {
namespace {

template <typename T>
const T* FindByName(const std::vector<T>& items, const std::string& name) {
  auto it =
      std::find_if(items.begin(), items.end(), [&](const T& item) { return item.name == name; });
  return it == items.end() ? nullptr : &*it;
}

// Name tables for the enums, in enum order.
constexpr std::array<std::pair<LogLevel, std::string_view>, 5> kLogLevels = {{
    {LogLevel::kTrace, "trace"},
    {LogLevel::kDebug, "debug"},
    {LogLevel::kInfo, "info"},
    {LogLevel::kWarning, "warning"},
    {LogLevel::kError, "error"},
}};

constexpr std::array<std::pair<SyscallFilter, std::string_view>, 2> kSyscallFilters = {{
    {SyscallFilter::kNone, "none"},
    {SyscallFilter::kDefault, "default"},
}};

constexpr std::array<std::pair<SyscallAction, std::string_view>, 2> kSyscallActions = {{
    {SyscallAction::kErrno, "errno"},
    {SyscallAction::kKill, "kill"},
}};

template <typename E, size_t N>
std::string_view NameOf(const std::array<std::pair<E, std::string_view>, N>& table, E value) {
  for (const auto& [e, name] : table) {
    if (e == value) return name;
  }
  LOG(FATAL) << "enum value " << static_cast<int>(value) << " has no name";
  return {};
}

// Parses `name`; the error reads `invalid <what> "x": expected a, b or c`.
template <typename E, size_t N>
Result<E> ParseName(const std::array<std::pair<E, std::string_view>, N>& table,
                    std::string_view what, std::string_view name) {
  std::string expected;
  for (size_t i = 0; i < N; ++i) {
    if (table[i].second == name) return table[i].first;
    if (i > 0) expected += (i + 1 == N) ? " or " : ", ";
    expected += table[i].second;
  }
  return Status::InvalidArgument("invalid " + std::string(what) + " \"" + std::string(name) +
                                 "\": expected " + expected);
}

}  // namespace

std::string SourceMark::ToString() const {
  if (line <= 0) return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

std::string_view LogLevelName(LogLevel level) { return NameOf(kLogLevels, level); }
Result<LogLevel> ParseLogLevel(std::string_view name) {
  return ParseName(kLogLevels, "log level", name);
}

std::string_view SyscallFilterName(SyscallFilter filter) { return NameOf(kSyscallFilters, filter); }
Result<SyscallFilter> ParseSyscallFilter(std::string_view name) {
  return ParseName(kSyscallFilters, "syscall filter", name);
}

std::string_view SyscallActionName(SyscallAction action) { return NameOf(kSyscallActions, action); }
Result<SyscallAction> ParseSyscallAction(std::string_view name) {
  return ParseName(kSyscallActions, "syscall action", name);
}

const PluginConfig* Config::FindPlugin(const std::string& name) const {
  return FindByName(plugins, name);
}
const BackendConfig* Config::FindBackend(const std::string& name) const {
  return FindByName(backends, name);
}
const RetryPolicyConfig* Config::FindRetryPolicy(const std::string& name) const {
  return FindByName(retry_policies, name);
}
ChildLayout ChildLayoutOf(const QueueConfig& q) {
  ChildLayout l;
  const int concurrency = std::max(1, q.concurrency);
  l.processes = q.process.processes > 0 ? q.process.processes : concurrency;
  l.slots_per_child = (concurrency + l.processes - 1) / l.processes;
  return l;
}

const QueueConfig* Config::FindQueue(const std::string& name) const {
  return FindByName(queues, name);
}
const RateLimitConfig* Config::FindRateLimit(const std::string& name) const {
  return FindByName(rate_limits, name);
}

}  // namespace foxworker
