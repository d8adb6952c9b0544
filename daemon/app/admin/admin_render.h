// What the admin endpoints say about a running Supervisor: readiness
// reasons, the Prometheus metrics text and the queues JSON. Pure functions of
// the supervisor's state, so tests can check them without HTTP.
//
// They read consumers and backends from the admin thread: Consumer::Stats(),
// paused(), Middleware::State() and Backend::State() are thread-safe, and
// the supervisor's lists do not change between Start() and Shutdown().
#ifndef FOXWORKER_APP_ADMIN_ADMIN_RENDER_H_
#define FOXWORKER_APP_ADMIN_ADMIN_RENDER_H_

#include <chrono>
#include <string>
#include <vector>

namespace foxworker {

class Consumer;
class Supervisor;

// Why the daemon is not ready (paused queues, disconnected backends); empty
// when every queue consumes.
std::vector<std::string> ReadinessReasons(const Supervisor& supervisor);

// {"ready": bool, "reasons": [...]}
std::string RenderReadinessJson(const std::vector<std::string>& reasons);

// Prometheus text exposition format 0.0.4: the daemon's own families, then
// the plugins' (MetricsRegistry::Default()).
std::string RenderMetrics(const Supervisor& supervisor,
                          std::chrono::system_clock::time_point started);

// {"queues": [...], "backends": [...]}
std::string RenderQueuesJson(const Supervisor& supervisor);
// One queue's object, as in RenderQueuesJson.
std::string RenderQueueJson(const Supervisor& supervisor, const Consumer& consumer);

// {"error": message}
std::string RenderErrorJson(const std::string& message);

// The process's resident set size in bytes (from /proc/self/statm); 0 when
// unknown.
uint64_t ResidentMemoryBytes();

}  // namespace foxworker

#endif  // FOXWORKER_APP_ADMIN_ADMIN_RENDER_H_
