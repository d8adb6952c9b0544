// The embedded SQLite backend, for durability full and normal:
//   enqueue rate (batches of 1,000 per transaction, and one job per
//   transaction), and end-to-end processing rate of N pre-enqueued jobs
//   through the daemon core with the no-op plugin.
#include <glog/logging.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "daemon/backends/local/local_store.h"
#include "daemon/config/config_parser.h"
#include "daemon/app/supervisor.h"

namespace foxworker {
namespace {

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void Die(const std::string& what) {
  fprintf(stderr, "local_bench: %s\n", what.c_str());
  exit(1);
}

void RunMode(const std::string& mode, size_t total) {
  std::filesystem::path dir = std::filesystem::temp_directory_path() /
                              ("foxworker_local_bench_" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string db = (dir / "bench.db").string();
  {
    LocalStoreOptions o;
    o.path = db;
    o.durability = mode == "full" ? Durability::kFull : Durability::kNormal;
    auto store = LocalStore::Open(o);
    if (!store.ok()) Die(store.status().message());
    // One job per transaction: what a producer calling enqueue in a loop gets.
    const size_t singles = 500;
    auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < singles; ++i) {
      NewJob j;
      j.queue = "warmup";
      j.payload = "{\"n\":" + std::to_string(i) + "}";
      if (!(*store)->Enqueue(j).ok()) Die("enqueue failed");
    }
    printf("BENCH local.%s.enqueue_single_per_s %.0f jobs/s\n", mode.c_str(),
           static_cast<double>(singles) / Seconds(t0));
    std::vector<NewJob> batch;
    t0 = std::chrono::steady_clock::now();
    for (size_t sent = 0; sent < total;) {
      batch.clear();
      for (size_t i = 0; i < 1000 && sent < total; ++i, ++sent) {
        NewJob j;
        j.queue = "bench";
        j.payload = "{\"user\":\"alice@example.com\",\"n\":" + std::to_string(sent) + "}";
        batch.push_back(std::move(j));
      }
      auto r = (*store)->EnqueueBatch(batch);
      if (!r.ok()) Die(r.status().message());
    }
    printf("BENCH local.%s.enqueue_batch_per_s %.0f jobs/s\n", mode.c_str(),
           static_cast<double>(total) / Seconds(t0));
    fflush(stdout);
  }
  std::string yaml = "daemon:\n  worker_threads: 2\n  log_level: warning\n"
                     "plugins:\n  bench:\n    path: " BENCH_PLUGIN_PATH "\n"
                     "backends:\n  local:\n    type: local\n    path: " + db +
                     "\n    durability: " + mode +
                     "\nqueues:\n  bench:\n    backend: local\n    plugin: bench\n"
                     "    handler: noop\n    concurrency: 2\n    prefetch: 1024\n";
  auto config = ParseConfigString(yaml, "bench.yaml", dir.string());
  if (!config.ok()) Die(config.status().message());
  Supervisor sup(std::move(*config));
  auto t0 = std::chrono::steady_clock::now();
  Status s = sup.Start();
  if (!s.ok()) Die(s.message());
  Consumer* c = sup.FindConsumer("bench");
  while (c->Stats().acked < total) {
    if (Seconds(t0) > 600) Die("timed out");
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const double secs = Seconds(t0);
  sup.Shutdown();
  printf("BENCH local.%s.jobs_per_s %.0f jobs/s\n", mode.c_str(),
         static_cast<double>(total) / secs);
  fflush(stdout);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace foxworker

int main(int argc, char** argv) {
  google::InitGoogleLogging("local_bench");
  FLAGS_logtostderr = true;
  FLAGS_minloglevel = google::GLOG_WARNING;
  size_t total = argc > 1 ? strtoull(argv[1], nullptr, 10) : 100000;
  foxworker::RunMode("full", total);
  foxworker::RunMode("normal", total);
  return 0;
}
