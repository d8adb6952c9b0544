#include "daemon/middleware/logging/logging.h"

#include <glog/logging.h>

#include <cstdio>

namespace foxworker {

OutcomeLogging::OutcomeLogging(std::string queue, LoggingConfig config)
    : queue_(std::move(queue)), config_(config) {}

void OutcomeLogging::Emit(const std::string& line) const {
  switch (config_.level) {
    case LogLevel::kTrace: VLOG(2) << line; break;
    case LogLevel::kDebug: VLOG(1) << line; break;
    case LogLevel::kInfo: LOG(INFO) << line; break;
    case LogLevel::kWarning: LOG(WARNING) << line; break;
    case LogLevel::kError: LOG(ERROR) << line; break;
  }
}

std::optional<Outcome> OutcomeLogging::Before(const Delivery& d) {
  if (config_.level == LogLevel::kTrace)
    Emit("queue=" + queue_ + " id=" + d.msg.id + " type=" + d.msg.props.message_type +
         " attempt=" + std::to_string(d.msg.attempt) + " step=start");
  return std::nullopt;
}

std::string OutcomeLogging::Line(const std::string& queue, const Delivery& d,
                                 const Outcome& outcome, const CallInfo& call) {
  char ms[32];
  snprintf(ms, sizeof ms, "%.3f", static_cast<double>(call.duration_ns) / 1e6);
  std::string line = "queue=" + queue + " id=" + d.msg.id + " type=" +
                     (d.msg.props.message_type.empty() ? "-" : d.msg.props.message_type) +
                     " attempt=" + std::to_string(d.msg.attempt) +
                     " outcome=" + OutcomeKindName(outcome.kind) + " duration_ms=" + ms +
                     " correlation_id=" +
                     (d.msg.props.correlation_id.empty() ? "-" : d.msg.props.correlation_id);
  if (!call.handler_ran) line += " handler=skipped";
  if (outcome.kind == Outcome::Kind::kRetry)
    line += " delay_ms=" + std::to_string(outcome.delay.count());
  if (!outcome.reason.empty()) line += " reason=\"" + outcome.reason + "\"";
  return line;
}

void OutcomeLogging::After(const Delivery& d, const Outcome& outcome, const CallInfo& call) {
  Emit(Line(queue_, d, outcome, call));
}

}  // namespace foxworker
