// bench/run dispatch: handlers that block. The bench plugin's `sleep` handler
// sleeps 20 ms with nanosleep (the stand-in for a network call) and `spin`
// busy-loops for 1 ms of CPU. The daemon core runs in-process (Supervisor),
// as configured by a user: no worker_threads, only each queue's concurrency.
//
// Figures (each measured FOXWORKER_BENCH_DISPATCH_ROUNDS times, default 3;
// the BENCH line is the best round, `_median` the median round):
//   io           N jobs (FOXWORKER_BENCH_DISPATCH_JOBS, default 20,000) on the
//                local (SQLite) backend, 20 ms each, concurrency 200, prefetch
//                400. Ideal: 200 / 0.020 s = 10,000 jobs/s.
//   io_rabbitmq  the same from a durable quorum queue (private broker).
//   io_redis     the same from a Redis stream (private redis-server).
//   mixed        memory backend, two queues at once: `cpu` (spin 1 ms,
//                concurrency 2) kept saturated by a feeder, and `io` (sleep
//                20 ms, concurrency 100, ideal 5,000 jobs/s). Phase 1: N io
//                jobs queued while `io` is paused, then resumed: the drain
//                rate against the ideal. Phase 2, on a fresh daemon with `cpu`
//                saturated again: a producer offers N io jobs
//                at 80% of the ideal (4,000 jobs/s) while `cpu` stays
//                saturated: p99 of enqueue-to-handler-start (the plugin reads
//                the enqueue time from the payload, monotonic clock).
//   io_process   io with isolation: process (four foxworker-child processes
//                of 50 slots each). Run by `bench/run isolation`.
//   c50_redis, c50_rabbitmq
//                io at concurrency 50 (prefetch 100), ideal 2,500 jobs/s: the
//                foxworker side of bench/compare (Sidekiq, Celery). Not run by
//                `bench/run dispatch`.
//
// Clocks: io, io_rabbitmq, io_redis and c50_* start just before
// Supervisor::Start (the queue is filled before; opening the store or the
// connection is inside the clock, as in the rabbitmq and redis benches) and
// stop when the consumer has counted N acks (Redis: and the group's pending
// list is empty). mixed phase 1 starts at resume. A round that has not
// finished after FOXWORKER_BENCH_DISPATCH_MAX_S seconds (default 60) stops
// there and counts the jobs acked so far over the time taken: a slow daemon
// gets a truthful low rate rather than a long wait.
#include <glog/logging.h>
#include <dlfcn.h>
#include <hiredis/hiredis.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "daemon/app/supervisor.h"
#include "daemon/backends/local/local_store.h"
#include "daemon/backends/memory/memory_backend.h"
#include "daemon/backends/redis/redis_url.h"
#include "daemon/base/clock.h"
#include "daemon/config/config_parser.h"
#include "daemon/core/consumer.h"
#include "daemon/plugins/host_api.h"
#include "tests/harness/rabbitmq_server.h"
#include "tests/harness/redis_server.h"

namespace foxworker {
namespace {

constexpr int kSleepMs = 20;
constexpr char kSource[] = "foxworker-dispatch-bench";

[[noreturn]] void Die(const std::string& why) {
  fprintf(stderr, "dispatch_bench: %s\n", why.c_str());
  exit(1);
}

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

size_t EnvSize(const char* name, size_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  const long long n = std::atoll(v);
  if (n <= 0) Die(std::string(name) + " must be a positive integer");
  return static_cast<size_t>(n);
}

// The plugin's exports, read with dlsym from the same dlopen handle the
// daemon gets (one copy of the plugin's counters).
struct PluginProbe {
  uint64_t (*sleep_latency)(double, int) = nullptr;
  int64_t (*sleep_running_peak)(int) = nullptr;
  uint64_t (*sleep_started)() = nullptr;
};
PluginProbe probe;

void LoadProbe() {
  void* h = dlopen(BENCH_PLUGIN_PATH, RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) Die(dlerror());
  auto init = reinterpret_cast<foxw_init_v1_fn>(dlsym(h, FOXW_INIT_V1_SYMBOL));
  probe.sleep_latency =
      reinterpret_cast<uint64_t (*)(double, int)>(dlsym(h, "bench_plugin_sleep_latency"));
  probe.sleep_running_peak =
      reinterpret_cast<int64_t (*)(int)>(dlsym(h, "bench_plugin_sleep_running_peak"));
  probe.sleep_started = reinterpret_cast<uint64_t (*)()>(dlsym(h, "bench_plugin_sleep_started"));
  if (init == nullptr || probe.sleep_latency == nullptr || probe.sleep_running_peak == nullptr ||
      probe.sleep_started == nullptr)
    Die("bench plugin lacks its exports");
  foxw_plugin_ctx ctx;
  char err[256];
  init(HostApi(), &ctx, err, sizeof err);
}

std::string SleepPayload(uint64_t ts, int ms) {
  return "{\"ts\":" + std::to_string(ts) + ",\"ms\":" + std::to_string(ms) + "}";
}

// FOXWORKER_BENCH_DISPATCH_WORKER_THREADS, when set, adds daemon.worker_threads
// (a diagnostic: the figures are meant without it).
std::string DaemonYaml(const std::string& backend, const std::string& queues) {
  std::string threads;
  if (const char* t = std::getenv("FOXWORKER_BENCH_DISPATCH_WORKER_THREADS"); t != nullptr && *t)
    threads = "  worker_threads: " + std::string(t) + "\n";
  return "daemon:\n  log_level: warning\n  shutdown_timeout: 2s\n" + threads +
         "plugins:\n  bench:\n    path: " BENCH_PLUGIN_PATH "\n"
         "backends:\n" + backend + "queues:\n" + queues;
}

// FOXWORKER_BENCH_DISPATCH_PREFETCH_FACTOR=F, when set, makes every queue's
// prefetch F x its concurrency instead of what the figure uses (a diagnostic).
std::string QueueYaml(const std::string& name, const std::string& backend,
                      const std::string& source, const std::string& handler, size_t concurrency,
                      size_t prefetch) {
  if (const char* f = std::getenv("FOXWORKER_BENCH_DISPATCH_PREFETCH_FACTOR"); f != nullptr && *f)
    prefetch = concurrency * static_cast<size_t>(std::max(1, atoi(f)));
  return "  " + name + ":\n    backend: " + backend + "\n    source: " + source +
         "\n    plugin: bench\n    handler: " + handler +
         "\n    concurrency: " + std::to_string(concurrency) +
         "\n    prefetch: " + std::to_string(prefetch) + "\n";
}

// One timed round.
struct Round {
  double secs = 0;
  size_t done = 0;       // jobs acked within the clock
  bool capped = false;   // stopped at the time cap
  int64_t peak = 0;      // most sleep handlers seen running at once
  double rate() const { return secs > 0 ? static_cast<double>(done) / secs : 0; }
};

// Waits until `consumer` has `target` acks beyond `base` (then until
// `settled()`, when given), or the cap.
Round WaitAcked(Consumer* consumer, uint64_t base, size_t target,
                std::chrono::steady_clock::time_point t0, double cap_s,
                const std::function<bool()>& settled = nullptr) {
  Round r;
  for (;;) {
    const uint64_t acked = consumer->Stats().acked - base;
    if (acked >= target) break;
    if (Seconds(t0) > cap_s) {
      r.secs = Seconds(t0);
      r.done = acked;
      r.capped = true;
      return r;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  while (settled && !settled()) {
    if (Seconds(t0) > cap_s + 30) Die("acks never reached the backend");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  r.secs = Seconds(t0);
  r.done = target;
  return r;
}

Supervisor* StartDaemon(const std::string& yaml, std::unique_ptr<Supervisor>& holder) {
  auto config = ParseConfigString(yaml, "dispatch_bench.yaml", "/tmp");
  if (!config.ok()) Die(config.status().message());
  holder = std::make_unique<Supervisor>(std::move(*config));
  Status s = holder->Start();
  if (!s.ok()) Die(s.message());
  return holder.get();
}

// ---- local ----

// io_process: `io` with isolation: process, four children of 50 slots:
// the sleeping handlers run in foxworker-child processes.
constexpr char kProcessLines[] = "    isolation: process\n    process:\n      processes: 4\n";

Round LocalRound(size_t n, size_t concurrency, double cap_s, bool process = false) {
  std::filesystem::path dir = std::filesystem::temp_directory_path() /
                              ("foxworker_dispatch_bench_" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string db = (dir / "bench.db").string();
  {
    LocalStoreOptions o;
    o.path = db;
    auto store = LocalStore::Open(o);
    if (!store.ok()) Die(store.status().message());
    std::vector<NewJob> batch;
    for (size_t sent = 0; sent < n;) {
      batch.clear();
      for (size_t i = 0; i < 1000 && sent < n; ++i, ++sent) {
        NewJob j;
        j.queue = kSource;
        j.payload = SleepPayload(0, kSleepMs);
        batch.push_back(std::move(j));
      }
      auto r = (*store)->EnqueueBatch(batch);
      if (!r.ok()) Die(r.status().message());
    }
  }
  const std::string yaml =
      DaemonYaml("  local:\n    type: local\n    path: " + db + "\n",
                 QueueYaml("io", "local", kSource, "sleep", concurrency, 2 * concurrency) +
                     (process ? kProcessLines : ""));
  probe.sleep_running_peak(1);
  std::unique_ptr<Supervisor> sup;
  const auto t0 = std::chrono::steady_clock::now();
  Supervisor* s = StartDaemon(yaml, sup);
  Round r = WaitAcked(s->FindConsumer("io"), 0, n, t0, cap_s);
  r.peak = probe.sleep_running_peak(1);
  sup->Shutdown();
  sup.reset();
  std::filesystem::remove_all(dir);
  return r;
}

// ---- RabbitMQ ----

void AmqpCheck(amqp_rpc_reply_t r, const char* what) {
  if (r.reply_type != AMQP_RESPONSE_NORMAL) Die(std::string("amqp: ") + what + " failed");
}

// Declares the durable quorum queue, purges it and publishes `n` persistent
// sleep messages with confirms.
void AmqpFill(const std::string& url, size_t n) {
  std::string buffer = url;
  amqp_connection_info info;
  if (amqp_parse_url(buffer.data(), &info) != AMQP_STATUS_OK) Die("bad url");
  amqp_connection_state_t c = amqp_new_connection();
  amqp_socket_t* sock = amqp_tcp_socket_new(c);
  if (amqp_socket_open(sock, info.host, info.port) != AMQP_STATUS_OK) Die("cannot connect");
  AmqpCheck(amqp_login(c, info.vhost, 0, AMQP_DEFAULT_FRAME_SIZE, 0, AMQP_SASL_METHOD_PLAIN,
                       info.user, info.password),
            "login");
  amqp_channel_open(c, 1);
  AmqpCheck(amqp_get_rpc_reply(c), "channel.open");
  amqp_table_entry_t e;
  e.key = amqp_cstring_bytes("x-queue-type");
  e.value.kind = AMQP_FIELD_KIND_UTF8;
  e.value.value.bytes = amqp_cstring_bytes("quorum");
  amqp_queue_declare(c, 1, amqp_cstring_bytes(kSource), 0, 1, 0, 0, amqp_table_t{1, &e});
  AmqpCheck(amqp_get_rpc_reply(c), "queue.declare");
  amqp_queue_purge(c, 1, amqp_cstring_bytes(kSource));
  AmqpCheck(amqp_get_rpc_reply(c), "queue.purge");
  amqp_confirm_select(c, 1);
  AmqpCheck(amqp_get_rpc_reply(c), "confirm.select");
  amqp_basic_properties_t p;
  p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_TYPE_FLAG;
  p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  p.type = amqp_cstring_bytes("sleep");
  const std::string body = SleepPayload(0, kSleepMs);
  amqp_bytes_t b{body.size(), const_cast<char*>(body.data())};
  uint64_t confirmed = 0;
  for (size_t i = 0; i < n; ++i) {
    if (amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(kSource), 0, 0, &p, b) !=
        AMQP_STATUS_OK)
      Die("publish");
    if (i % 2000 == 1999 || i == n - 1) {
      while (confirmed < i + 1) {
        amqp_frame_t f;
        timeval tv{60, 0};
        if (amqp_simple_wait_frame_noblock(c, &f, &tv) != AMQP_STATUS_OK) Die("no confirm");
        if (f.frame_type == AMQP_FRAME_METHOD && f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
          auto* a = static_cast<amqp_basic_ack_t*>(f.payload.method.decoded);
          confirmed = a->multiple ? a->delivery_tag : confirmed + 1;
        }
        amqp_maybe_release_buffers(c);
      }
    }
  }
  amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
  amqp_connection_close(c, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(c);
}

Round RabbitMqRound(const std::string& url, size_t n, size_t concurrency, double cap_s) {
  AmqpFill(url, n);
  const std::string yaml =
      DaemonYaml("  rmq:\n    type: rabbitmq\n    url: " + url + "\n",
                 QueueYaml("io", "rmq", kSource, "sleep", concurrency, 2 * concurrency));
  probe.sleep_running_peak(1);
  std::unique_ptr<Supervisor> sup;
  const auto t0 = std::chrono::steady_clock::now();
  Supervisor* s = StartDaemon(yaml, sup);
  Round r = WaitAcked(s->FindConsumer("io"), 0, n, t0, cap_s);
  r.peak = probe.sleep_running_peak(1);
  sup->Shutdown();
  return r;
}

// ---- Redis ----

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

Reply RedisRun(redisContext* c, std::vector<const char*> argv) {
  Reply r(static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), nullptr)));
  if (r == nullptr) Die(std::string(argv[0]) + ": connection lost");
  if (r->type == REDIS_REPLY_ERROR) Die(std::string(argv[0]) + ": " + r->str);
  return r;
}

redisContext* RedisConnect(const std::string& url) {
  RedisBackendOptions o;
  Status s = ParseRedisUrl(url, &o);
  if (!s.ok()) Die(s.message());
  redisContext* c = o.unix_path.empty() ? redisConnect(o.host.c_str(), o.port)
                                        : redisConnectUnix(o.unix_path.c_str());
  if (c == nullptr || c->err != 0) Die("cannot connect to " + url);
  if (!o.password.empty()) {
    if (o.user.empty()) RedisRun(c, {"AUTH", o.password.c_str()});
    else RedisRun(c, {"AUTH", o.user.c_str(), o.password.c_str()});
  }
  if (o.db != 0) RedisRun(c, {"SELECT", std::to_string(o.db).c_str()});
  return c;
}

// A fresh stream of `n` sleep entries with the group `group` at its start.
void RedisFill(redisContext* c, size_t n, const std::string& group) {
  RedisRun(c, {"DEL", kSource});
  RedisRun(c, {"XGROUP", "CREATE", kSource, group.c_str(), "0", "MKSTREAM"});
  const std::string body = SleepPayload(0, kSleepMs);
  const char* argv[] = {"XADD", kSource, "*", "data", body.c_str(), "type", "sleep"};
  for (size_t done = 0; done < n;) {
    const size_t chunk = std::min<size_t>(1000, n - done);
    for (size_t i = 0; i < chunk; ++i) redisAppendCommandArgv(c, 7, argv, nullptr);
    for (size_t i = 0; i < chunk; ++i) {
      void* reply = nullptr;
      if (redisGetReply(c, &reply) != REDIS_OK || reply == nullptr) Die("XADD: connection lost");
      Reply r(static_cast<redisReply*>(reply));
      if (r->type == REDIS_REPLY_ERROR) Die(std::string("XADD: ") + r->str);
    }
    done += chunk;
  }
}

Round RedisRound(const std::string& url, size_t n, size_t concurrency, double cap_s, int round) {
  redisContext* c = RedisConnect(url);
  const std::string group = "dispatch-" + std::to_string(getpid()) + "-" + std::to_string(round);
  RedisFill(c, n, group);
  const std::string yaml = DaemonYaml(
      "  r:\n    type: redis\n    url: " + url + "\n    group: " + group +
          "\n    consumer: bench\n",
      QueueYaml("io", "r", kSource, "sleep", concurrency, 2 * concurrency));
  probe.sleep_running_peak(1);
  std::unique_ptr<Supervisor> sup;
  const auto t0 = std::chrono::steady_clock::now();
  Supervisor* s = StartDaemon(yaml, sup);
  Round r = WaitAcked(s->FindConsumer("io"), 0, n, t0, cap_s, [&] {
    Reply p = RedisRun(c, {"XPENDING", kSource, group.c_str()});
    return p->type == REDIS_REPLY_ARRAY && p->elements >= 1 && p->element[0]->integer == 0;
  });
  r.peak = probe.sleep_running_peak(1);
  sup->Shutdown();
  redisFree(c);
  return r;
}

// ---- mixed ----

struct MixedRound {
  Round drain;
  double p50_ms = 0, p99_ms = 0;
  bool p99_lower_bound = false;  // some offered jobs never started
  double paced_rate = 0;         // io jobs/s while offered at 80% of the ideal
  double cpu_rate = 0;           // spin jobs/s during the drain
};

constexpr size_t kMixedCpuConcurrency = 2;
constexpr size_t kMixedIoConcurrency = 100;

// A daemon with the two queues, `cpu` kept saturated by a feeder thread
// (never fewer than 64 spin jobs waiting) from construction to destruction.
class MixedDaemon {
 public:
  MixedDaemon() {
    const std::string yaml =
        DaemonYaml("  mem:\n    type: memory\n",
                   QueueYaml("cpu", "mem", "cpu", "spin", kMixedCpuConcurrency,
                             2 * kMixedCpuConcurrency) +
                       QueueYaml("io", "mem", "io", "sleep", kMixedIoConcurrency,
                                 2 * kMixedIoConcurrency));
    Supervisor* s = StartDaemon(yaml, sup_);
    mem_ = static_cast<MemoryBackend*>(s->FindBackend("mem"));
    cpu_ = s->FindConsumer("cpu");
    io_ = s->FindConsumer("io");
    feeder_ = std::thread([this] {
      uint64_t enqueued = 0;
      while (!stop_.load()) {
        if (enqueued - cpu_->Stats().acked < 64) {
          std::vector<Message> batch(64);
          for (auto& msg : batch) msg.payload = "{\"ts\":0,\"ms\":1}";
          if (!mem_->EnqueueBatch("cpu", batch).ok()) Die("enqueue cpu");
          enqueued += 64;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // cpu is busy by now
  }
  ~MixedDaemon() {
    stop_ = true;
    feeder_.join();
    sup_->Shutdown();
  }
  void EnqueueIo(size_t count, uint64_t ts) {
    std::vector<Message> batch(count);
    for (auto& msg : batch) msg.payload = SleepPayload(ts, kSleepMs);
    if (!mem_->EnqueueBatch("io", batch).ok()) Die("enqueue io");
  }
  Consumer* cpu() { return cpu_; }
  Consumer* io() { return io_; }

 private:
  std::unique_ptr<Supervisor> sup_;
  MemoryBackend* mem_ = nullptr;
  Consumer* cpu_ = nullptr;
  Consumer* io_ = nullptr;
  std::atomic<bool> stop_{false};
  std::thread feeder_;
};

MixedRound MixedOnce(size_t n, double cap_s) {
  MixedRound m;
  {
    // Phase 1: drain a backlog of n io jobs (queued while `io` is paused).
    MixedDaemon d;
    d.io()->SetPaused(true);
    for (size_t sent = 0; sent < n; sent += 256) d.EnqueueIo(std::min<size_t>(256, n - sent), 0);
    const uint64_t cpu0 = d.cpu()->Stats().acked;
    probe.sleep_running_peak(1);
    const auto t0 = std::chrono::steady_clock::now();
    d.io()->SetPaused(false);
    m.drain = WaitAcked(d.io(), 0, n, t0, cap_s);
    m.drain.peak = probe.sleep_running_peak(1);
    m.cpu_rate = static_cast<double>(d.cpu()->Stats().acked - cpu0) / Seconds(t0);
  }
  {
    // Phase 2, on a fresh daemon (no backlog left from phase 1): offer n io
    // jobs at 80% of the ideal, each stamped with its enqueue time.
    MixedDaemon d;
    const double offered = 0.8 * kMixedIoConcurrency * 1000.0 / kSleepMs;
    probe.sleep_latency(0.5, 1);
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t sent = 0; sent < n;) {
      const size_t due = std::min<size_t>(n, static_cast<size_t>(Seconds(t0) * offered) + 1);
      if (due > sent) {
        d.EnqueueIo(due - sent, MonotonicNs());
        sent = due;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    const auto offered_end = std::chrono::steady_clock::now();
    const Round paced = WaitAcked(d.io(), 0, n, t0, cap_s + static_cast<double>(n) / offered);
    m.paced_rate = paced.rate();
    const uint64_t started = probe.sleep_started();
    m.p50_ms = static_cast<double>(probe.sleep_latency(0.5, 0)) / 1e6;
    m.p99_ms = static_cast<double>(probe.sleep_latency(0.99, 1)) / 1e6;
    // Jobs that never started are not in the plugin's histogram. When more
    // than 1% of them never started, the p99 is at least how long the last
    // one offered has waited.
    if (paced.capped && static_cast<double>(n - std::min<uint64_t>(n, started)) > 0.01 * n) {
      m.p99_ms = std::max(m.p99_ms, Seconds(offered_end) * 1e3);
      m.p99_lower_bound = true;
    }
  }
  return m;
}

// ---- reporting ----

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void Print(const std::string& name, double best, double median, const char* unit,
           const char* fmt = "%.3f") {
  std::string line = "BENCH " + name + " " + fmt + " %s\n";
  printf(line.c_str(), best, unit);
  line = "BENCH " + name + "_median " + fmt + " %s\n";
  printf(line.c_str(), median, unit);
  fflush(stdout);
}

void LogRound(const std::string& figure, int round, const Round& r, double ideal) {
  fprintf(stderr,
          "dispatch_bench: %s round %d: %zu jobs in %.2f s = %.0f jobs/s (ratio %.3f), at most "
          "%lld sleeping at once%s\n",
          figure.c_str(), round, r.done, r.secs, r.rate(), r.rate() / ideal,
          static_cast<long long>(r.peak), r.capped ? ", STOPPED AT THE TIME CAP" : "");
}

// io, io_rabbitmq, io_redis, c50_*: rounds of one backend at one concurrency.
void IoFigure(const std::string& figure, size_t concurrency, int rounds,
              const std::function<Round(int)>& run) {
  const double ideal = static_cast<double>(concurrency) * 1000.0 / kSleepMs;
  std::vector<double> rates;
  int64_t peak = 0;
  for (int i = 1; i <= rounds; ++i) {
    const Round r = run(i);
    LogRound(figure, i, r, ideal);
    rates.push_back(r.rate());
    peak = std::max(peak, r.peak);
  }
  const double best = *std::max_element(rates.begin(), rates.end());
  Print("dispatch." + figure + ".jobs_per_s", best, Median(rates), "jobs/s", "%.0f");
  Print("dispatch." + figure + ".ratio_to_ideal", best / ideal, Median(rates) / ideal, "ratio");
  // (The handlers of io_process run in children, out of the probe's sight.)
  if (figure != "io_process")
    printf("BENCH dispatch.%s.peak_running %lld handlers\n", figure.c_str(),
           static_cast<long long>(peak));
  fflush(stdout);
}

void MixedFigure(size_t n, int rounds, double cap_s) {
  const double ideal = kMixedIoConcurrency * 1000.0 / kSleepMs;
  std::vector<double> ratios, p99s;
  for (int i = 1; i <= rounds; ++i) {
    const MixedRound m = MixedOnce(n, cap_s);
    LogRound("mixed", i, m.drain, ideal);
    fprintf(stderr,
            "dispatch_bench: mixed round %d: offered %.0f io jobs/s, got %.0f/s, enqueue to "
            "start p50 %.1f ms p99 %s%.1f ms; cpu queue %.0f spin jobs/s during the drain\n",
            i, 0.8 * ideal, m.paced_rate, m.p50_ms, m.p99_lower_bound ? ">= " : "", m.p99_ms,
            m.cpu_rate);
    ratios.push_back(m.drain.rate() / ideal);
    p99s.push_back(m.p99_ms);
  }
  Print("dispatch.mixed.io_ratio_to_ideal", *std::max_element(ratios.begin(), ratios.end()),
        Median(ratios), "ratio");
  Print("dispatch.mixed.io_p99_start_ms", *std::min_element(p99s.begin(), p99s.end()),
        Median(p99s), "ms", "%.1f");
}

std::string RabbitMqUrl() {
  if (const char* u = std::getenv("FOXWORKER_BENCH_AMQP_URL"); u != nullptr && *u) return u;
  auto* server = testing::RabbitMqServer::Get();
  if (server == nullptr) Die("no broker: " + testing::RabbitMqServer::Error());
  return server->url();
}

int Main(int argc, char** argv) {
  const size_t n = EnvSize("FOXWORKER_BENCH_DISPATCH_JOBS", 20000);
  const int rounds = static_cast<int>(EnvSize("FOXWORKER_BENCH_DISPATCH_ROUNDS", 3));
  const double cap_s = static_cast<double>(EnvSize("FOXWORKER_BENCH_DISPATCH_MAX_S", 60));
  std::vector<std::string> figures(argv + 1, argv + argc);
  if (figures.empty()) figures = {"io", "io_rabbitmq", "io_redis", "mixed"};
  LoadProbe();
  testing::RedisServer redis;
  std::string redis_url;
  auto redis_server = [&]() -> const std::string& {
    if (!redis_url.empty()) return redis_url;
    if (const char* u = std::getenv("FOXWORKER_BENCH_REDIS_URL"); u != nullptr && *u) {
      redis_url = u;
    } else {
      Status s = redis.Start();
      if (!s.ok()) Die("no redis-server: " + s.message());
      redis_url = redis.url();
    }
    return redis_url;
  };
  for (const std::string& f : figures) {
    if (f == "io" || f == "io_process") {
      const bool process = f == "io_process";
      IoFigure(f, 200, rounds, [&](int) { return LocalRound(n, 200, cap_s, process); });
    } else if (f == "io_rabbitmq" || f == "c50_rabbitmq") {
      const size_t c = f == "io_rabbitmq" ? 200 : 50;
      const std::string url = RabbitMqUrl();
      IoFigure(f, c, rounds, [&](int) { return RabbitMqRound(url, n, c, cap_s); });
    } else if (f == "io_redis" || f == "c50_redis") {
      const size_t c = f == "io_redis" ? 200 : 50;
      const std::string& url = redis_server();
      IoFigure(f, c, rounds, [&](int i) { return RedisRound(url, n, c, cap_s, i); });
    } else if (f == "mixed") {
      MixedFigure(n, rounds, cap_s);
    } else {
      Die("unknown figure \"" + f +
          "\" (known: io, io_rabbitmq, io_redis, mixed, c50_redis, c50_rabbitmq, io_process)");
    }
  }
  testing::RabbitMqServer::StopShared();
  return 0;
}

}  // namespace
}  // namespace foxworker

int main(int argc, char** argv) {
  google::InitGoogleLogging("dispatch_bench");
  FLAGS_logtostderr = true;
  setenv("FOXWORKER_CHILD", BENCH_CHILD_PATH, 0);  // io_process
  FLAGS_minloglevel = google::GLOG_WARNING;
  return foxworker::Main(argc, argv);
}
