#include "daemon/core/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <system_error>

namespace foxworker {
namespace {

bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Shortest text that reads back as the same double; Prometheus spells the
// infinities and NaN its own way.
void AppendNumber(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  // Plain decimals read best ("0.0005", not "5e-04"); very large or very
  // small magnitudes switch to exponent form to stay short.
  double magnitude = std::fabs(v);
  bool fixed = v == 0.0 || (magnitude >= 1e-6 && magnitude < 1e15);
  char buf[64];
  auto [end, ec] = fixed ? std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed)
                         : std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, ec == std::errc() ? end : buf);
}

void AppendEscaped(std::string& out, std::string_view text, bool quotes) {
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quotes && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

// `{a="1",b="2"}`, with an optional extra label (le) last; nothing when empty.
void AppendLabels(std::string& out, const MetricLabels& labels, std::string_view extra_name = {},
                  std::string_view extra_value = {}) {
  if (labels.empty() && extra_name.empty()) return;
  out += '{';
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!first) out += ',';
    first = false;
    out += name;
    out += "=\"";
    AppendEscaped(out, value, true);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!first) out += ',';
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
}

void AppendCount(std::string& out, uint64_t v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, ec == std::errc() ? end : buf);
}

std::string Quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

// Each thread writes one LatencyHistogram shard, chosen round-robin the first
// time the thread observes anything.
size_t ThreadShard(size_t shards) {
  static std::atomic<size_t> next{0};
  static thread_local size_t shard = next.fetch_add(1, std::memory_order_relaxed);
  return shard % shards;
}

}  // namespace

const std::array<uint64_t, LatencyHistogram::kBounds>& LatencyHistogram::BoundsNs() {
  constexpr uint64_t us = 1000, ms = 1000 * us, s = 1000 * ms;
  static constexpr std::array<uint64_t, kBounds> bounds = {
      10 * us,  25 * us,  50 * us,  100 * us, 250 * us, 500 * us, 1 * ms,  2500 * us,
      5 * ms,   10 * ms,  25 * ms,  50 * ms,  100 * ms, 250 * ms, 500 * ms, 1 * s,
      2500 * ms, 5 * s,   10 * s,   30 * s,   60 * s,   300 * s,  900 * s, 3600 * s};
  return bounds;
}

const std::vector<double>& LatencyHistogram::BoundsSeconds() {
  static const std::vector<double> seconds = [] {
    std::vector<double> v;
    for (uint64_t ns : BoundsNs()) v.push_back(static_cast<double>(ns) / 1e9);
    return v;
  }();
  return seconds;
}

LatencyHistogram::LatencyHistogram() {
  for (Shard& shard : shards_) {
    for (auto& c : shard.counts) c.store(0, std::memory_order_relaxed);
    shard.sum_ns.store(0, std::memory_order_relaxed);
  }
}

void LatencyHistogram::ObserveNs(uint64_t ns, uint64_t times) {
  const auto& bounds = BoundsNs();
  const size_t index = std::lower_bound(bounds.begin(), bounds.end(), ns) - bounds.begin();
  Shard& shard = shards_[ThreadShard(kShards)];
  shard.counts[index].fetch_add(times, std::memory_order_relaxed);
  shard.sum_ns.fetch_add(ns * times, std::memory_order_relaxed);
}

Histogram::Snapshot LatencyHistogram::Take() const {
  Histogram::Snapshot snap;
  snap.cumulative.assign(kBounds + 1, 0);
  uint64_t sum_ns = 0;
  for (const Shard& shard : shards_) {
    for (size_t i = 0; i <= kBounds; ++i)
      snap.cumulative[i] += shard.counts[i].load(std::memory_order_relaxed);
    sum_ns += shard.sum_ns.load(std::memory_order_relaxed);
  }
  for (size_t i = 1; i <= kBounds; ++i) snap.cumulative[i] += snap.cumulative[i - 1];
  snap.count = snap.cumulative[kBounds];
  snap.sum = static_cast<double>(sum_ns) / 1e9;
  return snap;
}

void PrometheusText::Family(std::string_view name, std::string_view type, std::string_view help) {
  name_ = name;
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  AppendEscaped(out_, help, false);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void PrometheusText::Sample(const MetricLabels& labels, double value) {
  out_ += name_;
  AppendLabels(out_, labels);
  out_ += ' ';
  AppendNumber(out_, value);
  out_ += '\n';
}

void PrometheusText::HistogramSamples(const MetricLabels& labels,
                                      const std::vector<double>& bounds,
                                      const Histogram::Snapshot& snap) {
  for (size_t i = 0; i < snap.cumulative.size(); ++i) {
    std::string le;
    AppendNumber(le, i < bounds.size() ? bounds[i] : INFINITY);
    out_ += name_;
    out_ += "_bucket";
    AppendLabels(out_, labels, "le", le);
    out_ += ' ';
    AppendCount(out_, snap.cumulative[i]);
    out_ += '\n';
  }
  out_ += name_;
  out_ += "_sum";
  AppendLabels(out_, labels);
  out_ += ' ';
  AppendNumber(out_, snap.sum);
  out_ += '\n';
  out_ += name_;
  out_ += "_count";
  AppendLabels(out_, labels);
  out_ += ' ';
  AppendCount(out_, snap.count);
  out_ += '\n';
}

void Counter::Increment(double delta) {
  if (!(delta >= 0.0) || std::isinf(delta)) return;  // also rejects NaN
  value_.fetch_add(delta, std::memory_order_relaxed);
}

Histogram::Histogram(MetricLabels labels, std::vector<double> bounds)
    : labels_(std::move(labels)),
      bounds_(std::move(bounds)),
      counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double value) {
  if (std::isnan(value)) return;
  size_t index = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  counts_[index].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

void Histogram::Add(const std::vector<uint64_t>& counts, double sum) {
  if (counts.size() != bounds_.size() + 1) return;
  for (size_t i = 0; i < counts.size(); ++i)
    if (counts[i] != 0) counts_[i].fetch_add(counts[i], std::memory_order_relaxed);
  if (!std::isnan(sum)) sum_.fetch_add(sum, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Take() const {
  Snapshot snap;
  snap.cumulative.reserve(bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    snap.cumulative.push_back(running);
  }
  snap.count = running;
  snap.sum = sum_.load(std::memory_order_relaxed);
  return snap;
}

const char* MetricsRegistry::TypeName(Type type) {
  switch (type) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

MetricsRegistry& MetricsRegistry::Default() {
  static MetricsRegistry* registry = new MetricsRegistry();  // never destroyed: used until exit
  return *registry;
}

const std::vector<double>& MetricsRegistry::DefaultBuckets() {
  static const std::vector<double> buckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                              0.25,   0.5,   1,      2.5,   5,    10,    30};
  return buckets;
}

bool MetricsRegistry::IsValidMetricName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = IsAlpha(c) || c == '_' || c == ':' || (i > 0 && IsDigit(c));
    if (!ok) return false;
  }
  return true;
}

bool MetricsRegistry::IsValidLabelName(std::string_view name) {
  if (name.empty() || name.substr(0, 2) == "__") return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = IsAlpha(c) || c == '_' || (i > 0 && IsDigit(c));
    if (!ok) return false;
  }
  return true;
}

Result<MetricsRegistry::Family*> MetricsRegistry::FindOrCreateFamily(
    std::string_view name, std::string_view help, Type type, MetricLabels& labels,
    const std::vector<double>& buckets) {
  if (!IsValidMetricName(name)) {
    return Status::InvalidArgument("invalid metric name " + Quoted(name) +
                                   ": must match [a-zA-Z_:][a-zA-Z0-9_:]*");
  }
  std::sort(labels.begin(), labels.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> label_names;
  label_names.reserve(labels.size());
  for (const auto& [label, value] : labels) {
    if (!IsValidLabelName(label)) {
      return Status::InvalidArgument("metric " + Quoted(name) + ": invalid label name " +
                                     Quoted(label) +
                                     ": must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __");
    }
    if (!label_names.empty() && label_names.back() == label) {
      return Status::InvalidArgument("metric " + Quoted(name) + ": label " + Quoted(label) +
                                     " given twice");
    }
    if (type == Type::kHistogram && label == "le") {
      return Status::InvalidArgument("metric " + Quoted(name) +
                                     ": label \"le\" is reserved for histogram buckets");
    }
    label_names.push_back(label);
  }

  auto it = families_.find(name);
  if (it == families_.end()) {
    Family family{type, std::string(help), std::move(label_names), buckets, {}, {}, {}};
    it = families_.emplace(std::string(name), std::move(family)).first;
    return &it->second;
  }
  Family& family = it->second;
  if (family.type != type) {
    return Status::AlreadyExists("metric " + Quoted(name) + " is already defined as a " +
                                 TypeName(family.type) + ", not as a " + TypeName(type));
  }
  if (family.label_names != label_names) {
    return Status::InvalidArgument("metric " + Quoted(name) +
                                   " is already defined with other label names");
  }
  if (family.buckets != buckets) {
    return Status::InvalidArgument("histogram " + Quoted(name) +
                                   " is already defined with other buckets");
  }
  return &family;
}

Result<Counter*> MetricsRegistry::DefineCounter(std::string_view name, std::string_view help,
                                                MetricLabels labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Result<Family*> family = FindOrCreateFamily(name, help, Type::kCounter, labels, {});
  if (!family.ok()) return family.status();
  for (const auto& c : (*family)->counters) {
    if (c->labels() == labels) return c.get();
  }
  (*family)->counters.emplace_back(new Counter(std::move(labels)));
  return (*family)->counters.back().get();
}

Result<Gauge*> MetricsRegistry::DefineGauge(std::string_view name, std::string_view help,
                                            MetricLabels labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Result<Family*> family = FindOrCreateFamily(name, help, Type::kGauge, labels, {});
  if (!family.ok()) return family.status();
  for (const auto& g : (*family)->gauges) {
    if (g->labels() == labels) return g.get();
  }
  (*family)->gauges.emplace_back(new Gauge(std::move(labels)));
  return (*family)->gauges.back().get();
}

Result<Histogram*> MetricsRegistry::DefineHistogram(std::string_view name, std::string_view help,
                                                    MetricLabels labels,
                                                    std::vector<double> buckets) {
  if (buckets.empty()) buckets = DefaultBuckets();
  for (size_t i = 0; i < buckets.size(); ++i) {
    if (!std::isfinite(buckets[i]) || (i > 0 && !(buckets[i] > buckets[i - 1]))) {
      return Status::InvalidArgument("histogram " + Quoted(name) +
                                     ": buckets must be finite and strictly increasing");
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  Result<Family*> family = FindOrCreateFamily(name, help, Type::kHistogram, labels, buckets);
  if (!family.ok()) return family.status();
  for (const auto& h : (*family)->histograms) {
    if (h->labels() == labels) return h.get();
  }
  (*family)->histograms.emplace_back(new Histogram(std::move(labels), std::move(buckets)));
  return (*family)->histograms.back().get();
}

std::string MetricsRegistry::RenderPrometheus() const {
  std::string out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, family] : families_) {
    out += "# HELP ";
    out += name;
    out += ' ';
    AppendEscaped(out, family.help, false);
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += TypeName(family.type);
    out += '\n';
    for (const auto& c : family.counters) {
      out += name;
      AppendLabels(out, c->labels());
      out += ' ';
      AppendNumber(out, c->Value());
      out += '\n';
    }
    for (const auto& g : family.gauges) {
      out += name;
      AppendLabels(out, g->labels());
      out += ' ';
      AppendNumber(out, g->Value());
      out += '\n';
    }
    for (const auto& h : family.histograms) {
      Histogram::Snapshot snap = h->Take();
      for (size_t i = 0; i < snap.cumulative.size(); ++i) {
        std::string le;
        AppendNumber(le, i < h->bounds().size() ? h->bounds()[i] : INFINITY);
        out += name;
        out += "_bucket";
        AppendLabels(out, h->labels(), "le", le);
        out += ' ';
        AppendCount(out, snap.cumulative[i]);
        out += '\n';
      }
      out += name;
      out += "_sum";
      AppendLabels(out, h->labels());
      out += ' ';
      AppendNumber(out, snap.sum);
      out += '\n';
      out += name;
      out += "_count";
      AppendLabels(out, h->labels());
      out += ' ';
      AppendCount(out, snap.count);
      out += '\n';
    }
  }
  return out;
}

}  // namespace foxworker
