// The backends that isolation_daemon_test.cc runs the real foxworkerd on
// (local, RabbitMQ, Redis), seen from outside the daemon: a config block,
// how to put a message in, and what the backend still holds.
#ifndef FOXWORKER_TESTS_ISOLATION_BACKEND_UNDER_TEST_H_
#define FOXWORKER_TESTS_ISOLATION_BACKEND_UNDER_TEST_H_

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "daemon/backends/local/local_store.h"
#include "tests/backends/rabbitmq_test_util.h"
#include "tests/backends/redis_test_util.h"

namespace foxworker::testing {

// One dead letter as the backend keeps it.
struct Dead {
  std::string id;  // the original message's id
  std::string reason;
  int attempt = 0;
};

// A backend the real daemon consumes from, seen from outside: its config
// block, how to put a message in, and what it holds.
class BackendUnderTest {
 public:
  virtual ~BackendUnderTest() = default;
  // Empty when it is ready; else why not (the test fails with it).
  virtual std::string Prepare(const std::string& dir) = 0;
  // The `backends:` entry "b".
  virtual std::string Yaml() = 0;
  // The backend's name for queue `q` (stream, AMQP queue or local queue).
  virtual std::string Source(const std::string& q) = 0;
  // Enqueues one message of `type`; its id as the handler sees it.
  virtual std::string Enqueue(const std::string& q, const std::string& type,
                              const std::string& payload) = 0;
  virtual size_t DeadCount(const std::string& q) = 0;
  // Reads the dead letters (on RabbitMQ: takes them off the queue).
  virtual std::vector<Dead> DeadLetters(const std::string& q) = 0;
  // Messages of `q` that are neither acked nor dead-lettered. Read after the
  // daemon stopped (RabbitMQ counts only messages that are not out on a
  // delivery).
  virtual int64_t Left(const std::string& q) = 0;
};

class LocalUnderTest : public BackendUnderTest {
 public:
  std::string Prepare(const std::string& dir) override {
    db_ = dir + "/jobs.db";
    LocalStoreOptions o;
    o.path = db_;
    auto store = LocalStore::Open(o);
    if (!store.ok()) return store.status().message();
    store_ = std::move(*store);
    return "";
  }
  std::string Yaml() override {
    return "  b:\n    type: local\n    path: " + db_ + "\n    durability: normal\n    lease: 30s\n";
  }
  std::string Source(const std::string& q) override { return q; }
  std::string Enqueue(const std::string& q, const std::string& type,
                      const std::string& payload) override {
    NewJob j;
    j.queue = q;
    j.payload = payload;
    j.props.message_type = type;
    auto r = store_->Enqueue(j);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? std::to_string(r->id) : "";
  }
  size_t DeadCount(const std::string& q) override { return DeadLetters(q).size(); }
  std::vector<Dead> DeadLetters(const std::string& q) override {
    std::vector<Dead> out;
    auto dead = store_->ListDead(q, 1000);
    EXPECT_TRUE(dead.ok()) << dead.status().message();
    if (!dead.ok()) return out;
    for (const auto& j : *dead)
      out.push_back({std::to_string(j.id), j.last_error, static_cast<int>(j.attempts)});
    return out;
  }
  int64_t Left(const std::string& q) override {
    auto stats = store_->Stats();
    EXPECT_TRUE(stats.ok()) << stats.status().message();
    if (!stats.ok()) return -1;
    for (const auto& s : *stats)
      if (s.queue == q) return s.waiting + s.scheduled + s.running;
    return 0;
  }

 private:
  std::string db_;
  std::unique_ptr<LocalStore> store_;
};

class RabbitMqUnderTest : public BackendUnderTest {
 public:
  ~RabbitMqUnderTest() override {
    if (client_ && client_->ok())
      for (const std::string& q : queues_) client_->DeleteWithDerived(q);
  }
  std::string Prepare(const std::string&) override {
    server_ = RabbitMqServer::Get();
    if (server_ == nullptr) return "no RabbitMQ broker: " + RabbitMqServer::Error();
    client_ = std::make_unique<AmqpTestClient>(server_->url());
    if (!client_->ok()) return "cannot connect to " + server_->url();
    return "";
  }
  std::string Yaml() override {
    return "  b:\n    type: rabbitmq\n    url: " + server_->url() +
           "\n    reconnect_initial: 100ms\n    reconnect_max: 1s\n";
  }
  std::string Source(const std::string& q) override {
    const std::string name = "foxw-iso-" + q + "-" + std::to_string(getpid());
    if (queues_.insert(name).second) {
      client_->DeleteWithDerived(name);
      // Declared before the daemon starts, so that nothing published is lost.
      EXPECT_TRUE(client_->Declare(name));
    }
    return name;
  }
  std::string Enqueue(const std::string& q, const std::string& type,
                      const std::string& payload) override {
    // Without a message_id the id is a hash of the bytes: equal messages
    // would share it.
    const std::string id = "m" + std::to_string(++sent_);
    EXPECT_TRUE(PublishTyped(*client_, Source(q), type.c_str(), payload, {}, id.c_str()));
    return id;
  }
  size_t DeadCount(const std::string& q) override {
    const int64_t n = client_->Count(Source(q) + "-dlq");
    return n < 0 ? 0 : static_cast<size_t>(n);
  }
  std::vector<Dead> DeadLetters(const std::string& q) override {
    std::vector<Dead> out;
    while (auto m = client_->Get(Source(q) + "-dlq")) {
      const amqp_basic_properties_t& p = m->raw.properties;
      out.push_back({HeaderOf(p, "x-original-id"), HeaderOf(p, "x-failure-reason"),
                     std::atoi(HeaderOf(p, "x-final-attempt").c_str())});
    }
    return out;
  }
  int64_t Left(const std::string& q) override { return client_->Count(Source(q)); }

 private:
  RabbitMqServer* server_ = nullptr;
  std::unique_ptr<AmqpTestClient> client_;
  std::set<std::string> queues_;
  int sent_ = 0;
};

class RedisUnderTest : public BackendUnderTest {
 public:
  std::string Prepare(const std::string&) override {
    Status st = redis_.Start();
    return st.ok() ? "" : st.message();
  }
  std::string Yaml() override {
    return "  b:\n    type: redis\n    url: " + redis_.url() +
           "\n    block: 200ms\n    claim_interval: 100ms\n    min_idle: 60s\n";
  }
  std::string Source(const std::string& q) override { return q; }
  std::string Enqueue(const std::string& q, const std::string& type,
                      const std::string& payload) override {
    RedisReplyPtr r = redis_.Command({"XADD", q, "*", "data", payload, "type", type});
    EXPECT_TRUE(r != nullptr && r->type == REDIS_REPLY_STRING);
    return r != nullptr && r->type == REDIS_REPLY_STRING ? std::string(ReplyText(r.get())) : "";
  }
  size_t DeadCount(const std::string& q) override {
    return static_cast<size_t>(std::max(0LL, redis_.Integer({"XLEN", q + "-dlq"})));
  }
  std::vector<Dead> DeadLetters(const std::string& q) override {
    std::vector<Dead> out;
    for (auto& [entry, f] : ReadStream(redis_, q + "-dlq"))
      out.push_back({f["x-original-id"], f["x-failure-reason"], std::atoi(f["x-final-attempt"].c_str())});
    return out;
  }
  // Pending (delivered, not acked) plus not yet delivered to the group
  // (a retry is a new entry of the stream).
  int64_t Left(const std::string& q) override {
    int64_t left = redis_.PendingCount(q, "foxworker");
    RedisReplyPtr r = redis_.Command({"XINFO", "GROUPS", q});
    if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements != 1) return -1;
    const redisReply* group = r->element[0];
    for (size_t i = 0; i + 1 < group->elements; i += 2) {
      if (ReplyText(group->element[i]) == "lag" && group->element[i + 1]->type == REDIS_REPLY_INTEGER)
        left += group->element[i + 1]->integer;
    }
    return left;
  }

 private:
  RedisServer redis_;
};

// Waits (at most `limit`) for the daemon `pid` to end; its wait status, or
// -1. Sets `pid` to -1 once it is reaped.
inline int WaitDaemonExit(pid_t& pid, std::chrono::milliseconds limit) {
  int status = 0;
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      pid = -1;
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

}  // namespace foxworker::testing

#endif  // FOXWORKER_TESTS_ISOLATION_BACKEND_UNDER_TEST_H_
