// bench/run rabbitmq: N persistent messages from a durable quorum queue to the
// no-op handler, through foxworkerd's RabbitMQ backend (in-process
// Supervisor) and through a minimal reference consumer written directly on
// librabbitmq-c (prefetch 500, multiple acks every 100 messages, no daemon):
// the ceiling.
//
// Method (each side runs kRounds times; the best round of each is reported):
// - Rounds are interleaved, daemon first: daemon, reference, daemon,
//   reference, ... The queue is refilled (every publish confirmed) before
//   each run, so every run drains N messages, and both sides see the same
//   background load on a shared machine.
// - Both clocks include the connection: they start just before the side
//   opens it (the daemon: Supervisor::Start, which loads the plugin,
//   connects, logs in, declares the queue and its dead-letter queue and
//   consumes; the reference: TCP connect, login, channel.open, basic.qos,
//   basic.consume) and stop once the side has handled the N-th message and
//   handed its ack over (the daemon: its consumer has counted N acks, which
//   the driver checks every 10 ms until 95% are in, then every 1 ms; the
//   reference: its last basic.ack is written). Closing the connection and
//   shutting the daemon down are outside both clocks.
// - CPU time (the whole process, every thread) is taken over the same
//   interval; each side's CPU figure is that of its best round.
// - Peak RSS (VmHWM) is read after the first daemon run, before any
//   reference run, so it is the daemon's (plus this small driver's).
//
// For profilers (callgrind, strace, perf): `rabbitmq_bench N daemon` or
// `rabbitmq_bench N reference` fills the queue and drains it once with that
// side only, and prints its figures.
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <dirent.h>
#include <glog/logging.h>
#include <unistd.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "bench/bench_util.h"
#include "daemon/config/config_parser.h"
#include "daemon/core/consumer.h"
#include "daemon/app/supervisor.h"
#include "tests/harness/rabbitmq_server.h"

namespace foxworker {
namespace {

constexpr char kQueue[] = "foxworker-bench";
constexpr int kPrefetch = 500;
// Runs of each side; the best round of each counts.
constexpr int kRounds = 5;

[[noreturn]] void Die(const std::string& why) {
  fprintf(stderr, "rabbitmq_bench: %s\n", why.c_str());
  exit(1);
}

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void Check(amqp_rpc_reply_t r, const char* what) {
  if (r.reply_type != AMQP_RESPONSE_NORMAL) Die(std::string(what) + " failed");
}

amqp_connection_state_t Connect(const std::string& url) {
  std::string buffer = url;
  amqp_connection_info info;
  if (amqp_parse_url(buffer.data(), &info) != AMQP_STATUS_OK) Die("bad url");
  amqp_connection_state_t c = amqp_new_connection();
  amqp_socket_t* s = amqp_tcp_socket_new(c);
  if (amqp_socket_open(s, info.host, info.port) != AMQP_STATUS_OK) Die("cannot connect");
  Check(amqp_login(c, info.vhost, 0, AMQP_DEFAULT_FRAME_SIZE, 0, AMQP_SASL_METHOD_PLAIN,
                   info.user, info.password),
        "login");
  amqp_channel_open(c, 1);
  Check(amqp_get_rpc_reply(c), "channel.open");
  return c;
}

void Close(amqp_connection_state_t c) {
  amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
  amqp_connection_close(c, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(c);
}

// Declares the queue (quorum, durable) and publishes `n` persistent messages
// with confirms.
void Fill(const std::string& url, int n) {
  amqp_connection_state_t c = Connect(url);
  amqp_table_entry_t e;
  e.key = amqp_cstring_bytes("x-queue-type");
  e.value.kind = AMQP_FIELD_KIND_UTF8;
  e.value.value.bytes = amqp_cstring_bytes("quorum");
  amqp_queue_declare(c, 1, amqp_cstring_bytes(kQueue), 0, 1, 0, 0, amqp_table_t{1, &e});
  Check(amqp_get_rpc_reply(c), "queue.declare");
  amqp_confirm_select(c, 1);
  Check(amqp_get_rpc_reply(c), "confirm.select");
  amqp_basic_properties_t p;
  p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_TYPE_FLAG;
  p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  p.type = amqp_cstring_bytes("noop");
  const std::string body = "{\"ts\":0,\"user\":\"alice@example.com\"}";
  amqp_bytes_t b{body.size(), const_cast<char*>(body.data())};
  uint64_t confirmed = 0;
  for (int i = 0; i < n; ++i) {
    if (amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(kQueue), 0, 0, &p, b) !=
        AMQP_STATUS_OK)
      Die("publish");
    if (i % 2000 == 1999 || i == n - 1) {
      while (confirmed < static_cast<uint64_t>(i + 1)) {
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
  Close(c);
}

// Context switches (voluntary and involuntary) of every thread of this
// process so far: a wake-up's cost, counted rather than timed.
long ContextSwitches() {
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_nvcsw + ru.ru_nivcsw;
}

// CPU seconds used so far by the Erlang VMs (beam.smp) on this machine, the
// broker's cost seen from outside; 0 when none runs here (a remote broker).
double BrokerCpuSeconds() {
  double total = 0;
  const long ticks = sysconf(_SC_CLK_TCK);
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return 0;
  while (dirent* e = readdir(proc)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::ifstream in(std::string("/proc/") + e->d_name + "/stat");
    std::string line;
    if (!std::getline(in, line)) continue;
    const size_t open = line.find('('), close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    if (line.compare(open + 1, close - open - 1, "beam.smp") != 0) continue;
    std::istringstream rest(line.substr(close + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    // Fields 3..13, then utime (14) and stime (15).
    for (int i = 3; i <= 13 && rest >> field; ++i) {
    }
    rest >> utime >> stime;
    total += static_cast<double>(utime + stime) / static_cast<double>(ticks);
  }
  closedir(proc);
  return total;
}

// One timed run: messages per second, and CPU seconds (this process's and
// the broker's) and context switches over the same interval.
struct Run {
  double rate = 0;
  double cpu_s = 0;
  long switches = 0;
  double broker_cpu_s = 0;
};

Run ReferenceRun(const std::string& url, int n) {
  const double broker0 = BrokerCpuSeconds();
  const long cs0 = ContextSwitches();
  const double cpu0 = bench::ProcessCpuSeconds();
  const auto t0 = std::chrono::steady_clock::now();
  amqp_connection_state_t c = Connect(url);
  amqp_basic_qos(c, 1, 0, kPrefetch, 0);
  Check(amqp_get_rpc_reply(c), "basic.qos");
  amqp_basic_consume(c, 1, amqp_cstring_bytes(kQueue), amqp_empty_bytes, 0, 0, 0,
                     amqp_empty_table);
  Check(amqp_get_rpc_reply(c), "basic.consume");
  for (int got = 0; got < n;) {
    amqp_envelope_t env;
    amqp_maybe_release_buffers(c);
    timeval tv{30, 0};
    amqp_rpc_reply_t r = amqp_consume_message(c, &env, &tv, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) Die("reference consumer: consume failed");
    ++got;
    if (got % 100 == 0 || got == n) amqp_basic_ack(c, 1, env.delivery_tag, 1);
    amqp_destroy_envelope(&env);
  }
  const Run run{n / Seconds(t0), bench::ProcessCpuSeconds() - cpu0, ContextSwitches() - cs0,
                BrokerCpuSeconds() - broker0};
  Close(c);
  return run;
}

// FOXWORKER_BENCH_RABBITMQ_ISOLATION=process runs the daemon's queue with
// isolation: process (bench/run isolation): two children, one per core,
// each with 32 slots, so that answers come back in batches while the
// next messages are on their way (in-process, two slots keep up).
// Unset or empty runs in-process; any other value than the two modes is
// refused rather than measured as in-process.
bool ProcessIsolation() {
  const char* v = std::getenv("FOXWORKER_BENCH_RABBITMQ_ISOLATION");
  const std::string mode = v != nullptr ? v : "";
  if (mode.empty() || mode == "inprocess") return false;
  if (mode == "process") return true;
  Die(("FOXWORKER_BENCH_RABBITMQ_ISOLATION=" + mode +
       ": expected \"process\" or \"inprocess\" (unset: inprocess)"));
}

// FOXWORKER_BENCH_RABBITMQ_HANDLER=later runs the daemon's queue with the
// bench plugin's `later` handler (acked from another thread about
// $FOXWORKER_BENCH_LATER_US later) instead of `noop`: the latency of a
// child's answer without a child, for docs/benchmarks.md.
std::string Handler() {
  const char* v = std::getenv("FOXWORKER_BENCH_RABBITMQ_HANDLER");
  const std::string handler = v != nullptr && *v != '\0' ? v : "noop";
  if (handler != "noop" && handler != "later")
    Die("FOXWORKER_BENCH_RABBITMQ_HANDLER=" + handler + ": expected \"noop\" or \"later\"");
  return handler;
}

Run DaemonRun(const std::string& url, int n) {
  const std::string queue_lines =
      ProcessIsolation()
          ? "    concurrency: 64\n    isolation: process\n    process:\n      processes: 2\n"
          : "    concurrency: 2\n";
  std::string yaml = "daemon:\n  worker_threads: 2\n  log_level: warning\n"
                     "plugins:\n  bench:\n    path: " BENCH_PLUGIN_PATH "\n"
                     "backends:\n  rmq:\n    type: rabbitmq\n    url: " + url +
                     "\nqueues:\n  bench:\n    backend: rmq\n    source: " + kQueue +
                     "\n    plugin: bench\n    handler: " + Handler() + "\n" + queue_lines +
                     "    prefetch: " + std::to_string(kPrefetch) + "\n";
  auto config = ParseConfigString(yaml, "bench.yaml", "/tmp");
  if (!config.ok()) Die(config.status().message());
  Supervisor sup(std::move(*config));
  const double broker0 = BrokerCpuSeconds();
  const long cs0 = ContextSwitches();
  const double cpu0 = bench::ProcessCpuSeconds();
  const auto t0 = std::chrono::steady_clock::now();
  Status s = sup.Start();
  if (!s.ok()) Die(s.message());
  Consumer* consumer = sup.FindConsumer("bench");
  // This thread is the driver's, not the daemon's: it looks rarely while
  // much is left (each look is a wake-up on the two cores the daemon and
  // the broker share), then every millisecond for the end.
  for (uint64_t acked; (acked = consumer->Stats().acked) < static_cast<uint64_t>(n);) {
    if (Seconds(t0) > 600) Die("daemon timed out");
    const bool far = static_cast<uint64_t>(n) - acked > static_cast<uint64_t>(n) / 20;
    std::this_thread::sleep_for(std::chrono::milliseconds(far ? 10 : 1));
  }
  const Run run{n / Seconds(t0), bench::ProcessCpuSeconds() - cpu0, ContextSwitches() - cs0,
                BrokerCpuSeconds() - broker0};
  sup.Shutdown();
  return run;
}

}  // namespace
}  // namespace foxworker

int main(int argc, char** argv) {
  google::InitGoogleLogging("rabbitmq_bench");
  setenv("FOXWORKER_CHILD", BENCH_CHILD_PATH, 0);  // FOXWORKER_BENCH_RABBITMQ_ISOLATION
  FLAGS_minloglevel = 1;
  using namespace foxworker;
  const int n = argc > 1 ? std::atoi(argv[1]) : 200000;
  const std::string only = argc > 2 ? argv[2] : "";
  if (n <= 0 || (!only.empty() && only != "daemon" && only != "reference"))
    Die("usage: rabbitmq_bench [MESSAGES [daemon|reference]]");
  std::string url;
  if (const char* u = std::getenv("FOXWORKER_BENCH_AMQP_URL"); u != nullptr && *u) {
    url = u;
  } else {
    auto* server = testing::RabbitMqServer::Get();
    if (server == nullptr) Die("no broker: " + testing::RabbitMqServer::Error());
    url = server->url();
  }
  // The consumer's own CPU matters here: it shares the two cores with the
  // broker, so every microsecond it burns per message slows the broker.
  if (!only.empty()) {
    Fill(url, n);
    const Run r = only == "daemon" ? DaemonRun(url, n) : ReferenceRun(url, n);
    printf("BENCH rabbitmq.%s_per_s %.0f msgs/s\n", only.c_str(), r.rate);
    printf("BENCH rabbitmq.%s_cpu_us_per_msg %.2f us\n", only.c_str(), r.cpu_s * 1e6 / n);
    printf("BENCH rabbitmq.%s_switches_per_msg %.4f switches\n", only.c_str(),
           static_cast<double>(r.switches) / n);
    if (r.broker_cpu_s > 0)
      printf("BENCH rabbitmq.%s_broker_cpu_us_per_msg %.2f us\n", only.c_str(),
             r.broker_cpu_s * 1e6 / n);
    fflush(stdout);
    testing::RabbitMqServer::StopShared();
    return 0;
  }
  Run daemon, reference;
  double rss = 0;
  for (int round = 1; round <= kRounds; ++round) {
    Fill(url, n);
    const Run d = DaemonRun(url, n);
    if (round == 1) rss = bench::PeakRssMiB();
    Fill(url, n);
    const Run r = ReferenceRun(url, n);
    fprintf(stderr,
            "rabbitmq_bench: round %d: daemon %.0f msgs/s (%.2f us/msg CPU, %.3f context "
            "switches/msg, broker %.2f us/msg), reference %.0f msgs/s (%.2f us/msg CPU, %.3f "
            "switches/msg, broker %.2f us/msg)\n",
            round, d.rate, d.cpu_s * 1e6 / n, static_cast<double>(d.switches) / n,
            d.broker_cpu_s * 1e6 / n, r.rate, r.cpu_s * 1e6 / n,
            static_cast<double>(r.switches) / n, r.broker_cpu_s * 1e6 / n);
    if (d.rate > daemon.rate) daemon = d;
    if (r.rate > reference.rate) reference = r;
  }
  if (ProcessIsolation()) {
    printf("BENCH isolation.rabbitmq.daemon_per_s %.0f msgs/s\n", daemon.rate);
    printf("BENCH isolation.rabbitmq.reference_per_s %.0f msgs/s\n", reference.rate);
    printf("BENCH isolation.rabbitmq.ratio_to_reference %.3f ratio\n",
           daemon.rate / reference.rate);
    fflush(stdout);
    testing::RabbitMqServer::StopShared();
    return 0;
  }
  printf("BENCH rabbitmq.daemon_per_s %.0f msgs/s\n", daemon.rate);
  printf("BENCH rabbitmq.reference_per_s %.0f msgs/s\n", reference.rate);
  printf("BENCH rabbitmq.ratio_to_reference %.3f ratio\n", daemon.rate / reference.rate);
  printf("BENCH rabbitmq.peak_rss_mib %.1f MiB\n", rss);
  printf("BENCH rabbitmq.daemon_cpu_us_per_msg %.2f us\n", daemon.cpu_s * 1e6 / n);
  printf("BENCH rabbitmq.reference_cpu_us_per_msg %.2f us\n", reference.cpu_s * 1e6 / n);
  fflush(stdout);
  testing::RabbitMqServer::StopShared();
  return 0;
}
