// TagWindow: the RabbitMQ backend's records of unsettled delivery tags.
#include "daemon/backends/rabbitmq/tag_window.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>

namespace foxworker {
namespace {

struct Record {
  int value = 0;
  std::string text;
  void Reset() { value = 0; }
};

TEST(TagWindowTest, ConsecutiveTagsInAndOut) {
  TagWindow<Record> w;
  w.Reserve(8);
  EXPECT_EQ(w.Lowest(), 0u);
  for (uint64_t t = 1; t <= 100; ++t) {
    w.Insert(t).value = static_cast<int>(t);
    if (t > 4) {
      ASSERT_TRUE(w.Erase(t - 4));
    }
  }
  EXPECT_EQ(w.size(), 4u);
  EXPECT_EQ(w.Lowest(), 97u);
  EXPECT_EQ(w.NextAbove(97), 98u);
  EXPECT_EQ(w.NextAbove(100), 0u);
  ASSERT_NE(w.Find(99), nullptr);
  EXPECT_EQ(w.Find(99)->value, 99);
  EXPECT_EQ(w.Find(96), nullptr);
  EXPECT_FALSE(w.Erase(96));
}

TEST(TagWindowTest, AHeldTagOutlivesTheRing) {
  TagWindow<Record> w;
  w.Reserve(16);
  w.Insert(1).value = 1;  // held while thousands after it are settled
  for (uint64_t t = 2; t <= 5000; ++t) {
    w.Insert(t).value = static_cast<int>(t);
    ASSERT_TRUE(w.Erase(t));
  }
  EXPECT_EQ(w.size(), 1u);
  ASSERT_NE(w.Find(1), nullptr);
  EXPECT_EQ(w.Find(1)->value, 1);
  EXPECT_EQ(w.Lowest(), 1u);
  w.Insert(5001).value = 5001;
  EXPECT_EQ(w.NextAbove(1), 5001u);
  EXPECT_TRUE(w.Erase(1));
  EXPECT_EQ(w.Lowest(), 5001u);
  w.Clear();
  EXPECT_TRUE(w.empty());
  // A new connection numbers its deliveries from 1 again.
  w.Insert(1).value = 7;
  EXPECT_EQ(w.Find(1)->value, 7);
}

TEST(TagWindowTest, GrowingKeepsRecords) {
  TagWindow<Record> w;
  w.Reserve(4);
  for (uint64_t t = 1; t <= 6; ++t) w.Insert(t).value = static_cast<int>(t);
  w.Reserve(64);
  for (uint64_t t = 1; t <= 6; ++t) {
    ASSERT_NE(w.Find(t), nullptr) << t;
    EXPECT_EQ(w.Find(t)->value, static_cast<int>(t));
  }
}

// Random settlement order against a std::map.
TEST(TagWindowTest, MatchesAnOrderedMap) {
  std::mt19937 rng(42);
  TagWindow<Record> w;
  w.Reserve(32);
  std::map<uint64_t, int> ref;
  uint64_t next = 1;
  for (int step = 0; step < 200000; ++step) {
    const bool add = ref.size() < 40 && (ref.empty() || rng() % 2 == 0);
    if (add) {
      w.Insert(next).value = static_cast<int>(next);
      ref[next] = static_cast<int>(next);
      ++next;
    } else {
      // Usually one of the oldest; now and then any of them.
      auto it = ref.begin();
      std::advance(it, rng() % 8 == 0 ? rng() % ref.size() : rng() % std::min<size_t>(3, ref.size()));
      ASSERT_TRUE(w.Erase(it->first));
      ref.erase(it);
    }
    ASSERT_EQ(w.size(), ref.size());
    ASSERT_EQ(w.Lowest(), ref.empty() ? 0 : ref.begin()->first);
    if (step % 97 == 0) {
      uint64_t t = 0;
      for (const auto& [tag, value] : ref) {
        t = w.NextAbove(t);
        ASSERT_EQ(t, tag);
        ASSERT_EQ(w.Find(tag)->value, value);
      }
      ASSERT_EQ(w.NextAbove(t), 0u);
    }
  }
}

}  // namespace
}  // namespace foxworker
