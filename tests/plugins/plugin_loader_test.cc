// Every error the plugin loader reports, against real shared objects.
#include "daemon/plugins/plugin_loader.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "daemon/config/config_parser.h"
#include "tests/core/test_daemon.h"

namespace foxworker::testing {
namespace {

PluginConfig Plugin(const std::string& variant) {
  PluginConfig p;
  p.name = "test";
  p.path = TestPluginPath(variant);
  p.config_json = "{}";
  return p;
}

std::string LoadError(const PluginConfig& p) {
  auto r = LoadedPlugin::Load(p);
  EXPECT_FALSE(r.ok());
  return r.ok() ? "" : r.status().message();
}

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE((haystack).find(needle), std::string::npos) << (haystack)

TEST(PluginLoaderTest, LoadsAGoodPlugin) {
  auto p = LoadedPlugin::Load(Plugin("test_plugin"));
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ((*p)->info().abi_major, FOXW_ABI_MAJOR);
  EXPECT_NE((*p)->FindHandler("ok"), nullptr);
  EXPECT_EQ((*p)->FindHandler("nope"), nullptr);
}

TEST(PluginLoaderTest, MissingFile) {
  PluginConfig p = Plugin("test_plugin");
  p.path = "/nonexistent/libfoxworker_x.so";
  std::string e = LoadError(p);
  EXPECT_CONTAINS(e, "/nonexistent/libfoxworker_x.so");
  EXPECT_CONTAINS(e, "No such file");
}

TEST(PluginLoaderTest, NotASharedObject) {
  auto path = std::filesystem::temp_directory_path() / "foxworker_not_elf.so";
  std::ofstream(path) << "hello";
  PluginConfig p = Plugin("test_plugin");
  p.path = path.string();
  std::string e = LoadError(p);
  EXPECT_CONTAINS(e, path.string());
  EXPECT_CONTAINS(e, "not a shared object (no ELF header)");
  std::filesystem::remove(path);
}

TEST(PluginLoaderTest, AProgramOrAnObjectFileIsNotAPlugin) {
  // A position-independent program is ET_DYN like a library: its exports
  // tell it apart.
  PluginConfig p = Plugin("test_plugin");
  p.path = "/bin/true";
  EXPECT_CONTAINS(LoadError(p), "not a foxworker plugin (it does not export foxworker_plugin_");
  p.path = TEST_PLUGIN_OBJECT;  // test_plugin.c compiled but not linked
  EXPECT_CONTAINS(LoadError(p), "not a shared object (ELF type REL, an object file");
}

// The ELF check runs before dlopen: a file that does not export the magic
// function never gets its constructors run.
TEST(PluginLoaderTest, NotAFoxworkerPluginRunsNoCodeOfIt) {
  auto mark = std::filesystem::temp_directory_path() / "foxworker_ctor_ran";
  std::filesystem::remove(mark);
  setenv("FOXW_TEST_CTOR_MARK", mark.c_str(), 1);
  std::string e = LoadError(Plugin("bad_no_magic"));
  EXPECT_CONTAINS(e, "libfoxworker_bad_no_magic.so");
  EXPECT_CONTAINS(e, "not a foxworker plugin (it does not export foxworker_plugin_magic");
  EXPECT_FALSE(std::filesystem::exists(mark)) << "the plugin's constructor ran";
  // The same constructor does run for a file that passes the check (dlopen
  // runs constructors before the magic block can be read), as documented.
  ASSERT_TRUE(LoadError(Plugin("bad_minor")).find("needs plugin ABI 1.99") != std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(mark));
  unsetenv("FOXW_TEST_CTOR_MARK");
  std::filesystem::remove(mark);
}

TEST(PluginLoaderTest, OtherMajorIsRefused) {
  std::string e = LoadError(Plugin("bad_major"));
  EXPECT_CONTAINS(e, "built for plugin ABI major 2,");
  EXPECT_CONTAINS(e, "speaks ABI major 1");
}

TEST(PluginLoaderTest, NewerMinorIsRefused) {
  std::string e = LoadError(Plugin("bad_minor"));
  EXPECT_CONTAINS(e, "needs plugin ABI 1.99");
  EXPECT_CONTAINS(e, "upgrade foxworker");
}

TEST(PluginLoaderTest, InitRefusalCarriesThePluginsMessage) {
  std::string e = LoadError(Plugin("bad_init"));
  EXPECT_CONTAINS(e, "init refused: missing licence key");
}

TEST(PluginLoaderTest, CreateRefusalCarriesThePluginsMessage) {
  auto p = LoadedPlugin::Load(Plugin("bad_create"));
  ASSERT_TRUE(p.ok()) << p.status().message();
  auto inst = (*p)->CreateInstance();
  ASSERT_FALSE(inst.ok());
  EXPECT_CONTAINS(inst.status().message(), "create refused: the test plugin refuses");
  auto pool = InstancePool::Create(**p, 2, 2);
  EXPECT_FALSE(pool.ok());
}

TEST(PluginLoaderTest, DuplicateHandlerNames) {
  std::string e = LoadError(Plugin("bad_duplicate"));
  EXPECT_CONTAINS(e, "duplicate handler name \"ok\"");
}

TEST(PluginLoaderTest, RefusesAWorldWritableFile) {
  auto dir = std::filesystem::temp_directory_path() / "foxworker_perm_test";
  std::filesystem::create_directories(dir);
  chmod(dir.c_str(), 0755);
  auto path = dir / "libfoxworker_test_plugin.so";
  std::filesystem::copy_file(TestPluginPath("test_plugin"), path,
                             std::filesystem::copy_options::overwrite_existing);
  chmod(path.c_str(), 0757);
  PluginConfig p = Plugin("test_plugin");
  p.path = path.string();
  std::string e = LoadError(p);
  EXPECT_CONTAINS(e, "writable by every user");
  chmod(path.c_str(), 0755);
  chmod(dir.c_str(), 0777);
  e = LoadError(p);
  EXPECT_CONTAINS(e, "its directory");
  chmod(dir.c_str(), 0755);
  std::filesystem::remove_all(dir);
}

TEST(PluginLoaderTest, SchemaValidationNamesTheKeyAndLocation) {
  foxw_config_key keys[] = {
      {sizeof(foxw_config_key), "command", FOXW_CONFIG_STRING_LIST, true, nullptr, "argv"},
      {sizeof(foxw_config_key), "timeout", FOXW_CONFIG_DURATION, false, "60s", "limit"},
  };
  foxw_plugin_info info{sizeof(foxw_plugin_info), FOXW_PLUGIN_MAGIC_VALUE, 1, 0, 0, 0, "x", "1",
                        "", keys, 2, sizeof(foxw_config_key)};
  PluginConfig p;
  p.name = "x";
  p.config_json = R"({"command":["/bin/true"],"timout":"5s"})";
  p.config_marks["timout"] = SourceMark{"/etc/fw.yaml", 7, 7};
  auto r = ApplyPluginSchema(p, info);
  ASSERT_FALSE(r.ok());
  EXPECT_CONTAINS(r.status().message(), "/etc/fw.yaml:7:7: plugins.x.config.timout: unknown key");
  p.config_json = R"({"command":["/bin/true"],"timeout":"5 parsecs"})";
  r = ApplyPluginSchema(p, info);
  ASSERT_FALSE(r.ok());
  EXPECT_CONTAINS(r.status().message(), "must be a duration");
  p.config_json = R"({})";
  r = ApplyPluginSchema(p, info);
  ASSERT_FALSE(r.ok());
  EXPECT_CONTAINS(r.status().message(), "missing required key command");
  p.config_json = R"({"command":["/bin/true"]})";
  r = ApplyPluginSchema(p, info);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, R"({"command":["/bin/true"],"timeout":60000})");
}

}  // namespace
}  // namespace foxworker::testing
