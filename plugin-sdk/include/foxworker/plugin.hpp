// foxworker plugin SDK: header-only C++17 wrapper over the C ABI in plugin.h.
//
// A plugin is a class:
//
//   class Resizer {
//    public:
//     static constexpr const char* kDescription = "Resizes images";  // optional
//     static constexpr foxw_config_key kConfigSchema[] = {            // optional
//         foxworker::ConfigKey("width", FOXW_CONFIG_INT, true, nullptr, "Target width"),
//     };
//     Resizer(foxworker::PluginContext& ctx, std::string_view config_json);
//     foxworker::Verdict Resize(const foxworker::Message& msg);
//   };
//   FOXWORKER_PLUGIN(Resizer, "resizer", "1.0.0", FOXW_INSTANCE_PER_SLOT,
//                    FOXWORKER_HANDLER(Resizer, Resize, "image.resize"));
//
// The constructor runs in create(): throwing refuses the instance and the
// exception's what() becomes the error the daemon logs. Each handler method
// takes `const foxworker::Message&` and returns a foxworker::Verdict. A batch
// handler, declared with FOXWORKER_BATCH_HANDLER, is `void Method(
// foxworker::Batch& batch)` and calls batch.Set(i, verdict) for each message.
//
// The wrapper is the exception barrier: an exception escaping a handler
// becomes FOXW_RETRY with the reason "unhandled exception: <what()>" (for a
// batch handler, for every message of the batch), and no exception ever
// crosses into the host.
//
// Everything lives in the inline namespace foxworker::sdk_v1 so that the
// wrapper's classes never share a mangled name with the daemon's own
// foxworker::Message or foxworker::Counter. Include either this header or the
// daemon's headers in one translation unit, not both.
#ifndef FOXWORKER_PLUGIN_HPP_
#define FOXWORKER_PLUGIN_HPP_

#if !defined(__cplusplus) || __cplusplus < 201703L
#error "foxworker/plugin.hpp needs C++17 or later; C plugins use foxworker/plugin.h"
#endif

#include <foxworker/plugin.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <iterator>
#include <limits>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace foxworker {
inline namespace sdk_v1 {

class Message;

// ---------------------------------------------------------------------------
// Verdict: what a handler returns.

class Verdict {
 public:
  // Done: the message is acknowledged and removed.
  static Verdict Ack() { return Verdict(FOXW_ACK, {}, std::chrono::milliseconds(0)); }
  // Transient failure: the queue's retry policy decides whether attempts
  // remain. A non-zero `delay` asks for that delay; the policy clamps it.
  static Verdict Retry(std::string reason = {},
                       std::chrono::milliseconds delay = std::chrono::milliseconds(0)) {
    return Verdict(FOXW_RETRY, std::move(reason), delay);
  }
  // Permanent failure: dead-lettered at once with `reason`, no retries.
  static Verdict Reject(std::string reason) {
    return Verdict(FOXW_REJECT, std::move(reason), std::chrono::milliseconds(0));
  }
  // The handler called Message::Defer() and will complete the message later
  // through the Completion it got.
  static Verdict Pending() { return Verdict(FOXW_PENDING, {}, std::chrono::milliseconds(0)); }

  foxw_verdict code() const { return code_; }
  const std::string& reason() const { return reason_; }
  std::chrono::milliseconds retry_delay() const { return delay_; }
  bool is_ack() const { return code_ == FOXW_ACK; }
  bool is_retry() const { return code_ == FOXW_RETRY; }
  bool is_reject() const { return code_ == FOXW_REJECT; }
  bool is_pending() const { return code_ == FOXW_PENDING; }

 private:
  Verdict(foxw_verdict code, std::string reason, std::chrono::milliseconds delay)
      : code_(code),
        reason_(std::move(reason)),
        delay_(delay.count() > 0 ? delay : std::chrono::milliseconds(0)) {}

  foxw_verdict code_;
  std::string reason_;
  std::chrono::milliseconds delay_;
};

// ---------------------------------------------------------------------------
// Config schema entries, for a class's optional `kConfigSchema` member.

// `default_value` is YAML scalar text (or nullptr); the daemon validates the
// plugin's config against the schema (also in --check-config) before init
// runs.
constexpr foxw_config_key ConfigKey(const char* name, foxw_config_type type, bool required,
                                    const char* default_value, const char* description) {
  foxw_config_key key{};
  key.struct_size = sizeof(foxw_config_key);
  key.name = name;
  key.type = static_cast<int32_t>(type);
  key.required = required;
  key.default_value = default_value;
  key.description = description;
  return key;
}

namespace internal {

inline std::string_view View(foxw_str s) {
  return s.ptr != nullptr && s.len != 0 ? std::string_view(s.ptr, s.len) : std::string_view();
}

inline foxw_str Str(std::string_view s) { return foxw_str{s.data(), s.size()}; }

// The host's services table, set by init. Hidden visibility keeps one per
// plugin object.
inline std::atomic<const foxw_host_api*>& HostSlot() {
  static std::atomic<const foxw_host_api*> host{nullptr};
  return host;
}

// Writes `a` then `b` into the outcome's reason without allocating.
inline void WriteReason(foxw_outcome* out, std::string_view a, std::string_view b = {}) {
  if (out == nullptr || out->reason == nullptr || out->reason_cap == 0) return;
  size_t n = 0;
  for (std::string_view part : {a, b}) {
    for (char c : part) {
      if (n + 1 >= out->reason_cap) break;
      out->reason[n++] = c;
    }
  }
  out->reason[n] = '\0';
  out->reason_len = n;
}

// Writes the retry hint when the host's outcome has the field.
inline void WriteRetryDelay(foxw_outcome* out, std::chrono::milliseconds delay) {
  if (out != nullptr &&
      out->struct_size >= offsetof(foxw_outcome, retry_delay_ms) + sizeof(uint64_t)) {
    out->retry_delay_ms = delay.count() > 0 ? static_cast<uint64_t>(delay.count()) : 0;
  }
}

template <typename... Args>
std::string Concat(const Args&... args) {
  if constexpr (sizeof...(Args) == 1 &&
                (std::is_convertible_v<const Args&, std::string_view> && ...)) {
    return std::string(std::string_view(args...));
  } else {
    std::ostringstream text;
    (text << ... << args);
    return text.str();
  }
}

}  // namespace internal

// ---------------------------------------------------------------------------
// Metric handles. Cheap to copy; updates are safe from any thread. A
// default-constructed handle ignores updates.

class Counter {
 public:
  Counter() = default;
  // Adds a non-negative amount.
  void Add(double amount = 1.0) const {
    if (metric_ != nullptr) host_->metric_update(metric_, amount);
  }
  void Increment() const { Add(1.0); }
  explicit operator bool() const { return metric_ != nullptr; }

 private:
  friend class PluginContext;
  Counter(const foxw_host_api* host, foxw_metric* metric) : host_(host), metric_(metric) {}
  const foxw_host_api* host_ = nullptr;
  foxw_metric* metric_ = nullptr;
};

class Gauge {
 public:
  Gauge() = default;
  void Set(double value) const {
    if (metric_ != nullptr) host_->metric_update(metric_, value);
  }
  explicit operator bool() const { return metric_ != nullptr; }

 private:
  friend class PluginContext;
  Gauge(const foxw_host_api* host, foxw_metric* metric) : host_(host), metric_(metric) {}
  const foxw_host_api* host_ = nullptr;
  foxw_metric* metric_ = nullptr;
};

class Histogram {
 public:
  Histogram() = default;
  // Observes a value; durations are advised in seconds.
  void Observe(double value) const {
    if (metric_ != nullptr) host_->metric_update(metric_, value);
  }
  template <typename Rep, typename Period>
  void Observe(std::chrono::duration<Rep, Period> elapsed) const {
    Observe(std::chrono::duration<double>(elapsed).count());
  }
  explicit operator bool() const { return metric_ != nullptr; }

 private:
  friend class PluginContext;
  Histogram(const foxw_host_api* host, foxw_metric* metric) : host_(host), metric_(metric) {}
  const foxw_host_api* host_ = nullptr;
  foxw_metric* metric_ = nullptr;
};

// ---------------------------------------------------------------------------
// Message: read-only view of one delivery. Every string_view it returns is
// borrowed from the host and valid until the handler returns, or, after
// Defer(), until the Completion completes.

class Completion;

class Message {
 public:
  using Header = std::pair<std::string_view, std::string_view>;

  // Iterates headers in delivery order.
  class HeaderIterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Header;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = Header;

    Header operator*() const {
      foxw_str name{nullptr, 0};
      foxw_str value{nullptr, 0};
      msg_->host_->msg_header_at(msg_->msg_, index_, &name, &value);
      return {internal::View(name), internal::View(value)};
    }
    HeaderIterator& operator++() {
      ++index_;
      return *this;
    }
    HeaderIterator operator++(int) {
      HeaderIterator copy = *this;
      ++index_;
      return copy;
    }
    bool operator==(const HeaderIterator& o) const { return index_ == o.index_; }
    bool operator!=(const HeaderIterator& o) const { return index_ != o.index_; }

   private:
    friend class Message;
    HeaderIterator(const Message* msg, size_t index) : msg_(msg), index_(index) {}
    const Message* msg_;
    size_t index_;
  };

  class HeaderRange {
   public:
    HeaderIterator begin() const { return HeaderIterator(msg_, 0); }
    HeaderIterator end() const { return HeaderIterator(msg_, msg_->header_count()); }
    size_t size() const { return msg_->header_count(); }
    bool empty() const { return size() == 0; }

   private:
    friend class Message;
    explicit HeaderRange(const Message* msg) : msg_(msg) {}
    const Message* msg_;
  };

  // Wraps a raw handle; `deferred` is the handler call's record of Defer()
  // (nullptr outside a handler call, where Defer() is refused);
  // `reason_capacity` is the size of the host's reason buffer (0 = unknown).
  Message(const foxw_host_api* host, const foxw_message* msg, bool* deferred = nullptr,
          size_t reason_capacity = 0)
      : host_(host), msg_(msg), deferred_(deferred), reason_capacity_(reason_capacity) {}

  // The backend's id for the message, stable across redeliveries.
  std::string_view id() const { return internal::View(host_->msg_id(msg_)); }
  // The daemon's queue name (from its config).
  std::string_view queue() const { return internal::View(host_->msg_queue(msg_)); }
  std::string_view payload() const { return internal::View(host_->msg_payload(msg_)); }

  std::string_view property(foxw_property p) const {
    return internal::View(host_->msg_property(msg_, p));
  }
  std::string_view content_type() const { return property(FOXW_PROP_CONTENT_TYPE); }
  std::string_view content_encoding() const { return property(FOXW_PROP_CONTENT_ENCODING); }
  std::string_view message_type() const { return property(FOXW_PROP_MESSAGE_TYPE); }
  std::string_view correlation_id() const { return property(FOXW_PROP_CORRELATION_ID); }
  std::string_view reply_to() const { return property(FOXW_PROP_REPLY_TO); }
  std::string_view app_id() const { return property(FOXW_PROP_APP_ID); }
  std::string_view user_id() const { return property(FOXW_PROP_USER_ID); }
  std::string_view expiration() const { return property(FOXW_PROP_EXPIRATION); }
  // The producer's message id, when it set one (id() is the backend's).
  std::string_view message_id() const { return property(FOXW_PROP_MESSAGE_ID); }
  std::string_view cluster_id() const { return property(FOXW_PROP_CLUSTER_ID); }  // ABI 1.1
  // ABI 1.1: a numeric property (FOXW_PROP_PRIORITY, FOXW_PROP_TIMESTAMP_MS,
  // FOXW_PROP_DELIVERY_MODE) as the producer sent it; nullopt when it was not
  // set, or on a 1.0 daemon.
  std::optional<int64_t> property_int(foxw_property p) const {
    int64_t value = 0;
    if (!FOXW_HOST_HAS(host_, msg_property_int) || !host_->msg_property_int(msg_, p, &value))
      return std::nullopt;
    return value;
  }

  uint8_t priority() const { return host_->msg_priority(msg_); }
  int64_t timestamp_ms() const { return host_->msg_timestamp_ms(msg_); }      // 0 = unknown
  int64_t enqueued_at_ms() const { return host_->msg_enqueued_at_ms(msg_); }  // 0 = unknown
  uint32_t attempt() const { return host_->msg_attempt(msg_); }               // starts at 1

  std::optional<std::string_view> header(std::string_view name) const {
    foxw_str value{nullptr, 0};
    if (!host_->msg_header(msg_, name.data(), name.size(), &value)) return std::nullopt;
    return internal::View(value);
  }
  size_t header_count() const { return host_->msg_header_count(msg_); }
  // ABI 1.1: the type header `index` was sent with (FOXW_HEADER_NULL for a
  // null one); FOXW_HEADER_STRING on a 1.0 daemon, FOXW_HEADER_NONE past the end.
  foxw_header_type header_type(size_t index) const {
    if (index >= header_count()) return FOXW_HEADER_NONE;
    if (!FOXW_HOST_HAS(host_, msg_header_type)) return FOXW_HEADER_STRING;
    return static_cast<foxw_header_type>(host_->msg_header_type(msg_, index));
  }
  HeaderRange headers() const { return HeaderRange(this); }

  // On the host's monotonic clock (PluginContext::monotonic_ns);
  // UINT64_MAX when the message has no deadline.
  uint64_t deadline_ns() const { return host_->msg_deadline_ns(msg_); }
  bool has_deadline() const { return deadline_ns() != std::numeric_limits<uint64_t>::max(); }
  // Time until the deadline: zero once it passed, nanoseconds::max() without one.
  std::chrono::nanoseconds time_left() const {
    uint64_t deadline = deadline_ns();
    if (deadline == std::numeric_limits<uint64_t>::max()) return std::chrono::nanoseconds::max();
    uint64_t now = host_->monotonic_ns();
    if (now >= deadline) return std::chrono::nanoseconds(0);
    uint64_t left = deadline - now;
    constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    return std::chrono::nanoseconds(static_cast<int64_t>(left < kMax ? left : kMax));
  }
  // True once the deadline passed or the daemon gave up on the message; a
  // long handler polls it and returns early.
  bool cancelled() const { return host_->msg_cancelled(msg_); }

  // Takes over completion of this message: the handler then returns
  // Verdict::Pending() and the returned Completion (movable to any thread)
  // completes the message exactly once. Throws std::logic_error when called
  // twice, outside the handler call, or on a message of a Batch.
  Completion Defer() const;

  // The most bytes of a verdict reason the host keeps for this call (longer
  // reasons are cut at the end); 0 when unknown, as after Defer().
  size_t reason_capacity() const { return reason_capacity_; }

  const foxw_message* handle() const { return msg_; }
  const foxw_host_api* host() const { return host_; }

 private:
  friend class Batch;
  struct InBatch {};
  // A message of a batch handler call, where Defer() is refused.
  Message(InBatch, const foxw_host_api* host, const foxw_message* msg, size_t reason_capacity)
      : host_(host), msg_(msg), deferred_(nullptr), reason_capacity_(reason_capacity),
        in_batch_(true) {}

  const foxw_host_api* host_;
  const foxw_message* msg_;
  bool* deferred_;
  size_t reason_capacity_;
  bool in_batch_ = false;
};

// ---------------------------------------------------------------------------
// Completion: the right and duty to complete one deferred message. Movable,
// not copyable. Complete() it exactly once from any thread; destroying an
// uncompleted Completion completes the message as a retry, so a message is
// never left hanging until its deadline.

class Completion {
 public:
  Completion() = default;
  Completion(Completion&& other) noexcept : host_(other.host_), msg_(other.msg_) {
    other.msg_ = nullptr;
  }
  Completion& operator=(Completion&& other) noexcept {
    if (this != &other) {
      Drop();
      host_ = other.host_;
      msg_ = other.msg_;
      other.msg_ = nullptr;
    }
    return *this;
  }
  Completion(const Completion&) = delete;
  Completion& operator=(const Completion&) = delete;
  ~Completion() { Drop(); }

  // Completes the message. Returns false when this Completion is empty (moved
  // from, or already completed) or the host refused (the message was not
  // pending). Verdict::Pending() is not a completion: it completes as a retry.
  bool Complete(const Verdict& verdict) noexcept {
    if (msg_ == nullptr) return false;
    const foxw_message* msg = msg_;
    msg_ = nullptr;
    if (verdict.is_pending()) {
      static constexpr std::string_view kReason =
          "Completion::Complete() was given Verdict::Pending()";
      return host_->complete(msg, FOXW_RETRY, kReason.data(), kReason.size(), 0) == 0;
    }
    return host_->complete(msg, verdict.code(), verdict.reason().data(), verdict.reason().size(),
                           static_cast<uint64_t>(verdict.retry_delay().count())) == 0;
  }

  // True until Complete() ran or the Completion was moved from.
  bool pending() const { return msg_ != nullptr; }
  explicit operator bool() const { return pending(); }

  // The deferred message; valid while pending(). Defer() on it is refused.
  Message message() const { return Message(host_, msg_); }

 private:
  friend class Message;
  Completion(const foxw_host_api* host, const foxw_message* msg) : host_(host), msg_(msg) {}

  void Drop() noexcept {
    if (msg_ == nullptr) return;
    static constexpr std::string_view kReason =
        "deferred message dropped: its Completion was destroyed without a verdict";
    host_->complete(msg_, FOXW_RETRY, kReason.data(), kReason.size(), 0);
    msg_ = nullptr;
  }

  const foxw_host_api* host_ = nullptr;
  const foxw_message* msg_ = nullptr;
};

inline Completion Message::Defer() const {
  if (in_batch_) {
    throw std::logic_error(
        "Message::Defer() is not available in a batch handler: set the verdict with Batch::Set()");
  }
  if (deferred_ == nullptr) {
    throw std::logic_error("Message::Defer() is only valid inside the handler call");
  }
  if (*deferred_) throw std::logic_error("Message::Defer() called twice for one message");
  *deferred_ = true;
  return Completion(host_, msg_);
}

// ---------------------------------------------------------------------------
// Batch: the messages of one batch handler call and their verdicts, for a
// method `void Method(foxworker::Batch& batch)` declared with
// FOXWORKER_BATCH_HANDLER. Valid during that call only, like the messages it
// hands out. Give each message a verdict with Set(i, verdict); a message left
// without one is retried with the reason "no verdict set by the batch
// handler". An exception escaping the method retries every message of the
// batch with "unhandled exception: <what()>", whatever was Set() before.

class Batch {
 public:
  // The wrapper builds one per call over the host's arrays (`verdicts` and
  // `outs` hold `count` entries each); a plugin's unit test may too.
  Batch(const foxw_host_api* host, const foxw_message* const* msgs, size_t count,
        foxw_verdict* verdicts, foxw_outcome* const* outs)
      : host_(host), msgs_(msgs), count_(count), verdicts_(verdicts), outs_(outs) {}
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  // Messages in delivery order; at least one, at most the queue's batch_size.
  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }

  // Message `i` (0 <= i < size(), else std::out_of_range). Its Defer() is
  // refused: a batch handler gives every verdict before it returns.
  Message operator[](size_t i) const {
    Check(i);
    return Message(Message::InBatch{}, host_, msgs_[i], ReasonCapacity(i));
  }

  // Sets message `i`'s verdict (0 <= i < size(), else std::out_of_range); a
  // later Set() for the same message replaces it. Verdict::Pending() is not
  // allowed in a batch: the message is retried with a reason saying so.
  void Set(size_t i, const Verdict& verdict) {
    Check(i);
    foxw_outcome* out = Out(i);
    if (verdict.is_pending()) {
      verdicts_[i] = FOXW_RETRY;
      internal::WriteReason(out, "Verdict::Pending() is not allowed in a batch handler");
      internal::WriteRetryDelay(out, std::chrono::milliseconds(0));
      return;
    }
    verdicts_[i] = verdict.code();
    internal::WriteReason(out, verdict.reason());
    internal::WriteRetryDelay(out, verdict.retry_delay());
  }
  // Sets every message's verdict (a bulk write that failed as a whole, say).
  void SetAll(const Verdict& verdict) {
    for (size_t i = 0; i < count_; ++i) Set(i, verdict);
  }
  // Whether message `i` has a verdict yet.
  bool has_verdict(size_t i) const {
    Check(i);
    return verdicts_[i] != 0;
  }

 private:
  void Check(size_t i) const {
    if (i >= count_) {
      throw std::out_of_range("Batch index " + std::to_string(i) + " out of range (size " +
                              std::to_string(count_) + ")");
    }
  }
  foxw_outcome* Out(size_t i) const { return outs_ != nullptr ? outs_[i] : nullptr; }
  size_t ReasonCapacity(size_t i) const {
    const foxw_outcome* out = Out(i);
    return out != nullptr && out->reason_cap > 0 ? out->reason_cap - 1 : 0;
  }

  const foxw_host_api* host_;
  const foxw_message* const* msgs_;
  size_t count_;
  foxw_verdict* verdicts_;
  foxw_outcome* const* outs_;
};

// ---------------------------------------------------------------------------
// Publishing a follow-up message.

struct Publication {
  std::string_view queue;  // a queue name from the daemon's config
  std::string_view payload;
  std::string_view message_type;    // optional
  std::string_view content_type;    // optional
  std::string_view correlation_id;  // optional; defaults to the parent's
  std::vector<std::pair<std::string_view, std::string_view>> headers;
  uint8_t priority = 0;
  std::chrono::milliseconds delay{0};
  // ABI 1.1 (a 1.0 daemon ignores them):
  std::string_view message_id;        // optional; default: a fresh unique id
  std::string_view app_id;            // optional
  std::string_view content_encoding;  // optional
};

// ---------------------------------------------------------------------------
// PluginContext: the plugin's handle on the host. One per instance, valid for
// the instance's life; safe to use from any thread except where noted.

class PluginContext {
 public:
  PluginContext(const foxw_host_api* host, foxw_plugin_ctx* ctx) : host_(host), ctx_(ctx) {}
  PluginContext(const PluginContext&) = delete;
  PluginContext& operator=(const PluginContext&) = delete;

  // Cheap: check it before building expensive log text.
  bool log_enabled(foxw_log_level level) const { return host_->log_enabled(ctx_, level); }

  // Logs the concatenation of `args` (anything with operator<<) when `level`
  // is enabled, tagged with the plugin's name. Never throws.
  template <typename... Args>
  void log(foxw_log_level level, const Args&... args) const noexcept {
    if (!log_enabled(level)) return;
    try {
      std::string text = internal::Concat(args...);
      host_->log(ctx_, level, text.data(), text.size());
    } catch (...) {
      static constexpr std::string_view kFailed = "(log text could not be formatted)";
      host_->log(ctx_, level, kFailed.data(), kFailed.size());
    }
  }

  // Metric definitions: only in the constructor (the host's create call).
  // The daemon names them foxworker_plugin_<plugin>_<name>; defining the same
  // name and kind again (as every instance does) returns the same metric.
  // Throws std::runtime_error with the host's message on a bad name or clash.
  Counter counter(const std::string& name, const std::string& help) const {
    return Counter(host_, Define(FOXW_METRIC_COUNTER, name, help));
  }
  Gauge gauge(const std::string& name, const std::string& help) const {
    return Gauge(host_, Define(FOXW_METRIC_GAUGE, name, help));
  }
  Histogram histogram(const std::string& name, const std::string& help) const {
    return Histogram(host_, Define(FOXW_METRIC_HISTOGRAM, name, help));
  }

  // Publishes a message, durably enqueued when this returns true. With a
  // parent, the new message inherits its correlation id. On failure returns
  // false and, when `error` is set, stores the host's message there.
  bool publish(const Publication& p, std::string* error = nullptr) const {
    return Publish(p, nullptr, error);
  }
  bool publish(const Publication& p, const Message& parent, std::string* error = nullptr) const {
    return Publish(p, parent.handle(), error);
  }

  uint64_t monotonic_ns() const { return host_->monotonic_ns(); }
  int64_t wall_time_ms() const { return host_->wall_time_ms(); }

  const foxw_host_api* host() const { return host_; }
  foxw_plugin_ctx* handle() const { return ctx_; }

 private:
  foxw_metric* Define(foxw_metric_kind kind, const std::string& name,
                      const std::string& help) const {
    char err[512] = {0};
    foxw_metric* metric =
        host_->metric_define(ctx_, kind, name.c_str(), help.c_str(), err, sizeof(err));
    if (metric == nullptr) {
      throw std::runtime_error(err[0] != '\0' ? std::string(err)
                                              : "cannot define metric \"" + name + "\"");
    }
    return metric;
  }

  bool Publish(const Publication& p, const foxw_message* parent, std::string* error) const {
    std::vector<foxw_header> headers;
    headers.reserve(p.headers.size());
    for (const auto& [name, value] : p.headers) {
      headers.push_back(foxw_header{internal::Str(name), internal::Str(value)});
    }
    foxw_publish req{};
    req.struct_size = sizeof(req);
    req.queue = internal::Str(p.queue);
    req.payload = internal::Str(p.payload);
    req.message_type = internal::Str(p.message_type);
    req.content_type = internal::Str(p.content_type);
    req.correlation_id = internal::Str(p.correlation_id);
    req.headers = headers.empty() ? nullptr : headers.data();
    req.header_count = headers.size();
    req.priority = p.priority;
    req.delay_ms = p.delay.count() > 0 ? static_cast<uint64_t>(p.delay.count()) : 0;
    req.message_id = internal::Str(p.message_id);
    req.app_id = internal::Str(p.app_id);
    req.content_encoding = internal::Str(p.content_encoding);
    char err[512] = {0};
    if (host_->publish(ctx_, parent, &req, err, sizeof(err)) == 0) return true;
    if (error != nullptr) *error = err[0] != '\0' ? err : "publish failed";
    return false;
  }

  const foxw_host_api* host_;
  foxw_plugin_ctx* ctx_;
};

// ---------------------------------------------------------------------------
// Glue behind FOXWORKER_PLUGIN. Not part of the API.

namespace internal {

// The part of the host table a 1.0 plugin calls.
constexpr size_t kHostApiV1Size = FOXW_HOST_API_SIZE_1_0;

template <typename T>
struct Instance {
  Instance(const foxw_host_api* host, foxw_plugin_ctx* ctx, std::string_view config)
      : context(host, ctx), object(context, config) {}
  PluginContext context;  // declared first: built before and outlives `object`
  T object;
};

template <typename T, typename = void>
struct HasConfigSchema : std::false_type {};
template <typename T>
struct HasConfigSchema<T, std::void_t<decltype(T::kConfigSchema)>> : std::true_type {};

template <typename T, typename = void>
struct HasDescription : std::false_type {};
template <typename T>
struct HasDescription<T, std::void_t<decltype(T::kDescription)>> : std::true_type {};

template <typename T>
constexpr const foxw_config_key* SchemaOf() {
  if constexpr (HasConfigSchema<T>::value) {
    static_assert(std::is_array_v<std::remove_cv_t<decltype(T::kConfigSchema)>>,
                  "kConfigSchema must be an array of foxw_config_key");
    return T::kConfigSchema;
  } else {
    return nullptr;
  }
}

template <typename T>
constexpr size_t SchemaSizeOf() {
  if constexpr (HasConfigSchema<T>::value) {
    return std::size(T::kConfigSchema);
  } else {
    return 0;
  }
}

template <typename T>
constexpr const char* DescriptionOf() {
  if constexpr (HasDescription<T>::value) {
    return T::kDescription;
  } else {
    return "";
  }
}

constexpr bool IsValidPluginName(const char* name) {
  if (name == nullptr || *name == '\0') return false;
  for (; *name != '\0'; ++name) {
    char c = *name;
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

inline const foxw_plugin_v1* Init(const foxw_host_api* host, char* err, size_t err_cap,
                                  const foxw_plugin_v1* plugin) noexcept {
  if (host == nullptr) {
    foxw_set_error(err, err_cap, "the host passed no services table");
    return nullptr;
  }
  if (host->struct_size < offsetof(foxw_host_api, abi_minor) + sizeof(uint16_t) ||
      host->abi_major != FOXW_ABI_MAJOR) {
    foxw_set_error(err, err_cap, "the host's services table is not plugin ABI major 1");
    return nullptr;
  }
  if (host->struct_size < kHostApiV1Size) {
    foxw_set_error(err, err_cap,
                   "the host's services table is smaller than plugin ABI 1.0 requires");
    return nullptr;
  }
  HostSlot().store(host, std::memory_order_release);
  return plugin;
}

template <typename T>
int32_t Create(foxw_plugin_ctx* ctx, const char* config_json, size_t config_len, void** instance,
               char* err, size_t err_cap) noexcept {
  const foxw_host_api* host = HostSlot().load(std::memory_order_acquire);
  if (host == nullptr || instance == nullptr) {
    foxw_set_error(err, err_cap, "create() called before a successful init");
    return 1;
  }
  std::string_view config =
      config_json != nullptr ? std::string_view(config_json, config_len) : std::string_view("{}");
  try {
    *instance = new Instance<T>(host, ctx, config);
    return 0;
  } catch (const std::exception& e) {
    foxw_set_error(err, err_cap, e.what()[0] != '\0' ? e.what() : "instance creation failed");
  } catch (...) {
    foxw_set_error(err, err_cap, "instance creation failed: unknown exception");
  }
  return 1;
}

template <typename T>
void Destroy(void* instance) noexcept {
  delete static_cast<Instance<T>*>(instance);
}

// Writes a verdict into the host's outcome and returns its code.
inline foxw_verdict Deliver(const Verdict& verdict, bool deferred, foxw_outcome* out,
                            const PluginContext& context) noexcept {
  if (verdict.is_pending() && !deferred) {
    WriteReason(out, "handler returned Verdict::Pending() without calling Message::Defer()");
    return FOXW_RETRY;
  }
  if (deferred && !verdict.is_pending()) {
    // The Completion may be on another thread already: the message must stay
    // valid until it completes, so it, not this return value, decides.
    context.log(FOXW_LOG_WARN, "a handler called Message::Defer() and then returned a final ",
                "verdict (", verdict.code(), ": ", verdict.reason(),
                "); the message waits for its Completion instead");
    return FOXW_PENDING;
  }
  WriteReason(out, verdict.reason());
  if (out != nullptr &&
      out->struct_size >= offsetof(foxw_outcome, retry_delay_ms) + sizeof(uint64_t)) {
    out->retry_delay_ms = static_cast<uint64_t>(verdict.retry_delay().count());
  }
  return verdict.code();
}

// A handler threw after Defer(): its Completion (completed, moved to another
// thread, or dropped while unwinding, which completes it as a retry) owns the
// message now.
inline foxw_verdict Orphaned(const PluginContext& context, const char* what) noexcept {
  context.log(FOXW_LOG_WARN, "a handler threw after Message::Defer(): ", what,
              "; the message is completed by its Completion");
  return FOXW_PENDING;
}

template <typename T, auto Method>
foxw_verdict Handle(void* instance, const foxw_message* msg, foxw_outcome* out) noexcept {
  static_assert(std::is_invocable_r_v<Verdict, decltype(Method), T&, const Message&>,
                "a handler is `foxworker::Verdict Method(const foxworker::Message&)`");
  auto* holder = static_cast<Instance<T>*>(instance);
  bool deferred = false;
  try {
    size_t reason_capacity = out != nullptr && out->reason_cap > 0 ? out->reason_cap - 1 : 0;
    Message message(holder->context.host(), msg, &deferred, reason_capacity);
    Verdict verdict = std::invoke(Method, holder->object, message);
    return Deliver(verdict, deferred, out, holder->context);
  } catch (const std::exception& e) {
    if (deferred) return Orphaned(holder->context, e.what());
    WriteReason(out, "unhandled exception: ", e.what());
  } catch (...) {
    static constexpr const char* kUnknown = "unknown exception (not derived from std::exception)";
    if (deferred) return Orphaned(holder->context, kUnknown);
    WriteReason(out, "unhandled exception: ", kUnknown);
  }
  return FOXW_RETRY;
}

// Gives every message of a batch the same retry.
inline void RetryAll(size_t count, foxw_verdict* verdicts, foxw_outcome* const* outs,
                     std::string_view a, std::string_view b = {}) noexcept {
  for (size_t i = 0; i < count; ++i) {
    foxw_outcome* out = outs != nullptr ? outs[i] : nullptr;
    verdicts[i] = FOXW_RETRY;
    WriteReason(out, a, b);
    WriteRetryDelay(out, std::chrono::milliseconds(0));
  }
}

template <typename T, auto Method>
void HandleBatch(void* instance, const foxw_message* const* msgs, size_t count,
                 foxw_verdict* verdicts, foxw_outcome* const* outs) noexcept {
  static_assert(std::is_invocable_v<decltype(Method), T&, Batch&>,
                "a batch handler is `void Method(foxworker::Batch& batch)`");
  if constexpr (std::is_invocable_v<decltype(Method), T&, Batch&>) {
    static_assert(std::is_void_v<std::invoke_result_t<decltype(Method), T&, Batch&>>,
                  "a batch handler returns void: give verdicts with Batch::Set(i, verdict)");
  }
  if (verdicts == nullptr || (msgs == nullptr && count != 0)) return;  // nothing to answer in
  auto* holder = static_cast<Instance<T>*>(instance);
  // 0 marks "no verdict yet"; stale reasons and hints are cleared.
  for (size_t i = 0; i < count; ++i) {
    foxw_outcome* out = outs != nullptr ? outs[i] : nullptr;
    verdicts[i] = 0;
    WriteReason(out, {});
    WriteRetryDelay(out, std::chrono::milliseconds(0));
  }
  try {
    Batch batch(holder->context.host(), msgs, count, verdicts, outs);
    std::invoke(Method, holder->object, batch);
  } catch (const std::exception& e) {
    RetryAll(count, verdicts, outs, "unhandled exception: ", e.what());
    return;
  } catch (...) {
    RetryAll(count, verdicts, outs, "unhandled exception: ",
             "unknown exception (not derived from std::exception)");
    return;
  }
  size_t missing = 0;
  for (size_t i = 0; i < count; ++i) {
    if (verdicts[i] != 0) continue;
    ++missing;
    foxw_outcome* out = outs != nullptr ? outs[i] : nullptr;
    verdicts[i] = FOXW_RETRY;
    WriteReason(out, "no verdict set by the batch handler");
  }
  if (missing != 0) {
    holder->context.log(FOXW_LOG_WARN, "a batch handler set no verdict for ", missing, " of ",
                        count, " messages; they are retried");
  }
}

}  // namespace internal
}  // namespace sdk_v1
}  // namespace foxworker

// FOXWORKER_HANDLER(Class, Method, "message.type"): one handler entry; "*"
// handles every type that has no handler of its own.
#define FOXWORKER_HANDLER(Class, Method, message_type)                     \
  foxw_handler_def {                                                       \
    sizeof(foxw_handler_def), (message_type),                              \
        &::foxworker::internal::Handle<Class, &Class::Method>, nullptr, 0u, 0u \
  }

// FOXWORKER_BATCH_HANDLER(Class, Method, "message.type"): a batch handler
// entry for `void Method(foxworker::Batch& batch)`. The daemon hands it up to
// the queue's batch_size messages at once (batches of one when the queue's
// batch_size is 0).
#define FOXWORKER_BATCH_HANDLER(Class, Method, message_type)                          \
  foxw_handler_def {                                                                  \
    sizeof(foxw_handler_def), (message_type), nullptr,                                \
        &::foxworker::internal::HandleBatch<Class, &Class::Method>, 0u, 0u            \
  }

// FOXWORKER_PLUGIN(Class, "name", "version", FOXW_INSTANCE_*, handlers...):
// defines the two exported functions. Use once per plugin, at namespace
// scope. The config schema and description come from the class's optional
// static members kConfigSchema and kDescription.
#define FOXWORKER_PLUGIN(Class, plugin_name, plugin_version, instance_model, ...)             \
  static_assert(::foxworker::internal::IsValidPluginName(plugin_name),                        \
                "plugin names match [a-z0-9_]+");                                             \
  extern "C" FOXW_EXPORT const foxw_plugin_info* foxworker_plugin_magic(void) {               \
    static constexpr foxw_plugin_info kInfo = {sizeof(foxw_plugin_info),                      \
                                               FOXW_PLUGIN_MAGIC_VALUE,                       \
                                               FOXW_ABI_MAJOR,                                \
                                               FOXW_TARGET_ABI_MINOR,                         \
                                               FOXW_ABI_MINOR,                                \
                                               0u,                                            \
                                               (plugin_name),                                 \
                                               (plugin_version),                              \
                                               ::foxworker::internal::DescriptionOf<Class>(), \
                                               ::foxworker::internal::SchemaOf<Class>(),      \
                                               ::foxworker::internal::SchemaSizeOf<Class>(),  \
                                               sizeof(foxw_config_key)};                      \
    return &kInfo;                                                                            \
  }                                                                                           \
  extern "C" FOXW_EXPORT const foxw_plugin_v1* foxworker_plugin_init_v1(                      \
      const foxw_host_api* host, foxw_plugin_ctx* /*ctx*/, char* err, size_t err_cap) {       \
    static const foxw_handler_def kHandlers[] = {__VA_ARGS__};                                \
    static const foxw_plugin_v1 kPlugin = {sizeof(foxw_plugin_v1),                            \
                                           (instance_model),                                  \
                                           0u,                                                \
                                           kHandlers,                                         \
                                           sizeof(kHandlers) / sizeof(kHandlers[0]),          \
                                           sizeof(foxw_handler_def),                          \
                                           &::foxworker::internal::Create<Class>,             \
                                           &::foxworker::internal::Destroy<Class>,            \
                                           nullptr};                                          \
    return ::foxworker::internal::Init(host, err, err_cap, &kPlugin);                         \
  }                                                                                           \
  static_assert(true, "FOXWORKER_PLUGIN ends with a semicolon")

#endif  // FOXWORKER_PLUGIN_HPP_
