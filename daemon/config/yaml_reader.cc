#include "daemon/config/yaml_reader.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <sstream>
#include <system_error>

#include "daemon/config/env_interpolation.h"
#include "daemon/base/units.h"

namespace foxworker {
namespace {

std::string_view KindOf(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a sequence";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

// Records the first event of one YAML document.
class DocumentProbe : public YAML::EventHandler {
 public:
  YAML::Mark first_mark;
  int events = 0;
  bool first_is_null = false;

  bool IsLoneNull() const { return events == 1 && first_is_null; }

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { Record(mark, true); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { Record(mark, false); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    Record(mark, false);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    Record(mark, false);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Record(mark, false);
  }
  void OnMapEnd() override {}

 private:
  void Record(const YAML::Mark& mark, bool is_null) {
    if (events++ == 0) {
      first_mark = mark;
      first_is_null = is_null;
    }
  }
};

std::string Quoted(std::string_view text) { return "\"" + std::string(text) + "\""; }

std::string ShortestText(double value) {
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return ec == std::errc() ? std::string(buffer, end) : std::to_string(value);
}

// Optimal string alignment distance: Levenshtein plus adjacent transpositions.
size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

std::string JoinKeys(std::span<const std::string_view> keys) {
  std::string out;
  for (std::string_view key : keys) {
    if (!out.empty()) out += ", ";
    out += key;
  }
  return out;
}

// The scalar text of `entry` with environment references expanded.
Result<std::string> ScalarText(const YamlFile& file, const MappingEntry& entry) {
  if (!entry.value.IsScalar()) {
    std::string got(KindOf(entry.value));
    return ErrorAt(file, entry.value_mark, entry.path,
                   got == "nothing" ? "expected a value" : "expected a scalar value, got " + got);
  }
  Result<std::string> text = InterpolateEnvironment(entry.value.Scalar());
  if (!text.ok()) return ErrorAt(file, entry.value_mark, entry.path, text.status().message());
  return text;
}

}  // namespace

SourceMark ToSourceMark(const YamlFile& file, const YAML::Mark& mark) {
  SourceMark out;
  out.file = file.name;
  if (mark.line >= 0) {
    out.line = mark.line + 1;
    out.column = mark.column + 1;
  }
  return out;
}

Status ErrorAt(const SourceMark& mark, std::string_view path, std::string_view message) {
  std::string text = mark.ToString();
  text += ": ";
  if (!path.empty()) {
    text.append(path);
    text += ": ";
  }
  text.append(message);
  return Status::InvalidArgument(std::move(text));
}

Status ErrorAt(const YamlFile& file, const YAML::Mark& mark, std::string_view path,
               std::string_view message) {
  return ErrorAt(ToSourceMark(file, mark), path, message);
}

Result<YAML::Node> ParseYamlDocument(const std::string& text, const YamlFile& file) {
  // YAML::LoadAll() loops forever on a token no node can start with (a stray
  // ',' at the top level; yaml-cpp issue #1040) and YAML::Load() then
  // silently drops the rest of the file. So first walk the documents with
  // the event parser, which shows that case as the same empty document over
  // and over, and only then build the node.
  try {
    std::istringstream stream(text);
    YAML::Parser parser(stream);
    std::vector<DocumentProbe> documents;
    while (documents.size() < 3) {
      DocumentProbe probe;
      if (!parser.HandleNextDocument(probe)) break;
      if (!documents.empty() && probe.IsLoneNull() && documents.back().IsLoneNull() &&
          probe.first_mark.pos == documents.back().first_mark.pos) {
        size_t pos = static_cast<size_t>(probe.first_mark.pos);
        std::string what = pos < text.size() && text[pos] > ' ' && text[pos] < 0x7f
                               ? "unexpected \"" + std::string(1, text[pos]) + "\""
                               : "unexpected character";
        return ErrorAt(file, probe.first_mark, "", "invalid YAML: " + what);
      }
      documents.push_back(probe);
    }
    if (documents.size() > 1) {
      return ErrorAt(file, documents[1].first_mark, "",
                     "a config file holds one YAML document; found a second one");
    }
    if (documents.empty()) return YAML::Node(YAML::NodeType::Null);
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return ErrorAt(file, e.mark, "", "invalid YAML: " + e.msg);
  }
}

std::string_view ClosestMatch(std::string_view word, std::span<const std::string_view> candidates) {
  std::string_view best;
  size_t best_distance = 3;
  for (std::string_view candidate : candidates) {
    size_t distance = EditDistance(word, candidate);
    if (distance < best_distance && distance < word.size()) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

std::string DidYouMean(std::string_view word, std::span<const std::string_view> candidates) {
  std::string_view match = ClosestMatch(word, candidates);
  if (match.empty()) return "";
  return " (did you mean " + Quoted(match) + "?)";
}

Status UnknownKeyError(const YamlFile& file, const MappingEntry& entry,
                       std::span<const std::string_view> known_keys) {
  std::string hint = DidYouMean(entry.key, known_keys);
  if (hint.empty()) hint = " (expected one of: " + JoinKeys(known_keys) + ")";
  return ErrorAt(file, entry.key_mark, entry.path, "unknown key" + hint);
}

Result<std::vector<MappingEntry>> ReadMapping(const YamlFile& file, const YAML::Node& node,
                                              const YAML::Mark& mark, const std::string& path,
                                              std::span<const std::string_view> known_keys) {
  std::vector<MappingEntry> entries;
  if (node.IsNull()) return entries;
  if (!node.IsMap()) {
    return ErrorAt(file, mark, path, "expected a mapping, got " + std::string(KindOf(node)));
  }
  std::map<std::string, YAML::Mark> seen;
  for (auto it = node.begin(); it != node.end(); ++it) {
    YAML::Node key = it->first;  // a copy: `it->` returns a temporary
    YAML::Mark key_mark = key.Mark();
    if (!key.IsScalar() || key.Scalar().empty()) {
      return ErrorAt(file, key_mark, path, "mapping keys must be non-empty strings");
    }
    MappingEntry entry;
    entry.key = key.Scalar();
    entry.path = path.empty() ? entry.key : path + "." + entry.key;
    entry.key_mark = key_mark;
    entry.value = it->second;
    entry.value_mark = entry.value.Mark();
    if (entry.value_mark.line < 0 || entry.value.IsNull()) entry.value_mark = key_mark;
    auto [previous, inserted] = seen.emplace(entry.key, key_mark);
    if (!inserted) {
      return ErrorAt(file, key_mark, entry.path,
                     "duplicate key (first written at " +
                         ToSourceMark(file, previous->second).ToString() + ")");
    }
    if (!known_keys.empty() &&
        std::find(known_keys.begin(), known_keys.end(), entry.key) == known_keys.end()) {
      return UnknownKeyError(file, entry, known_keys);
    }
    entries.push_back(std::move(entry));
  }
  return entries;
}

Result<std::string> ReadString(const YamlFile& file, const MappingEntry& entry) {
  return ScalarText(file, entry);
}

Result<std::string> ReadNonEmptyString(const YamlFile& file, const MappingEntry& entry) {
  Result<std::string> text = ScalarText(file, entry);
  if (text.ok() && text->empty())
    return ErrorAt(file, entry.value_mark, entry.path, "must not be empty");
  return text;
}

Result<int64_t> ReadInteger(const YamlFile& file, const MappingEntry& entry, int64_t min,
                            int64_t max) {
  Result<std::string> text = ScalarText(file, entry);
  if (!text.ok()) return text.status();
  int64_t value = 0;
  const char* begin = text->data();
  const char* end = begin + text->size();
  auto [ptr, ec] = std::from_chars(begin, end, value);
  std::string range = "between " + std::to_string(min) + " and " + std::to_string(max);
  if (ec == std::errc::result_out_of_range) {
    return ErrorAt(file, entry.value_mark, entry.path, "must be " + range + ", got " + *text);
  }
  if (ec != std::errc() || ptr != end) {
    return ErrorAt(file, entry.value_mark, entry.path, "expected an integer, got " + Quoted(*text));
  }
  if (value < min || value > max) {
    return ErrorAt(file, entry.value_mark, entry.path, "must be " + range + ", got " + *text);
  }
  return value;
}

Result<double> ReadNumber(const YamlFile& file, const MappingEntry& entry, double min, double max) {
  Result<std::string> text = ScalarText(file, entry);
  if (!text.ok()) return text.status();
  double value = 0;
  const char* begin = text->data();
  const char* end = begin + text->size();
  auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc() || ptr != end || !std::isfinite(value)) {
    return ErrorAt(file, entry.value_mark, entry.path, "expected a number, got " + Quoted(*text));
  }
  if (value < min || value > max) {
    std::string bounds = max == HUGE_VAL
                             ? "at least " + ShortestText(min)
                             : "between " + ShortestText(min) + " and " + ShortestText(max);
    return ErrorAt(file, entry.value_mark, entry.path, "must be " + bounds + ", got " + *text);
  }
  return value;
}

Result<bool> ReadBool(const YamlFile& file, const MappingEntry& entry) {
  Result<std::string> text = ScalarText(file, entry);
  if (!text.ok()) return text.status();
  if (*text == "true" || *text == "True" || *text == "TRUE") return true;
  if (*text == "false" || *text == "False" || *text == "FALSE") return false;
  return ErrorAt(file, entry.value_mark, entry.path,
                 "expected true or false, got " + Quoted(*text));
}

Result<Duration> ReadDuration(const YamlFile& file, const MappingEntry& entry) {
  Result<std::string> text = ScalarText(file, entry);
  if (!text.ok()) return text.status();
  Result<Duration> duration = ParseDuration(*text);
  if (!duration.ok()) {
    return ErrorAt(file, entry.value_mark, entry.path, duration.status().message());
  }
  return duration;
}

bool IsValidName(std::string_view name) {
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (name.empty() || !alnum(name[0])) return false;
  return std::all_of(name.begin(), name.end(), [&](char c) {
    return alnum(c) || c == '_' || c == '-' || c == '.' || c == ':';
  });
}

Status AssignPositiveDuration(const YamlFile& file, const MappingEntry& e, Duration* out) {
  Status status = Assign(ReadDuration(file, e), out);
  if (status.ok() && *out <= Duration::zero()) {
    return ErrorAt(file, e.value_mark, e.path, "must be greater than zero");
  }
  return status;
}

Status ReadTokenBucketKey(const YamlFile& file, const MappingEntry& e, double* rate, int* burst) {
  constexpr int64_t kMaxBurst = 1000000000;
  if (e.key == "burst") return Assign(ReadInteger(file, e, 0, kMaxBurst), burst);
  if (e.key != "rate") return Status::Internal(e.path + ": not a key of a token bucket");
  Result<std::string> text = ReadString(file, e);
  if (!text.ok()) return text.status();
  Result<double> parsed = ParseRate(*text);
  if (!parsed.ok()) return ErrorAt(file, e.value_mark, e.path, parsed.status().message());
  *rate = *parsed;
  return Status::Ok();
}

}  // namespace foxworker
