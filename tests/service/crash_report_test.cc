// The crash report of the real foxworkerd: a handler that segfaults, aborts
// or overflows its stack makes the daemon write which signal hit which
// thread, the plugin, handler, queue, message id and attempt it was running,
// and a backtrace; then the daemon dies of that signal.
#include <sys/resource.h>

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "daemon/backends/local/local_store.h"
#include "tests/service/daemon_run.h"

namespace foxworker::testing {
namespace {

class CrashReportTest : public DaemonRunTest {
 protected:
  void SetUp() override {
    DaemonRunTest::SetUp();
    // The daemon inherits it: no core files from the crashes we cause.
    struct rlimit none = {0, 0};
    setrlimit(RLIMIT_CORE, &none);
  }

  // Runs the daemon on a local queue "jobs" holding two "ok" jobs and then
  // one of type `type`; returns the wait status and sets crash_id_.
  int RunUntilDeath(const std::string& type) {
    const std::string db = Path("jobs.db");
    {
      LocalStoreOptions o;
      o.path = db;
      auto store = LocalStore::Open(o);
      EXPECT_TRUE(store.ok()) << store.status().message();
      if (!store.ok()) return -1;
      for (const std::string t : {"ok", "ok", type.c_str()}) {
        NewJob j;
        j.queue = "jobs";
        j.payload = "0";
        j.props.message_type = t;
        auto r = (*store)->Enqueue(j);
        EXPECT_TRUE(r.ok()) << r.status().message();
        if (r.ok()) crash_id_ = std::to_string(r->id);
      }
    }
    Spawn("plugins:\n  test:\n    path: " + TestPluginPath() +
          "\nbackends:\n  local:\n    type: local\n    path: " + db +
          "\nqueues:\n  jobs:\n    backend: local\n    plugin: test\n    concurrency: 1\n");
    return Wait();
  }

  // Checks the parts every report has.
  void ExpectReport(const std::string& log, const std::string& signal,
                    const std::string& handler) {
    EXPECT_NE(log.find("=== FOXWORKERD CRASH REPORT START"), std::string::npos) << log;
    EXPECT_NE(log.find("foxworkerd crashed: " + signal + " (signal "), std::string::npos) << log;
    EXPECT_NE(log.find("running on this thread: plugin test, handler " + handler +
                       ", queue jobs, message id " + crash_id_ + ", attempt 1, started "),
              std::string::npos)
        << "message " << crash_id_ << "\n" << log;
    EXPECT_NE(log.find("thread "), std::string::npos) << log;
    // backtrace_symbols_fd lines end with "[0xADDRESS]".
    const size_t begin = log.find("backtrace");
    const size_t end = log.find("=== FOXWORKERD CRASH REPORT END: dying of " + signal);
    ASSERT_NE(begin, std::string::npos) << log;
    ASSERT_NE(end, std::string::npos) << log;
    const std::string trace = log.substr(begin, end - begin);
    int frames = 0;
    for (size_t at = trace.find("[0x"); at != std::string::npos; at = trace.find("[0x", at + 1))
      ++frames;
    EXPECT_GE(frames, 4) << trace;
    // The handler's own frame is in the plugin.
    EXPECT_NE(trace.find("libfoxworker_test_plugin.so"), std::string::npos) << trace;
  }

  std::string crash_id_;
};

TEST_F(CrashReportTest, SegfaultInAHandler) {
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer keeps SIGSEGV from a wild access for its own report
  // (and exits 1); the normal build's pass checks ours.
  GTEST_SKIP() << "AddressSanitizer owns SIGSEGV from a bad access";
#endif
  const int status = RunUntilDeath("crash");
  const std::string log = Log();
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV) << Describe(status) << "\n" << log;
  ExpectReport(log, "SIGSEGV", "crash");
  EXPECT_NE(log.find("code SEGV_MAPERR (address not mapped), fault address 0x0"), std::string::npos)
      << log;
  EXPECT_NE(log.find("thread "), std::string::npos) << log;
  EXPECT_NE(log.find(" \"fw-jobs\""), std::string::npos) << "the thread's name (the queue's own pool)\n" << log;
}

TEST_F(CrashReportTest, AbortInAHandler) {
  const int status = RunUntilDeath("abort");
  const std::string log = Log();
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT) << Describe(status) << "\n" << log;
  ExpectReport(log, "SIGABRT", "abort");
  EXPECT_NE(log.find("sent by pid "), std::string::npos) << log;
}

// Reported from the thread's alternate signal stack: its own stack is gone.
TEST_F(CrashReportTest, StackOverflowInAHandler) {
  const int status = RunUntilDeath("overflow");
  const std::string log = Log();
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV) << Describe(status) << "\n" << log;
  ExpectReport(log, "SIGSEGV", "overflow");
}

// A crash on a thread that runs no handler says so.
TEST_F(CrashReportTest, SignalOutsideAHandler) {
  Spawn("plugins:\n  test:\n    path: " + TestPluginPath() +
        "\nbackends:\n  mem:\n    type: memory\n"
        "queues:\n  jobs:\n    backend: mem\n    plugin: test\n");
  ASSERT_TRUE(WaitUntil([&] { return Log().find(" started: ") != std::string::npos; })) << Log();
  ASSERT_EQ(kill(pid_, SIGBUS), 0);
  const int status = Wait();
  const std::string log = Log();
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS) << Describe(status) << "\n" << log;
  EXPECT_NE(log.find("foxworkerd crashed: SIGBUS (signal 7, bus error), sent by pid " +
                     std::to_string(getpid()) + " uid "),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("running on this thread: no handler running on this thread"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("=== FOXWORKERD CRASH REPORT END: dying of SIGBUS"), std::string::npos) << log;
}

}  // namespace
}  // namespace foxworker::testing
