// The running journal (core/running_journal.h): what a daemon killed in the
// middle of its handlers leaves behind, and when that is proof.
#include "daemon/core/running_journal.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "daemon/core/running_job.h"

namespace foxworker {
namespace {

class RunningJournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("foxworker_journal_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "_" +
            std::to_string(getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / RunningJournal::kFileName).string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Runs `body` on a fresh journal in a child process that then dies of
  // SIGKILL: nothing is flushed, closed or unlocked by the process itself.
  void InKilledChild(const std::function<void(RunningJournal&)>& body) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto j = RunningJournal::Open(path_);
      if (!j.ok()) _exit(2);
      (*j)->Reset();
      body(**j);
      raise(SIGKILL);
      _exit(3);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  }

  std::unique_ptr<RunningJournal> Reopen() {
    auto j = RunningJournal::Open(path_);
    EXPECT_TRUE(j.ok()) << j.status().message();
    return j.ok() ? std::move(*j) : nullptr;
  }

  // Overwrites `n` bytes at `offset` of the file.
  void Poke(size_t offset, const void* bytes, size_t n) {
    std::fstream f(path_, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(offset));
    f.write(static_cast<const char*>(bytes), static_cast<std::streamsize>(n));
  }

  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(RunningJournalTest, AKilledWritersRunningMessagesAndOwnersAreRead) {
  InKilledChild([](RunningJournal& j) {
    j.RecordOwner("local", "host:123:abcd");
    j.RecordOwner("r", "host:123");
    j.Begin("jobs", "17");
    const int done = j.Begin("jobs", "18");
    j.Begin("other", "1700000000000-0");
    j.End(done);  // returned before the crash
  });
  auto j = Reopen();
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->problem(), "");
  ASSERT_NE(j->previous(), nullptr);
  const RunningJournalEvidence& ev = *j->previous();
  EXPECT_GT(ev.pid, 0u);
  EXPECT_NE(ev.pid, static_cast<uint32_t>(getpid()));
  EXPECT_TRUE(ev.WasRunning("17"));
  EXPECT_FALSE(ev.WasRunning("18"));
  EXPECT_FALSE(ev.WasRunning("19"));
  EXPECT_TRUE(ev.WasRunning("1700000000000-0"));
  ASSERT_NE(ev.OwnerOf("local"), nullptr);
  EXPECT_EQ(*ev.OwnerOf("local"), "host:123:abcd");
  ASSERT_NE(ev.OwnerOf("r"), nullptr);
  EXPECT_EQ(*ev.OwnerOf("r"), "host:123");
  EXPECT_EQ(ev.OwnerOf("rabbit"), nullptr);
  EXPECT_EQ(ev.running.size(), 2u);

  // Reset: this daemon's journal starts empty, and says so after a crash.
  j->Reset();
  j.reset();
  auto again = Reopen();
  ASSERT_NE(again->previous(), nullptr);
  EXPECT_TRUE(again->previous()->running.empty());
  EXPECT_TRUE(again->previous()->owners.empty());
}

TEST_F(RunningJournalTest, ANewFileIsNoProofAndNoProblem) {
  auto j = Reopen();
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->previous(), nullptr);
  EXPECT_EQ(j->problem(), "");
}

TEST_F(RunningJournalTest, GarbageIsIgnoredWithAReason) {
  {
    // Right size, random content.
    std::mt19937 rng(7);
    std::ofstream out(path_, std::ios::binary);
    for (size_t i = 0; i < 4096 + RunningJournal::kEntries * 128; ++i)
      out.put(static_cast<char>(rng()));
  }
  auto j = Reopen();
  EXPECT_EQ(j->previous(), nullptr);
  EXPECT_NE(j->problem().find("magic"), std::string::npos) << j->problem();
}

TEST_F(RunningJournalTest, ATornFileIsIgnoredWithAReason) {
  InKilledChild([](RunningJournal& j) { j.Begin("jobs", "1"); });
  std::filesystem::resize_file(path_, 4096 + 100);
  auto j = Reopen();
  EXPECT_EQ(j->previous(), nullptr);
  EXPECT_NE(j->problem().find("torn"), std::string::npos) << j->problem();
  // And usable again: the file is sized anew.
  j->Reset();
  EXPECT_GE(j->Begin("jobs", "2"), 0);
}

TEST_F(RunningJournalTest, ACorruptedEntryMakesTheWholeJournalNoProof) {
  InKilledChild([](RunningJournal& j) {
    j.RecordOwner("local", "o");
    j.Begin("jobs", "1");
  });
  // The first entry's id text (header 4096, then state, checksum, hash, queue[48]).
  Poke(4096 + 16 + 48, "X", 1);
  auto j = Reopen();
  EXPECT_EQ(j->previous(), nullptr);
  EXPECT_NE(j->problem().find("corrupted"), std::string::npos) << j->problem();
}

TEST_F(RunningJournalTest, AnotherBootIsNoProof) {
  InKilledChild([](RunningJournal& j) { j.RecordOwner("local", "o"); });
  // Another boot id, with a header checksum that matches it (FNV-1a over
  // the 80 bytes before the checksum), as a journal from before a power
  // loss would have.
  char header[80];
  {
    std::ifstream in(path_, std::ios::binary);
    in.read(header, sizeof(header));
  }
  std::memcpy(header + 40, "00000000-0000-0000-0000-000000000000", 36);
  uint32_t h = 2166136261u;
  for (char c : header) h = (h ^ static_cast<unsigned char>(c)) * 16777619u;
  Poke(0, header, sizeof(header));
  Poke(80, &h, sizeof(h));
  auto j = Reopen();
  EXPECT_EQ(j->previous(), nullptr);
  EXPECT_NE(j->problem().find("machine restarted"), std::string::npos) << j->problem();
}

TEST_F(RunningJournalTest, AnOverflowMakesItNoProof) {
  InKilledChild([](RunningJournal& j) {
    for (size_t i = 0; i < RunningJournal::kEntries; ++i) {
      if (j.Begin("jobs", std::to_string(i)) < 0) _exit(4);
    }
    if (j.Begin("jobs", "one too many") != -1) _exit(5);
  });
  auto j = Reopen();
  EXPECT_EQ(j->previous(), nullptr);
  EXPECT_NE(j->problem().find("more handlers ran at once"), std::string::npos) << j->problem();
}

TEST_F(RunningJournalTest, ALiveDaemonsJournalCannotBeOpened) {
  auto first = Reopen();
  ASSERT_NE(first, nullptr);
  auto second = RunningJournal::Open(path_);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("locked by another running daemon"), std::string::npos)
      << second.status().message();
}

TEST_F(RunningJournalTest, RunningJobScopesWriteTheInstalledJournal) {
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto j = RunningJournal::Open(path_);
    if (!j.ok()) _exit(2);
    (*j)->Reset();
    RunningJournal::Install(std::move(*j));
    { RunningJobScope done("jobs", "plugin t", "h", "1", 1); }
    std::vector<std::unique_ptr<Delivery>> batch;
    std::vector<Delivery*> ds;
    for (const char* id : {"2", "3"}) {
      batch.push_back(std::make_unique<Delivery>());
      batch.back()->msg.id = id;
      ds.push_back(batch.back().get());
    }
    RunningJobScope single("jobs", "plugin t", "h", "4", 1);
    RunningJobScope batched("jobs", "plugin t", "hb", "2 and 1 more", 1, ds);
    raise(SIGKILL);
    _exit(3);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << status;
  auto j = Reopen();
  ASSERT_NE(j->previous(), nullptr) << j->problem();
  const RunningJournalEvidence& ev = *j->previous();
  EXPECT_FALSE(ev.WasRunning("1"));
  EXPECT_TRUE(ev.WasRunning("2"));
  EXPECT_TRUE(ev.WasRunning("3"));
  EXPECT_TRUE(ev.WasRunning("4"));
  EXPECT_FALSE(ev.WasRunning("2 and 1 more"));
}

// A deferred delivery keeps its record past the handler call until it is
// settled (destroyed) or reset for reuse.
TEST_F(RunningJournalTest, ADeferredDeliveryHoldsItsRecordUntilSettled) {
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto j = RunningJournal::Open(path_);
    if (!j.ok()) _exit(2);
    (*j)->Reset();
    RunningJournal::Install(std::move(*j));
    auto waiting = std::make_unique<Delivery>();
    auto settled = std::make_unique<Delivery>();
    auto reused = std::make_unique<Delivery>();
    {
      RunningJobScope call("jobs", "plugin t", "h", "waiting", 1);
      call.KeepIn(waiting->journal_hold);
    }
    {
      RunningJobScope call("jobs", "plugin t", "h", "settled", 1);
      call.KeepIn(settled->journal_hold);
    }
    {
      RunningJobScope call("jobs", "plugin t", "h", "reused", 1);
      call.KeepIn(reused->journal_hold);
    }
    settled.reset();
    reused->ResetState();
    raise(SIGKILL);
    _exit(3);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << status;
  auto j = Reopen();
  ASSERT_NE(j->previous(), nullptr) << j->problem();
  EXPECT_TRUE(j->previous()->WasRunning("waiting"));
  EXPECT_FALSE(j->previous()->WasRunning("settled"));
  EXPECT_FALSE(j->previous()->WasRunning("reused"));
}

TEST_F(RunningJournalTest, AfterUninstallLateEndsLeaveTheFileAlone) {
  auto j = Reopen();
  j->Reset();
  RunningJournal::Install(std::move(j));
  auto* scope = new RunningJobScope("jobs", "plugin t", "h", "abandoned", 1);
  RunningJournal::Uninstall();
  delete scope;  // a handler that returned after the daemon's shutdown
  EXPECT_EQ(RunningJournal::Current(), nullptr);
  // The file still says it was running; the lock is free for the next daemon.
  auto next = Reopen();
  ASSERT_NE(next, nullptr);
  ASSERT_NE(next->previous(), nullptr) << next->problem();
  EXPECT_TRUE(next->previous()->WasRunning("abandoned"));
}

}  // namespace
}  // namespace foxworker
