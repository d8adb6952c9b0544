// The extension registry: the built-in types in their order, the factory
// lookup, and options compared by value.
#include "daemon/config/extension_registry.h"

#include <gtest/gtest.h>

#include <cstdio>

#include "daemon/backends/local/local_config.h"
#include "daemon/backends/memory/memory_config.h"
#include "daemon/config/config_parser.h"
#include "daemon/middleware/rate_limit/rate_limit_config.h"

namespace foxworker {
namespace {

TEST(ExtensionRegistryTest, BuiltinTypesInRegistrationOrder) {
  const ExtensionRegistry& registry = ExtensionRegistry::Global();
  EXPECT_EQ(registry.BackendTypes(),
            (std::vector<std::string_view>{"local", "memory", "rabbitmq", "redis"}));
  EXPECT_EQ(registry.MiddlewareTypes(),
            (std::vector<std::string_view>{"circuit_breaker", "rate_limit", "dedup", "logging"}));
  ASSERT_NE(registry.FindBackend("rabbitmq"), nullptr);
  EXPECT_EQ(registry.FindBackend("rabbitmq")->queue_key, "rabbitmq");
  EXPECT_EQ(registry.FindBackend("kafka"), nullptr);
  EXPECT_EQ(registry.FindMiddleware("auth"), nullptr);
}

TEST(ExtensionRegistryTest, MakeBackendUsesTheRegisteredFactory) {
  BackendConfig config;
  config.name = "mem";
  config.type = "memory";
  config.options = std::make_shared<MemoryBackendOptions>();
  auto backend = MakeBackend(config);
  ASSERT_TRUE(backend.ok()) << backend.status().ToString();
  EXPECT_EQ((*backend)->name(), "mem");
  EXPECT_EQ((*backend)->OpenDurableKeyStore("q"), nullptr);  // nothing durable to offer

  config.type = "kafka";
  config.mark = {"f.yaml", 3, 5};
  EXPECT_EQ(MakeBackend(config).status().message(),
            "f.yaml:3:5: backends.mem.type: backend type \"kafka\" is not built into this "
            "foxworkerd");
}

TEST(ExtensionRegistryTest, OptionsCompareByValueAndType) {
  auto a = std::make_shared<LocalBackendOptions>();
  auto b = std::make_shared<LocalBackendOptions>();
  EXPECT_TRUE(OptionsPtr<BackendOptions>(a) == OptionsPtr<BackendOptions>(b));
  b->lease = Duration(1000);
  EXPECT_FALSE(OptionsPtr<BackendOptions>(a) == OptionsPtr<BackendOptions>(b));
  // Another type never equals, nor does null.
  EXPECT_FALSE(OptionsPtr<BackendOptions>(a) ==
               OptionsPtr<BackendOptions>(std::make_shared<MemoryBackendOptions>()));
  EXPECT_FALSE(OptionsPtr<BackendOptions>(a) == OptionsPtr<BackendOptions>());
  EXPECT_TRUE(OptionsPtr<BackendOptions>() == OptionsPtr<BackendOptions>());
}

TEST(ExtensionRegistryTest, ReloadSeesAChangedBackendOrMiddleware) {
  const char* kBase =
      "plugins:\n  p: {path: /x/p.so}\nbackends:\n  b: {type: local, lease: %s}\n"
      "queues:\n  q:\n    backend: b\n    plugin: p\n    middleware:\n"
      "      - rate_limit: {rate: %s}\n";
  auto parse = [&](const char* lease, const char* rate) {
    char text[512];
    std::snprintf(text, sizeof(text), kBase, lease, rate);
    auto config = ParseConfigString(text, "t.yaml", "/etc/fw");
    EXPECT_TRUE(config.ok()) << config.status().ToString();
    return *config;
  };
  Config a = parse("30s", "10/s"), same = parse("30s", "10/s");
  Config lease = parse("31s", "10/s"), rate = parse("30s", "11/s");
  EXPECT_TRUE(a.backends[0] == same.backends[0]);
  EXPECT_TRUE(a.queues[0] == same.queues[0]);
  EXPECT_FALSE(a.backends[0] == lease.backends[0]);
  EXPECT_TRUE(a.queues[0] == lease.queues[0]);
  EXPECT_FALSE(a.queues[0] == rate.queues[0]);
  EXPECT_DOUBLE_EQ(rate.queues[0].middleware[0].options.As<RateLimitOptions>()->rate, 11.0);
}

}  // namespace
}  // namespace foxworker
