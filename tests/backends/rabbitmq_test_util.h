// Shared pieces of the RabbitMQ integration tests: the broker, queue names,
// daemon configs and the probe plugin's records.
#ifndef FOXWORKER_TESTS_BACKENDS_RABBITMQ_TEST_UTIL_H_
#define FOXWORKER_TESTS_BACKENDS_RABBITMQ_TEST_UTIL_H_

#include <rapidjson/document.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "daemon/backends/rabbitmq/amqp_message_codec.h"
#include "tests/backends/rabbitmq_test_client.h"
#include "tests/core/test_daemon.h"
#include "tests/harness/rabbitmq_server.h"

namespace foxworker::testing {

// One message as the probe plugin saw it.
struct ProbeRecord {
  std::map<std::string, std::string> fields;  // id, payload, properties
  uint32_t attempt = 0;
  int priority = 0;
  int64_t timestamp_ms = 0;
  int64_t enqueued_at_ms = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<int> header_types;  // foxw_header_type, one per header
  // The numeric properties as sent (msg_property_int), -1 when not sent.
  int64_t sent_priority = -1, sent_timestamp_ms = -1, delivery_mode = -1;
  const std::string* Header(const std::string& name) const {
    for (const auto& [k, v] : headers)
      if (k == name) return &v;
    return nullptr;
  }
};

inline std::vector<ProbeRecord> ReadProbeFile(const std::string& path) {
  std::vector<ProbeRecord> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    rapidjson::Document doc;
    doc.Parse(line.c_str(), line.size());
    if (doc.HasParseError() || !doc.IsObject()) continue;
    ProbeRecord r;
    for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it) {
      std::string name(it->name.GetString(), it->name.GetStringLength());
      if (it->value.IsString())
        r.fields[name] = std::string(it->value.GetString(), it->value.GetStringLength());
    }
    r.attempt = doc["attempt"].GetUint();
    r.priority = doc["priority"].GetInt();
    r.timestamp_ms = doc["timestamp_ms"].GetInt64();
    r.enqueued_at_ms = doc["enqueued_at_ms"].GetInt64();
    for (const char* name : {"sent_priority", "sent_timestamp_ms", "delivery_mode"}) {
      if (!doc.HasMember(name) || !doc[name].IsInt64()) continue;
      const int64_t v = doc[name].GetInt64();
      if (std::string(name) == "sent_priority") r.sent_priority = v;
      if (std::string(name) == "sent_timestamp_ms") r.sent_timestamp_ms = v;
      if (std::string(name) == "delivery_mode") r.delivery_mode = v;
    }
    if (doc.HasMember("header_types")) {
      for (const auto& t : doc["header_types"].GetArray()) r.header_types.push_back(t.GetInt());
    }
    for (const auto& h : doc["headers"].GetArray()) {
      r.headers.emplace_back(std::string(h[0].GetString(), h[0].GetStringLength()),
                             std::string(h[1].GetString(), h[1].GetStringLength()));
    }
    out.push_back(std::move(r));
  }
  return out;
}

class RabbitMqTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = RabbitMqServer::Get();
    ASSERT_NE(server_, nullptr) << "no RabbitMQ broker: " << RabbitMqServer::Error();
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    queue_ = std::string("foxw-") + info->name() + "-" + std::to_string(getpid());
    probe_file_ = "/tmp/" + queue_ + ".probe";
    unlink(probe_file_.c_str());
    setenv("FOXWORKER_PROBE_FILE", probe_file_.c_str(), 1);
    client_ = std::make_unique<AmqpTestClient>(server_->url());
    ASSERT_TRUE(client_->ok());
    client_->DeleteWithDerived(queue_);
  }

  void TearDown() override {
    if (daemon_) daemon_->Shutdown();
    daemon_.reset();
    if (client_ && client_->ok()) client_->DeleteWithDerived(queue_);
    unlink(probe_file_.c_str());
  }

  // A daemon with one queue on the broker, routed by message type to the
  // probe plugin.
  std::string Yaml(int concurrency = 2, int prefetch = 8, int max_attempts = 3,
                   const std::string& backend_extra = "") const {
    std::ostringstream y;
    y << "daemon:\n  worker_threads: 4\n  shutdown_timeout: 5s\n"
      << "plugins:\n  probe:\n    path: " << PROBE_PLUGIN_PATH << "\n"
      << "backends:\n  rmq:\n    type: rabbitmq\n    url: " << server_->url() << "\n"
      << "    heartbeat: 10s\n    connection_name: foxworker-test\n"
      << "    reconnect_initial: 100ms\n    reconnect_max: 1s\n"
      << backend_extra
      << "queues:\n  work:\n    backend: rmq\n    source: " << queue_ << "\n"
      << "    plugin: probe\n    concurrency: " << concurrency << "\n    prefetch: " << prefetch
      << "\n    retry_policy: fast\n"
      << "retry_policies:\n  fast:\n    max_attempts: " << max_attempts
      << "\n    backoff: fixed\n    initial: 250ms\n    max: 5m\n    jitter: 0\n";
    return y.str();
  }

  std::vector<ProbeRecord> Records() const { return ReadProbeFile(probe_file_); }

  bool WaitRecords(size_t n, std::chrono::milliseconds limit = std::chrono::seconds(30)) {
    return WaitFor([&] { return Records().size() >= n; }, limit);
  }

  RabbitMqServer* server_ = nullptr;
  std::string queue_;
  std::string probe_file_;
  std::unique_ptr<AmqpTestClient> client_;
  std::unique_ptr<Supervisor> daemon_;
};

// Properties with the type set and persistent delivery.
inline amqp_basic_properties_t TypedProps(const char* type) {
  amqp_basic_properties_t p;
  p._flags = AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
  p.type = amqp_cstring_bytes(type);
  p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  return p;
}

inline amqp_table_entry_t Entry(const char* key, amqp_field_value_t value) {
  amqp_table_entry_t e;
  e.key = amqp_cstring_bytes(key);
  e.value = value;
  return e;
}

inline amqp_field_value_t Utf8(const char* s) {
  amqp_field_value_t v;
  v.kind = AMQP_FIELD_KIND_UTF8;
  v.value.bytes = amqp_cstring_bytes(s);
  return v;
}

inline amqp_field_value_t I32(int32_t n) {
  amqp_field_value_t v;
  v.kind = AMQP_FIELD_KIND_I32;
  v.value.i32 = n;
  return v;
}

inline std::string HeaderOf(const amqp_basic_properties_t& p, const std::string& name) {
  if (!(p._flags & AMQP_BASIC_HEADERS_FLAG)) return "<no headers>";
  for (int i = 0; i < p.headers.num_entries; ++i) {
    const auto& e = p.headers.entries[i];
    if (BytesToString(e.key) == name) return FieldValueToString(e.value);
  }
  return "<absent>";
}

inline int HeaderKind(const amqp_basic_properties_t& p, const std::string& name) {
  for (int i = 0; i < p.headers.num_entries; ++i)
    if (BytesToString(p.headers.entries[i].key) == name) return p.headers.entries[i].value.kind;
  return -1;
}

// Publishes a message of `type` with string headers.
inline bool PublishTyped(AmqpTestClient& client, const std::string& queue, const char* type,
                  const std::string& body,
                  const std::vector<std::pair<const char*, const char*>>& headers,
                  const char* message_id = nullptr) {
  amqp_basic_properties_t p = TypedProps(type);
  std::vector<amqp_table_entry_t> entries;
  for (const auto& [k, v] : headers) entries.push_back(Entry(k, Utf8(v)));
  if (!entries.empty()) {
    p._flags |= AMQP_BASIC_HEADERS_FLAG;
    p.headers = {static_cast<int>(entries.size()), entries.data()};
  }
  if (message_id != nullptr) {
    p._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
    p.message_id = amqp_cstring_bytes(message_id);
  }
  return client.Publish(queue, body, &p);
}

}  // namespace foxworker::testing

#endif  // FOXWORKER_TESTS_BACKENDS_RABBITMQ_TEST_UTIL_H_
