// bench/run redis: N stream entries to the no-op handler, through foxworkerd's
// Redis backend (in-process Supervisor, prefetch 500) and through a minimal
// reference consumer written directly on hiredis (two XREADGROUPs of 250 in
// flight, each batch's XACK pipelined with the next read, no daemon): the
// ceiling.
// One stream of N entries is filled once, on a private redis-server
// (tests/harness) or $FOXWORKER_BENCH_REDIS_URL, with a consumer group per
// run: each run reads all N entries in its own group. Daemon and reference
// runs alternate, three of each, and the best of each counts, so that a
// disturbance on this shared machine (or Redis's once-a-second AOF fsync)
// does not decide the ratio. A run's clock starts before the consumer
// connects and stops when the last entry is acked in Redis (its group's
// pending list is empty). The private server keeps `appendonly yes` (fsync
// every second) but does no automatic AOF rewrite during the runs. The
// peak RSS is read after the first daemon run, before any reference run:
// it is the daemon's (plus this small driver).
#include <glog/logging.h>
#include <time.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "daemon/backends/redis/redis_url.h"
#include "bench/bench_util.h"
#include "daemon/config/config_parser.h"
#include "daemon/core/consumer.h"
#include "daemon/app/supervisor.h"
#include "tests/harness/redis_server.h"

namespace foxworker {
namespace {

constexpr char kStream[] = "foxworker-bench";
constexpr int kPrefetch = 500;
constexpr int kRounds = 3;

std::string DaemonGroup(int round) { return "foxworker-" + std::to_string(round); }
std::string ReferenceGroup(int round) { return "reference-" + std::to_string(round); }
constexpr int kFillChunk = 1000;

[[noreturn]] void Die(const std::string& why) {
  fprintf(stderr, "redis_bench: %s\n", why.c_str());
  exit(1);
}

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

redisContext* Connect(const std::string& url) {
  RedisBackendOptions o;
  Status s = ParseRedisUrl(url, &o);
  if (!s.ok()) Die(s.message());
  redisContext* c = o.unix_path.empty() ? redisConnect(o.host.c_str(), o.port)
                                        : redisConnectUnix(o.unix_path.c_str());
  if (c == nullptr || c->err != 0) Die("cannot connect to " + url);
  auto run = [&](std::vector<const char*> argv) {
    Reply r(static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(argv.size()),
                                                      argv.data(), nullptr)));
    if (r == nullptr || r->type == REDIS_REPLY_ERROR) Die(std::string("setup: ") + argv[0]);
  };
  if (!o.password.empty()) {
    if (o.user.empty()) run({"AUTH", o.password.c_str()});
    else run({"AUTH", o.user.c_str(), o.password.c_str()});
  }
  if (o.db != 0) run({"SELECT", std::to_string(o.db).c_str()});
  return c;
}

Reply Command(redisContext* c, std::vector<const char*> argv) {
  Reply r(static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), nullptr)));
  if (r == nullptr) Die(std::string(argv[0]) + ": connection lost");
  return r;
}

// A fresh stream of `n` entries (pipelined XADD, kFillChunk per round trip)
// with every run's group created at its start.
void Fill(const std::string& url, int n) {
  redisContext* c = Connect(url);
  Command(c, {"DEL", kStream});
  for (int round = 0; round < kRounds; ++round) {
    for (const std::string& group : {DaemonGroup(round), ReferenceGroup(round)}) {
      Reply r = Command(c, {"XGROUP", "CREATE", kStream, group.c_str(), "0", "MKSTREAM"});
      if (r->type == REDIS_REPLY_ERROR) Die(std::string("XGROUP CREATE: ") + r->str);
    }
  }
  const std::string body = "{\"ts\":0,\"user\":\"alice@example.com\"}";
  const char* argv[] = {"XADD", kStream, "*", "data", body.c_str(), "type", "noop"};
  for (int done = 0; done < n;) {
    const int chunk = std::min(kFillChunk, n - done);
    for (int i = 0; i < chunk; ++i) redisAppendCommandArgv(c, 7, argv, nullptr);
    for (int i = 0; i < chunk; ++i) {
      void* reply = nullptr;
      if (redisGetReply(c, &reply) != REDIS_OK || reply == nullptr) Die("XADD: connection lost");
      Reply r(static_cast<redisReply*>(reply));
      if (r->type == REDIS_REPLY_ERROR) Die(std::string("XADD: ") + r->str);
    }
    done += chunk;
  }
  Reply len = Command(c, {"XLEN", kStream});
  if (len->integer != n) Die("the stream has " + std::to_string(len->integer) + " entries");
  redisFree(c);
}

long long Pending(redisContext* c, const std::string& group) {
  Reply r = Command(c, {"XPENDING", kStream, group.c_str()});
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 1) Die("XPENDING");
  return r->element[0]->integer;
}

// Keeps two reads of half the window (COUNT kPrefetch / 2) in flight on one
// pipelined connection, so Redis always has the next read queued while this
// thread looks at the last reply; each batch's XACK goes out before the read
// that replaces it, so at most kPrefetch entries are unacked at any time, as
// in the daemon. Nothing per entry but pointing the XACK's argv at the ids.
double ReferenceRate(const std::string& url, int n, const std::string& group) {
  auto t0 = std::chrono::steady_clock::now();
  redisContext* c = Connect(url);
  const int half = kPrefetch / 2;
  const std::string count = std::to_string(half);
  const char* read_argv[] = {"XREADGROUP", "GROUP", group.c_str(), "ref", "COUNT",
                             count.c_str(), "BLOCK", "1000", "STREAMS", kStream, ">"};
  std::vector<const char*> ack_argv;
  std::vector<size_t> ack_lens;
  std::deque<bool> expected;  // the replies still to come, in order: true = a read
  int got = 0, reads_in_flight = 0;
  auto send_read = [&] {
    // Never ask for more than the stream has left: a read with nothing to
    // return would wait out its BLOCK.
    if (got + reads_in_flight * half >= n) return;
    redisAppendCommandArgv(c, 11, read_argv, nullptr);
    expected.push_back(true);
    ++reads_in_flight;
  };
  send_read();
  send_read();
  while (!expected.empty()) {
    const bool is_read = expected.front();
    expected.pop_front();
    void* reply = nullptr;
    if (redisGetReply(c, &reply) != REDIS_OK || reply == nullptr) Die("connection lost");
    Reply r(static_cast<redisReply*>(reply));
    if (!is_read) {
      if (r->type != REDIS_REPLY_INTEGER) Die("XACK failed");
      continue;
    }
    --reads_in_flight;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 1) Die("reference: no entries to read");
    const redisReply* entries = r->element[0]->element[1];
    ack_argv.assign({"XACK", kStream, group.c_str()});
    ack_lens.assign({4, sizeof(kStream) - 1, group.size()});
    for (size_t i = 0; i < entries->elements; ++i) {
      const redisReply* id = entries->element[i]->element[0];
      ack_argv.push_back(id->str);
      ack_lens.push_back(id->len);
    }
    got += static_cast<int>(entries->elements);
    redisAppendCommandArgv(c, static_cast<int>(ack_argv.size()), ack_argv.data(), ack_lens.data());
    expected.push_back(false);
    send_read();
  }
  const double secs = Seconds(t0);
  if (got != n) Die("reference: read " + std::to_string(got) + " entries");
  if (Pending(c, group) != 0) Die("reference: entries left pending");
  redisFree(c);
  return n / secs;
}

// A consumer's rate, and the CPU time this process spent meanwhile (the
// daemon's threads, or the reference's one; not redis-server's).
struct Run {
  double rate = 0;
  double cpu_s = 0;
};

template <typename F>
Run Measure(F run) {
  const double cpu0 = bench::ProcessCpuSeconds();
  Run r;
  r.rate = run();
  r.cpu_s = bench::ProcessCpuSeconds() - cpu0;
  return r;
}

double DaemonRate(const std::string& url, int n, const std::string& group) {
  std::string yaml = "daemon:\n  worker_threads: 2\n  log_level: warning\n"
                     "plugins:\n  bench:\n    path: " BENCH_PLUGIN_PATH "\n"
                     "backends:\n  r:\n    type: redis\n    url: " + url +
                     "\n    group: " + group + "\n    consumer: bench" +
                     "\nqueues:\n  bench:\n    backend: r\n    source: " + kStream +
                     "\n    plugin: bench\n    handler: noop\n    concurrency: 2\n"
                     "    prefetch: " + std::to_string(kPrefetch) + "\n";
  auto config = ParseConfigString(yaml, "bench.yaml", "/tmp");
  if (!config.ok()) Die(config.status().message());
  redisContext* c = Connect(url);
  Supervisor sup(std::move(*config));
  auto t0 = std::chrono::steady_clock::now();
  Status s = sup.Start();
  if (!s.ok()) Die(s.message());
  Consumer* consumer = sup.FindConsumer("bench");
  while (consumer->Stats().acked < static_cast<uint64_t>(n)) {
    if (Seconds(t0) > 600) Die("daemon timed out");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // Done when Redis has the last XACK too.
  while (Pending(c, group) != 0) {
    if (Seconds(t0) > 600) Die("daemon timed out acking");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const double secs = Seconds(t0);
  sup.Shutdown();
  redisFree(c);
  return n / secs;
}

}  // namespace
}  // namespace foxworker

int main(int argc, char** argv) {
  google::InitGoogleLogging("redis_bench");
  FLAGS_minloglevel = 1;
  using namespace foxworker;
  const int n = argc > 1 ? std::atoi(argv[1]) : 2000000;
  std::string url;
  testing::RedisServer server;
  if (const char* u = std::getenv("FOXWORKER_BENCH_REDIS_URL"); u != nullptr && *u) {
    url = u;
  } else {
    Status s = server.Start();
    if (!s.ok()) Die("no redis-server: " + s.message());
    url = server.url();
    // An AOF rewrite (a fork copying the whole stream) would land in one of
    // the two runs and skew the ratio: the private server does none.
    redisContext* c = Connect(url);
    Reply r = Command(c, {"CONFIG", "SET", "auto-aof-rewrite-percentage", "0"});
    if (r->type == REDIS_REPLY_ERROR) Die(std::string("CONFIG SET: ") + r->str);
    redisFree(c);
  }
  Fill(url, n);
  Run daemon, reference;
  double rss = 0;
  auto stats = [&](const char* who) {
    if (std::getenv("FOXWORKER_BENCH_STATS") == nullptr) return;
    redisContext* c = Connect(url);
    Reply r = Command(c, {"INFO", "commandstats"});
    fprintf(stderr, "%s:\n%s\n", who, r->str);
    Command(c, {"CONFIG", "RESETSTAT"});
    redisFree(c);
  };
  stats("fill");
  for (int round = 0; round < kRounds; ++round) {
    const Run d = Measure([&] { return DaemonRate(url, n, DaemonGroup(round)); });
    stats("daemon");
    if (round == 0) rss = bench::PeakRssMiB();
    const Run r = Measure([&] { return ReferenceRate(url, n, ReferenceGroup(round)); });
    stats("reference");
    fprintf(stderr, "redis_bench: round %d: daemon %.0f/s, reference %.0f/s\n", round + 1, d.rate,
            r.rate);
    if (d.rate > daemon.rate) daemon = d;
    if (r.rate > reference.rate) reference = r;
  }
  printf("BENCH redis.daemon_per_s %.0f entries/s\n", daemon.rate);
  printf("BENCH redis.reference_per_s %.0f entries/s\n", reference.rate);
  printf("BENCH redis.ratio_to_reference %.3f ratio\n", daemon.rate / reference.rate);
  printf("BENCH redis.peak_rss_mib %.1f MiB\n", rss);
  printf("BENCH redis.daemon_cpu_per_entry %.0f ns\n", daemon.cpu_s * 1e9 / n);
  printf("BENCH redis.reference_cpu_per_entry %.0f ns\n", reference.cpu_s * 1e9 / n);
  fflush(stdout);
  return 0;
}
