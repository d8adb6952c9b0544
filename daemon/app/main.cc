// foxworkerd: the worker daemon's entry point and signal loop.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <glog/logging.h>

#include "daemon/app/admin/admin_server.h"
#include "daemon/app/builtin_extensions.h"
#include "daemon/base/clock.h"
#include "daemon/app/crash_report.h"
#include "daemon/config/config_parser.h"
#include "daemon/app/service_notifier.h"
#include "daemon/app/supervisor.h"
#include "daemon/plugins/plugin_loader.h"

namespace foxworker {
namespace {

constexpr char kDefaultConfig[] = "/etc/foxworker/foxworker.yaml";

// Exit statuses (docs/operations.md, "Exit statuses"; --help).
constexpr int kExitOk = 0;            // stopped after a full drain; --check-config OK
constexpr int kExitCannotRun = 1;     // invalid config, or a start failure
constexpr int kExitUsage = 2;         // unknown command-line argument
constexpr int kExitAbandoned = 3;     // stopped, but abandoned running handlers

void PrintUsage(FILE* out) {
  fprintf(out,
          "Usage: foxworkerd [--config FILE]\n"
          "       foxworkerd --check-config [--quiet] [FILE]\n"
          "       foxworkerd --version | --help\n"
          "\n"
          "Runs the foxworker job daemon on the queues FILE declares.\n"
          "\n"
          "  -c, --config FILE      config file (default %s)\n"
          "      --check-config     validate the config and its plugins' config schemas,\n"
          "                         print the effective config, exit 0 if valid, 1 if not\n"
          "  -q, --quiet            with --check-config: do not print the config (it may\n"
          "                         hold expanded ${VAR} secrets; used by the systemd unit)\n"
          "  -V, --version          print the version and plugin ABI\n"
          "  -h, --help             this text\n"
          "\n"
          "Signals: SIGTERM/SIGINT drain in-flight work within daemon.shutdown_timeout;\n"
          "a second one stops waiting. SIGHUP reloads FILE: queues, plugins and\n"
          "backends change without a restart; an invalid FILE leaves the running config.\n"
          "On SIGSEGV, SIGBUS, SIGFPE, SIGILL or SIGABRT a crash report (the handler and\n"
          "message running on the thread, a backtrace) goes to stderr and the daemon\n"
          "dies of that signal.\n"
          "\n"
          "Exit status:\n"
          "  0  stopped after every handler returned and every outcome was flushed\n"
          "     (or --check-config found the config valid)\n"
          "  1  invalid config, or a start failure (plugin load, init or create\n"
          "     refused, a backend or the admin listener that cannot start)\n"
          "  2  unknown command-line argument\n"
          "  3  stopped, but handlers still running were abandoned (shutdown_timeout\n"
          "     expired or a second signal); their messages are delivered again\n",
          kDefaultConfig);
}

void ApplyLogLevel(LogLevel level) {
  FLAGS_v = 0;
  switch (level) {
    case LogLevel::kTrace: FLAGS_v = 2; FLAGS_minloglevel = google::GLOG_INFO; break;
    case LogLevel::kDebug: FLAGS_v = 1; FLAGS_minloglevel = google::GLOG_INFO; break;
    case LogLevel::kInfo: FLAGS_minloglevel = google::GLOG_INFO; break;
    case LogLevel::kWarning: FLAGS_minloglevel = google::GLOG_WARNING; break;
    case LogLevel::kError: FLAGS_minloglevel = google::GLOG_ERROR; break;
  }
}

// Validates the config and every plugin's config against its schema
// without running plugin init.
Status CheckConfig(const Config& config) {
  for (const auto& p : config.plugins) {
    auto info = ReadPluginInfo(p.path);
    if (!info.ok())
      return Status::InvalidArgument(p.path_mark.ToString() + ": plugins." + p.name + ".path: " +
                                     info.status().message());
    auto json = ApplyPluginSchema(p, (*info)->info);
    if (!json.ok()) return json.status();
  }
  return Status::Ok();
}

// Reads and validates `path` again and applies it to the running supervisor.
Result<ReloadReport> ReloadConfig(const std::string& path, Supervisor& supervisor) {
  auto config = LoadConfig(path);
  if (!config.ok()) return config.status();
  Status s = CheckConfig(*config);
  if (!s.ok()) return s;
  return supervisor.Reload(std::move(*config));
}

std::string WallClockText() {
  char buf[16];
  time_t t = time(nullptr);
  struct tm tm;
  localtime_r(&t, &tm);
  strftime(buf, sizeof buf, "%H:%M:%S", &tm);
  return buf;
}

int Run(const std::string& path) {
  auto config = LoadConfig(path);
  if (!config.ok()) {
    LOG(ERROR) << "invalid config: " << config.status().message();
    return kExitCannotRun;
  }
  ApplyLogLevel(config->daemon.log_level);

  // Signals are taken synchronously on this thread only; every thread the
  // daemon starts inherits the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  ServiceNotifier notifier;
  Supervisor supervisor(std::move(*config));
  Status s = supervisor.Start();
  if (!s.ok()) {
    LOG(ERROR) << "cannot start: " << s.message();
    notifier.Status("cannot start: " + s.message());
    supervisor.Shutdown();
    return kExitCannotRun;
  }
  LOG(INFO) << "foxworkerd " << FOXWORKER_VERSION << " started: " << supervisor.Describe();
  std::unique_ptr<AdminServer> admin;
  if (!supervisor.config().daemon.admin.listen.empty()) {
    admin = std::make_unique<AdminServer>(supervisor.config().daemon.admin, supervisor);
    s = admin->Start();
    if (!s.ok()) {
      LOG(ERROR) << "cannot start: " << s.message();
      notifier.Status("cannot start: " + s.message());
      admin.reset();
      supervisor.Shutdown();
      return kExitCannotRun;
    }
  }

  // Every consumer is started: only now is the service ready.
  ServiceSummary summary;
  // The watchdog is fed by the daemon's own threads, never by its jobs.
  DaemonWatch watch(notifier.watchdog_interval());
  watch.Configure(supervisor.config().daemon.liveness_timeout,
                  supervisor.config().daemon.long_job_warning);
  notifier.Ready(summary.Text(supervisor, std::chrono::steady_clock::now()));
  // The tick also paces the watchdog: at least three pings per interval.
  auto tick_len = std::chrono::microseconds(1000000);
  if (notifier.watchdog_interval().count() > 0)
    tick_len = std::clamp(notifier.watchdog_interval() / 3, std::chrono::microseconds(10000),
                          tick_len);
  std::string note;  // shown after the status line (the last reload's outcome)
  auto note_until = std::chrono::steady_clock::time_point::min();

  for (;;) {
    siginfo_t info;
    // While a reload hands queues over, look at the drains more often.
    const auto wait = !supervisor.InTransition()
                          ? tick_len
                          : std::min<std::chrono::microseconds>(tick_len, std::chrono::milliseconds(20));
    struct timespec tick = {static_cast<time_t>(wait.count() / 1000000),
                            static_cast<long>(wait.count() % 1000000 * 1000)};
    int sig = sigtimedwait(&signals, &info, &tick);
    if (sig == SIGHUP) {
      // SIGHUPs that arrive meanwhile stay pending as one: they make one
      // more reload after this one, which reads the file as it is then.
      LOG(INFO) << "SIGHUP: reloading " << path;
      notifier.Reloading("reloading " + path);
      auto report = ReloadConfig(path, supervisor);
      if (report.ok()) {
        ApplyLogLevel(supervisor.config().daemon.log_level);
        watch.Configure(supervisor.config().daemon.liveness_timeout,
                        supervisor.config().daemon.long_job_warning);
        for (const auto& w : report->warnings) LOG(WARNING) << "reload: " << w;
        std::string what = report->changes.empty() ? "no changes" : "";
        for (const auto& c : report->changes) what += (what.empty() ? "" : "; ") + c;
        LOG(INFO) << "reload applied: " << what;
        note = "reloaded at " + WallClockText() + " (" +
               (report->changes.empty() ? std::string("no changes")
                                        : std::to_string(report->changes.size()) + " change(s)") +
               (report->warnings.empty()
                    ? std::string()
                    : "; " + std::to_string(report->warnings.size()) +
                          " setting(s) need a restart, see the log") +
               ")";
        note_until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      } else {
        LOG(ERROR) << "reload failed, still running the previous config: "
                   << report.status().message();
        // Said until a reload succeeds: the file on disk is not what runs.
        note = "reload failed at " + WallClockText() + ", running the previous config: " +
               report.status().message();
        note_until = std::chrono::steady_clock::time_point::max();
      }
    }
    supervisor.Poll();
    const auto now = std::chrono::steady_clock::now();
    auto status_text = [&] {
      std::string status = summary.Text(supervisor, now);
      const std::string transition = supervisor.Transition();
      if (!transition.empty()) status += "; reload: " + transition;
      if (now < note_until) status += "; " + note;
      return status;
    };
    if (sig == SIGHUP) {
      notifier.Ready(status_text());
      continue;
    }
    if (sig == SIGTERM || sig == SIGINT) {
      LOG(INFO) << strsignal(sig) << ": shutting down gracefully (send it again to stop waiting)";
      break;
    }
    notifier.Status(status_text());
    // Every daemon thread beat recently (the DaemonWatch logs the ones that
    // did not); how long handlers run plays no part.
    if (watch.Tick()) notifier.Watchdog();
  }
  // The drain does not tick: from here on nothing is watched (systemd does
  // not apply the watchdog to a stopping service).
  watch.Stop();

  // The admin endpoint reads the consumers: stop it before they go.
  if (admin) admin->Stop();
  int64_t in_flight = 0;
  for (const auto& c : supervisor.consumers()) in_flight += c->Stats().in_flight;
  const auto stop_deadline = std::chrono::steady_clock::now() +
                             supervisor.config().daemon.shutdown_timeout;
  // systemd's TimeoutStopSec may be shorter than our drain: ask for the time
  // the drain may take plus the close, and refresh it while draining.
  constexpr auto kCloseSlack = std::chrono::seconds(5);
  notifier.Stopping("draining: " + std::to_string(in_flight) + " in flight");
  notifier.ExtendTimeout(supervisor.config().daemon.shutdown_timeout + kCloseSlack);
  auto next_report = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  bool drained = supervisor.Shutdown([&] {
    struct timespec zero = {0, 0};
    int sig = sigtimedwait(&signals, nullptr, &zero);
    if (sig == SIGTERM || sig == SIGINT) {
      LOG(WARNING) << "second signal: no longer waiting for in-flight handlers";
      notifier.Status("second signal: abandoning in-flight handlers");
      return true;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_report) {
      next_report = now + std::chrono::seconds(1);
      int64_t left = 0;
      for (const auto& c : supervisor.consumers()) left += c->Stats().in_flight;
      auto remaining = std::chrono::duration_cast<std::chrono::seconds>(stop_deadline - now);
      notifier.Status("draining: " + std::to_string(left) + " in flight, " +
                      std::to_string(std::max<int64_t>(0, remaining.count())) + "s left");
      notifier.ExtendTimeout(
          std::chrono::duration_cast<std::chrono::microseconds>(stop_deadline - now) +
          kCloseSlack);
    }
    return false;
  });
  if (!drained) {
    // Handlers are still running inside plugin code: do not run destructors
    // under them. Their messages were not acked and will be redelivered.
    LOG(WARNING) << "exiting with status " << kExitAbandoned << ": handlers were abandoned";
    google::FlushLogFiles(google::GLOG_INFO);
    fflush(nullptr);
    _exit(kExitAbandoned);
  }
  google::FlushLogFiles(google::GLOG_INFO);
  return kExitOk;
}

}  // namespace
}  // namespace foxworker

int main(int argc, char** argv) {
  foxworker::PinLocalTimeZone();  // before any thread and any log line
  FLAGS_logtostderr = true;
  google::InitGoogleLogging("foxworkerd");
  // First, before any thread exists (each thread the daemon starts installs
  // its own alternate signal stack).
  foxworker::InstallCrashReport(FOXWORKER_VERSION);
  foxworker::RegisterBuiltinExtensions();
  std::string config_path = foxworker::kDefaultConfig;
  bool check = false;
  bool quiet = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      foxworker::PrintUsage(stdout);
      return 0;
    } else if (a == "-V" || a == "--version") {
      printf("foxworkerd %s (plugin ABI %d.%d)\n", FOXWORKER_VERSION, FOXW_ABI_MAJOR,
             FOXW_ABI_MINOR);
      return 0;
    } else if (a == "--check-config") {
      check = true;
      if (i + 1 < argc && argv[i + 1][0] != '-') config_path = argv[++i];
    } else if (a == "-q" || a == "--quiet") {
      quiet = true;
      if (check && i + 1 < argc && argv[i + 1][0] != '-') config_path = argv[++i];
    } else if ((a == "-c" || a == "--config") && i + 1 < argc) {
      config_path = argv[++i];
    } else if (a.rfind("--config=", 0) == 0) {
      config_path = a.substr(9);
    } else {
      fprintf(stderr, "foxworkerd: unknown argument \"%s\"\n\n", a.c_str());
      foxworker::PrintUsage(stderr);
      return foxworker::kExitUsage;
    }
  }
  if (check) {
    auto config = foxworker::LoadConfig(config_path);
    if (!config.ok()) {
      fprintf(stderr, "%s\n", config.status().message().c_str());
      return 1;
    }
    foxworker::Status s = foxworker::CheckConfig(*config);
    if (!s.ok()) {
      fprintf(stderr, "%s\n", s.message().c_str());
      return 1;
    }
    if (!quiet) std::cout << foxworker::FormatConfig(*config) << std::flush;
    fprintf(stderr, "%s: config OK\n", config_path.c_str());
    return 0;
  }
  return foxworker::Run(config_path);
}
