// The benchmark plugin. Handlers:
//   noop  reads the enqueue timestamp from the payload, acks
//   json  parses the payload with RapidJSON, checksums it, acks
//   sleep sleeps N ms with nanosleep (the stand-in for network I/O), acks
//   spin  busy-loops until its thread has used N ms of CPU, acks
//   later defers (FOXW_PENDING); a thread of the plugin's instance acks
//         what was deferred every $FOXWORKER_BENCH_LATER_US microseconds
//         (default 400): the latency of an answer that comes back later,
//         as from a child process, without a child's CPU
// noop and json sample enqueue-to-start latency (payload field "ts",
// monotonic ns) into a histogram the benchmark reads through
// bench_plugin_latency(). sleep records every message's enqueue-to-start in
// a histogram of its own (bench_plugin_sleep_latency()) and counts how many
// sleeps run at once (bench_plugin_sleep_running()).
// sleep and spin read N from the payload field "ms" (e.g. {"ts":0,"ms":20})
// or, when the payload has none, from the header "sleep_ms"; default 20.
#include <foxworker/plugin.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include <rapidjson/document.h>

namespace {

const foxw_host_api* host;

// Log-linear histogram: 64 powers of two x 16 linear sub-buckets.
constexpr int kSub = 16;
std::atomic<uint64_t> buckets[64 * kSub];
std::atomic<uint64_t> checksum_sink{0};
std::atomic<uint64_t> handled{0};

// The sleep handler's enqueue-to-start histogram (every message), and how
// many sleep handlers run now and at most since the last reset.
std::atomic<uint64_t> sleep_buckets[64 * kSub];
std::atomic<int64_t> sleep_running{0};
std::atomic<int64_t> sleep_running_peak{0};

int BucketOf(uint64_t v) {
  if (v < kSub) return static_cast<int>(v);
  int msb = 63 - __builtin_clzll(v);
  int shift = msb - 4;  // keep 4 bits below the msb: 16 sub-buckets
  return (msb - 3) * kSub + static_cast<int>((v >> shift) & (kSub - 1));
}

uint64_t BucketLow(int b) {
  if (b < kSub) return static_cast<uint64_t>(b);
  int msb = b / kSub + 3;
  int shift = msb - 4;
  return (uint64_t{1} << msb) | (static_cast<uint64_t>(b % kSub) << shift);
}

void Record(const foxw_message* msg, uint64_t ts) {
  if (ts == 0) return;
  uint64_t n = handled.fetch_add(1, std::memory_order_relaxed);
  if ((n & 7) != 0) return;  // sample one in eight
  uint64_t now = host->monotonic_ns();
  (void)msg;
  buckets[BucketOf(now > ts ? now - ts : 0)].fetch_add(1, std::memory_order_relaxed);
}

uint64_t TimestampOf(const foxw_str& p) {
  // Payloads start with {"ts":<digits>
  if (p.len < 7 || std::memcmp(p.ptr, "{\"ts\":", 6) != 0) return 0;
  uint64_t v = 0;
  for (size_t i = 6; i < p.len && p.ptr[i] >= '0' && p.ptr[i] <= '9'; ++i)
    v = v * 10 + static_cast<uint64_t>(p.ptr[i] - '0');
  return v;
}

foxw_verdict Noop(void*, const foxw_message* msg, foxw_outcome*) {
  Record(msg, TimestampOf(host->msg_payload(msg)));
  return FOXW_ACK;
}

// The work measured in run (b): parse and checksum.
foxw_verdict Json(void*, const foxw_message* msg, foxw_outcome* out) {
  foxw_str p = host->msg_payload(msg);
  rapidjson::Document doc;
  doc.Parse(p.ptr, p.len);
  if (doc.HasParseError() || !doc.IsObject()) {
    foxw_set_reason(out, "payload is not a JSON object", 28);
    return FOXW_REJECT;
  }
  uint64_t sum = 0;
  for (auto& m : doc.GetObject()) {
    sum += m.name.GetStringLength();
    if (m.value.IsString())
      for (unsigned i = 0; i < m.value.GetStringLength(); ++i)
        sum = sum * 31 + static_cast<unsigned char>(m.value.GetString()[i]);
    else if (m.value.IsUint64())
      sum += m.value.GetUint64();
    else if (m.value.IsArray())
      sum += m.value.Size();
    else if (m.value.IsObject())
      sum += m.value.MemberCount();
  }
  checksum_sink.fetch_add(sum & 1, std::memory_order_relaxed);
  Record(msg, doc.HasMember("ts") && doc["ts"].IsUint64() ? doc["ts"].GetUint64() : 0);
  return FOXW_ACK;
}

// N of {"ms":N} in the payload, else of the header sleep_ms, else 20.
uint64_t MillisOf(const foxw_message* msg) {
  foxw_str p = host->msg_payload(msg);
  static constexpr char kKey[] = "\"ms\":";
  constexpr size_t kLen = sizeof(kKey) - 1;
  for (size_t i = 0; p.len >= kLen && i <= p.len - kLen; ++i) {
    if (std::memcmp(p.ptr + i, kKey, kLen) != 0) continue;
    uint64_t v = 0;
    for (size_t j = i + kLen; j < p.len && p.ptr[j] >= '0' && p.ptr[j] <= '9'; ++j)
      v = v * 10 + static_cast<uint64_t>(p.ptr[j] - '0');
    return v;
  }
  foxw_str h{nullptr, 0};
  if (host->msg_header(msg, "sleep_ms", 8, &h) && h.len > 0) {
    uint64_t v = 0;
    for (size_t j = 0; j < h.len && h.ptr[j] >= '0' && h.ptr[j] <= '9'; ++j)
      v = v * 10 + static_cast<uint64_t>(h.ptr[j] - '0');
    return v;
  }
  return 20;
}

foxw_verdict Sleep(void*, const foxw_message* msg, foxw_outcome*) {
  const uint64_t now = host->monotonic_ns();
  const uint64_t ts = TimestampOf(host->msg_payload(msg));
  if (ts != 0)
    sleep_buckets[BucketOf(now > ts ? now - ts : 0)].fetch_add(1, std::memory_order_relaxed);
  const int64_t running = sleep_running.fetch_add(1, std::memory_order_relaxed) + 1;
  for (int64_t peak = sleep_running_peak.load(std::memory_order_relaxed);
       running > peak && !sleep_running_peak.compare_exchange_weak(peak, running);) {
  }
  const uint64_t ms = MillisOf(msg);
  timespec req{static_cast<time_t>(ms / 1000), static_cast<long>(ms % 1000) * 1000000L}, rem;
  while (nanosleep(&req, &rem) != 0) req = rem;  // EINTR: sleep the rest
  sleep_running.fetch_sub(1, std::memory_order_relaxed);
  return FOXW_ACK;
}

uint64_t ThreadCpuNs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

foxw_verdict Spin(void*, const foxw_message* msg, foxw_outcome*) {
  const uint64_t until = ThreadCpuNs() + MillisOf(msg) * 1000000ULL;
  uint64_t x = 1;
  while (ThreadCpuNs() < until)
    for (int i = 0; i < 1000; ++i) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
  checksum_sink.fetch_add(x & 1, std::memory_order_relaxed);
  return FOXW_ACK;
}

// The instance: the thread that completes what `later` deferred, started
// by its first message (the other handlers' runs have no such thread).
class Instance {
 public:
  ~Instance() {  // completes what is still deferred, then stops
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }
  void Defer(const foxw_message* msg) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
    deferred_.push_back(msg);
  }

 private:
  void Loop() {
    const char* env = std::getenv("FOXWORKER_BENCH_LATER_US");
    const auto every = std::chrono::microseconds(env != nullptr ? std::atol(env) : 400);
    std::vector<const foxw_message*> due;
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      const bool stop = cv_.wait_for(lock, every, [this] { return stop_; });
      due.swap(deferred_);
      lock.unlock();
      for (const foxw_message* m : due) host->complete(m, FOXW_ACK, nullptr, 0, 0);
      due.clear();
      lock.lock();
      if (stop && deferred_.empty()) return;
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::vector<const foxw_message*> deferred_;
  std::thread thread_;
};

foxw_verdict Later(void* instance, const foxw_message* msg, foxw_outcome*) {
  static_cast<Instance*>(instance)->Defer(msg);
  return FOXW_PENDING;
}

const foxw_handler_def kHandlers[] = {
    FOXW_HANDLER("noop", Noop),
    FOXW_HANDLER("json", Json),
    FOXW_HANDLER("sleep", Sleep),
    FOXW_HANDLER("spin", Spin),
    FOXW_HANDLER("later", Later),
};

int32_t Create(foxw_plugin_ctx*, const char*, size_t, void** instance, char*, size_t) {
  *instance = new Instance();
  return 0;
}
void Destroy(void* instance) { delete static_cast<Instance*>(instance); }

const foxw_plugin_v1 kPlugin = {sizeof(foxw_plugin_v1),
                                FOXW_INSTANCE_SHARED,
                                0,
                                kHandlers,
                                sizeof kHandlers / sizeof kHandlers[0],
                                sizeof(foxw_handler_def),
                                Create,
                                Destroy,
                                nullptr};

}  // namespace

extern "C" {
FOXW_DECLARE_PLUGIN("bench", "1.0.0", "benchmark handlers", nullptr, 0)

FOXW_EXPORT const foxw_plugin_v1* foxworker_plugin_init_v1(const foxw_host_api* h,
                                                           foxw_plugin_ctx*, char*, size_t) {
  host = h;
  return &kPlugin;
}

// Percentile (0..1) of the sampled latencies, in ns; resets when reset != 0.
FOXW_EXPORT uint64_t bench_plugin_latency(double percentile, int reset) {
  uint64_t total = 0;
  for (auto& b : buckets) total += b.load();
  uint64_t target = static_cast<uint64_t>(percentile * static_cast<double>(total));
  uint64_t seen = 0, result = 0;
  for (int i = 0; i < 64 * kSub; ++i) {
    seen += buckets[i].load();
    if (seen > target) {
      result = BucketLow(i);
      break;
    }
  }
  if (reset) {
    for (auto& b : buckets) b.store(0);
    handled.store(0);
  }
  return result;
}

// Percentile (0..1) of the sleep handler's enqueue-to-start times, in ns
// (every message whose payload carries "ts"); resets when reset != 0.
FOXW_EXPORT uint64_t bench_plugin_sleep_latency(double percentile, int reset) {
  uint64_t total = 0;
  for (auto& b : sleep_buckets) total += b.load();
  uint64_t target = static_cast<uint64_t>(percentile * static_cast<double>(total));
  uint64_t seen = 0, result = 0;
  for (int i = 0; i < 64 * kSub; ++i) {
    seen += sleep_buckets[i].load();
    if (seen > target) {
      // The bucket's upper end: a p99 is never reported below the truth.
      result = BucketLow(i + 1);
      break;
    }
  }
  if (reset)
    for (auto& b : sleep_buckets) b.store(0);
  return result;
}

// How many sleep handlers recorded an enqueue-to-start time since the last
// reset of bench_plugin_sleep_latency().
FOXW_EXPORT uint64_t bench_plugin_sleep_started() {
  uint64_t total = 0;
  for (auto& b : sleep_buckets) total += b.load();
  return total;
}

// The most sleep handlers that ran at once since the last reset.
FOXW_EXPORT int64_t bench_plugin_sleep_running_peak(int reset) {
  const int64_t peak = sleep_running_peak.load();
  if (reset) sleep_running_peak.store(sleep_running.load());
  return peak;
}

// Runs handler `name` directly on a message (the no-daemon reference).
FOXW_EXPORT foxw_handle_fn bench_plugin_handler(const char* name) {
  for (const auto& h : kHandlers)
    if (std::strcmp(h.name, name) == 0) return h.handle;
  return nullptr;
}
}
