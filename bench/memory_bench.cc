// Pushes messages through the in-memory backend and the full dispatch path
// (consumer, executor, plugin loaded with dlopen) and prints:
//   (a) the no-op plugin: the daemon's own overhead per message;
//   (b) the JSON plugin next to the same handler called directly in a loop
//       on the same number of threads (the ceiling), and their ratio.
// Latency is enqueue to handler start, sampled by the plugin.
#include <dlfcn.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "daemon/backends/memory/memory_backend.h"
#include "daemon/config/config_parser.h"
#include "daemon/core/clock.h"
#include "daemon/core/supervisor.h"
#include "daemon/plugins/host_api.h"

namespace foxworker {
namespace {

constexpr int kThreads = 2;
constexpr size_t kBatch = 256;
constexpr size_t kBacklog = 4096;  // bounds queueing so latency means something

using LatencyFn = uint64_t (*)(double, int);
using HandlerFn = foxw_handle_fn (*)(const char*);

// A ~200-byte JSON job. The timestamp field has a fixed width (padded with
// spaces, which JSON allows) so the producer can patch it in place instead of
// formatting every payload.
constexpr size_t kTsWidth = 20;
const std::string kTemplate =
    "{\"ts\":" + std::string(kTsWidth, ' ') +
    ",\"id\":1234567,\"user\":\"alice@example.com\",\"action\":\"send_email\","
    "\"tags\":[\"welcome\",\"onboarding\",\"en\"],\"data\":{\"subject\":\"Hello there\","
    "\"template\":\"welcome-v2\",\"locale\":\"en_GB\"}}";

void PatchTimestamp(std::string& payload, uint64_t ts) {
  char* p = payload.data() + 6;
  char digits[kTsWidth];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + ts % 10);
    ts /= 10;
  } while (ts > 0 && n < static_cast<int>(kTsWidth));
  for (int i = 0; i < n; ++i) p[i] = digits[n - 1 - i];
}

std::string Payload(uint64_t ts) {
  std::string s = kTemplate;
  PatchTimestamp(s, ts);
  return s;
}

struct DaemonRun {
  double msgs_per_s = 0;
  double p50_us = 0, p99_us = 0;
};

DaemonRun RunDaemon(const std::string& handler, size_t total, LatencyFn latency) {
  std::string yaml = "daemon:\n  worker_threads: " + std::to_string(kThreads) +
                     "\n  log_level: warning\n"
                     "plugins:\n  bench:\n    path: " BENCH_PLUGIN_PATH "\n"
                     "backends:\n  mem:\n    type: memory\n"
                     "queues:\n  bench:\n    backend: mem\n    plugin: bench\n    handler: " +
                     handler + "\n    concurrency: " + std::to_string(kThreads) +
                     "\n    prefetch: 512\n";
  auto config = ParseConfigString(yaml, "bench.yaml", "/tmp");
  if (!config.ok()) {
    fprintf(stderr, "bench config: %s\n", config.status().message().c_str());
    exit(1);
  }
  Supervisor sup(std::move(*config));
  Status s = sup.Start();
  if (!s.ok()) {
    fprintf(stderr, "bench start: %s\n", s.message().c_str());
    exit(1);
  }
  auto* mem = static_cast<MemoryBackend*>(sup.FindBackend("mem"));
  Consumer* consumer = sup.FindConsumer("bench");
  latency(0.5, 1);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Message> batch;
  for (size_t sent = 0; sent < total;) {
    // The producer is not the daemon: when the backlog is full it sleeps
    // rather than spinning on the queue's lock against the workers.
    while (mem->ReadyCount("bench") > kBacklog) std::this_thread::sleep_for(std::chrono::microseconds(50));
    size_t n = std::min(kBatch, total - sent);
    batch.resize(n);
    const uint64_t ts = MonotonicNs();
    for (size_t i = 0; i < n; ++i) {
      batch[i] = Message();
      batch[i].payload = Payload(ts);
    }
    if (!mem->EnqueueBatch("bench", batch).ok()) exit(1);
    sent += n;
  }
  while (consumer->Stats().acked < total) std::this_thread::sleep_for(std::chrono::microseconds(200));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  DaemonRun r;
  r.msgs_per_s = static_cast<double>(total) / secs;
  r.p50_us = static_cast<double>(latency(0.5, 0)) / 1000.0;
  r.p99_us = static_cast<double>(latency(0.99, 1)) / 1000.0;
  sup.Shutdown();
  return r;
}

// The ceiling: the same handler called directly on kThreads threads.
double RunDirect(foxw_handle_fn handle, size_t total) {
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  std::atomic<uint64_t> acks{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<Delivery> ds(1024);
      for (size_t i = 0; i < ds.size(); ++i) ds[i].msg.payload = Payload(i + t);
      char reason[256];
      while (!go.load()) {
      }
      uint64_t ok = 0;
      for (size_t i = 0; i < total / kThreads; ++i) {
        foxw_outcome out{sizeof(foxw_outcome), reason, sizeof reason, 0, 0};
        ok += handle(nullptr, AsForeign(&ds[i & 1023]), &out) == FOXW_ACK;
      }
      acks += ok;
    });
  }
  const auto t0 = std::chrono::steady_clock::now();
  go = true;
  for (auto& th : threads) th.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (acks.load() != total / kThreads * kThreads) {
    fprintf(stderr, "direct run: handler did not ack\n");
    exit(1);
  }
  return static_cast<double>(total) / secs;
}

int Main(int argc, char** argv) {
  size_t total = argc > 1 ? strtoull(argv[1], nullptr, 10) : 1000000;
  FLAGS_minloglevel = google::GLOG_WARNING;
  void* h = dlopen(BENCH_PLUGIN_PATH, RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    fprintf(stderr, "%s\n", dlerror());
    return 1;
  }
  auto init = reinterpret_cast<foxw_init_v1_fn>(dlsym(h, FOXW_INIT_V1_SYMBOL));
  auto latency = reinterpret_cast<LatencyFn>(dlsym(h, "bench_plugin_latency"));
  auto handler = reinterpret_cast<HandlerFn>(dlsym(h, "bench_plugin_handler"));
  foxw_plugin_ctx ctx;
  char err[256];
  init(HostApi(), &ctx, err, sizeof err);

  DaemonRun noop = RunDaemon("noop", total, latency);
  printf("BENCH memory.noop.msgs_per_s %.0f msg/s\n", noop.msgs_per_s);
  printf("BENCH memory.noop.p50_latency_us %.1f us\n", noop.p50_us);
  printf("BENCH memory.noop.p99_latency_us %.1f us\n", noop.p99_us);
  fflush(stdout);

  double direct = RunDirect(handler("json"), total);
  DaemonRun json = RunDaemon("json", total, latency);
  printf("BENCH memory.json.msgs_per_s %.0f msg/s\n", json.msgs_per_s);
  printf("BENCH memory.json.p50_latency_us %.1f us\n", json.p50_us);
  printf("BENCH memory.json.p99_latency_us %.1f us\n", json.p99_us);
  printf("BENCH memory.json.direct_msgs_per_s %.0f msg/s\n", direct);
  printf("BENCH memory.json.ratio_to_direct %.3f ratio\n", json.msgs_per_s / direct);
  return 0;
}

}  // namespace
}  // namespace foxworker

int main(int argc, char** argv) {
  google::InitGoogleLogging("memory_bench");
  FLAGS_logtostderr = true;
  return foxworker::Main(argc, argv);
}
