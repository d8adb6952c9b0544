// Logging: one structured line per outcome (queue, id, type, attempt,
// outcome, duration, correlation id, reason); at `trace` also a line when a
// message enters the pipeline.
#ifndef FOXWORKER_MIDDLEWARE_LOGGING_LOGGING_H_
#define FOXWORKER_MIDDLEWARE_LOGGING_LOGGING_H_

#include <string>

#include "daemon/middleware/logging/logging_config.h"
#include "daemon/core/middleware.h"

namespace foxworker {

class OutcomeLogging : public Middleware {
 public:
  OutcomeLogging(std::string queue, LoggingConfig config);
  std::string_view name() const override { return "logging"; }
  std::optional<Outcome> Before(const Delivery& d) override;
  void After(const Delivery& d, const Outcome& outcome, const CallInfo& call) override;

  // The line After() logs, for tests.
  static std::string Line(const std::string& queue, const Delivery& d, const Outcome& outcome,
                          const CallInfo& call);

 private:
  void Emit(const std::string& line) const;
  const std::string queue_;
  const LoggingConfig config_;
};

}  // namespace foxworker

#endif  // FOXWORKER_MIDDLEWARE_LOGGING_LOGGING_H_
