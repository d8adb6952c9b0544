// Backend and Source: the boundary between brokers and the dispatch core.
//
// A Backend owns its connection(s) and does all broker I/O on its own
// thread(s). For each configured queue it opens a Source, which a Consumer
// pulls deliveries from and pushes settlements into. Sources are pull-based
// and non-blocking: a source that has nothing ready returns 0 from Fetch and
// later calls the wake-up it was started with.
#ifndef FOXWORKER_CORE_BACKEND_H_
#define FOXWORKER_CORE_BACKEND_H_

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/base/units.h"
#include "daemon/core/retry_policy.h"
#include "daemon/core/backend_queue_options.h"
#include "daemon/core/inspect.h"
#include "daemon/core/message.h"
#include "daemon/core/outcome.h"
#include "daemon/core/running_journal.h"
#include "daemon/base/status.h"

namespace foxworker {

// What a source needs to know about its queue, cut from QueueConfig.
struct SourceOptions {
  std::string queue;   // the daemon's queue name (for logs and dead letters)
  std::string source;  // the backend-side name
  int prefetch = 1;    // most deliveries held (buffered + unsettled) at once
  int max_attempts = 0;  // from the retry policy; 0 = unknown (backends that
                         // count crashed attempts dead-letter past it)
  // The queue's retry policy, for backends that set up delay queues from it
  // (rabbitmq's retry tiers); unset = the built-in default policy.
  std::optional<RetryPolicyOptions> retry_policy;
  // The queue's `<backend type>:` block as the backend parsed it (for
  // rabbitmq, `rabbitmq:`); null when the queue has none.
  std::shared_ptr<const BackendQueueOptions> queue_options;
  // The queue hands each delivery to a handler child (isolation: process)
  // and answers it a round trip later: a backend may gather more
  // deliveries per read under load (rabbitmq's read coalescing).
  bool answers_later = false;
};

// Keys that expire, kept by a backend for one scope (dedup keeps message keys
// this way). Safe for concurrent use.
class KeyStore {
 public:
  virtual ~KeyStore() = default;
  // Whether `key` was recorded and has not expired at `now_ms`.
  virtual bool Seen(const std::string& key, int64_t now_ms) = 0;
  virtual void Record(const std::string& key, int64_t expires_ms) = 0;
};

// Safe for concurrent use: Fetch and Settle may be called from any executor
// thread at once.
class Source {
 public:
  virtual ~Source() = default;

  // Begins receiving. `wake` may be called from any thread, spuriously too,
  // whenever Fetch may return deliveries after it returned 0.
  virtual Status Start(std::function<void()> wake) = 0;

  // Appends up to `max` ready deliveries to `out`; returns how many. Never
  // blocks on I/O.
  virtual size_t Fetch(size_t max, std::vector<std::unique_ptr<Delivery>>& out) = 0;

  // Applies outcomes and takes ownership of the deliveries. Never blocks on
  // I/O; the backend applies them on its own thread (durably, before it acks
  // an original it replaced by a retry or dead-letter copy).
  virtual void Settle(std::vector<Settlement>& batch) = 0;

  // Stops taking new messages from the broker and releases the buffered ones
  // that were never handed out. Deliveries already fetched can still be
  // settled afterwards.
  virtual void StopFetching() = 0;

  // Whether a Fetch might return something now (cheap hint, may be stale).
  virtual bool MaybeReady() const = 0;
};

// What a backend learns at start about the daemon that ran before it on this
// state_dir and died (docs/semantics.md, "Attempts after a crash").
struct PreviousRun {
  std::string owner;  // the claim owner that daemon's backend of this name used
  std::shared_ptr<const RunningJournalEvidence> evidence;

  // Whether that daemon was running `message_id`'s handler when it died.
  bool WasRunning(std::string_view message_id) const { return evidence->WasRunning(message_id); }
};

struct BackendState {
  bool connected = true;
  uint64_t reconnects = 0;
  uint64_t consecutive_failures = 0;
  std::string last_error;
  // Backends on a local file (the local backend): the file's state, one of
  // `storage_states` ("ok", "disk_full", ...), for /readyz and the
  // foxworker_backend_storage_state metric; empty for the others.
  std::string storage;
  // Every value `storage` can take, in the order the metric lists them.
  std::vector<std::string> storage_states;
  // Times `storage` left "ok" (foxworker_backend_storage_faults_total).
  uint64_t storage_faults = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const std::string& name() const = 0;

  // Connects and starts the backend's thread(s).
  virtual Status Start() = 0;
  virtual Result<std::unique_ptr<Source>> OpenSource(const SourceOptions& options) = 0;

  // Durably enqueues a message on a backend-side source (publish).
  virtual Status Enqueue(const std::string& source, Message message, Duration delay) = 0;

  // Flushes pending settlements (waiting at most until `deadline`) and
  // closes connections. Sources must not be used afterwards.
  virtual void Stop(std::chrono::steady_clock::time_point deadline) = 0;

  virtual BackendState State() const { return {}; }

  // The name under which this backend's claims outlive the process at the
  // broker (the local lease owner, the Redis consumer name), for the running
  // journal; empty when nothing it claims survives a crash charged.
  virtual std::string ClaimOwner() const { return {}; }

  // Called at most once, before Start, when the running journal proves that
  // `previous.owner` is dead and which messages it was running. Before it
  // claims anything, the backend makes what that owner still holds
  // available again: a message it was running keeps the attempt it was
  // charged; one it had claimed but never started gets its attempt back.
  virtual void AdoptPreviousRun(PreviousRun previous) { (void)previous; }

  // A store whose keys survive restarts and are shared by every daemon on
  // this backend, for keys scoped by `scope` (a queue name); null when the
  // backend keeps nothing durable of its own (the caller then keeps keys in
  // memory).
  virtual std::unique_ptr<KeyStore> OpenDurableKeyStore(const std::string& scope) {
    (void)scope;
    return nullptr;
  }

  // An inspector on a connection of its own (daemon/core/inspect.h), for
  // the console, `foxworkerctl --url` and the depth metrics. Callable after
  // Start, from any thread; the inspector may outlive Stop (its calls then
  // fail). kUnavailable when the backend has nothing to inspect.
  virtual Result<std::unique_ptr<Inspector>> OpenInspector(const InspectorOptions& options) {
    (void)options;
    return Status::Unavailable("backend " + name() + " cannot be inspected");
  }
};

}  // namespace foxworker

#endif  // FOXWORKER_CORE_BACKEND_H_
