// The liveness facility (base/liveness.h) and the DaemonWatch that feeds the
// systemd watchdog from it (app/service_notifier.h). Each test uses a
// registry of its own, so the process's threads (timers, backends) play no
// part; times are given explicitly where the check would otherwise race.
#include "daemon/base/liveness.h"

#include <gtest/gtest.h>

#include "tests/support/log_capture.h"

#include <glog/logging.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "daemon/app/service_notifier.h"
#include "daemon/base/clock.h"
#include "daemon/core/running_job.h"

namespace foxworker {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
constexpr uint64_t kMs = 1'000'000;

TEST(LivenessRegistryTest, FreshBeatsAreNotStaleOldOnesAreNamedSorted) {
  LivenessRegistry registry;
  Heartbeat b("backend redis r: reader", &registry);
  Heartbeat a("backend local jobs: I/O", &registry);
  EXPECT_EQ(registry.Names(),
            (std::vector<std::string>{"backend local jobs: I/O", "backend redis r: reader"}));
  const uint64_t now = MonotonicNs();
  EXPECT_TRUE(registry.Stale(now, seconds(3)).empty());
  // Four seconds on, neither has beaten since it registered.
  auto stale = registry.Stale(now + 4000 * kMs, seconds(3));
  ASSERT_EQ(stale.size(), 2u);
  EXPECT_EQ(stale[0].name, "backend local jobs: I/O");
  EXPECT_EQ(stale[1].name, "backend redis r: reader");
  EXPECT_GE(stale[0].age, seconds(4));

  // One beats 300 ms later: 2.9 s after that, only the other is late.
  std::this_thread::sleep_for(milliseconds(300));
  a.Beat();
  stale = registry.Stale(MonotonicNs() + 2900 * kMs, seconds(3));
  ASSERT_EQ(stale.size(), 1u);
  EXPECT_EQ(stale[0].name, "backend redis r: reader");
  b.Beat();
  EXPECT_TRUE(registry.Stale(MonotonicNs() + 1000 * kMs, seconds(3)).empty());
}

TEST(LivenessRegistryTest, GraceCoversOneBoundedCall) {
  LivenessRegistry registry;
  Heartbeat h("backend rabbitmq main: I/O", &registry);
  h.Beat(seconds(10));  // entering a broker RPC bounded by 10 s
  const uint64_t now = MonotonicNs();
  EXPECT_TRUE(registry.Stale(now + 12000 * kMs, seconds(3)).empty());
  EXPECT_EQ(registry.Stale(now + 14000 * kMs, seconds(3)).size(), 1u);
  // The next plain beat takes the grace back.
  h.Beat();
  EXPECT_EQ(registry.Stale(MonotonicNs() + 4000 * kMs, seconds(3)).size(), 1u);
}

TEST(LivenessRegistryTest, UnregisteredAndDestroyedHeartbeatsAreNotChecked) {
  LivenessRegistry registry;
  Heartbeat idle;  // never registered: Beat is a no-op
  idle.Beat();
  EXPECT_FALSE(idle.registered());
  {
    Heartbeat gone("timer", &registry);
    EXPECT_EQ(registry.Names().size(), 1u);
  }
  Heartbeat stopped("backend memory m: timer", &registry);
  stopped.Unregister();
  EXPECT_TRUE(registry.Names().empty());
  EXPECT_TRUE(registry.Stale(MonotonicNs() + 3600 * 1000 * kMs, seconds(1)).empty());
}

TEST(LivenessRegistryTest, WaitUntilBeatingBeatsWhileItWaits) {
  LivenessRegistry registry;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::thread waiter([&] {
    Heartbeat h("waiter", &registry);
    std::unique_lock<std::mutex> lock(mu);
    // A long wait (think: reconnect backoff) that still beats every second.
    WaitUntilBeating(cv, lock, std::chrono::steady_clock::now() + seconds(60),
                     [&] { return done; }, h);
  });
  // 2.5 s in, the waiter has beaten within the last period (plus slack for
  // a loaded machine).
  std::this_thread::sleep_for(milliseconds(2500));
  EXPECT_TRUE(registry.Stale(MonotonicNs(), kHeartbeatPeriod + milliseconds(500)).empty());
  {
    std::lock_guard<std::mutex> lock(mu);
    done = true;
  }
  cv.notify_all();
  waiter.join();
  EXPECT_TRUE(registry.Names().empty());
}

TEST(LivenessLimitTest, ConfiguredElseHalfTheWatchdogAtLeastTenSeconds) {
  EXPECT_EQ(LivenessLimit(milliseconds(3000), seconds(30)), milliseconds(3000));
  EXPECT_EQ(LivenessLimit(milliseconds(0), seconds(30)), milliseconds(15000));
  EXPECT_EQ(LivenessLimit(milliseconds(0), seconds(2)), milliseconds(10000));
  EXPECT_EQ(LivenessLimit(milliseconds(0), std::chrono::microseconds(0)), milliseconds(10000));
  EXPECT_EQ(LivenessLimit(milliseconds(0), seconds(300)), milliseconds(150000));
}


TEST(DaemonWatchTest, StopsPingingAndLogsOneErrorNamingTheLateThreadThenRecovers) {
  LogCapture log;
  LivenessRegistry registry;
  DaemonWatch watch(seconds(4), &registry);
  watch.Configure(milliseconds(2000), milliseconds(0));
  EXPECT_EQ(watch.limit(), milliseconds(2000));
  EXPECT_EQ(registry.Names(), std::vector<std::string>{"control loop"});
  Heartbeat io("backend local jobs: I/O", &registry);
  EXPECT_TRUE(watch.Tick());

  // The I/O thread stops beating; the control loop keeps ticking.
  const auto end = std::chrono::steady_clock::now() + milliseconds(3500);
  bool pinged_late = true;
  while (std::chrono::steady_clock::now() < end) {
    pinged_late = watch.Tick();
    std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_FALSE(pinged_late) << "a thread 3.5 s late with a 2 s limit";
  ASSERT_TRUE(log.WaitFor(google::GLOG_ERROR, "not responding"));
  auto errors = log.Matching(google::GLOG_ERROR, "not responding");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("backend local jobs: I/O (last beat"), std::string::npos) << errors[0];
  EXPECT_EQ(errors[0].find("control loop"), std::string::npos) << errors[0];
  EXPECT_NE(errors[0].find("no longer pinging the systemd watchdog"), std::string::npos)
      << errors[0];
  // Still late a while later: still one ERROR.
  std::this_thread::sleep_for(milliseconds(600));
  EXPECT_EQ(log.Matching(google::GLOG_ERROR, "not responding").size(), 1u);

  io.Beat();
  EXPECT_TRUE(watch.Tick());
  ASSERT_TRUE(log.WaitFor(google::GLOG_WARNING, "responding again"));
  EXPECT_NE(log.Matching(google::GLOG_WARNING, "responding again")[0].find(
                "pinging the systemd watchdog again"),
            std::string::npos);
  watch.Stop();
  EXPECT_TRUE(registry.Names() == std::vector<std::string>{"backend local jobs: I/O"});
}

TEST(DaemonWatchTest, AStuckControlLoopIsNamedByTheReporter) {
  LogCapture log;
  LivenessRegistry registry;
  DaemonWatch watch(std::chrono::microseconds(0), &registry);
  watch.Configure(milliseconds(2000), milliseconds(0));
  EXPECT_TRUE(watch.Tick());
  // No Tick() for longer than the limit: the control loop itself is late.
  ASSERT_TRUE(log.WaitFor(google::GLOG_ERROR, "not responding"));
  auto errors = log.Matching(google::GLOG_ERROR, "not responding");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("control loop"), std::string::npos) << errors[0];
  EXPECT_NE(errors[0].find("no systemd watchdog configured"), std::string::npos) << errors[0];
}

TEST(DaemonWatchTest, OneWarningPerHandlerCallPastTheThresholdAndNoError) {
  LogCapture log;
  LivenessRegistry registry;
  DaemonWatch watch(seconds(2), &registry);
  watch.Configure(milliseconds(0), milliseconds(500));
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  auto handler = [&](const char* id) {
    RunningJobScope running("slow", "plugin test", "sleep", id, 1);
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return release; });
  };
  std::thread a(handler, "m-1"), b(handler, "m-2");
  const auto end = std::chrono::steady_clock::now() + milliseconds(2000);
  while (std::chrono::steady_clock::now() < end) {
    EXPECT_TRUE(watch.Tick()) << "a long handler never stops the pings";
    std::this_thread::sleep_for(milliseconds(100));
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  a.join();
  b.join();
  auto warnings = log.Matching(google::GLOG_WARNING, "longer than daemon.long_job_warning");
  ASSERT_EQ(warnings.size(), 2u);
  std::string both = warnings[0] + "\n" + warnings[1];
  EXPECT_NE(both.find("queue slow: handler sleep (plugin test) has been running message m-1 "
                      "(attempt 1) for "),
            std::string::npos)
      << both;
  EXPECT_NE(both.find("message m-2"), std::string::npos) << both;
  EXPECT_TRUE(log.Matching(google::GLOG_ERROR, "").empty());
}

}  // namespace
}  // namespace foxworker
