// Pushes messages through the in-memory backend and the full dispatch path
// (consumer, executor, plugin loaded with dlopen) and prints:
//   (a) the no-op plugin: the daemon's own overhead per message;
//   (b) the JSON plugin next to the same handler called directly in a loop
//       on the same number of threads (the ceiling), and their ratio.
// Throughput is the drain rate of a preloaded queue; latency is enqueue to
// handler start at a paced rate, sampled by the plugin.
#include <glog/logging.h>
#include <dlfcn.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "daemon/backends/memory/memory_backend.h"
#include "daemon/config/config_parser.h"
#include "daemon/base/clock.h"
#include "daemon/app/supervisor.h"
#include "daemon/plugins/host_api.h"

namespace foxworker {
namespace {

constexpr int kThreads = 2;
constexpr size_t kBatch = 256;
// The latency phase: 16 messages every 100 us (160,000 msg/s).
constexpr size_t kPacedBatch = 16;
constexpr auto kPacedEvery = std::chrono::microseconds(100);
constexpr size_t kPacedMessages = 200000;
// Throughput rounds; the best of each side is reported.
constexpr int kRounds = 3;

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
  double msgs_per_s = 0;   // drain rate of a preloaded queue
  double p50_us = 0, p99_us = 0;  // enqueue to start, at a paced rate
  double paced_msgs_per_s = 0;
};

std::vector<Message> MakeBatch(size_t n, uint64_t ts) {
  std::vector<Message> batch(n);
  for (auto& m : batch) m.payload = Payload(ts);
  return batch;
}

// Two phases on one running daemon:
//  1. throughput: the queue is filled while the consumer is paused, then
//     resumed and timed until every message is acked. Like the direct
//     reference, the daemon starts from messages that already exist, so the
//     ratio compares dispatch against a plain loop, not against a producer
//     thread that would share the two cores with the workers.
//  2. latency: a producer enqueues at a fixed pace well below capacity and
//     the plugin samples enqueue-to-start; with no standing backlog the
//     figure is the daemon's own hand-off latency, not queueing delay.
DaemonRun RunDaemon(const std::string& handler, size_t total, LatencyFn latency, int rounds,
                    const std::function<void()>& before_round) {
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
  DaemonRun r;

  // Phase 1: drain a preloaded queue, `rounds` times; the best round counts.
  // `before_round` runs the reference between rounds, so both see the same
  // background load on a shared machine.
  size_t acked = 0;
  for (int round = 0; round < rounds; ++round) {
    if (before_round) before_round();
    consumer->SetPaused(true);
    for (size_t sent = 0; sent < total;) {
      size_t n = std::min(kBatch, total - sent);
      // ts 1: sampled like any message (the histogram is reset before phase 2)
      auto batch = MakeBatch(n, 1);
      if (!mem->EnqueueBatch("bench", batch).ok()) exit(1);
      sent += n;
    }
    acked += total;
    const auto t0 = std::chrono::steady_clock::now();
    consumer->SetPaused(false);
    while (consumer->Stats().acked < acked) std::this_thread::sleep_for(std::chrono::microseconds(200));
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.msgs_per_s = std::max(r.msgs_per_s, static_cast<double>(total) / secs);
  }

  // Phase 2: paced producer, kPacedBatch messages every kPacedEvery.
  const size_t paced = std::min<size_t>(total, kPacedMessages);
  latency(0.5, 1);
  const auto t0 = std::chrono::steady_clock::now();
  auto next = t0;
  for (size_t sent = 0; sent < paced;) {
    std::this_thread::sleep_until(next);
    next += kPacedEvery;
    size_t n = std::min(kPacedBatch, paced - sent);
    auto batch = MakeBatch(n, MonotonicNs());
    if (!mem->EnqueueBatch("bench", batch).ok()) exit(1);
    sent += n;
  }
  while (consumer->Stats().acked < acked + paced) std::this_thread::sleep_for(std::chrono::microseconds(200));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.paced_msgs_per_s = static_cast<double>(paced) / secs;
  r.p50_us = static_cast<double>(latency(0.5, 0)) / 1000.0;
  r.p99_us = static_cast<double>(latency(0.99, 1)) / 1000.0;
  sup.Shutdown();
  return r;
}

// The ceiling: the same handler called directly on kThreads threads, over
// the same input the daemon gets: `total` distinct messages built before the
// clock starts (a small set of payloads reused from cache would measure a
// cache-hot parser, not the work the daemon is given).
double RunDirect(foxw_handle_fn handle, size_t total) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  std::atomic<uint64_t> acks{0};
  const size_t per_thread = total / kThreads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      std::vector<Delivery> ds(per_thread);
      for (auto& d : ds) d.msg.payload = Payload(1);  // as in the daemon's phase 1
      char reason[256];
      ready.fetch_add(1);
      while (!go.load()) {
      }
      uint64_t ok = 0;
      for (auto& d : ds) {
        foxw_outcome out{sizeof(foxw_outcome), reason, sizeof reason, 0, 0};
        ok += handle(nullptr, AsForeign(&d), &out) == FOXW_ACK;
      }
      acks += ok;
    });
  }
  while (ready.load() < kThreads) std::this_thread::yield();
  const auto t0 = std::chrono::steady_clock::now();
  go = true;
  for (auto& th : threads) th.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (acks.load() != per_thread * kThreads) {
    fprintf(stderr, "direct run: handler did not ack\n");
    exit(1);
  }
  return static_cast<double>(per_thread * kThreads) / secs;
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

  DaemonRun noop = RunDaemon("noop", total, latency, kRounds, nullptr);
  printf("BENCH memory.noop.msgs_per_s %.0f msg/s\n", noop.msgs_per_s);
  printf("BENCH memory.noop.p50_latency_us %.1f us\n", noop.p50_us);
  printf("BENCH memory.noop.p99_latency_us %.1f us\n", noop.p99_us);
  printf("BENCH memory.noop.paced_msgs_per_s %.0f msg/s\n", noop.paced_msgs_per_s);
  fflush(stdout);

  double direct = 0;
  DaemonRun json = RunDaemon("json", total, latency, kRounds,
                             [&] { direct = std::max(direct, RunDirect(handler("json"), total)); });
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
