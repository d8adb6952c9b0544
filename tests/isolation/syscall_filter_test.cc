// isolation: process with a syscall filter (process: syscall_filter,
// syscall_deny, syscall_action): the test plugin's `syscall` handler makes
// the call its payload names in a foxworker-child, and reports what it got.
// With errno the handler sees EPERM and decides; with kill its child dies of
// SIGSYS and exactly its message is charged, naming the call; without a
// filter nothing is denied by us. The child's own runtime (its log, channel,
// threads, metrics, publish) keeps working under the filter.
#include <glog/logging.h>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "daemon/app/admin/admin_render.h"
#include "daemon/config/config_parser.h"
#include "daemon/config/syscalls.h"
#include "daemon/isolation/syscall_filter.h"
#include "tests/core/test_daemon.h"
#include "tests/isolation/isolation_fixture.h"
#include "tests/support/log_capture.h"

namespace foxworker::testing {
namespace {

using isolation::DenialNote;
using isolation::DescribeDenial;
using isolation::FilterSpecOf;
using isolation::InstallSyscallFilter;
using isolation::SyscallFilterSpec;

class SyscallFilterTest : public IsolationFixture {
 protected:
  // Queue `jobs` with `process:` holding `process_keys` (indented by six).
  void Start(int concurrency, const std::string& process_keys, const std::string& more = "") {
    StartYaml("  jobs:\n    backend: b\n    plugin: test\n    retry_policy: quick\n"
              "    isolation: process\n    concurrency: " + std::to_string(concurrency) + "\n" +
              (process_keys.empty() ? "" : "    process:\n" + process_keys) + more);
  }

  void Enqueue(const std::string& type, const std::string& payload = "", int n = 1) {
    for (int i = 0; i < n; ++i)
      ASSERT_TRUE(
          daemon_->FindBackend("b")->Enqueue("jobs", TypedMessage(type, payload), Duration{0}).ok());
  }

  Consumer& C() { return *daemon_->FindConsumer("jobs"); }

  // The dead letters' reasons, sorted.
  std::vector<std::string> Reasons() {
    std::vector<std::string> out;
    for (const DeadLetter& d : DeadLetters()) out.push_back(d.reason);
    std::sort(out.begin(), out.end());
    return out;
  }

  uint64_t Crashes() {
    uint64_t n = 0;
    for (const HandlerChild& h : C().Children().children) n += h.crashes;
    return n;
  }
};

constexpr char kEperm[] = ": EPERM (Operation not permitted)";

TEST_P(SyscallFilterTest, WithErrnoTheDeniedCallFailsAndTheHandlerDecides) {
  LogCapture log;
  Start(2, "      syscall_filter: default\n",
        "  out:\n    backend: b\n    source: out-source\n    plugin: test\n    handler: ok\n");
  std::vector<std::string> denied = {"ptrace", "unshare", "mount", "clone_newuser"};
#if defined(__x86_64__)
  denied.push_back("x32");  // the x32 ABI, denied whatever its number
#endif
  for (const std::string& call : denied) Enqueue("syscall", call);
  // Allowed: and threads and programs still start (clone3 answers ENOSYS,
  // the C library falls back to clone).
  for (const char* call : {"socket", "thread", "spawn"}) Enqueue("syscall", call);
  // The child's runtime: deferred completion from a thread of its own, the
  // log over the channel, metrics, publish.
  Enqueue("ok", "", 10);
  Enqueue("defer", "", 5);
  Enqueue("print", "hello from a filtered child");
  Enqueue("count", "3", 4);
  Enqueue("publish", "out", 2);
  const uint64_t allowed = 3 + 10 + 5 + 1 + 4 + 2;
  ASSERT_TRUE(WaitFor([&] { return C().Stats().acked == allowed && DeadLetters().size() == denied.size(); },
                      std::chrono::seconds(30)))
      << C().Stats().acked << " acked, " << DeadLetters().size() << " dead";
  // A rejection of the handler's, once each: nothing crashed, nothing retried.
  std::vector<std::string> expected;
  for (const std::string& call : denied) expected.push_back(call + kEperm);
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(Reasons(), expected);
  for (const DeadLetter& d : DeadLetters()) EXPECT_EQ(d.attempt, 1u) << d.reason;
  EXPECT_EQ(C().Stats().retried, 0u);
  EXPECT_EQ(Crashes(), 0u);
  Consumer& out = *daemon_->FindConsumer("out");
  ASSERT_TRUE(WaitFor([&] { return out.Stats().acked == 2; }));
  ASSERT_TRUE(WaitFor([&] { return log.Has("[plugin test] hello from a filtered child"); }));
  ASSERT_TRUE(WaitFor([&] {
    return RenderMetrics(*daemon_, std::chrono::system_clock::now())
               .find("\nfoxworker_plugin_test_count_last 3\n") != std::string::npos;
  }));
}

TEST_P(SyscallFilterTest, WithKillTheChildDiesAndOnlyTheCallersMessageIsCharged) {
  LogCapture log;
  Start(2, "      syscall_filter: default\n      syscall_action: kill\n");
  Enqueue("sleep", "20", 10);
  Enqueue("syscall", "ptrace");
  Enqueue("sleep", "20", 10);
  for (const char* call : {"socket", "thread", "spawn"}) Enqueue("syscall", call);
  ASSERT_TRUE(WaitFor([&] { return C().Stats().acked == 23 && DeadLetters().size() == 1; },
                      std::chrono::seconds(30)))
      << C().Stats().acked << " acked, " << DeadLetters().size() << " dead";
  const auto dead = DeadLetters();
  EXPECT_EQ(dead[0].attempt, 3u);
  EXPECT_NE(dead[0].reason.find("handler crashed: SIGSYS (syscall_filter denied ptrace) in plugin "
                                "test, handler syscall (child pid "),
            std::string::npos)
      << dead[0].reason;
  // Three attempts of the caller, each a crash of its child; nothing else.
  EXPECT_EQ(C().Stats().retried, 2u);
  EXPECT_EQ(Crashes(), 3u);
  EXPECT_EQ(log.Matching(google::GLOG_WARNING,
                         "ended (SIGSYS (syscall_filter denied ptrace)) with 1 message(s) running")
                .size(),
            3u);
}

TEST_P(SyscallFilterTest, WithKillTheOtherMessagesOfTheChildAreToldWhy) {
  // One child, two messages at once: the call kills both.
  Start(2, "      processes: 1\n      syscall_filter: default\n      syscall_action: kill\n");
  Enqueue("sleep", "1000");
  Enqueue("syscall", "unshare");
  // Charged together, retried together into the restarted child: both are
  // dead after their three attempts.
  ASSERT_TRUE(WaitFor([&] { return DeadLetters().size() == 2; }, std::chrono::seconds(30)))
      << DeadLetters().size() << " dead";
  const std::vector<std::string> reasons = Reasons();
  EXPECT_NE(reasons[0].find("handler crashed: SIGSYS (syscall_filter denied unshare in the "
                            "handler of another message of the child) in plugin test, handler "
                            "sleep (child pid "),
            std::string::npos)
      << reasons[0];
  EXPECT_NE(reasons[1].find("handler crashed: SIGSYS (syscall_filter denied unshare) in plugin "
                            "test, handler syscall (child pid "),
            std::string::npos)
      << reasons[1];
}

TEST_P(SyscallFilterTest, ADenyListAloneDeniesItsCallsOnly) {
  Start(2, "      syscall_deny: [socket]\n");
  for (const char* call : {"socket", "ptrace", "unshare", "thread", "spawn"})
    Enqueue("syscall", call);
  ASSERT_TRUE(WaitFor([&] { return C().Stats().acked == 3 && DeadLetters().size() == 2; },
                      std::chrono::seconds(30)))
      << C().Stats().acked << " acked, " << DeadLetters().size() << " dead";
  // ptrace is not denied: it fails as it does unfiltered (not a tracee).
  EXPECT_EQ(Reasons(), (std::vector<std::string>{"ptrace: ESRCH (No such process)",
                                                 std::string("socket") + kEperm}));
}

TEST_P(SyscallFilterTest, WithoutAFilterNothingIsDeniedByUs) {
  Start(2, "");
  for (const char* call : {"socket", "unshare", "thread", "spawn", "ptrace"})
    Enqueue("syscall", call);
  ASSERT_TRUE(WaitFor([&] { return C().Stats().acked == 4 && DeadLetters().size() == 1; },
                      std::chrono::seconds(30)))
      << C().Stats().acked << " acked, " << DeadLetters().size() << " dead";
  EXPECT_EQ(Reasons(), std::vector<std::string>{"ptrace: ESRCH (No such process)"});
}

// FOXW_TEST_CTOR_UNSHARE for the test plugin's constructor, while it exists.
class CtorRecord {
 public:
  explicit CtorRecord(std::string path) : path_(std::move(path)) {
    setenv("FOXW_TEST_CTOR_UNSHARE", path_.c_str(), 1);
  }
  ~CtorRecord() { unsetenv("FOXW_TEST_CTOR_UNSHARE"); }
  // What the constructors of other processes (the children) got.
  std::vector<std::string> ChildResults() const {
    std::vector<std::string> out;
    std::ifstream in(path_);
    int pid = 0;
    std::string result;
    while (in >> pid >> result)
      if (pid != getpid()) out.push_back(result);
    return out;
  }

 private:
  std::string path_;
};

TEST_P(SyscallFilterTest, ThePluginsConstructorsRunUnderTheFilter) {
  CtorRecord record((dir_ / "ctor").string());
  Start(2, "      syscall_filter: default\n");
  Enqueue("ok");
  ASSERT_TRUE(WaitFor([&] { return C().Stats().acked == 1; }));
  // Both children loaded the plugin with the filter already on.
  EXPECT_EQ(record.ChildResults(), (std::vector<std::string>{"EPERM", "EPERM"}));
}

TEST_P(SyscallFilterTest, AChildKilledWhileItLoadsThePluginNamesTheCall) {
  CtorRecord record((dir_ / "ctor").string());
  auto config = ParseConfigString(
      CommonYaml() + "queues:\n  jobs:\n    backend: b\n    plugin: test\n"
                     "    isolation: process\n    process:\n      syscall_filter: default\n"
                     "      syscall_action: kill\n",
      "test.yaml", "/tmp");
  ASSERT_TRUE(config.ok()) << config.status().message();
  daemon_ = std::make_unique<Supervisor>(std::move(*config));
  Status s = daemon_->Start();
  ASSERT_FALSE(s.ok());
  // (The constructor's call: the filter was on before dlopen.)
  EXPECT_NE(s.message().find("for plugin test: died of SIGSYS while loading the plugin "
                             "(syscall_filter denied unshare)"),
            std::string::npos)
      << s.message();
}

INSTANTIATE_TEST_SUITE_P(Backends, SyscallFilterTest, ::testing::Values("memory", "local"),
                         [](const auto& info) { return info.param; });

// ---- config

const std::string kBase =
    "plugins:\n  test:\n    path: /p.so\nbackends:\n  b:\n    type: memory\n"
    "queues:\n  jobs:\n    backend: b\n    plugin: test\n    isolation: process\n    process:\n";

std::string ConfigError(const std::string& process_keys) {
  auto c = ParseConfigString(kBase + process_keys, "t.yaml", "/tmp");
  return c.ok() ? "(no error)" : c.status().message();
}

TEST(SyscallFilterConfigTest, UnknownAndNeededNamesAreErrorsAtTheirPlace) {
  EXPECT_EQ(ConfigError("      syscall_deny: [socket, sockett]\n"),
            "t.yaml:13:30: queues.jobs.process.syscall_deny[1]: no system call \"sockett\" on " +
                std::string(SyscallFilterArch()) + " (did you mean \"socket\"?)");
  EXPECT_EQ(ConfigError("      syscall_deny:\n        - connect\n        - futex\n"),
            "t.yaml:15:11: queues.jobs.process.syscall_deny[1]: cannot deny futex: "
            "foxworker-child itself needs it (its channel, threads, memory or signals, or "
            "loading the plugin)");
  EXPECT_EQ(ConfigError("      syscall_deny: socket\n"),
            "t.yaml:13:21: queues.jobs.process.syscall_deny: expected a sequence of system call "
            "names ([socket, connect]), got a scalar");
  EXPECT_EQ(ConfigError("      syscall_filter: strict\n"),
            "t.yaml:13:23: queues.jobs.process.syscall_filter: invalid syscall filter \"strict\": "
            "expected none or default");
  EXPECT_EQ(ConfigError("      syscall_action: trap\n"),
            "t.yaml:13:23: queues.jobs.process.syscall_action: invalid syscall action \"trap\": "
            "expected errno or kill");
}

TEST(SyscallFilterConfigTest, AFilterNeedsNoNewPrivs) {
  EXPECT_EQ(ConfigError("      syscall_filter: default\n      no_new_privs: false\n"),
            "t.yaml:14:21: queues.jobs.process.no_new_privs: must be true with a syscall filter "
            "(queues.jobs.process.syscall_filter at t.yaml:13:7): the kernel installs a filter "
            "only under no_new_privs");
  EXPECT_NE(ConfigError("      no_new_privs: false\n      syscall_deny: [bpf]\n"), "(no error)");
  // Without a filter no_new_privs may be off, whatever the action says.
  EXPECT_EQ(ConfigError("      no_new_privs: false\n      syscall_action: kill\n"), "(no error)");
}

TEST(SyscallFilterConfigTest, TheEffectiveConfigPrintsAndLoadsBack) {
  // (processes written out: the printed config says how many it made.)
  auto c = ParseConfigString(kBase + "      processes: 1\n      syscall_filter: default\n"
                                     "      syscall_deny: [socket, connect, socket]\n"
                                     "      syscall_action: kill\n",
                             "t.yaml", "/tmp");
  ASSERT_TRUE(c.ok()) << c.status().message();
  const ProcessIsolationConfig& p = c->queues[0].process;
  EXPECT_EQ(p.syscall_filter, SyscallFilter::kDefault);
  EXPECT_EQ(p.syscall_deny, (std::vector<std::string>{"socket", "connect"}));
  EXPECT_EQ(p.syscall_action, SyscallAction::kKill);
  const std::string text = FormatConfig(*c);
  EXPECT_NE(text.find("      syscall_filter: default\n      syscall_deny: [socket, connect]\n"
                      "      syscall_action: kill\n"),
            std::string::npos)
      << text;
  auto again = ParseConfigString(text, "printed.yaml", "/tmp");
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->queues[0].process, p);
  // Off, printed as such.
  auto off = ParseConfigString(kBase + "      processes: 1\n", "t.yaml", "/tmp");
  ASSERT_TRUE(off.ok()) << off.status().message();
  EXPECT_NE(FormatConfig(*off).find("      syscall_filter: none\n      syscall_deny: []\n"
                                    "      syscall_action: errno\n"),
            std::string::npos);
  auto off_again = ParseConfigString(FormatConfig(*off), "printed.yaml", "/tmp");
  ASSERT_TRUE(off_again.ok()) << off_again.status().message();
  EXPECT_EQ(off_again->queues[0].process, off->queues[0].process);
}

// ---- the pieces

TEST(SyscallFilterUnitTest, NamesAndNumbers) {
  EXPECT_EQ(SyscallNumber("ptrace"), SYS_ptrace);
  EXPECT_EQ(SyscallNumber("clone3"), SYS_clone3);
  EXPECT_EQ(SyscallNumber("no_such_call"), std::nullopt);
  EXPECT_EQ(SyscallName(SYS_socket), "socket");
  EXPECT_EQ(SyscallName(-5), "");
  // Every name of the default list that this architecture has resolves,
  // and the lists never meet.
  size_t resolved = 0;
  for (std::string_view name : DefaultDeniedSyscalls()) {
    resolved += SyscallNumber(name).has_value();
    for (std::string_view needed : SyscallsTheChildNeeds()) EXPECT_NE(name, needed);
  }
  EXPECT_GE(resolved, DefaultDeniedSyscalls().size() - 4);
  for (std::string_view needed : SyscallsTheChildNeeds())
    if (needed != "open") {
      EXPECT_TRUE(SyscallNumber(needed).has_value()) << needed;  // no typos
    }
}

TEST(SyscallFilterUnitTest, TheSpecOfAConfig) {
  ProcessIsolationConfig pc;
  EXPECT_FALSE(FilterSpecOf(pc).on);
  pc.syscall_action = SyscallAction::kKill;
  EXPECT_EQ(FilterSpecOf(pc), SyscallFilterSpec{});  // the action alone turns nothing on
  pc.syscall_deny = {"socket"};
  SyscallFilterSpec spec = FilterSpecOf(pc);
  EXPECT_TRUE(spec.on && spec.kill && !spec.namespaces);
  EXPECT_EQ(spec.deny, std::vector<uint32_t>{SYS_socket});
  pc.syscall_filter = SyscallFilter::kDefault;
  pc.syscall_deny = {"socket", "ptrace"};
  spec = FilterSpecOf(pc);
  EXPECT_TRUE(spec.namespaces);
  EXPECT_TRUE(std::is_sorted(spec.deny.begin(), spec.deny.end()));
  EXPECT_EQ(std::count(spec.deny.begin(), spec.deny.end(), SYS_ptrace), 1);
  EXPECT_EQ(std::count(spec.deny.begin(), spec.deny.end(), SYS_socket), 1);
  // And it crosses the INIT frame whole.
  isolation::Writer w;
  WriteFilterSpec(w, spec);
  isolation::Reader r(w.body());
  SyscallFilterSpec read;
  ASSERT_TRUE(ReadFilterSpec(r, &read));
  EXPECT_EQ(read, spec);
}

// Runs `body` in a forked child under no_new_privs; its wait status.
template <typename F>
int InAChild(F body) {
  const pid_t pid = fork();
  if (pid == 0) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) _exit(90);
    _exit(body());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

// InstallSyscallFilter, its error on standard error.
bool Installed(const SyscallFilterSpec& spec, int note_fd) {
  Status s = InstallSyscallFilter(spec, note_fd);
  if (!s.ok()) fprintf(stderr, "%s\n", s.message().c_str());
  return s.ok();
}

SyscallFilterSpec DenySocket(bool kill) {
  SyscallFilterSpec spec;
  spec.on = true;
  spec.kill = kill;
  spec.deny = {SYS_socket};
  return spec;
}

TEST(SyscallFilterUnitTest, WithErrnoADeniedCallFailsWithEperm) {
  const int status = InAChild([] {
    if (!Installed(DenySocket(false), -1)) return 91;
    if (socket(AF_UNIX, SOCK_DGRAM, 0) >= 0 || errno != EPERM) return 92;
    return getpid() > 0 ? 0 : 93;  // what is not listed still works
  });
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(SyscallFilterUnitTest, WithKillTheProcessDiesOfSigsysAndNotesTheCall) {
  int note[2];
  ASSERT_EQ(pipe2(note, O_CLOEXEC | O_NONBLOCK), 0);
  const int status = InAChild([&] {
    if (!Installed(DenySocket(true), note[1])) return 91;
    isolation::SetFilteredJob(42);
    (void)socket(AF_UNIX, SOCK_DGRAM, 0);
    return 92;  // not reached
  });
  close(note[1]);
  ASSERT_TRUE(WIFSIGNALED(status)) << status;
  EXPECT_EQ(WTERMSIG(status), SIGSYS);
  // pid: the one that made the call, the child's.
  int got = 0;
  DenialNote n;
  while (read(note[0], &n, sizeof n) == static_cast<ssize_t>(sizeof n)) ++got;
  close(note[0]);
  ASSERT_EQ(got, 1);
  EXPECT_EQ(n.nr, SYS_socket);
  EXPECT_EQ(n.job, 42u);
  EXPECT_EQ(DescribeDenial(n), "syscall_filter denied socket");
}

TEST(SyscallFilterUnitTest, WhenSeccompItselfIsDeniedPrctlInstallsTheFilter) {
#if defined(__SANITIZE_THREAD__)
  // TSan starts its background thread again in a forked child: with two
  // threads the fallback refuses (rightly: prctl filters one thread).
  GTEST_SKIP() << "a forked child has ThreadSanitizer's thread too";
#endif
  // As under the shipped unit, whose SystemCallFilter leaves seccomp(2) out.
  const int status = InAChild([] {
    SyscallFilterSpec outer;
    outer.on = true;
    outer.deny = {SYS_seccomp};
    std::vector<sock_filter> program = isolation::BuildFilterProgram(outer);
    sock_fprog prog{static_cast<unsigned short>(program.size()), program.data()};
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) return 94;
    if (!Installed(DenySocket(false), -1)) return 91;
    if (socket(AF_UNIX, SOCK_DGRAM, 0) >= 0 || errno != EPERM) return 92;
    return 0;
  });
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(SyscallFilterUnitTest, DenialsAreDescribed) {
  DenialNote note;
#if defined(__x86_64__)
  note.arch = AUDIT_ARCH_X86_64;
  note.nr = SYS_ptrace;
  EXPECT_EQ(DescribeDenial(note), "syscall_filter denied ptrace");
  note.nr = 0x40000000 | SYS_getpid;
  EXPECT_EQ(DescribeDenial(note),
            "syscall_filter denied an x32 call (x32 system call " + std::to_string(SYS_getpid) + ")");
  note.arch = AUDIT_ARCH_I386;
  note.nr = 20;
  EXPECT_EQ(DescribeDenial(note),
            "syscall_filter denied a call of another ABI (i386 system call 20)");
#elif defined(__aarch64__)
  note.arch = AUDIT_ARCH_AARCH64;
  note.nr = SYS_ptrace;
  EXPECT_EQ(DescribeDenial(note), "syscall_filter denied ptrace");
#endif
}

}  // namespace
}  // namespace foxworker::testing
