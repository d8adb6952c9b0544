// bench/run rabbitmq: N persistent messages from a durable quorum queue to the
// no-op handler, through foxworkerd's RabbitMQ backend (in-process
// Supervisor) and through a minimal reference consumer written directly on
// librabbitmq-c (prefetch 500, multiple acks every 100 messages, no daemon):
// the ceiling. The daemon runs first so that the process's peak RSS (VmHWM)
// after its run is the daemon's (plus this small driver).
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <glog/logging.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

#include "bench/bench_util.h"
#include "daemon/config/config_parser.h"
#include "daemon/core/consumer.h"
#include "daemon/core/supervisor.h"
#include "tests/harness/rabbitmq_server.h"

namespace foxworker {
namespace {

constexpr char kQueue[] = "foxworker-bench";
constexpr int kPrefetch = 500;

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

double ReferenceRate(const std::string& url, int n) {
  amqp_connection_state_t c = Connect(url);
  amqp_basic_qos(c, 1, 0, kPrefetch, 0);
  Check(amqp_get_rpc_reply(c), "basic.qos");
  auto t0 = std::chrono::steady_clock::now();
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
  double secs = Seconds(t0);
  Close(c);
  return n / secs;
}

double DaemonRate(const std::string& url, int n) {
  std::string yaml = "daemon:\n  worker_threads: 2\n  log_level: warning\n"
                     "plugins:\n  bench:\n    path: " BENCH_PLUGIN_PATH "\n"
                     "backends:\n  rmq:\n    type: rabbitmq\n    url: " + url +
                     "\nqueues:\n  bench:\n    backend: rmq\n    source: " + kQueue +
                     "\n    plugin: bench\n    handler: noop\n    concurrency: 2\n"
                     "    prefetch: " + std::to_string(kPrefetch) + "\n";
  auto config = ParseConfigString(yaml, "bench.yaml", "/tmp");
  if (!config.ok()) Die(config.status().message());
  Supervisor sup(std::move(*config));
  auto t0 = std::chrono::steady_clock::now();
  Status s = sup.Start();
  if (!s.ok()) Die(s.message());
  Consumer* consumer = sup.FindConsumer("bench");
  while (consumer->Stats().acked < static_cast<uint64_t>(n)) {
    if (Seconds(t0) > 600) Die("daemon timed out");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const double secs = Seconds(t0);
  sup.Shutdown();
  return n / secs;
}

}  // namespace
}  // namespace foxworker

int main(int argc, char** argv) {
  google::InitGoogleLogging("rabbitmq_bench");
  FLAGS_minloglevel = 1;
  using namespace foxworker;
  const int n = argc > 1 ? std::atoi(argv[1]) : 200000;
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
  Fill(url, n);
  double cpu0 = bench::ProcessCpuSeconds();
  const double daemon = DaemonRate(url, n);
  const double daemon_cpu = bench::ProcessCpuSeconds() - cpu0;
  const double rss = bench::PeakRssMiB();
  Fill(url, n);
  cpu0 = bench::ProcessCpuSeconds();
  const double reference = ReferenceRate(url, n);
  const double reference_cpu = bench::ProcessCpuSeconds() - cpu0;
  printf("BENCH rabbitmq.daemon_per_s %.0f msgs/s\n", daemon);
  printf("BENCH rabbitmq.reference_per_s %.0f msgs/s\n", reference);
  printf("BENCH rabbitmq.ratio_to_reference %.3f ratio\n", daemon / reference);
  printf("BENCH rabbitmq.peak_rss_mib %.1f MiB\n", rss);
  printf("BENCH rabbitmq.daemon_cpu_us_per_msg %.2f us\n", daemon_cpu * 1e6 / n);
  printf("BENCH rabbitmq.reference_cpu_us_per_msg %.2f us\n", reference_cpu * 1e6 / n);
  fflush(stdout);
  testing::RabbitMqServer::StopShared();
  return 0;
}
