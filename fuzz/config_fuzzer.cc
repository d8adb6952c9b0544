// Fuzzes the whole config pipeline as `foxworkerd --check-config` runs it:
// YAML text to a validated Config (LoadConfig: the main file, the files of
// daemon.include_dir, ${VAR} interpolation, defaults, validation of every
// built-in backend's and middleware's block) and the effective config
// FormatConfig prints.
//
// Input: the main file, then optionally more files separated by a line
// "#%"; those become conf.d/00.yaml, conf.d/01.yaml... in the harness's
// scratch directory, which is the main file's directory (so
// `include_dir: conf.d` includes them). A few environment variables are set
// for ${VAR} references (see LLVMFuzzerInitialize).
//
// Checks: no crash, no Internal status (a YAML exception that escaped the
// typed readers), every error names its file; and for a config that loads,
// FormatConfig's output parses again to a config that formats to the same
// text (what --check-config promises: "parsing the output gives the same
// values").
#include <stdlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/app/builtin_extensions.h"
#include "daemon/config/config_parser.h"

namespace fs = std::filesystem;

namespace {

std::string g_dir;   // scratch directory
std::string g_main;  // g_dir + "/foxworker.yaml"

void Write(const std::string& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
}

// `text` without the include_dir comment FormatConfig writes (the files are
// merged into the output, so a reparse has no include_dir).
std::string WithoutIncludeComment(const std::string& text) {
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    end = end == std::string::npos ? text.size() : end + 1;
    std::string_view line(text.data() + pos, end - pos);
    if (line.rfind("  # include_dir: ", 0) != 0) out.append(line);
    pos = end;
  }
  return out;
}

[[noreturn]] void Fail(const char* what, const std::string& a, const std::string& b) {
  std::fprintf(stderr, "config_fuzzer: %s\n--- first ---\n%s\n--- second ---\n%s\n", what,
               a.c_str(), b.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // The config halves of the built-in backends and middleware: all that
  // parsing and formatting a config needs (foxworkerctl registers the same).
  foxworker::RegisterBuiltinConfig();
  char tmpl[] = "/tmp/foxworker-config-fuzz-XXXXXX";
  const char* dir = mkdtemp(tmpl);
  if (dir == nullptr) std::abort();
  g_dir = dir;
  g_main = g_dir + "/foxworker.yaml";
  fs::create_directories(g_dir + "/conf.d");
  setenv("FUZZ_HOST", "localhost", 1);
  setenv("FUZZ_PORT", "5672", 1);
  setenv("FUZZ_EMPTY", "", 1);
  setenv("FUZZ_DOLLAR", "$HOME $$ ${X}", 1);
  setenv("FUZZ_YAML", "a: [b, {c: d}]\n- e", 1);
  setenv("FUZZ_URL", "amqp://guest:guest@localhost:5672/%2f", 1);
  unsetenv("FUZZ_UNSET");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  // Split into the main file and the included ones.
  std::vector<std::string_view> parts;
  size_t pos = 0;
  while (parts.size() < 8) {
    const size_t sep = input.find("\n#%\n", pos);
    if (sep == std::string_view::npos) break;
    parts.push_back(input.substr(pos, sep - pos));
    pos = sep + 4;
  }
  parts.push_back(input.substr(pos));

  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(g_dir + "/conf.d", ec)) fs::remove(entry, ec);
  Write(g_main, parts[0]);
  for (size_t i = 1; i < parts.size(); ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "/conf.d/%02zu.yaml", i - 1);
    Write(g_dir + name, parts[i]);
  }

  foxworker::Result<foxworker::Config> config = foxworker::LoadConfig(g_main);
  if (!config.ok()) {
    const foxworker::Status& s = config.status();
    if (s.code() == foxworker::Status::Code::kInternal)
      Fail("Internal error loading a config", s.message(), std::string(input));
    if (s.message().empty()) Fail("error without a message", "", std::string(input));
    return 0;
  }
  const std::string text = foxworker::FormatConfig(*config);
  foxworker::Result<foxworker::Config> again =
      foxworker::ParseConfigString(text, config->file, g_dir);
  if (!again.ok()) Fail("--check-config output does not load", again.status().message(), text);
  const std::string text2 = foxworker::FormatConfig(*again);
  const std::string expected = WithoutIncludeComment(text);
  if (text2 != expected) Fail("--check-config output formats differently", expected, text2);
  return 0;
}
