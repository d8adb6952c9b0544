#include "daemon/core/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <thread>
#include <vector>

namespace foxworker {
namespace {

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE((haystack).find(needle), std::string::npos) << "in:\n" << (haystack)

TEST(MetricsTest, NameRules) {
  EXPECT_TRUE(MetricsRegistry::IsValidMetricName("foxworker_messages_total"));
  EXPECT_TRUE(MetricsRegistry::IsValidMetricName("a:b_c9"));
  EXPECT_TRUE(MetricsRegistry::IsValidMetricName("_x"));
  EXPECT_FALSE(MetricsRegistry::IsValidMetricName(""));
  EXPECT_FALSE(MetricsRegistry::IsValidMetricName("9lives"));
  EXPECT_FALSE(MetricsRegistry::IsValidMetricName("with-dash"));
  EXPECT_FALSE(MetricsRegistry::IsValidMetricName("with space"));
  EXPECT_TRUE(MetricsRegistry::IsValidLabelName("queue"));
  EXPECT_TRUE(MetricsRegistry::IsValidLabelName("_q1"));
  EXPECT_FALSE(MetricsRegistry::IsValidLabelName("__reserved"));
  EXPECT_FALSE(MetricsRegistry::IsValidLabelName("a:b"));
  EXPECT_FALSE(MetricsRegistry::IsValidLabelName("1a"));
  EXPECT_FALSE(MetricsRegistry::IsValidLabelName(""));
}

TEST(MetricsTest, CounterRendersWithHelpAndType) {
  MetricsRegistry r;
  auto c = r.DefineCounter("jobs_total", "Jobs done.\nSecond line \\ backslash");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  (*c)->Increment();
  (*c)->Increment(2.5);
  (*c)->Increment(-1);        // ignored: counters only go up
  (*c)->Increment(NAN);       // ignored
  (*c)->Increment(INFINITY);  // ignored
  EXPECT_EQ((*c)->Value(), 3.5);
  EXPECT_EQ(r.RenderPrometheus(),
            "# HELP jobs_total Jobs done.\\nSecond line \\\\ backslash\n"
            "# TYPE jobs_total counter\n"
            "jobs_total 3.5\n");
}

TEST(MetricsTest, LabelledSeriesShareAFamily) {
  MetricsRegistry r;
  auto a = r.DefineGauge("depth", "Queue depth", {{"queue", "a"}, {"backend", "mem"}});
  auto b = r.DefineGauge("depth", "ignored: the first help wins",
                         {{"backend", "mem"}, {"queue", "b\"\n\\"}});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  (*a)->Set(5);
  (*b)->Set(-2);
  (*b)->Add(0.5);
  // Same labels in another order: the same series.
  auto again = r.DefineGauge("depth", "x", {{"queue", "a"}, {"backend", "mem"}});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *a);
  EXPECT_EQ(r.RenderPrometheus(),
            "# HELP depth Queue depth\n"
            "# TYPE depth gauge\n"
            "depth{backend=\"mem\",queue=\"a\"} 5\n"
            "depth{backend=\"mem\",queue=\"b\\\"\\n\\\\\"} -1.5\n");
}

TEST(MetricsTest, HistogramBucketsSumAndCount) {
  MetricsRegistry r;
  auto h = r.DefineHistogram("took_seconds", "Time taken", {{"queue", "q"}}, {0.1, 1, 10});
  ASSERT_TRUE(h.ok());
  (*h)->Observe(0.05);
  (*h)->Observe(0.1);  // le is inclusive
  (*h)->Observe(3);
  (*h)->Observe(100);
  (*h)->Observe(NAN);  // ignored
  EXPECT_EQ(r.RenderPrometheus(),
            "# HELP took_seconds Time taken\n"
            "# TYPE took_seconds histogram\n"
            "took_seconds_bucket{queue=\"q\",le=\"0.1\"} 2\n"
            "took_seconds_bucket{queue=\"q\",le=\"1\"} 2\n"
            "took_seconds_bucket{queue=\"q\",le=\"10\"} 3\n"
            "took_seconds_bucket{queue=\"q\",le=\"+Inf\"} 4\n"
            "took_seconds_sum{queue=\"q\"} 103.15\n"
            "took_seconds_count{queue=\"q\"} 4\n");
}

TEST(MetricsTest, HistogramAddsCountsObservedElsewhere) {
  // How a handler child's observations reach the daemon's histogram.
  MetricsRegistry r;
  auto h = r.DefineHistogram("took_seconds", "Time taken", {}, {0.1, 1});
  ASSERT_TRUE(h.ok());
  (*h)->Observe(0.5);
  (*h)->Add({2, 0, 1}, 20.25);  // per bucket, the last one +Inf
  (*h)->Add({1, 1}, 7);         // the wrong number of buckets: ignored
  const Histogram::Snapshot snap = (*h)->Take();
  EXPECT_EQ(snap.cumulative, (std::vector<uint64_t>{2, 3, 4}));
  EXPECT_EQ(snap.count, 4u);
  EXPECT_DOUBLE_EQ(snap.sum, 20.75);
}

TEST(MetricsTest, DefaultBucketsRunFromHalfAMillisecondToThirtySeconds) {
  const auto& b = MetricsRegistry::DefaultBuckets();
  ASSERT_FALSE(b.empty());
  EXPECT_EQ(b.front(), 0.0005);
  EXPECT_EQ(b.back(), 30.0);
  MetricsRegistry r;
  auto h = r.DefineHistogram("lat_seconds", "Latency");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ((*h)->bounds(), b);
  (*h)->Observe(0.0001);
  std::string text = r.RenderPrometheus();
  EXPECT_CONTAINS(text, "lat_seconds_bucket{le=\"0.0005\"} 1\n");
  EXPECT_CONTAINS(text, "lat_seconds_bucket{le=\"30\"} 1\n");
  EXPECT_CONTAINS(text, "lat_seconds_sum 0.0001\n");
}

TEST(MetricsTest, FamiliesRenderInNameOrder) {
  MetricsRegistry r;
  ASSERT_TRUE(r.DefineCounter("b_total", "b").ok());
  ASSERT_TRUE(r.DefineCounter("a_total", "a").ok());
  std::string text = r.RenderPrometheus();
  EXPECT_LT(text.find("a_total"), text.find("b_total"));
}

TEST(MetricsTest, DefinitionErrors) {
  MetricsRegistry r;
  ASSERT_TRUE(r.DefineCounter("x_total", "x", {{"queue", "a"}}).ok());

  auto clash = r.DefineGauge("x_total", "x");
  ASSERT_FALSE(clash.ok());
  EXPECT_EQ(clash.status().code(), Status::Code::kAlreadyExists);
  EXPECT_EQ(clash.status().message(),
            "metric \"x_total\" is already defined as a counter, not as a gauge");

  auto labels = r.DefineCounter("x_total", "x", {{"other", "a"}});
  ASSERT_FALSE(labels.ok());
  EXPECT_EQ(labels.status().message(),
            "metric \"x_total\" is already defined with other label names");

  auto name = r.DefineCounter("bad name", "x");
  ASSERT_FALSE(name.ok());
  EXPECT_TRUE(name.status().IsInvalidArgument());
  EXPECT_EQ(name.status().message(),
            "invalid metric name \"bad name\": must match [a-zA-Z_:][a-zA-Z0-9_:]*");

  auto label = r.DefineCounter("y_total", "y", {{"__name", "v"}});
  ASSERT_FALSE(label.ok());
  EXPECT_EQ(label.status().message(),
            "metric \"y_total\": invalid label name \"__name\": must match [a-zA-Z_][a-zA-Z0-9_]* "
            "and not start with __");

  auto twice = r.DefineCounter("y_total", "y", {{"a", "1"}, {"a", "2"}});
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.status().message(), "metric \"y_total\": label \"a\" given twice");

  auto le = r.DefineHistogram("h", "h", {{"le", "1"}});
  ASSERT_FALSE(le.ok());
  EXPECT_EQ(le.status().message(), "metric \"h\": label \"le\" is reserved for histogram buckets");

  auto unsorted = r.DefineHistogram("h", "h", {}, {1, 0.5});
  ASSERT_FALSE(unsorted.ok());
  EXPECT_EQ(unsorted.status().message(),
            "histogram \"h\": buckets must be finite and strictly increasing");
  EXPECT_FALSE(r.DefineHistogram("h", "h", {}, {1, INFINITY}).ok());

  ASSERT_TRUE(r.DefineHistogram("h2", "h", {}, {1, 2}).ok());
  auto buckets = r.DefineHistogram("h2", "h", {}, {1, 3});
  ASSERT_FALSE(buckets.ok());
  EXPECT_EQ(buckets.status().message(), "histogram \"h2\" is already defined with other buckets");
  // A failed definition adds nothing.
  EXPECT_EQ(r.RenderPrometheus().find("y_total"), std::string::npos);
}

TEST(MetricsTest, NumbersUseThePrometheusSpelling) {
  MetricsRegistry r;
  auto g = r.DefineGauge("g", "g", {{"k", "inf"}});
  auto n = r.DefineGauge("g", "g", {{"k", "nan"}});
  auto big = r.DefineGauge("g", "g", {{"k", "big"}});
  auto small = r.DefineGauge("g", "g", {{"k", "small"}});
  ASSERT_TRUE(g.ok() && n.ok() && big.ok() && small.ok());
  (*g)->Set(-INFINITY);
  (*n)->Set(NAN);
  (*big)->Set(1e300);
  (*small)->Set(1.25e-9);
  std::string text = r.RenderPrometheus();
  EXPECT_CONTAINS(text, "g{k=\"inf\"} -Inf\n");
  EXPECT_CONTAINS(text, "g{k=\"nan\"} NaN\n");
  EXPECT_CONTAINS(text, "g{k=\"big\"} 1e+300\n");
  EXPECT_CONTAINS(text, "g{k=\"small\"} 1.25e-09\n");
}

TEST(MetricsTest, ConcurrentUpdatesAreNotLost) {
  MetricsRegistry r;
  auto c = r.DefineCounter("c_total", "c");
  auto h = r.DefineHistogram("h_seconds", "h", {}, {1});
  ASSERT_TRUE(c.ok() && h.ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        (*c)->Increment();
        (*h)->Observe(0.5);
      }
    });
  }
  // Rendering and defining race with the updates.
  for (int i = 0; i < 50; ++i) {
    r.RenderPrometheus();
    ASSERT_TRUE(r.DefineCounter("other_total", "o", {{"n", std::to_string(i)}}).ok());
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ((*c)->Value(), 40000.0);
  Histogram::Snapshot snap = (*h)->Take();
  EXPECT_EQ(snap.count, 40000u);
  EXPECT_EQ(snap.cumulative[0], 40000u);
  EXPECT_EQ(snap.sum, 20000.0);
}

TEST(LatencyHistogramTest, BucketsAreInclusiveAndCountsCumulative) {
  LatencyHistogram h;
  const auto& ns = LatencyHistogram::BoundsNs();
  const auto& s = LatencyHistogram::BoundsSeconds();
  ASSERT_EQ(s.size(), LatencyHistogram::kBounds);
  EXPECT_EQ(s.front(), 0.00001);
  EXPECT_EQ(s.back(), 3600.0);
  for (size_t i = 1; i < ns.size(); ++i) EXPECT_LT(ns[i - 1], ns[i]);
  h.ObserveNs(0);
  h.ObserveNs(10000);         // exactly 10us: the first bucket (le is inclusive)
  h.ObserveNs(10001);         // the second
  h.ObserveNs(2000000, 3);    // 2ms three times: le=0.0025
  h.ObserveNs(7200000000000);  // 2h: +Inf only
  Histogram::Snapshot snap = h.Take();
  ASSERT_EQ(snap.cumulative.size(), LatencyHistogram::kBounds + 1);
  EXPECT_EQ(snap.cumulative[0], 2u);
  EXPECT_EQ(snap.cumulative[1], 3u);
  EXPECT_EQ(snap.cumulative[6], 3u);  // le=0.001
  EXPECT_EQ(snap.cumulative[7], 6u);  // le=0.0025
  EXPECT_EQ(snap.cumulative[LatencyHistogram::kBounds - 1], 6u);
  EXPECT_EQ(snap.cumulative[LatencyHistogram::kBounds], 7u);
  EXPECT_EQ(snap.count, 7u);
  EXPECT_DOUBLE_EQ(snap.sum, (10000 + 10001 + 6000000 + 7200000000000.0) / 1e9);
}

TEST(LatencyHistogramTest, ConcurrentObserversLoseNothing) {
  LatencyHistogram h;
  std::vector<std::thread> threads;
  for (int t = 0; t < 12; ++t)  // more threads than shards: some share one
    threads.emplace_back([&h, t] {
      for (int i = 0; i < 10000; ++i) h.ObserveNs(static_cast<uint64_t>(t) * 1000000);
    });
  for (int i = 0; i < 20; ++i) {
    Histogram::Snapshot mid = h.Take();
    EXPECT_EQ(mid.count, mid.cumulative.back());
    for (size_t b = 1; b < mid.cumulative.size(); ++b)
      EXPECT_LE(mid.cumulative[b - 1], mid.cumulative[b]);
  }
  for (auto& t : threads) t.join();
  Histogram::Snapshot snap = h.Take();
  EXPECT_EQ(snap.count, 120000u);
  EXPECT_DOUBLE_EQ(snap.sum, 10000 * (0 + 1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9 + 10 + 11) * 1e-3);
}

TEST(PrometheusTextTest, FamiliesSamplesAndHistograms) {
  PrometheusText t;
  t.Family("jobs_total", "counter", "Jobs.\nDone \\ here");
  t.Sample({{"handler", "a\"b"}, {"queue", "q"}}, 3);
  t.Sample({}, 0.5);
  t.Family("wait_seconds", "histogram", "Wait");
  Histogram::Snapshot snap;
  snap.cumulative = {1, 2, 4};
  snap.count = 4;
  snap.sum = 1.25;
  t.HistogramSamples({{"queue", "q"}}, {0.1, 1}, snap);
  EXPECT_EQ(t.text(),
            "# HELP jobs_total Jobs.\\nDone \\\\ here\n"
            "# TYPE jobs_total counter\n"
            "jobs_total{handler=\"a\\\"b\",queue=\"q\"} 3\n"
            "jobs_total 0.5\n"
            "# HELP wait_seconds Wait\n"
            "# TYPE wait_seconds histogram\n"
            "wait_seconds_bucket{queue=\"q\",le=\"0.1\"} 1\n"
            "wait_seconds_bucket{queue=\"q\",le=\"1\"} 2\n"
            "wait_seconds_bucket{queue=\"q\",le=\"+Inf\"} 4\n"
            "wait_seconds_sum{queue=\"q\"} 1.25\n"
            "wait_seconds_count{queue=\"q\"} 4\n");
}

// Default() is the one registry of the process: what a plugin defines
// through it on one thread (an executor thread) is the series that another
// thread (the admin endpoint) finds and renders, not a thread's own copy.
TEST(MetricsTest, DefaultRegistryIsSharedByEveryThread) {
  MetricsRegistry* seen_by_worker = nullptr;
  Counter* defined_by_worker = nullptr;
  std::thread worker([&] {
    seen_by_worker = &MetricsRegistry::Default();
    auto c = MetricsRegistry::Default().DefineCounter(
        "metrics_test_default_shared_total", "Defined on another thread.", {{"queue", "q"}});
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    (*c)->Increment(3);
    defined_by_worker = *c;
  });
  worker.join();
  ASSERT_NE(defined_by_worker, nullptr);
  EXPECT_EQ(seen_by_worker, &MetricsRegistry::Default());

  auto again = MetricsRegistry::Default().DefineCounter("metrics_test_default_shared_total", "x",
                                                        {{"queue", "q"}});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, defined_by_worker) << "the same series, not a new one";
  (*again)->Increment();
  EXPECT_CONTAINS(MetricsRegistry::Default().RenderPrometheus(),
                  "# HELP metrics_test_default_shared_total Defined on another thread.\n"
                  "# TYPE metrics_test_default_shared_total counter\n"
                  "metrics_test_default_shared_total{queue=\"q\"} 4\n");
  // And a registry of one's own does not see it.
  MetricsRegistry own;
  EXPECT_EQ(own.RenderPrometheus().find("metrics_test_default_shared_total"), std::string::npos);
}

}  // namespace
}  // namespace foxworker
