// Loads the plugin at argv[1] into a daemon core on the memory backend, sends
// it 100 messages and exits 0 when every one was acked.
#include <glog/logging.h>
#include <chrono>
#include <cstdio>
#include <thread>

#include "daemon/backends/memory/memory_backend.h"
#include "daemon/config/config_parser.h"
#include "daemon/app/supervisor.h"
#include "daemon/base/clock.h"

int main(int argc, char** argv) {
  using namespace foxworker;
  if (argc != 2) {
    fprintf(stderr, "usage: run_plugin PLUGIN.so\n");
    return 2;
  }
  PinLocalTimeZone();
  google::InitGoogleLogging("run_plugin");
  FLAGS_logtostderr = true;
  std::string yaml = std::string("plugins:\n  p:\n    path: ") + argv[1] +
                     "\nbackends:\n  mem:\n    type: memory\n"
                     "queues:\n  q:\n    backend: mem\n    plugin: p\n    concurrency: 2\n";
  auto config = ParseConfigString(yaml, "run_plugin.yaml", "/tmp");
  if (!config.ok()) {
    fprintf(stderr, "%s\n", config.status().message().c_str());
    return 1;
  }
  Supervisor sup(std::move(*config));
  Status s = sup.Start();
  if (!s.ok()) {
    fprintf(stderr, "%s\n", s.message().c_str());
    return 1;
  }
  auto* mem = static_cast<MemoryBackend*>(sup.FindBackend("mem"));
  for (int i = 0; i < 100; ++i) {
    Message m;
    m.payload = "hello";
    if (!mem->Enqueue("q", std::move(m), Duration{0}).ok()) return 1;
  }
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (sup.FindConsumer("q")->Stats().acked < 100 && std::chrono::steady_clock::now() < end)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  uint64_t acked = sup.FindConsumer("q")->Stats().acked;
  sup.Shutdown();
  printf("acked %llu of 100\n", static_cast<unsigned long long>(acked));
  return acked == 100 ? 0 : 1;
}
