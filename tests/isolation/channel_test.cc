// The channel between the daemon and a child (daemon/isolation/wire.h) over
// a real socketpair: frames arrive whole and in order, and the daemon's end
// (write_behind) never blocks a sender on a peer that does not read.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>

#include "daemon/isolation/wire.h"

namespace foxworker::isolation {
namespace {

struct Pair {
  Pair() {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    daemon_end = std::make_unique<Channel>(sv[0], /*write_behind=*/true);
    child_end = std::make_unique<Channel>(sv[1]);
  }
  std::unique_ptr<Channel> daemon_end, child_end;
};

std::string Big(char c) { return std::string(3 << 20, c); }  // far over a socket's buffer

TEST(ChannelTest, WriteBehindNeverBlocksASenderWhenThePeerDoesNotRead) {
  Pair p;
  // Nobody reads yet: without write-behind the first Send would block.
  auto sends = std::async(std::launch::async, [&] {
    for (char c : {'a', 'b', 'c'})
      if (!p.daemon_end->Send(FrameType::kRun, Big(c)).ok()) return false;
    p.daemon_end->Queue(FrameType::kCancel, "small");
    return p.daemon_end->Flush().ok();
  });
  const bool returned = sends.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  EXPECT_TRUE(returned) << "a Send blocked on a peer that does not read";
  // Now the peer reads: every frame, whole and in order.
  for (char c : {'a', 'b', 'c'}) {
    FrameType type;
    std::string body;
    ASSERT_TRUE(p.child_end->Receive(&type, &body).ok());
    EXPECT_EQ(type, FrameType::kRun);
    EXPECT_EQ(body, Big(c));
  }
  FrameType type;
  std::string body;
  ASSERT_TRUE(p.child_end->Receive(&type, &body).ok());
  EXPECT_EQ(type, FrameType::kCancel);
  EXPECT_EQ(body, "small");
  EXPECT_TRUE(sends.get());
  // The writer thread is idle again: the next frame leaves at once.
  ASSERT_TRUE(p.daemon_end->Send(FrameType::kShutdown, "").ok());
  ASSERT_TRUE(p.child_end->Receive(&type, &body).ok());
  EXPECT_EQ(type, FrameType::kShutdown);
}

TEST(ChannelTest, ClosingWhileTheWriterIsBlockedReturnsAndThePeerSeesTheEnd) {
  Pair p;
  ASSERT_TRUE(p.daemon_end->Send(FrameType::kRun, Big('x')).ok());
  auto closed = std::async(std::launch::async, [&] { p.daemon_end.reset(); });
  EXPECT_EQ(closed.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  FrameType type;
  std::string body;
  EXPECT_FALSE(p.child_end->Receive(&type, &body).ok());  // cut off, not a frame
}

TEST(ChannelTest, AFailedWriteBehindBreaksTheChannel) {
  Pair p;
  ASSERT_TRUE(p.daemon_end->Send(FrameType::kRun, Big('x')).ok());
  p.child_end.reset();  // the child is gone: the blocked write fails
  Status s = Status::Ok();
  for (int i = 0; i < 200 && s.ok(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    s = p.daemon_end->Send(FrameType::kCancel, "x");
  }
  EXPECT_EQ(s.code(), Status::Code::kUnavailable) << s.message();
}

}  // namespace
}  // namespace foxworker::isolation
