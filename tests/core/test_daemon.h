// Runs a Supervisor in-process on a YAML config, for dispatch tests.
#ifndef FOXWORKER_TESTS_CORE_TEST_DAEMON_H_
#define FOXWORKER_TESTS_CORE_TEST_DAEMON_H_

#include <dlfcn.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "daemon/backends/memory/memory_backend.h"
#include "daemon/config/config_parser.h"
#include "daemon/app/supervisor.h"

namespace foxworker::testing {

inline std::string TestPluginPath(const std::string& variant = "test_plugin") {
  return std::string(TEST_PLUGIN_DIR) + "/libfoxworker_" + variant + ".so";
}

struct TestPluginStats {
  int handled = 0, max_running = 0, overlaps = 0, instances = 0;
};

// The test plugin's batch handler's largest batch and number of calls
// (shared with its children, like ReadTestPluginStats).
struct TestPluginBatchStats {
  int max_batch = 0, calls = 0;
};
inline TestPluginBatchStats ReadTestPluginBatchStats() {
  TestPluginBatchStats s;
  void* h = dlopen(TestPluginPath().c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (h == nullptr) {
    ADD_FAILURE() << "the test plugin is not loaded: its batch counters cannot be read";
    return s;
  }
  auto fn = reinterpret_cast<void (*)(int*, int*)>(dlsym(h, "test_plugin_batch_stats"));
  if (fn == nullptr)
    ADD_FAILURE() << "the test plugin exports no test_plugin_batch_stats";
  else
    fn(&s.max_batch, &s.calls);
  dlclose(h);
  return s;
}

// Reads the counters the test plugin exports (same loaded copy as the daemon's).
// The plugin must be loaded (the loader never unloads it): otherwise there are
// no counters to read, and zeros would make "nothing was handled" pass
// vacuously, so that is a test failure.
inline TestPluginStats ReadTestPluginStats(const std::string& variant = "test_plugin") {
  TestPluginStats s;
  void* h = dlopen(TestPluginPath(variant).c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (h == nullptr) {
    ADD_FAILURE() << "the test plugin " << TestPluginPath(variant)
                  << " is not loaded: its counters cannot be read";
    return s;
  }
  auto fn = reinterpret_cast<void (*)(int*, int*, int*, int*)>(dlsym(h, "test_plugin_stats"));
  if (fn == nullptr) {
    ADD_FAILURE() << TestPluginPath(variant) << " exports no test_plugin_stats";
  } else {
    fn(&s.handled, &s.max_running, &s.overlaps, &s.instances);
  }
  dlclose(h);  // drops only the NOLOAD reference
  return s;
}

inline void ResetTestPlugin(const std::string& variant = "test_plugin") {
  void* h = dlopen(TestPluginPath(variant).c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (h == nullptr) return;
  auto reset = reinterpret_cast<void (*)()>(dlsym(h, "test_plugin_reset"));
  if (reset) reset();
  dlclose(h);
}

inline std::unique_ptr<Supervisor> StartDaemon(const std::string& yaml) {
  auto config = ParseConfigString(yaml, "test.yaml", "/tmp");
  EXPECT_TRUE(config.ok()) << config.status().message();
  if (!config.ok()) return nullptr;
  auto sup = std::make_unique<Supervisor>(std::move(*config));
  Status s = sup->Start();
  EXPECT_TRUE(s.ok()) << s.message();
  if (!s.ok()) return nullptr;
  return sup;
}

inline bool WaitFor(const std::function<bool()>& pred,
                    std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return pred();
}

inline Message TypedMessage(const std::string& type, const std::string& payload = "") {
  Message m;
  m.props.message_type = type;
  m.payload = payload;
  return m;
}

}  // namespace foxworker::testing

#endif  // FOXWORKER_TESTS_CORE_TEST_DAEMON_H_
