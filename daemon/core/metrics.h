// A small metrics registry: counters, gauges and histograms rendered in the
// Prometheus text exposition format (version 0.0.4).
//
// A metric family is a name, a help text and a type; each series in it is one
// fixed label set. Series are defined through a MetricsRegistry and live as
// long as it does, so the pointers it hands out never dangle. Defining an
// existing series again returns the same object, which lets every instance of
// a component define its metrics without coordinating.
#ifndef FOXWORKER_CORE_METRICS_H_
#define FOXWORKER_CORE_METRICS_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "daemon/base/status.h"

namespace foxworker {

// Label name/value pairs. The registry sorts them by name.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// A monotonically increasing value. Safe for concurrent use; updates are
// lock-free.
class Counter {
 public:
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  // Adds `delta`. Negative, infinite and NaN deltas are ignored: a counter
  // only goes up.
  void Increment(double delta = 1.0);
  double Value() const { return value_.load(std::memory_order_relaxed); }
  const MetricLabels& labels() const { return labels_; }

 private:
  friend class MetricsRegistry;
  explicit Counter(MetricLabels labels) : labels_(std::move(labels)) {}

  const MetricLabels labels_;
  std::atomic<double> value_{0.0};
};

// A value that goes up and down. Safe for concurrent use; lock-free.
class Gauge {
 public:
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double delta) { value_.fetch_add(delta, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }
  const MetricLabels& labels() const { return labels_; }

 private:
  friend class MetricsRegistry;
  explicit Gauge(MetricLabels labels) : labels_(std::move(labels)) {}

  const MetricLabels labels_;
  std::atomic<double> value_{0.0};
};

// Observations counted into fixed buckets. Safe for concurrent use;
// Observe() is lock-free. A snapshot taken while observations race is not
// atomic as a whole, but its bucket counts are cumulative and its count equals
// its +Inf bucket.
class Histogram {
 public:
  struct Snapshot {
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf
    uint64_t count = 0;
    double sum = 0.0;
  };

  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // Counts `value` into the first bucket whose upper bound is >= value.
  // NaN is ignored.
  void Observe(double value);
  // Adds observations counted elsewhere: `counts` per bucket (not
  // cumulative; bounds().size() + 1 of them, the last one +Inf) and their
  // sum. A handler child's histogram reaches the daemon's this way.
  // Ignored when the number of counts does not match.
  void Add(const std::vector<uint64_t>& counts, double sum);
  Snapshot Take() const;
  // Upper bounds in ascending order, without the implicit +Inf.
  const std::vector<double>& bounds() const { return bounds_; }
  const MetricLabels& labels() const { return labels_; }

 private:
  friend class MetricsRegistry;
  Histogram(MetricLabels labels, std::vector<double> bounds);

  const MetricLabels labels_;
  const std::vector<double> bounds_;
  // bounds_.size() + 1 non-cumulative counts; the last one is +Inf.
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<double> sum_{0.0};
};

// A histogram of durations for hot paths (handler time, queue wait): fixed
// buckets from 10us to 1h, observations in integer nanoseconds, counts
// sharded by thread so that threads observing concurrently do not write the
// same cache line. ObserveNs() is a bucket search and two relaxed atomic adds
// on the calling thread's shard: no lock, allocation or syscall. Take() sums
// the shards; like Histogram::Take() it is not atomic as a whole, but its
// buckets are cumulative and its count equals its +Inf bucket.
class LatencyHistogram {
 public:
  static constexpr size_t kBounds = 24;
  // Upper bounds in ns: 10us 25us 50us 100us ... 10s 30s 1m 5m 15m 1h.
  static const std::array<uint64_t, kBounds>& BoundsNs();
  // The same bounds in seconds, for rendering.
  static const std::vector<double>& BoundsSeconds();

  LatencyHistogram();
  LatencyHistogram(const LatencyHistogram&) = delete;
  LatencyHistogram& operator=(const LatencyHistogram&) = delete;

  // Counts `times` observations of `ns`.
  void ObserveNs(uint64_t ns, uint64_t times = 1);
  // cumulative: kBounds + 1 entries (the last is +Inf); sum in seconds.
  Histogram::Snapshot Take() const;

 private:
  static constexpr size_t kShards = 8;
  struct alignas(64) Shard {
    std::atomic<uint64_t> counts[kBounds + 1];
    std::atomic<uint64_t> sum_ns;
  };
  Shard shards_[kShards];
};

// Builds Prometheus text exposition (0.0.4) for metrics kept outside a
// MetricsRegistry (consumer counters, backend state). Each family's HELP and
// TYPE lines come first, then its samples; the caller keeps families unique.
class PrometheusText {
 public:
  // `type`: "counter", "gauge" or "histogram".
  void Family(std::string_view name, std::string_view type, std::string_view help);
  // A sample of the current family.
  void Sample(const MetricLabels& labels, double value);
  // The _bucket, _sum and _count samples of the current (histogram) family.
  void HistogramSamples(const MetricLabels& labels, const std::vector<double>& bounds,
                        const Histogram::Snapshot& snap);
  std::string& text() { return out_; }

 private:
  std::string name_;
  std::string out_;
};

// Owns metric families. Safe for concurrent use: Define*() and
// RenderPrometheus() take a mutex, updates to the returned metrics do not.
class MetricsRegistry {
 public:
  // The process-wide registry the admin endpoint renders.
  static MetricsRegistry& Default();
  // 0.0005, 0.001, 0.0025, ... 10, 30 (seconds).
  static const std::vector<double>& DefaultBuckets();

  // Prometheus naming rules: metric names match [a-zA-Z_:][a-zA-Z0-9_:]*,
  // label names [a-zA-Z_][a-zA-Z0-9_]* and do not start with "__".
  static bool IsValidMetricName(std::string_view name);
  static bool IsValidLabelName(std::string_view name);

  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Each returns the series of family `name` with exactly `labels`, creating
  // the family and the series as needed. Errors: an invalid name or label
  // name, a repeated label name, a family of that name with another type
  // (AlreadyExists), or with other label names or, for histograms, other
  // buckets (InvalidArgument). The help text of the first definition wins.
  // The returned pointer is valid for the registry's life.
  Result<Counter*> DefineCounter(std::string_view name, std::string_view help,
                                 MetricLabels labels = {});
  Result<Gauge*> DefineGauge(std::string_view name, std::string_view help,
                             MetricLabels labels = {});
  // `buckets`: strictly increasing finite upper bounds; empty means
  // DefaultBuckets().
  Result<Histogram*> DefineHistogram(std::string_view name, std::string_view help,
                                     MetricLabels labels = {}, std::vector<double> buckets = {});

  // Every family in name order, each with its HELP and TYPE lines and its
  // series in definition order.
  std::string RenderPrometheus() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  static const char* TypeName(Type type);
  struct Family {
    Type type;
    std::string help;
    std::vector<std::string> label_names;  // sorted
    std::vector<double> buckets;           // histograms only
    std::vector<std::unique_ptr<Counter>> counters;
    std::vector<std::unique_ptr<Gauge>> gauges;
    std::vector<std::unique_ptr<Histogram>> histograms;
  };

  // Validates the name and labels (sorting the labels) and finds or creates
  // the family. REQUIRES: mu_ held.
  Result<Family*> FindOrCreateFamily(std::string_view name, std::string_view help, Type type,
                                     MetricLabels& labels, const std::vector<double>& buckets);

  mutable std::mutex mu_;
  std::map<std::string, Family, std::less<>> families_;  // GUARDED_BY(mu_)
};

}  // namespace foxworker

#endif  // FOXWORKER_CORE_METRICS_H_
