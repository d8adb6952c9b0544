#include "daemon/core/buffered_source.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace foxworker {
namespace {

using WakeOn = BufferedSourceState::WakeOn;

// A backend's source over the shared base: records its hooks.
class TestSource final : public BufferedSource {
 public:
  explicit TestSource(std::shared_ptr<BufferedSourceState> state)
      : BufferedSource("test source q", std::move(state)) {}
  ~TestSource() override { StopFetching(); }

  void Settle(std::vector<Settlement>& batch) override { batch.clear(); }

  int started_hooks = 0;
  int stop_hooks = 0;
  std::vector<std::string> released;

 private:
  void OnStarted() override { ++started_hooks; }
  void OnStopFetching(BufferedSourceState::Buffer unstarted) override {
    ++stop_hooks;
    for (const auto& d : unstarted) released.push_back(d->msg.id);
  }
};

std::unique_ptr<Delivery> Make(const std::string& id) {
  auto d = std::make_unique<Delivery>();
  d->msg.id = id;
  return d;
}

// What the backend's thread does: push under the lock, wake after it.
bool Refill(BufferedSourceState& state, const std::vector<std::string>& ids) {
  std::function<void()> wake;
  {
    std::lock_guard<std::mutex> l(state.mu);
    for (const auto& id : ids) state.buffer.push_back(Make(id));
    wake = state.RefilledLocked();
  }
  if (!wake) return false;
  wake();
  return true;
}

std::vector<std::string> Ids(const std::vector<std::unique_ptr<Delivery>>& ds) {
  std::vector<std::string> ids;
  for (const auto& d : ds) ids.push_back(d->msg.id);
  return ids;
}

TEST(BufferedSourceTest, FetchTakesFromTheFrontUpToMax) {
  auto state = std::make_shared<BufferedSourceState>(WakeOn::kRefill);
  TestSource source(state);
  int wakes = 0;
  ASSERT_TRUE(source.Start([&] { ++wakes; }).ok());
  EXPECT_EQ(source.started_hooks, 1);
  EXPECT_FALSE(source.MaybeReady());

  EXPECT_TRUE(Refill(*state, {"a", "b", "c"}));
  EXPECT_EQ(wakes, 1);
  EXPECT_TRUE(source.MaybeReady());

  std::vector<std::unique_ptr<Delivery>> out;
  EXPECT_EQ(source.Fetch(2, out), 2u);
  EXPECT_EQ(Ids(out), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(source.MaybeReady());
  EXPECT_EQ(source.Fetch(5, out), 1u);
  EXPECT_EQ(Ids(out), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_FALSE(source.MaybeReady());
  EXPECT_EQ(source.Fetch(5, out), 0u);
}

TEST(BufferedSourceTest, StartsOnce) {
  auto state = std::make_shared<BufferedSourceState>(WakeOn::kRefill);
  TestSource source(state);
  ASSERT_TRUE(source.Start([] {}).ok());
  Status again = source.Start([] {});
  EXPECT_FALSE(again.ok());
  EXPECT_EQ(again.message(), "test source q: already started");
  EXPECT_EQ(source.started_hooks, 1);
}

TEST(BufferedSourceTest, StartWakesAtOnceWhenDeliveriesWaitAlready) {
  auto state = std::make_shared<BufferedSourceState>(WakeOn::kRefill);
  TestSource source(state);
  EXPECT_FALSE(Refill(*state, {"early"}));  // no consumer yet: nobody to wake
  int wakes = 0;
  ASSERT_TRUE(source.Start([&] { ++wakes; }).ok());
  EXPECT_EQ(wakes, 1);
}

TEST(BufferedSourceTest, RefillWakesEveryTimeSomethingIsBuffered) {
  auto state = std::make_shared<BufferedSourceState>(WakeOn::kRefill);
  TestSource source(state);
  int wakes = 0;
  ASSERT_TRUE(source.Start([&] { ++wakes; }).ok());
  EXPECT_TRUE(Refill(*state, {"a"}));
  EXPECT_TRUE(Refill(*state, {"b"}));
  EXPECT_TRUE(Refill(*state, {}));  // still buffered
  EXPECT_EQ(wakes, 3);
  std::vector<std::unique_ptr<Delivery>> out;
  source.Fetch(10, out);
  EXPECT_FALSE(Refill(*state, {}));  // nothing buffered
}

TEST(BufferedSourceTest, StarvedRefillWakesOnlyAfterAShortFetch) {
  auto state = std::make_shared<BufferedSourceState>(WakeOn::kStarved);
  TestSource source(state);
  int wakes = 0;
  ASSERT_TRUE(source.Start([&] { ++wakes; }).ok());
  EXPECT_TRUE(Refill(*state, {"a", "b", "c"}));  // no Fetch yet: starved
  EXPECT_FALSE(Refill(*state, {"d"}));           // not fetched since
  std::vector<std::unique_ptr<Delivery>> out;
  EXPECT_EQ(source.Fetch(2, out), 2u);  // a full batch
  EXPECT_FALSE(Refill(*state, {"e"}));
  EXPECT_EQ(source.Fetch(10, out), 3u);  // short: the consumer waits
  EXPECT_TRUE(Refill(*state, {"f"}));
  EXPECT_EQ(wakes, 2);
}

TEST(BufferedSourceTest, StopFetchingReleasesTheUnstartedOnce) {
  auto state = std::make_shared<BufferedSourceState>(WakeOn::kRefill);
  auto source = std::make_unique<TestSource>(state);
  ASSERT_TRUE(source->Start([] {}).ok());
  Refill(*state, {"a", "b", "c"});
  std::vector<std::unique_ptr<Delivery>> out;
  ASSERT_EQ(source->Fetch(1, out), 1u);

  source->StopFetching();
  EXPECT_EQ(source->stop_hooks, 1);
  EXPECT_EQ(source->released, (std::vector<std::string>{"b", "c"}));
  EXPECT_FALSE(source->MaybeReady());
  {
    std::lock_guard<std::mutex> l(state->mu);
    EXPECT_TRUE(state->stopped);
    EXPECT_TRUE(state->buffer.empty());
  }
  source->StopFetching();
  EXPECT_EQ(source->stop_hooks, 1);

  // A stopped source gives nothing, whatever the backend left in it.
  {
    std::lock_guard<std::mutex> l(state->mu);
    state->buffer.push_back(Make("late"));
  }
  EXPECT_EQ(source->Fetch(10, out), 0u);
  BufferedSourceState::Buffer taken;
  EXPECT_FALSE(state->TakeUnstarted(&taken, /*stop=*/false));
  EXPECT_TRUE(taken.empty());

  source.reset();  // the destructor's StopFetching finds it stopped already
}

TEST(BufferedSourceTest, TakeUnstartedWithoutStopKeepsTheSourceOpen) {
  auto state = std::make_shared<BufferedSourceState>(WakeOn::kRefill);
  TestSource source(state);
  ASSERT_TRUE(source.Start([] {}).ok());
  Refill(*state, {"a", "b"});
  BufferedSourceState::Buffer taken;
  EXPECT_TRUE(state->TakeUnstarted(&taken, /*stop=*/false));  // e.g. the queue was paused
  EXPECT_EQ(taken.size(), 2u);
  EXPECT_FALSE(source.MaybeReady());
  Refill(*state, {"c"});
  std::vector<std::unique_ptr<Delivery>> out;
  EXPECT_EQ(source.Fetch(10, out), 1u);
}

TEST(BufferedSourceTest, TheDestructorStopsAndForgetsTheWakeUp) {
  auto state = std::make_shared<BufferedSourceState>(WakeOn::kRefill);
  {
    TestSource source(state);
    ASSERT_TRUE(source.Start([] { FAIL() << "woken after the source was destroyed"; }).ok());
    {
      std::lock_guard<std::mutex> l(state->mu);
      state->buffer.push_back(Make("a"));
    }
  }
  std::lock_guard<std::mutex> l(state->mu);
  EXPECT_TRUE(state->stopped);
  EXPECT_TRUE(state->buffer.empty());
  EXPECT_FALSE(static_cast<bool>(state->wake));
}

}  // namespace
}  // namespace foxworker
