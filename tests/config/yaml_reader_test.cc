// The YAML reader on its own: documents, mappings, typed scalar reads, and
// the "file:line:column: key.path: message" errors every config error has.
#include "daemon/config/yaml_reader.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <cmath>
#include <string>
#include <vector>

#include "daemon/base/units.h"

namespace foxworker {
namespace {

using std::chrono::milliseconds;

const YamlFile kFile{"conf.yaml", "/etc/foxworker"};

// Sets an environment variable for the life of the object.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) { setenv(name, value, 1); }
  ~ScopedEnv() { unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
};

// The one entry of a one-key document such as "x: 42".
MappingEntry EntryOf(const std::string& text, const std::string& parent = "") {
  Result<YAML::Node> doc = ParseYamlDocument(text, kFile);
  EXPECT_TRUE(doc.ok()) << doc.status().ToString();
  if (!doc.ok()) return {};
  auto entries = ReadMapping(kFile, *doc, doc->Mark(), parent, {});
  EXPECT_TRUE(entries.ok()) << entries.status().ToString();
  if (!entries.ok()) return {};
  EXPECT_EQ(entries->size(), 1u);
  return entries->empty() ? MappingEntry{} : entries->front();
}

template <typename T>
std::string ErrorOf(const Result<T>& r) {
  EXPECT_FALSE(r.ok()) << "expected an error";
  if (r.ok()) return "";
  EXPECT_TRUE(r.status().IsInvalidArgument()) << r.status().ToString();
  return r.status().message();
}

std::string ErrorOf(const Status& s) {
  EXPECT_FALSE(s.ok()) << "expected an error";
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  return s.message();
}

// ---- Documents ----

TEST(ParseYamlDocumentTest, EmptyTextIsANullNode) {
  for (const char* text : {"", "\n", "# only a comment\n"}) {
    Result<YAML::Node> doc = ParseYamlDocument(text, kFile);
    ASSERT_TRUE(doc.ok()) << text << ": " << doc.status().ToString();
    EXPECT_TRUE(doc->IsNull()) << text;
  }
}

TEST(ParseYamlDocumentTest, ReadsOneDocument) {
  Result<YAML::Node> doc = ParseYamlDocument("a: 1\nb: [x, y]\n", kFile);
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  ASSERT_TRUE(doc->IsMap());
  EXPECT_EQ((*doc)["a"].Scalar(), "1");
  EXPECT_EQ((*doc)["b"].size(), 2u);
}

TEST(ParseYamlDocumentTest, ASecondDocumentIsAnErrorAtItsStart) {
  EXPECT_EQ(ErrorOf(ParseYamlDocument("a: 1\n---\nb: 2\n", kFile)),
            "conf.yaml:3:1: a config file holds one YAML document; found a second one");
}

TEST(ParseYamlDocumentTest, SyntaxErrorHasFileLineAndColumn) {
  std::string error = ErrorOf(ParseYamlDocument("a: 1\nb: [x, y\nc: 3\n", kFile));
  EXPECT_EQ(error.rfind("conf.yaml:", 0), 0u) << error;
  EXPECT_NE(error.find(": invalid YAML: "), std::string::npos) << error;
  // Somewhere after the first line, where the sequence is left open.
  EXPECT_EQ(error.rfind("conf.yaml:1:", 0), std::string::npos) << error;
}

// yaml-cpp's own loader loops forever on this (its issue #1040).
TEST(ParseYamlDocumentTest, StrayCommaIsAnErrorNotAHang) {
  EXPECT_EQ(ErrorOf(ParseYamlDocument(",a: 1\n", kFile)),
            "conf.yaml:1:1: invalid YAML: unexpected \",\"");
  EXPECT_EQ(ErrorOf(ParseYamlDocument("- a\n- b\n,\n", kFile)),
            "conf.yaml:3:1: invalid YAML: unexpected \",\"");
}

// ---- Mappings ----

TEST(ReadMappingTest, NullIsAnEmptyMapping) {
  auto entries = ReadMapping(kFile, YAML::Node(YAML::NodeType::Null), YAML::Mark(), "daemon", {});
  ASSERT_TRUE(entries.ok());
  EXPECT_TRUE(entries->empty());
}

TEST(ReadMappingTest, EntriesInOrderWithPathsAndMarks) {
  Result<YAML::Node> doc = ParseYamlDocument("zeta: 1\nalpha:\n  beta: two\n", kFile);
  ASSERT_TRUE(doc.ok());
  auto top = ReadMapping(kFile, *doc, doc->Mark(), "", {});
  ASSERT_TRUE(top.ok()) << top.status().ToString();
  ASSERT_EQ(top->size(), 2u);
  EXPECT_EQ((*top)[0].key, "zeta");
  EXPECT_EQ((*top)[0].path, "zeta");
  EXPECT_EQ(ToSourceMark(kFile, (*top)[0].key_mark).ToString(), "conf.yaml:1:1");
  EXPECT_EQ(ToSourceMark(kFile, (*top)[0].value_mark).ToString(), "conf.yaml:1:7");
  EXPECT_EQ((*top)[1].key, "alpha");

  auto nested = ReadMapping(kFile, (*top)[1].value, (*top)[1].value_mark, (*top)[1].path, {});
  ASSERT_TRUE(nested.ok()) << nested.status().ToString();
  ASSERT_EQ(nested->size(), 1u);
  EXPECT_EQ((*nested)[0].path, "alpha.beta");
  EXPECT_EQ(ToSourceMark(kFile, (*nested)[0].key_mark).ToString(), "conf.yaml:3:3");
  EXPECT_EQ(ToSourceMark(kFile, (*nested)[0].value_mark).ToString(), "conf.yaml:3:9");
}

TEST(ReadMappingTest, AnEmptyValueIsMarkedAtItsKey) {
  MappingEntry e = EntryOf("\n  empty:\n");
  EXPECT_TRUE(e.value.IsNull());
  EXPECT_EQ(ToSourceMark(kFile, e.value_mark).ToString(), "conf.yaml:2:3");
}

TEST(ReadMappingTest, NotAMapping) {
  MappingEntry e = EntryOf("queues: [a, b]\n");
  EXPECT_EQ(ErrorOf(ReadMapping(kFile, e.value, e.value_mark, e.path, {})),
            "conf.yaml:1:9: queues: expected a mapping, got a sequence");
  MappingEntry s = EntryOf("queues: jobs\n");
  EXPECT_EQ(ErrorOf(ReadMapping(kFile, s.value, s.value_mark, s.path, {})),
            "conf.yaml:1:9: queues: expected a mapping, got a scalar");
}

TEST(ReadMappingTest, DuplicateKeyNamesBothPlaces) {
  MappingEntry daemon = EntryOf("daemon:\n  a: 1\n  b: 2\n  a: 3\n");
  EXPECT_EQ(ErrorOf(ReadMapping(kFile, daemon.value, daemon.value_mark, daemon.path, {})),
            "conf.yaml:4:3: daemon.a: duplicate key (first written at conf.yaml:2:3)");
}

TEST(ReadMappingTest, KeysMustBeNonEmptyStrings) {
  Result<YAML::Node> doc = ParseYamlDocument("ok: 1\n? [a, b]\n: 2\n", kFile);
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  EXPECT_EQ(ErrorOf(ReadMapping(kFile, *doc, doc->Mark(), "top", {})),
            "conf.yaml:2:3: top: mapping keys must be non-empty strings");
}

TEST(ReadMappingTest, UnknownKeySuggestsTheClosestKnownKey) {
  const std::vector<std::string_view> known = {"concurrency", "prefetch", "timeout"};
  MappingEntry q = EntryOf("jobs:\n  prefetch: 4\n  concurency: 2\n", "queues");
  EXPECT_EQ(ErrorOf(ReadMapping(kFile, q.value, q.value_mark, q.path, known)),
            "conf.yaml:3:3: queues.jobs.concurency: unknown key (did you mean \"concurrency\"?)");
}

TEST(ReadMappingTest, UnknownKeyFarFromAllListsThem) {
  const std::vector<std::string_view> known = {"concurrency", "prefetch", "timeout"};
  MappingEntry q = EntryOf("jobs:\n  colour: red\n", "queues");
  EXPECT_EQ(ErrorOf(ReadMapping(kFile, q.value, q.value_mark, q.path, known)),
            "conf.yaml:2:3: queues.jobs.colour: unknown key (expected one of: concurrency, "
            "prefetch, timeout)");
}

TEST(ReadMappingTest, KnownKeysPass) {
  const std::vector<std::string_view> known = {"concurrency", "prefetch"};
  MappingEntry q = EntryOf("jobs:\n  prefetch: 4\n  concurrency: 2\n");
  auto entries = ReadMapping(kFile, q.value, q.value_mark, q.path, known);
  ASSERT_TRUE(entries.ok()) << entries.status().ToString();
  EXPECT_EQ(entries->size(), 2u);
}

// ---- Scalars ----

TEST(ReadScalarTest, Strings) {
  EXPECT_EQ(*ReadString(kFile, EntryOf("x: hello world\n")), "hello world");
  EXPECT_EQ(*ReadString(kFile, EntryOf("x: \"\"\n")), "");
  EXPECT_EQ(*ReadString(kFile, EntryOf("x: 42\n")), "42");
  EXPECT_EQ(ErrorOf(ReadNonEmptyString(kFile, EntryOf("x: \"\"\n"))),
            "conf.yaml:1:4: x: must not be empty");
  EXPECT_EQ(*ReadNonEmptyString(kFile, EntryOf("x: a\n")), "a");
}

TEST(ReadScalarTest, NotAScalar) {
  EXPECT_EQ(ErrorOf(ReadString(kFile, EntryOf("x: [1, 2]\n", "daemon"))),
            "conf.yaml:1:4: daemon.x: expected a scalar value, got a sequence");
  EXPECT_EQ(ErrorOf(ReadInteger(kFile, EntryOf("x:\n  y: 1\n"), 0, 9)),
            "conf.yaml:2:3: x: expected a scalar value, got a mapping");
  EXPECT_EQ(ErrorOf(ReadBool(kFile, EntryOf("  x:\n"))), "conf.yaml:1:3: x: expected a value");
}

TEST(ReadScalarTest, Integers) {
  EXPECT_EQ(*ReadInteger(kFile, EntryOf("x: 42\n"), 0, 100), 42);
  EXPECT_EQ(*ReadInteger(kFile, EntryOf("x: -5\n"), -5, 5), -5);
  EXPECT_EQ(*ReadInteger(kFile, EntryOf("x: 100\n"), 0, 100), 100);
  EXPECT_EQ(ErrorOf(ReadInteger(kFile, EntryOf("x: 101\n"), 0, 100)),
            "conf.yaml:1:4: x: must be between 0 and 100, got 101");
  EXPECT_EQ(ErrorOf(ReadInteger(kFile, EntryOf("x: -1\n"), 0, 100)),
            "conf.yaml:1:4: x: must be between 0 and 100, got -1");
  EXPECT_EQ(ErrorOf(ReadInteger(kFile, EntryOf("x: 99999999999999999999\n"), 0, 100)),
            "conf.yaml:1:4: x: must be between 0 and 100, got 99999999999999999999");
  EXPECT_EQ(ErrorOf(ReadInteger(kFile, EntryOf("x: 4.5\n"), 0, 100)),
            "conf.yaml:1:4: x: expected an integer, got \"4.5\"");
  EXPECT_EQ(ErrorOf(ReadInteger(kFile, EntryOf("x: 0x10\n"), 0, 100)),
            "conf.yaml:1:4: x: expected an integer, got \"0x10\"");
  EXPECT_EQ(ErrorOf(ReadInteger(kFile, EntryOf("x: 12abc\n"), 0, 100)),
            "conf.yaml:1:4: x: expected an integer, got \"12abc\"");
}

TEST(ReadScalarTest, Numbers) {
  EXPECT_EQ(*ReadNumber(kFile, EntryOf("x: 0.25\n"), 0, 1), 0.25);
  EXPECT_EQ(*ReadNumber(kFile, EntryOf("x: 3\n"), 0, HUGE_VAL), 3.0);
  EXPECT_EQ(ErrorOf(ReadNumber(kFile, EntryOf("x: 1.5\n"), 0, 1)),
            "conf.yaml:1:4: x: must be between 0 and 1, got 1.5");
  EXPECT_EQ(ErrorOf(ReadNumber(kFile, EntryOf("x: 0.1\n"), 0.5, HUGE_VAL)),
            "conf.yaml:1:4: x: must be at least 0.5, got 0.1");
  for (const char* bad : {"nan", "inf", "1e999", "half", "1,5"}) {
    EXPECT_EQ(ErrorOf(ReadNumber(kFile, EntryOf(std::string("x: ") + bad + "\n"), 0, HUGE_VAL)),
              std::string("conf.yaml:1:4: x: expected a number, got \"") + bad + "\"");
  }
}

TEST(ReadScalarTest, Bools) {
  for (const char* yes : {"true", "True", "TRUE"})
    EXPECT_TRUE(*ReadBool(kFile, EntryOf(std::string("x: ") + yes + "\n"))) << yes;
  for (const char* no : {"false", "False", "FALSE"})
    EXPECT_FALSE(*ReadBool(kFile, EntryOf(std::string("x: ") + no + "\n"))) << no;
  // YAML 1.1 spellings are not booleans here.
  for (const char* other : {"yes", "no", "on", "1"}) {
    EXPECT_EQ(ErrorOf(ReadBool(kFile, EntryOf(std::string("x: ") + other + "\n"))),
              std::string("conf.yaml:1:4: x: expected true or false, got \"") + other + "\"");
  }
}

TEST(ReadScalarTest, DurationsUseTheUnitsParser) {
  EXPECT_EQ(*ReadDuration(kFile, EntryOf("x: 250ms\n")), milliseconds(250));
  EXPECT_EQ(*ReadDuration(kFile, EntryOf("x: 1.5s\n")), milliseconds(1500));
  EXPECT_EQ(*ReadDuration(kFile, EntryOf("x: 2h\n")), milliseconds(7200000));
  EXPECT_EQ(*ReadDuration(kFile, EntryOf("x: 0\n")), milliseconds(0));
  // The units parser's message, placed at the value and named by its path.
  for (const char* bad : {"30", "-5s", "1.5ms", "30 sec"}) {
    std::string expected = "conf.yaml:2:12: daemon.grace: " + ParseDuration(bad).status().message();
    EXPECT_EQ(
        ErrorOf(ReadDuration(kFile, EntryOf(std::string("\n  grace:   ") + bad + "\n", "daemon"))),
        expected);
  }
}

// ---- Environment interpolation, before any typed read ----

TEST(ReadScalarTest, EnvironmentIsExpandedBeforeTheTypedRead) {
  ScopedEnv port("FOXW_YAML_READER_PORT", "8080");
  ScopedEnv grace("FOXW_YAML_READER_GRACE", "3s");
  ScopedEnv flag("FOXW_YAML_READER_FLAG", "TRUE");
  unsetenv("FOXW_YAML_READER_UNSET");
  EXPECT_EQ(*ReadInteger(kFile, EntryOf("x: ${FOXW_YAML_READER_PORT}\n"), 1, 65535), 8080);
  EXPECT_EQ(*ReadInteger(kFile, EntryOf("x: \"${FOXW_YAML_READER_PORT}\"\n"), 1, 65535), 8080);
  EXPECT_EQ(*ReadDuration(kFile, EntryOf("x: ${FOXW_YAML_READER_GRACE}\n")), milliseconds(3000));
  EXPECT_TRUE(*ReadBool(kFile, EntryOf("x: ${FOXW_YAML_READER_FLAG}\n")));
  EXPECT_EQ(*ReadString(kFile, EntryOf("x: host-${FOXW_YAML_READER_PORT}-$$\n")), "host-8080-$");
  EXPECT_EQ(*ReadDuration(kFile, EntryOf("x: ${FOXW_YAML_READER_UNSET:-250ms}\n")),
            milliseconds(250));
  // The expanded text is what the typed read checks.
  EXPECT_EQ(ErrorOf(ReadInteger(kFile, EntryOf("x: ${FOXW_YAML_READER_GRACE}\n"), 0, 9)),
            "conf.yaml:1:4: x: expected an integer, got \"3s\"");
}

TEST(ReadScalarTest, EnvironmentErrorsPointAtTheValue) {
  unsetenv("FOXW_YAML_READER_UNSET");
  EXPECT_EQ(ErrorOf(ReadString(kFile, EntryOf("url: ${FOXW_YAML_READER_UNSET}\n", "redis"))),
            "conf.yaml:1:6: redis.url: environment variable FOXW_YAML_READER_UNSET is not set");
  std::string forgot = ErrorOf(ReadString(kFile, EntryOf("x: $HOME/data\n")));
  EXPECT_EQ(forgot.rfind("conf.yaml:1:4: x: \"$HOME\" is not expanded", 0), 0u) << forgot;
}

// ---- Errors, marks and names ----

TEST(ErrorAtTest, FormatsFileLineColumnPathAndMessage) {
  YAML::Mark mark;
  mark.line = 4;
  mark.column = 2;
  EXPECT_EQ(ErrorOf(ErrorAt(kFile, mark, "queues.jobs", "bad")), "conf.yaml:5:3: queues.jobs: bad");
  EXPECT_EQ(ErrorOf(ErrorAt(kFile, mark, "", "bad")), "conf.yaml:5:3: bad");
  EXPECT_EQ(ErrorOf(ErrorAt(kFile, YAML::Mark::null_mark(), "a.b", "bad")), "conf.yaml: a.b: bad");
  SourceMark sm = ToSourceMark(kFile, mark);
  EXPECT_EQ(sm.file, "conf.yaml");
  EXPECT_EQ(sm.line, 5);
  EXPECT_EQ(sm.column, 3);
}

TEST(ClosestMatchTest, WithinTwoEditsAndShorterThanTheWord) {
  const std::vector<std::string_view> keys = {"retries", "timeout", "prefetch"};
  EXPECT_EQ(ClosestMatch("retires", keys), "retries");  // a transposition is one edit
  EXPECT_EQ(ClosestMatch("timout", keys), "timeout");
  EXPECT_EQ(ClosestMatch("prefetc", keys), "prefetch");
  EXPECT_EQ(ClosestMatch("prfetc", keys), "prefetch");                     // two edits
  EXPECT_EQ(ClosestMatch("prftc", keys), "");                              // three
  EXPECT_EQ(ClosestMatch("ab", std::vector<std::string_view>{"xy"}), "");  // all of "ab" changed
  EXPECT_EQ(DidYouMean("timout", keys), " (did you mean \"timeout\"?)");
  EXPECT_EQ(DidYouMean("colour", keys), "");
}

TEST(IsValidNameTest, LettersDigitsAndSomePunctuation) {
  for (const char* ok : {"jobs", "Jobs2", "9lives", "a_b-c.d:e"})
    EXPECT_TRUE(IsValidName(ok)) << ok;
  for (const char* bad : {"", "_jobs", "-x", ".x", "a b", "a/b", "ü"})
    EXPECT_FALSE(IsValidName(bad)) << bad;
}

}  // namespace
}  // namespace foxworker
