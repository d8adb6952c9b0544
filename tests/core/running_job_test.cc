// The record of what each handler thread runs (daemon/core/running_job.h).
#include "daemon/core/running_job.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

namespace foxworker {
namespace {

TEST(RunningJobTest, AScopeIsVisibleWhileItLivesOnItsThreadAndToOthers) {
  EXPECT_EQ(CurrentRunningJob(), nullptr);
  {
    RunningJobScope scope("emails", "plugin mailer", "send", "m-42", 3);
    const RunningJob* mine = CurrentRunningJob();
    ASSERT_NE(mine, nullptr);
    EXPECT_STREQ(mine->queue, "emails");
    EXPECT_STREQ(mine->provider, "plugin mailer");
    EXPECT_STREQ(mine->handler, "send");
    EXPECT_STREQ(mine->message_id, "m-42");
    EXPECT_EQ(mine->attempt, 3u);

    std::mutex mu;
    std::condition_variable cv;
    bool started = false, done = false;
    std::thread other([&] {
      RunningJobScope theirs("images", "plugin resizer", "resize", "m-7", 1);
      std::unique_lock<std::mutex> lock(mu);
      started = true;
      cv.notify_all();
      cv.wait(lock, [&] { return done; });
    });
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return started; });
    }
    EXPECT_EQ(RunningJobs().size(), 2u);
    auto images = RunningJobs("images");
    ASSERT_EQ(images.size(), 1u);
    EXPECT_EQ(images[0].message_id, "m-7");
    EXPECT_EQ(images[0].handler, "resize");
    EXPECT_NE(images[0].thread_id, mine->thread_id);
    {
      std::lock_guard<std::mutex> lock(mu);
      done = true;
    }
    cv.notify_all();
    other.join();
    EXPECT_EQ(RunningJobs("images").size(), 0u);
  }
  EXPECT_EQ(CurrentRunningJob(), nullptr);
  EXPECT_TRUE(RunningJobs().empty());
}

TEST(RunningJobTest, LongTextIsCutToFit) {
  const std::string id(500, 'x');
  RunningJobScope scope("q", "p", "h", id, 1);
  EXPECT_EQ(std::string(CurrentRunningJob()->message_id), std::string(RunningJob::kTextCap - 1, 'x'));
}

}  // namespace
}  // namespace foxworker
