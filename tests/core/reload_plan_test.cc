// ComputeReloadPlan on plain configs and facts: no plugin is loaded and no
// backend made. Every decision Supervisor::Apply takes comes from here.
#include "daemon/app/reload_plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon/backends/memory/memory_config.h"
#include "daemon/config/config_parser.h"

namespace foxworker {
namespace {

using ::testing::ElementsAre;
using Strings = std::vector<std::string>;

// A config with plugin "test" (at `plugin_path`), a memory backend "mem" and
// the queues given.
std::string Yaml(const std::string& queues, const std::string& extra = "",
                 const std::string& daemon = "", const std::string& plugin_path = "/opt/p/test.so",
                 const std::string& plugin_extra = "") {
  return "daemon:\n  worker_threads: 4\n  shutdown_timeout: 5s\n" + daemon +
         "plugins:\n  test:\n    path: " + plugin_path + "\n" + plugin_extra +
         "backends:\n  mem:\n    type: memory\n" + extra + "queues:\n" + queues;
}

const char kJobs[] = "  jobs:\n    backend: mem\n    plugin: test\n    concurrency: 2\n";
const char kMail[] = "  mail:\n    backend: mem\n    plugin: test\n";

Config Parse(const std::string& yaml) {
  auto c = ParseConfigString(yaml, "test.yaml", "/tmp");
  EXPECT_TRUE(c.ok()) << c.status().message() << "\n" << yaml;
  return c.ok() ? std::move(*c) : Config();
}

// A daemon running `old` as started: every plugin loaded (its file
// unchanged, its effective config the raw one), every queue consuming
// (with a watchdog when it has a timeout).
RunningFacts Running(const Config& old, const Config& next) {
  RunningFacts f;
  f.started = true;
  for (const auto& pc : next.plugins) {
    const PluginConfig* was = old.FindPlugin(pc.name);
    if (was == nullptr || was->path != pc.path) continue;
    f.plugins[pc.name] = RunningFacts::Plugin{was->config_json, pc.config_json, false};
  }
  for (const auto& q : old.queues)
    f.queues[q.name] =
        RunningFacts::Queue{true, q.timeout.count() > 0 || !q.handler_timeouts.empty()};
  return f;
}

ReloadPlan Plan(const Config& old, const Config& next, const RunningFacts& facts) {
  auto plan = ComputeReloadPlan(old, next, facts);
  EXPECT_TRUE(plan.ok()) << plan.status().message();
  return plan.ok() ? std::move(*plan) : ReloadPlan();
}

ReloadPlan Plan(const Config& old, const Config& next) { return Plan(old, next, Running(old, next)); }

QueueAction ActionOf(const ReloadPlan& plan, const std::string& queue) {
  const QueueStep* s = plan.FindQueue(queue);
  EXPECT_NE(s, nullptr) << queue;
  return s ? s->action : QueueAction::kKeep;
}

// ---- start: the plan from an empty config

TEST(ReloadPlanTest, StartBuildsEverythingFromAnEmptyConfig) {
  Config next = Parse(Yaml(std::string(kJobs) + kMail, "", "  admin:\n    listen: 127.0.0.1:0\n"));
  ReloadPlan plan = Plan(Config{}, next, RunningFacts{});
  EXPECT_TRUE(plan.starting);
  EXPECT_EQ(plan.daemon, next.daemon);  // restart-only settings apply at start
  EXPECT_TRUE(plan.warnings.empty());
  EXPECT_THAT(plan.plugins_to_load, ElementsAre("test"));
  EXPECT_TRUE(plan.plugins_to_retire.empty());
  EXPECT_THAT(plan.backends_to_start, ElementsAre("mem"));
  EXPECT_TRUE(plan.backends_to_retire.empty());
  ASSERT_EQ(plan.queues.size(), 2u);
  for (const auto& q : plan.queues) {
    EXPECT_EQ(q.action, QueueAction::kStart) << q.name;
    EXPECT_FALSE(q.replaces_consumer);
    EXPECT_FALSE(q.replaces_waiting);
  }
  EXPECT_TRUE(plan.queues_removed.empty());
  EXPECT_THAT(plan.changes, ElementsAre("backend mem added", "plugin test added", "queue jobs added",
                                        "queue mail added"));
}

TEST(ReloadPlanTest, TheSameConfigChangesNothing) {
  Config c = Parse(Yaml(std::string(kJobs) + kMail));
  ReloadPlan plan = Plan(c, c);
  EXPECT_FALSE(plan.starting);
  EXPECT_TRUE(plan.changes.empty());
  EXPECT_TRUE(plan.warnings.empty());
  EXPECT_TRUE(plan.plugins_to_load.empty());
  EXPECT_THAT(plan.plugins_kept, ElementsAre("test"));
  EXPECT_TRUE(plan.backends_to_start.empty());
  EXPECT_THAT(plan.backends_kept, ElementsAre("mem"));
  EXPECT_EQ(ActionOf(plan, "jobs"), QueueAction::kKeep);
  EXPECT_EQ(ActionOf(plan, "mail"), QueueAction::kKeep);
  EXPECT_TRUE(plan.queues_removed.empty());
  EXPECT_TRUE(plan.rate_limits_changed.empty());
}

// ---- daemon settings

TEST(ReloadPlanTest, SettingsThatNeedARestartWarnAndKeepTheRunningValues) {
  Config old = Parse(Yaml(kJobs, "", "  state_dir: /var/a\n"));
  Config next = Parse(
      "daemon:\n  worker_threads: 8\n  shutdown_timeout: 5s\n  state_dir: /var/b\n"
      "  admin:\n    listen: 127.0.0.1:9090\n"
      "plugins:\n  test:\n    path: /opt/p/test.so\n"
      "backends:\n  mem:\n    type: memory\n"
      "queues:\n" + std::string(kJobs));
  ReloadPlan plan = Plan(old, next);
  EXPECT_THAT(plan.warnings,
              ElementsAre("daemon.worker_threads changed: restart the service to apply it (kept as it was)",
                          "daemon.admin changed: restart the service to apply it (kept as it was)",
                          "daemon.state_dir changed: restart the service to apply it (kept as it was)"));
  EXPECT_EQ(plan.daemon.worker_threads, 4);
  EXPECT_EQ(plan.daemon.admin, old.daemon.admin);
  EXPECT_EQ(plan.daemon.state_dir, "/var/a");
  EXPECT_TRUE(plan.changes.empty());
  EXPECT_EQ(ActionOf(plan, "jobs"), QueueAction::kKeep);
}

TEST(ReloadPlanTest, LogLevelAndShutdownTimeoutApplyAndAreListed) {
  Config old = Parse(Yaml(kJobs));
  Config next = Parse(Yaml(kJobs, "", "  log_level: debug\n"));
  next.daemon.shutdown_timeout = Duration(10000);
  ReloadPlan plan = Plan(old, next);
  EXPECT_TRUE(plan.warnings.empty());
  EXPECT_THAT(plan.changes, ElementsAre("log level debug", "shutdown_timeout 10000 ms"));
  EXPECT_EQ(plan.daemon.log_level, LogLevel::kDebug);
  EXPECT_EQ(plan.daemon.shutdown_timeout, Duration(10000));
}

// ---- backends

TEST(ReloadPlanTest, BackendsAddedRemovedAndRebuiltWhenUnused) {
  Config old = Parse(Yaml(kJobs, "  gone:\n    type: memory\n  spare:\n    type: memory\n"));
  Config next = Parse(Yaml(kJobs,
                           "  spare:\n    type: memory\n    capacity: 7\n"
                           "  fresh:\n    type: memory\n"));
  ReloadPlan plan = Plan(old, next);
  EXPECT_THAT(plan.backends_kept, ElementsAre("mem"));
  EXPECT_THAT(plan.backends_to_start, ElementsAre("spare", "fresh"));
  EXPECT_THAT(plan.backends_rebuilt, ElementsAre("spare"));
  EXPECT_THAT(plan.backends_to_retire, ElementsAre("spare", "gone"));
  EXPECT_THAT(plan.changes,
              ElementsAre("backend spare rebuilt", "backend fresh added", "backend gone removed"));
}

TEST(ReloadPlanTest, ABackendChangedWhileQueuesUseItFailsThePlan) {
  const std::string queues = std::string(kJobs) + kMail;
  Config old = Parse(Yaml(queues));
  std::string changed = Yaml(queues);
  changed.replace(changed.find("type: memory"), 12, "type: memory\n    capacity: 7");
  Config next = Parse(changed);
  ASSERT_EQ(next.FindBackend("mem")->options.As<MemoryBackendOptions>()->capacity, 7u);
  RunningFacts facts = Running(old, next);
  facts.queues["mail"].consuming = false;  // waiting to start: a user too
  facts.draining.push_back({"old", "mem"});
  facts.draining.push_back({"elsewhere", ""});
  auto plan = ComputeReloadPlan(old, next, facts);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().message(),
            "backend mem changed while queues use it (jobs, mail, old (draining)): restart the "
            "service to apply a backend's new settings, or move its queues to a new backend first");
}

TEST(ReloadPlanTest, ABackendUsedOnlyByARetiredConsumerStillCountsAsUsed) {
  Config old = Parse(Yaml(kJobs, "  other:\n    type: memory\n"));
  Config next = Parse(Yaml(kJobs, "  other:\n    type: memory\n    capacity: 7\n"));
  RunningFacts facts = Running(old, next);
  EXPECT_TRUE(ComputeReloadPlan(old, next, facts).ok());
  facts.draining.push_back({"was_here", "other"});
  auto plan = ComputeReloadPlan(old, next, facts);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("(was_here (draining))"), std::string::npos)
      << plan.status().message();
}

// ---- plugins

TEST(ReloadPlanTest, PluginsAddedRemovedAndLoadedFromANewPath) {
  const std::string other = "  other:\n    path: /opt/p/other.so\n";
  const std::string third = "  third:\n    path: /opt/p/third.so\n";
  Config old = Parse(Yaml(kJobs, "", "", "/opt/p/test.so", other));
  Config next = Parse(Yaml(kJobs, "", "", "/opt/p/v2/test.so", third));
  ReloadPlan plan = Plan(old, next);
  EXPECT_THAT(plan.plugins_to_load, ElementsAre("test", "third"));
  EXPECT_TRUE(plan.plugins_kept.empty());
  EXPECT_THAT(plan.plugins_to_retire, ElementsAre("test", "other"));
  // The queue of the plugin loaded again gets instances of the new code.
  EXPECT_EQ(ActionOf(plan, "jobs"), QueueAction::kStart);
  EXPECT_TRUE(plan.FindQueue("jobs")->replaces_consumer);
  EXPECT_THAT(plan.changes, ElementsAre("plugin test loaded from /opt/p/v2/test.so",
                                        "plugin third added", "plugin other removed",
                                        "queue jobs changed (plugin test changed)"));
}

TEST(ReloadPlanTest, APluginWithoutFactsIsLoaded) {
  // Same name and path, but nothing loaded under that name (facts say so).
  Config c = Parse(Yaml(kJobs));
  RunningFacts facts = Running(c, c);
  facts.plugins.clear();
  ReloadPlan plan = Plan(c, c, facts);
  EXPECT_THAT(plan.plugins_to_load, ElementsAre("test"));
  EXPECT_THAT(plan.plugins_to_retire, ElementsAre("test"));
}

TEST(ReloadPlanTest, ANewPluginConfigRenewsTheInstancesOfItsQueues) {
  Config old = Parse(Yaml(std::string(kJobs) + kMail, "", "", "/opt/p/test.so",
                          "    config:\n      greeting: hi\n"));
  Config next = Parse(Yaml(std::string(kJobs) + kMail, "", "", "/opt/p/test.so",
                           "    config:\n      greeting: hello\n"));
  ReloadPlan plan = Plan(old, next);
  EXPECT_TRUE(plan.plugins_to_load.empty());
  EXPECT_THAT(plan.plugins_kept, ElementsAre("test"));
  EXPECT_THAT(plan.plugins_reconfigured, ElementsAre("test"));
  EXPECT_TRUE(plan.plugins_to_retire.empty());
  EXPECT_EQ(ActionOf(plan, "jobs"), QueueAction::kStart);
  EXPECT_EQ(ActionOf(plan, "mail"), QueueAction::kStart);
  EXPECT_THAT(plan.changes,
              ElementsAre("plugin test config", "queue jobs changed (plugin test changed)",
                          "queue mail changed (plugin test changed)"));
}

TEST(ReloadPlanTest, TheEffectiveConfigDecidesNotTheRawOne) {
  // A default written out explicitly: the raw JSON differs, what create()
  // receives does not (the facts carry both after the plugin's schema).
  Config old = Parse(Yaml(kJobs));
  Config next = Parse(Yaml(kJobs, "", "", "/opt/p/test.so", "    config:\n      retries: 3\n"));
  RunningFacts facts = Running(old, next);
  facts.plugins["test"].config_json = "{\"retries\":3}";
  facts.plugins["test"].next_config_json = "{\"retries\":3}";
  ReloadPlan plan = Plan(old, next, facts);
  EXPECT_TRUE(plan.plugins_reconfigured.empty());
  EXPECT_TRUE(plan.changes.empty());
  EXPECT_EQ(ActionOf(plan, "jobs"), QueueAction::kKeep);
}

TEST(ReloadPlanTest, APluginRebuiltOnDiskWarnsAndKeepsRunning) {
  Config c = Parse(Yaml(kJobs));
  RunningFacts facts = Running(c, c);
  facts.plugins["test"].changed_on_disk = true;
  ReloadPlan plan = Plan(c, c, facts);
  EXPECT_THAT(plan.plugins_changed_on_disk, ElementsAre("test"));
  EXPECT_TRUE(plan.plugins_to_load.empty());
  ASSERT_EQ(plan.warnings.size(), 1u);
  EXPECT_EQ(plan.warnings[0],
            "plugin test: /opt/p/test.so changed on disk since it was loaded; a .so cannot be "
            "loaded again at the same path, so the loaded code keeps running: restart the "
            "service to run the new build");
  EXPECT_TRUE(plan.changes.empty());
  EXPECT_EQ(ActionOf(plan, "jobs"), QueueAction::kKeep);
}

// ---- queues

TEST(ReloadPlanTest, QueuesAddedAndRemoved) {
  Config old = Parse(Yaml(kJobs));
  Config next = Parse(Yaml(kMail));
  ReloadPlan plan = Plan(old, next);
  EXPECT_EQ(ActionOf(plan, "mail"), QueueAction::kStart);
  EXPECT_FALSE(plan.FindQueue("mail")->replaces_consumer);
  EXPECT_THAT(plan.queues_removed, ElementsAre("jobs"));
  EXPECT_THAT(plan.changes, ElementsAre("queue mail added", "queue jobs removed"));
}

TEST(ReloadPlanTest, RemovedQueuesListRunningConsumersBeforeWaitingOnes) {
  Config old = Parse(Yaml(std::string(kMail) + kJobs));
  Config next = Parse(Yaml("  other:\n    backend: mem\n    plugin: test\n"));
  RunningFacts facts = Running(old, next);
  facts.queues["mail"].consuming = false;
  ReloadPlan plan = Plan(old, next, facts);
  EXPECT_THAT(plan.queues_removed, ElementsAre("jobs", "mail"));
}

TEST(ReloadPlanTest, AQueueWithNeitherConsumerNorWaitingStartIsStartedAgain) {
  // Its consumer failed to start after a reload: the same config adds it.
  Config c = Parse(Yaml(kJobs));
  RunningFacts facts = Running(c, c);
  facts.queues.clear();
  ReloadPlan plan = Plan(c, c, facts);
  EXPECT_EQ(ActionOf(plan, "jobs"), QueueAction::kStart);
  EXPECT_FALSE(plan.FindQueue("jobs")->replaces_consumer);
  EXPECT_FALSE(plan.FindQueue("jobs")->replaces_waiting);
  EXPECT_THAT(plan.changes, ElementsAre("queue jobs added"));
  // And a removed one of those is not listed as removed (nothing runs).
  Config none = Parse(Yaml(kMail));
  EXPECT_TRUE(Plan(c, none, facts).queues_removed.empty());
}

TEST(ReloadPlanTest, OtherSettingsHandOverWithWhatChanged) {
  Config old = Parse(Yaml(std::string(kJobs) + "    prefetch: 4\n"));
  Config next = Parse(Yaml(std::string(kJobs) + "    prefetch: 8\n    handler: ok\n"));
  ReloadPlan plan = Plan(old, next);
  const QueueStep* s = plan.FindQueue("jobs");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->action, QueueAction::kStart);
  EXPECT_TRUE(s->replaces_consumer);
  EXPECT_FALSE(s->replaces_waiting);
  EXPECT_TRUE(plan.queues_removed.empty());
  EXPECT_THAT(plan.changes,
              ElementsAre("queue jobs changed (handler \"\" -> \"ok\", prefetch 4 -> 8)"));
}

TEST(ReloadPlanTest, AChangedSyscallFilterStartsNewChildren) {
  const std::string iso = std::string(kJobs) + "    isolation: process\n    prefetch: 8\n";
  Config old = Parse(Yaml(iso));
  Config next = Parse(Yaml(iso + "    process:\n      syscall_filter: default\n"));
  ReloadPlan plan = Plan(old, next);
  const QueueStep* s = plan.FindQueue("jobs");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->action, QueueAction::kChangeLimits);
  EXPECT_TRUE(s->new_children);
  EXPECT_THAT(plan.changes,
              ElementsAre("queue jobs changed in place (process.syscall_filter): new handler "
                          "children, the old ones finish their messages"));
  // Only the action, or only the list: still what a child starts with.
  for (const char* more : {"      syscall_action: kill\n", "      syscall_deny: [socket]\n"}) {
    Config other = Parse(Yaml(iso + "    process:\n      syscall_filter: default\n" + more));
    ReloadPlan p = Plan(next, other);
    ASSERT_NE(p.FindQueue("jobs"), nullptr) << more;
    EXPECT_TRUE(p.FindQueue("jobs")->new_children) << more;
  }
  Config in_process = Parse(Yaml(std::string(kJobs) + "    prefetch: 8\n"));
  EXPECT_THAT(Plan(in_process, old).changes,
              ElementsAre("queue jobs changed (isolation in_process -> process)"));
}

TEST(ReloadPlanTest, ConcurrencyAndTimeoutsChangeInPlace) {
  Config old = Parse(Yaml(std::string(kJobs) + "    prefetch: 8\n    timeout: 5s\n"));
  Config next = Parse(Yaml(
      "  jobs:\n    backend: mem\n    plugin: test\n    concurrency: 4\n    prefetch: 8\n"
      "    timeout: 200ms\n    handler_timeouts:\n      sleep: 1s\n"));
  ReloadPlan plan = Plan(old, next);
  EXPECT_EQ(ActionOf(plan, "jobs"), QueueAction::kChangeLimits);
  EXPECT_THAT(plan.changes, ElementsAre("queue jobs changed in place (concurrency 2 -> 4, timeout "
                                        "5000 -> 200, handler_timeouts)"));
}

TEST(ReloadPlanTest, AFirstTimeoutIsAHandOverWithoutAWatchdog) {
  Config old = Parse(Yaml(std::string(kJobs) + "    prefetch: 8\n"));
  Config next = Parse(Yaml(std::string(kJobs) + "    prefetch: 8\n    timeout: 1s\n"));
  ReloadPlan plan = Plan(old, next);
  EXPECT_EQ(ActionOf(plan, "jobs"), QueueAction::kStart);
  EXPECT_THAT(plan.changes, ElementsAre("queue jobs changed (timeout 0 -> 1000)"));
  // A consumer that started with a timeout keeps its watchdog for life:
  // the same change is in place for it.
  RunningFacts facts = Running(old, next);
  facts.queues["jobs"].watchdog = true;
  EXPECT_EQ(ActionOf(Plan(old, next, facts), "jobs"), QueueAction::kChangeLimits);
}

TEST(ReloadPlanTest, AQueueWaitingToStartIsReplacedNotChangedInPlace) {
  Config old = Parse(Yaml(std::string(kJobs) + "    prefetch: 8\n"));
  Config next = Parse(Yaml(
      "  jobs:\n    backend: mem\n    plugin: test\n    concurrency: 3\n    prefetch: 8\n"));
  RunningFacts facts = Running(old, next);
  facts.queues["jobs"].consuming = false;
  ReloadPlan plan = Plan(old, next, facts);
  const QueueStep* s = plan.FindQueue("jobs");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->action, QueueAction::kStart);
  EXPECT_FALSE(s->replaces_consumer);
  EXPECT_TRUE(s->replaces_waiting);
  EXPECT_THAT(plan.changes, ElementsAre("queue jobs changed (concurrency 2 -> 3)"));
}

TEST(ReloadPlanTest, AChangedDependencyTurnsAnInPlaceChangeIntoAHandOver) {
  const std::string policy = "retry_policies:\n  slow:\n    max_attempts: ";
  auto yaml = [&](int concurrency, int attempts) {
    return Yaml("  jobs:\n    backend: mem\n    plugin: test\n    prefetch: 8\n"
                "    retry_policy: slow\n    concurrency: " + std::to_string(concurrency) + "\n",
                "") + policy + std::to_string(attempts) + "\n";
  };
  Config old = Parse(yaml(2, 3));
  ReloadPlan same_policy = Plan(old, Parse(yaml(4, 3)));
  EXPECT_EQ(ActionOf(same_policy, "jobs"), QueueAction::kChangeLimits);
  ReloadPlan plan = Plan(old, Parse(yaml(4, 5)));
  EXPECT_EQ(ActionOf(plan, "jobs"), QueueAction::kStart);
  EXPECT_THAT(plan.changes,
              ElementsAre("queue jobs changed (concurrency 2 -> 4, retry policy slow changed)"));
}

TEST(ReloadPlanTest, AChangedSharedRateLimitHandsOverEveryQueueThatUsesIt) {
  auto yaml = [](const std::string& rate) {
    const std::string mw = "    middleware:\n      - rate_limit: {shared: api}\n";
    return Yaml(std::string(kJobs) + mw + kMail + mw + "  free:\n    backend: mem\n    plugin: test\n",
                "") + "rate_limits:\n  api: {rate: " + rate + ", burst: 5}\n  unused: {rate: 1/s}\n";
  };
  Config old = Parse(yaml("100/s"));
  EXPECT_TRUE(Plan(old, Parse(yaml("100/s"))).changes.empty());
  ReloadPlan plan = Plan(old, Parse(yaml("200/s")));
  EXPECT_THAT(plan.rate_limits_changed, ElementsAre("api"));
  EXPECT_EQ(ActionOf(plan, "jobs"), QueueAction::kStart);
  EXPECT_EQ(ActionOf(plan, "mail"), QueueAction::kStart);
  EXPECT_EQ(ActionOf(plan, "free"), QueueAction::kKeep);
  EXPECT_THAT(plan.changes, ElementsAre("queue jobs changed (shared rate limit changed)",
                                        "queue mail changed (shared rate limit changed)"));
}

TEST(ReloadPlanTest, ARemovedSharedRateLimitIsChanged) {
  Config old = Parse(Yaml(kJobs, "") + "rate_limits:\n  api: {rate: 1/s}\n");
  Config next = Parse(Yaml(kJobs));
  EXPECT_THAT(Plan(old, next).rate_limits_changed, ElementsAre("api"));
}

// ---- isolation: process

const char kIsolated[] =
    "  jobs:\n    backend: mem\n    plugin: test\n    concurrency: 2\n    prefetch: 8\n"
    "    isolation: process\n";

TEST(ReloadPlanTest, WhatTheDaemonAppliesToChildrenChangesInPlaceWithTheSameChildren) {
  Config old = Parse(Yaml(kIsolated));
  Config next = Parse(Yaml(std::string(kIsolated) +
                           "    process:\n      max_tasks: 100\n      max_memory: 1GiB\n"
                           "      max_lifetime: 1h\n      timeout_grace: 1s\n"
                           "      crash_loop: {crashes: 3}\n"));
  ReloadPlan plan = Plan(old, next);
  const QueueStep* s = plan.FindQueue("jobs");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->action, QueueAction::kChangeLimits);
  EXPECT_TRUE(s->process_changed);
  EXPECT_FALSE(s->new_children);
  EXPECT_THAT(plan.changes,
              ElementsAre("queue jobs changed in place (process.timeout_grace 5000 -> 1000, "
                          "process.max_tasks 0 -> 100, process.max_memory 0 -> 1073741824, "
                          "process.max_lifetime 0 -> 3600000, process.crash_loop)"));
}

TEST(ReloadPlanTest, WhatChildrenStartWithGivesNewChildrenInPlace) {
  Config old = Parse(Yaml(kIsolated));
  for (const char* block :
       {"      processes: 1\n", "      address_space: 1GiB\n", "      cpu_time: 10s\n",
        "      open_files: 64\n", "      max_processes: 100\n", "      no_new_privs: false\n",
        "      user: nobody\n"}) {
    Config next = Parse(Yaml(std::string(kIsolated) + "    process:\n" + block));
    ReloadPlan plan = Plan(old, next);
    const QueueStep* s = plan.FindQueue("jobs");
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->action, QueueAction::kChangeLimits) << block;
    EXPECT_TRUE(s->process_changed) << block;
    EXPECT_TRUE(s->new_children) << block;
    ASSERT_EQ(plan.changes.size(), 1u);
    EXPECT_THAT(plan.changes[0], ::testing::EndsWith(
                                     ": new handler children, the old ones finish their messages"));
  }
}

TEST(ReloadPlanTest, TheConcurrencyOfAnIsolatedQueueChangesInPlaceNewChildrenWhenTheLayoutDoes) {
  // One child per unit of concurrency: a new layout, new children.
  Config old = Parse(Yaml(kIsolated));
  std::string yaml = kIsolated;
  yaml.replace(yaml.find("concurrency: 2"), 14, "concurrency: 4");
  ReloadPlan plan = Plan(old, Parse(Yaml(yaml)));
  const QueueStep* s = plan.FindQueue("jobs");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->action, QueueAction::kChangeLimits);
  EXPECT_TRUE(s->new_children);
  EXPECT_THAT(plan.changes, ElementsAre("queue jobs changed in place (concurrency 2 -> 4): new "
                                        "handler children, the old ones finish their messages"));
  // Two children of two: 3 -> 4 keeps two messages per child.
  const std::string two = std::string(kIsolated) + "    process:\n      processes: 2\n";
  std::string three = two, four = two;
  three.replace(three.find("concurrency: 2"), 14, "concurrency: 3");
  four.replace(four.find("concurrency: 2"), 14, "concurrency: 4");
  plan = Plan(Parse(Yaml(three)), Parse(Yaml(four)));
  s = plan.FindQueue("jobs");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->action, QueueAction::kChangeLimits);
  EXPECT_FALSE(s->new_children);
}

TEST(ReloadPlanTest, APluginConfigGivesIsolatedQueuesNewChildrenAndHandsTheOthersOver) {
  const std::string queues = std::string(kIsolated) + kMail;
  Config old = Parse(Yaml(queues, "", "", "/opt/p/test.so", "    config:\n      greeting: hi\n"));
  Config next =
      Parse(Yaml(queues, "", "", "/opt/p/test.so", "    config:\n      greeting: hello\n"));
  ReloadPlan plan = Plan(old, next);
  const QueueStep* s = plan.FindQueue("jobs");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->action, QueueAction::kChangeLimits);
  EXPECT_TRUE(s->new_children);
  EXPECT_EQ(ActionOf(plan, "mail"), QueueAction::kStart);
  EXPECT_THAT(plan.changes,
              ElementsAre("plugin test config",
                          "queue jobs changed in place (plugin test config): new handler "
                          "children, the old ones finish their messages",
                          "queue mail changed (plugin test changed)"));
  // A plugin loaded from another path is a hand-over, isolated or not.
  next = Parse(Yaml(queues, "", "", "/opt/p/test2.so"));
  EXPECT_EQ(ActionOf(Plan(old, next), "jobs"), QueueAction::kStart);
}

TEST(ReloadPlanTest, IsolationOnOrOffAndOtherSettingsOfAnIsolatedQueueHandOver) {
  Config in_process = Parse(Yaml(
      "  jobs:\n    backend: mem\n    plugin: test\n    concurrency: 2\n    prefetch: 8\n"));
  Config isolated = Parse(Yaml(kIsolated));
  ReloadPlan plan = Plan(in_process, isolated);
  EXPECT_EQ(ActionOf(plan, "jobs"), QueueAction::kStart);
  EXPECT_THAT(plan.changes, ElementsAre("queue jobs changed (isolation in_process -> process)"));
  plan = Plan(isolated, in_process);
  EXPECT_EQ(ActionOf(plan, "jobs"), QueueAction::kStart);
  EXPECT_THAT(plan.changes, ElementsAre("queue jobs changed (isolation process -> in_process)"));
  // A setting the consumer cannot change in place, with process settings.
  std::string yaml = std::string(kIsolated) + "    process:\n      open_files: 64\n";
  yaml.replace(yaml.find("prefetch: 8"), 11, "prefetch: 9");
  plan = Plan(isolated, Parse(Yaml(yaml)));
  EXPECT_EQ(ActionOf(plan, "jobs"), QueueAction::kStart);
  EXPECT_THAT(plan.changes,
              ElementsAre("queue jobs changed (prefetch 8 -> 9, process.open_files 0 -> 64)"));
}

TEST(ReloadPlanTest, NeedsNewChildren) {
  QueueConfig a;
  a.process_isolation = true;
  a.concurrency = 4;
  QueueConfig b = a;
  EXPECT_FALSE(NeedsNewChildren(a, b));
  b.process.max_tasks = 5;
  b.process.max_memory = 1 << 20;
  b.process.max_lifetime = Duration(1000);
  b.process.timeout_grace = Duration(1);
  b.process.crash_loop.crashes = 1;
  EXPECT_FALSE(NeedsNewChildren(a, b));
  b.process.processes = 2;  // 4 children of one -> 2 of two
  EXPECT_TRUE(NeedsNewChildren(a, b));
  a.process.processes = 2;
  b.concurrency = 3;  // 2 of two either way
  EXPECT_FALSE(NeedsNewChildren(a, b));
  b.concurrency = 5;  // 2 of three
  EXPECT_TRUE(NeedsNewChildren(a, b));
}

// ---- the pieces

TEST(ReloadPlanTest, ChangesOnlyLimits) {
  QueueConfig a;
  a.name = "q";
  a.concurrency = 2;
  QueueConfig b = a;
  b.concurrency = 5;
  EXPECT_TRUE(ChangesOnlyLimits(a, b, false));
  b.prefetch = a.prefetch + 1;
  EXPECT_FALSE(ChangesOnlyLimits(a, b, true));
  b = a;
  b.timeout = Duration(100);
  EXPECT_FALSE(ChangesOnlyLimits(a, b, false));
  EXPECT_TRUE(ChangesOnlyLimits(a, b, true));
  b = a;
  b.handler_timeouts["x"] = Duration(100);
  EXPECT_FALSE(ChangesOnlyLimits(a, b, false));
  EXPECT_TRUE(ChangesOnlyLimits(a, b, true));
  // Removing every timeout is in place, watchdog or not.
  a.timeout = Duration(100);
  b = a;
  b.timeout = Duration(0);
  EXPECT_TRUE(ChangesOnlyLimits(a, b, false));
}

TEST(ReloadPlanTest, QueueDiffNamesEveryChangedField) {
  QueueConfig a;
  QueueConfig b = a;
  EXPECT_EQ(QueueDiff(a, b), "");
  b.backend = "x";
  b.source = "s";
  b.batch_size = 3;
  b.flush_interval = Duration(7);
  b.retry_policy = "slow";
  b.middleware.emplace_back();
  EXPECT_EQ(QueueDiff(a, b),
            "backend \"\" -> \"x\", source \"\" -> \"s\", batch_size 0 -> 3, flush_interval " +
                std::to_string(a.flush_interval.count()) + " -> 7, retry_policy \"" +
                a.retry_policy + "\" -> \"slow\", middleware");
}

}  // namespace
}  // namespace foxworker
