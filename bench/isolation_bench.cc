// isolation: process against in-process on the same machine, same run:
// the no-op handler drains a preloaded in-memory queue (the cost of the
// channel to the handler children and back), rounds alternating between the
// two modes so both see the same background load. docs/benchmarks.md.
#include <glog/logging.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "daemon/app/supervisor.h"
#include "daemon/backends/memory/memory_backend.h"
#include "daemon/config/config_parser.h"

namespace foxworker {
namespace {

constexpr size_t kBatch = 256;
constexpr int kRounds = 3;

struct Setup {
  std::string name;
  std::string isolation;  // YAML lines for the queue, indented by four
};

class Run {
 public:
  explicit Run(const std::string& queue_lines) {
    const std::string yaml =
        "daemon:\n  worker_threads: 2\n  log_level: warning\n"
        "plugins:\n  bench:\n    path: " BENCH_PLUGIN_PATH "\n"
        "backends:\n  mem:\n    type: memory\n"
        "queues:\n  bench:\n    backend: mem\n    plugin: bench\n    handler: noop\n" +
        queue_lines;
    auto config = ParseConfigString(yaml, "bench.yaml", "/tmp");
    if (!config.ok()) {
      fprintf(stderr, "bench config: %s\n", config.status().message().c_str());
      exit(1);
    }
    sup_ = std::make_unique<Supervisor>(std::move(*config));
    Status s = sup_->Start();
    if (!s.ok()) {
      fprintf(stderr, "bench start: %s\n", s.message().c_str());
      exit(1);
    }
    mem_ = static_cast<MemoryBackend*>(sup_->FindBackend("mem"));
    consumer_ = sup_->FindConsumer("bench");
  }
  ~Run() { sup_->Shutdown(); }

  // Fills the queue while paused, then times the drain.
  double Drain(size_t total) {
    consumer_->SetPaused(true);
    for (size_t sent = 0; sent < total;) {
      const size_t n = std::min(kBatch, total - sent);
      std::vector<Message> batch(n);
      for (auto& m : batch) m.payload = "{\"ts\":0}";
      if (!mem_->EnqueueBatch("bench", batch).ok()) exit(1);
      sent += n;
    }
    acked_ += total;
    const auto t0 = std::chrono::steady_clock::now();
    consumer_->SetPaused(false);
    while (consumer_->Stats().acked < acked_)
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (consumer_->Stats().dead_lettered != 0 || consumer_->Stats().retried != 0) {
      fprintf(stderr, "bench: messages were retried or dead-lettered\n");
      exit(1);
    }
    return static_cast<double>(total) / secs;
  }

 private:
  std::unique_ptr<Supervisor> sup_;
  MemoryBackend* mem_ = nullptr;
  Consumer* consumer_ = nullptr;
  uint64_t acked_ = 0;
};

int Main(int argc, char** argv) {
  const size_t total = argc > 1 ? strtoull(argv[1], nullptr, 10) : 500000;
  FLAGS_minloglevel = google::GLOG_WARNING;
  setenv("FOXWORKER_CHILD", BENCH_CHILD_PATH, 0);
  // The same concurrency for both; process mode spreads it over two
  // children (one per core), each running its share at once.
  const std::string common = "    concurrency: 64\n    prefetch: 1024\n";
  Run inprocess(common);
  Run process(common + "    isolation: process\n    process:\n      processes: 2\n");
  double best_in = 0, best_proc = 0;
  for (int round = 0; round < kRounds; ++round) {
    best_in = std::max(best_in, inprocess.Drain(total));
    best_proc = std::max(best_proc, process.Drain(total));
  }
  printf("BENCH isolation.noop.msgs_per_s %.0f msg/s\n", best_proc);
  printf("BENCH isolation.noop.inprocess_msgs_per_s %.0f msg/s\n", best_in);
  printf("BENCH isolation.noop.ratio_to_inprocess %.3f ratio\n", best_proc / best_in);
  fflush(stdout);
  return 0;
}

}  // namespace
}  // namespace foxworker

int main(int argc, char** argv) {
  google::InitGoogleLogging("isolation_bench");
  FLAGS_logtostderr = true;
  return foxworker::Main(argc, argv);
}
