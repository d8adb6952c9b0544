// Reads the layer table in docs/architecture.md and every #include of ours
// under daemon/, and fails on an include the table does not allow.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

struct Layer {
  std::string name;
  std::string folder;  // "daemon/core/" or "daemon/backends/*/"
  std::set<std::string> allowed;  // layer names, or "backends/local" for one unit
};

std::string Trim(std::string s) {
  const char* ws = " \t`";
  s.erase(0, s.find_first_not_of(ws));
  size_t e = s.find_last_not_of(ws);
  s.erase(e == std::string::npos ? 0 : e + 1);
  return s;
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string part;
  while (std::getline(in, part, sep)) out.push_back(part);
  return out;
}

std::vector<Layer> ReadTable(const fs::path& doc) {
  std::ifstream in(doc);
  std::string line;
  bool inside = false;
  std::vector<Layer> layers;
  while (std::getline(in, line)) {
    if (line.find("<!-- layer table") != std::string::npos) {
      inside = true;
      continue;
    }
    if (line.find("<!-- end of layer table") != std::string::npos) break;
    if (!inside || line.empty() || line[0] != '|' || line.find("---") != std::string::npos)
      continue;
    std::vector<std::string> cells = Split(line, '|');
    // "| a | b | c |" splits into "", a, b, c.
    if (cells.size() < 4) continue;
    Layer l{Trim(cells[1]), Trim(cells[2]), {}};
    if (l.name == "layer") continue;  // the header row
    for (const auto& a : Split(cells[3], ','))
      if (!Trim(a).empty()) l.allowed.insert(Trim(a));
    layers.push_back(l);
  }
  return layers;
}

// The layer and unit ("backends/redis") of a path below the source root,
// or nullptr when no row covers it.
const Layer* LayerOf(const std::vector<Layer>& layers, const std::string& path,
                     std::string* unit) {
  for (const auto& l : layers) {
    const std::string& f = l.folder;
    if (f.size() > 2 && f.compare(f.size() - 2, 2, "*/") == 0) {
      std::string prefix = f.substr(0, f.size() - 2);  // "daemon/backends/"
      if (path.compare(0, prefix.size(), prefix) != 0) continue;
      size_t slash = path.find('/', prefix.size());
      if (slash == std::string::npos) continue;  // a file directly in daemon/backends/
      *unit = path.substr(std::string("daemon/").size(), slash - std::string("daemon/").size());
      return &l;
    }
    if (path.compare(0, f.size(), f) == 0) {
      *unit = f.substr(std::string("daemon/").size(), f.size() - 1 - std::string("daemon/").size());
      return &l;
    }
  }
  return nullptr;
}

// `#include "daemon/..."` (spaces allowed around '#'): the path.
bool IncludedFile(const std::string& line, std::string* path) {
  size_t i = line.find_first_not_of(" \t");
  if (i == std::string::npos || line[i] != '#') return false;
  i = line.find_first_not_of(" \t", i + 1);
  if (i == std::string::npos || line.compare(i, 7, "include") != 0) return false;
  i = line.find('"', i + 7);
  if (i == std::string::npos || line.compare(i + 1, 7, "daemon/") != 0) return false;
  size_t end = line.find('"', i + 1);
  if (end == std::string::npos) return false;
  *path = line.substr(i + 1, end - i - 1);
  return true;
}

TEST(LayerTest, TheTableCoversEveryLayer) {
  auto layers = ReadTable(fs::path(FOXWORKER_SOURCE_DIR) / "docs/architecture.md");
  std::set<std::string> names;
  for (const auto& l : layers) names.insert(l.name);
  for (const char* n : {"base", "core", "config", "plugins", "backends", "middleware", "app"})
    EXPECT_TRUE(names.count(n)) << "docs/architecture.md's layer table has no row for " << n;
  for (const auto& l : layers)
    if (l.name == "core") {
      EXPECT_EQ(l.allowed, std::set<std::string>{"base"});
    }
}

TEST(LayerTest, EveryIncludeFollowsTheTable) {
  const fs::path root(FOXWORKER_SOURCE_DIR);
  auto layers = ReadTable(root / "docs/architecture.md");
  ASSERT_FALSE(layers.empty()) << "no layer table in docs/architecture.md";
  size_t files = 0, edges = 0;
  std::vector<std::string> violations;
  for (const auto& entry : fs::recursive_directory_iterator(root / "daemon")) {
    if (!entry.is_regular_file()) continue;
    const std::string ext = entry.path().extension().string();
    if (ext != ".h" && ext != ".cc") continue;
    const std::string path = fs::relative(entry.path(), root).string();
    std::string unit;
    const Layer* from = LayerOf(layers, path, &unit);
    if (from == nullptr) {
      if (path != "daemon/CMakeLists.txt") violations.push_back(path + ": in no layer");
      continue;
    }
    ++files;
    std::ifstream in(entry.path());
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
      ++n;
      std::string target;
      if (!IncludedFile(line, &target)) continue;
      ++edges;
      std::string target_unit;
      const Layer* to = LayerOf(layers, target, &target_unit);
      if (to == nullptr) {
        violations.push_back(path + ":" + std::to_string(n) + ": " + target + " is in no layer");
        continue;
      }
      if (target_unit == unit) continue;  // its own folder
      const bool ok = (to != from && from->allowed.count(to->name)) ||
                      from->allowed.count(target_unit);
      if (!ok)
        violations.push_back(path + ":" + std::to_string(n) + ": " + from->name + " (" + unit +
                             ") includes " + target + " (" + to->name + ")");
    }
  }
  EXPECT_GT(files, 50u);
  EXPECT_GT(edges, 100u);
  std::string all;
  for (const auto& v : violations) all += "\n  " + v;
  EXPECT_TRUE(violations.empty()) << violations.size() << " include(s) break the layer table:"
                                  << all;
}

TEST(LayerTest, ReadsIncludeLines) {
  std::string p;
  EXPECT_TRUE(IncludedFile("#include \"daemon/core/consumer.h\"", &p));
  EXPECT_EQ(p, "daemon/core/consumer.h");
  EXPECT_TRUE(IncludedFile("  #  include \"daemon/base/status.h\"  // why", &p));
  EXPECT_EQ(p, "daemon/base/status.h");
  EXPECT_FALSE(IncludedFile("#include <glog/logging.h>", &p));
  EXPECT_FALSE(IncludedFile("// #include \"daemon/app/supervisor.h\"", &p));
  EXPECT_FALSE(IncludedFile("#include \"tests/fakes/fake_source.h\"", &p));
}

// The checker itself: a made-up back edge is caught.
TEST(LayerTest, ABackEdgeIsCaught) {
  std::vector<Layer> layers = {{"base", "daemon/base/", {}},
                               {"core", "daemon/core/", {"base"}},
                               {"backends", "daemon/backends/*/", {"base", "core"}}};
  std::string unit, target_unit;
  const Layer* from = LayerOf(layers, "daemon/core/consumer.cc", &unit);
  const Layer* to = LayerOf(layers, "daemon/backends/redis/redis_backend.h", &target_unit);
  ASSERT_TRUE(from && to);
  EXPECT_EQ(unit, "core");
  EXPECT_EQ(target_unit, "backends/redis");
  EXPECT_FALSE(from->allowed.count(to->name));
  const Layer* local = LayerOf(layers, "daemon/backends/local/x.h", &unit);
  EXPECT_EQ(local, to);
  EXPECT_NE(unit, target_unit);  // two backends are two units
}

}  // namespace
