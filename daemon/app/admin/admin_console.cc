#include "daemon/app/admin/admin_console.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <utility>

#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "daemon/app/depth_poller.h"
#include "daemon/app/supervisor.h"
#include "daemon/base/clock.h"
#include "daemon/core/running_job.h"

namespace foxworker {
namespace {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

void Str(JsonWriter& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

std::string Done(const rapidjson::StringBuffer& buf) {
  return std::string(buf.GetString(), buf.GetSize()) + "\n";
}

const char* InstanceModelName(uint32_t m) {
  switch (m) {
    case FOXW_INSTANCE_PER_SLOT: return "per_slot";
    case FOXW_INSTANCE_SHARED: return "shared";
    case FOXW_INSTANCE_PER_THREAD: return "per_thread";
    default: return "unknown";
  }
}

// Valid UTF-8 whose control characters are only tab, newline, return.
bool IsText(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return false;
      if (c == 0x7f) return false;
      ++i;
      continue;
    }
    const int n = (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : -1;
    if (n < 0) return false;
    for (int k = 1; k <= n; ++k) {
      if (i + static_cast<size_t>(k) >= s.size()) return false;
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    }
    i += static_cast<size_t>(n) + 1;
  }
  return true;
}

std::string HexDump(std::string_view s) {
  std::string out;
  char line[128];
  for (size_t off = 0; off < s.size(); off += 16) {
    int n = std::snprintf(line, sizeof line, "%08zx ", off);
    out.append(line, static_cast<size_t>(n));
    std::string ascii;
    for (size_t i = 0; i < 16; ++i) {
      if (off + i < s.size()) {
        const auto c = static_cast<unsigned char>(s[off + i]);
        n = std::snprintf(line, sizeof line, " %02x", c);
        out.append(line, static_cast<size_t>(n));
        ascii += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '.';
      } else {
        out += "   ";
      }
    }
    out += "  |" + ascii + "|\n";
  }
  return out;
}

Result<std::string> DecodeBase64(std::string_view in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=' || c == '\n' || c == '\r') continue;
    int v = val(c);
    if (v < 0) return Status::InvalidArgument("payload_base64 is not base64");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

}  // namespace

std::string RenderRunningJson(const Supervisor& supervisor) {
  std::vector<RunningJobInfo> jobs = RunningJobs();
  const uint64_t now = MonotonicNs();
  // Stuck ones by (queue, message id), from each consumer's watchdog.
  std::map<std::pair<std::string, std::string>, bool> stuck;
  for (const auto& c : supervisor.consumers())
    for (const StuckHandler& h : c->Stuck()) stuck[{c->name(), h.message_id}] = true;
  std::sort(jobs.begin(), jobs.end(), [](const RunningJobInfo& a, const RunningJobInfo& b) {
    return a.started_ns < b.started_ns;
  });
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("running");
  w.StartArray();
  for (const RunningJobInfo& j : jobs) {
    w.StartObject();
    w.Key("queue");
    Str(w, j.queue);
    w.Key("handler");
    Str(w, j.handler);
    w.Key("provider");
    Str(w, j.provider);
    w.Key("message_id");
    Str(w, j.message_id);
    w.Key("attempt");
    w.Uint(j.attempt);
    w.Key("running_for_s");
    w.Double(now > j.started_ns ? static_cast<double>((now - j.started_ns) / 1000000) / 1e3 : 0);
    w.Key("stuck");
    w.Bool(stuck.count({j.queue, j.message_id}) != 0);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return Done(buf);
}

std::string RenderPluginsJson(const RuntimeSnapshot& snapshot) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("plugins");
  w.StartArray();
  for (const auto& p : snapshot.plugins) {
    w.StartObject();
    w.Key("name");
    Str(w, p->name());
    w.Key("version");
    Str(w, p->info().version != nullptr ? p->info().version : "");
    w.Key("description");
    Str(w, p->info().description != nullptr ? p->info().description : "");
    w.Key("instance_model");
    Str(w, InstanceModelName(p->instance_model()));
    w.Key("handlers");
    w.StartArray();
    for (const foxw_handler_def* h : p->handlers()) Str(w, h->name != nullptr ? h->name : "");
    w.EndArray();
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return Done(buf);
}

double QuantileFromBuckets(const std::vector<uint64_t>& before, const std::vector<uint64_t>& after,
                           double q) {
  const auto& bounds = LatencyHistogram::BoundsSeconds();
  if (after.empty()) return -1;
  auto at = [&](size_t i) {
    uint64_t b = i < before.size() ? before[i] : 0;
    return after[i] >= b ? after[i] - b : 0;
  };
  const uint64_t total = at(after.size() - 1);
  if (total == 0) return -1;
  const double rank = q * static_cast<double>(total);
  uint64_t prev = 0;
  for (size_t i = 0; i < after.size(); ++i) {
    const uint64_t cum = at(i);
    if (static_cast<double>(cum) >= rank && cum > prev) {
      const double lo = i == 0 ? 0 : bounds[i - 1];
      const double hi = i < bounds.size() ? bounds[i] : bounds.back();
      const double frac = (rank - static_cast<double>(prev)) / static_cast<double>(cum - prev);
      return lo + (hi - lo) * std::clamp(frac, 0.0, 1.0);
    }
    prev = cum;
  }
  return bounds.back();
}

void ConsoleHistory::Sample(const Supervisor& supervisor, int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, int64_t> backlog;
  if (const DepthPoller* poller = supervisor.depth_poller(); poller != nullptr) {
    for (const auto& [queue, reading] : poller->Snapshot())
      if (reading.ok) backlog[queue] = reading.depth.backlog;
  }
  for (const auto& c : supervisor.consumers()) {
    const ConsumerStats s = c->Stats();
    std::vector<uint64_t> cum;
    for (const auto& hm : c->handler_metrics()) {
      Histogram::Snapshot snap = hm->duration.Take();
      if (cum.size() < snap.cumulative.size()) cum.resize(snap.cumulative.size(), 0);
      for (size_t i = 0; i < snap.cumulative.size(); ++i) cum[i] += snap.cumulative[i];
    }
    const uint64_t failed = s.retried + s.dead_lettered;
    auto it = last_.find(c->name());
    if (it != last_.end() && now_ms > it->second.t_ms) {
      const Last& l = it->second;
      const double dt = static_cast<double>(now_ms - l.t_ms) / 1000.0;
      auto rate = [dt](uint64_t now, uint64_t before) {
        return now >= before ? static_cast<double>(now - before) / dt : 0.0;
      };
      Point p;
      p.t_ms = now_ms;
      p.processed_per_s = rate(s.acked + failed, l.acked + l.failed);
      p.failed_per_s = rate(failed, l.failed);
      p.retried_per_s = rate(s.retried, l.retried);
      p.dead_per_s = rate(s.dead_lettered, l.dead);
      p.p50 = QuantileFromBuckets(l.cumulative, cum, 0.50);
      p.p95 = QuantileFromBuckets(l.cumulative, cum, 0.95);
      p.p99 = QuantileFromBuckets(l.cumulative, cum, 0.99);
      p.in_flight = s.in_flight;
      auto b = backlog.find(c->name());
      if (b != backlog.end()) p.backlog = b->second;
      std::deque<Point>& d = points_[c->name()];
      d.push_back(p);
      while (d.size() > capacity_) d.pop_front();
    }
    last_[c->name()] = Last{now_ms, s.acked, failed, s.retried, s.dead_lettered, std::move(cum)};
  }
  // Queues removed by a reload.
  for (auto it = points_.begin(); it != points_.end();) {
    if (supervisor.FindConsumer(it->first) == nullptr) {
      last_.erase(it->first);
      it = points_.erase(it);
    } else {
      ++it;
    }
  }
}

std::string ConsoleHistory::RenderJson() const {
  std::lock_guard<std::mutex> lock(mu_);
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("interval_s");
  w.Double(static_cast<double>(interval_.count()) / 1000.0);
  w.Key("queues");
  w.StartObject();
  auto num = [&w](double v) {
    if (v < 0)
      w.Null();
    else
      w.Double(v);
  };
  for (const auto& [name, points] : points_) {
    Str(w, name);
    w.StartArray();
    for (const Point& p : points) {
      w.StartObject();
      w.Key("t");
      w.Int64(p.t_ms);
      w.Key("processed");
      w.Double(p.processed_per_s);
      w.Key("failed");
      w.Double(p.failed_per_s);
      w.Key("retried");
      w.Double(p.retried_per_s);
      w.Key("dead_lettered");
      w.Double(p.dead_per_s);
      w.Key("p50_s");
      num(p.p50);
      w.Key("p95_s");
      num(p.p95);
      w.Key("p99_s");
      num(p.p99);
      w.Key("in_flight");
      w.Int64(p.in_flight);
      w.Key("backlog");
      if (p.backlog < 0)
        w.Null();
      else
        w.Int64(p.backlog);
      w.EndObject();
    }
    w.EndArray();
  }
  w.EndObject();
  w.EndObject();
  return Done(buf);
}

namespace {
void WriteSummary(JsonWriter& w, const DeadLetterSummary& s) {
  w.StartObject();
  w.Key("id");
  Str(w, s.id);
  w.Key("queue");
  Str(w, s.queue);
  w.Key("message_id");
  Str(w, s.message_id);
  w.Key("type");
  Str(w, s.type);
  w.Key("reason");
  Str(w, s.reason);
  w.Key("attempts");
  w.Int(s.attempts);
  w.Key("first_seen_ms");
  w.Int64(s.first_seen_ms);
  w.Key("failed_at_ms");
  w.Int64(s.failed_at_ms);
  w.Key("payload_bytes");
  w.Uint64(s.payload_bytes);
  w.EndObject();
}

void WritePairs(JsonWriter& w, const std::vector<std::pair<std::string, std::string>>& pairs) {
  w.StartArray();
  for (const auto& [k, v] : pairs) {
    w.StartArray();
    Str(w, k);
    Str(w, v);
    w.EndArray();
  }
  w.EndArray();
}
}  // namespace

std::string RenderDeadPageJson(const DeadLetterPage& page, size_t offset, size_t limit) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("total");
  w.Uint64(page.total);
  w.Key("total_exact");
  w.Bool(page.total_exact);
  w.Key("offset");
  w.Uint64(offset);
  w.Key("limit");
  w.Uint64(limit);
  w.Key("letters");
  w.StartArray();
  for (const DeadLetterSummary& s : page.letters) WriteSummary(w, s);
  w.EndArray();
  w.EndObject();
  return Done(buf);
}

std::string RenderDeadLetterJson(const DeadLetter& letter) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("letter");
  WriteSummary(w, letter.summary);
  std::string kind = "hex";
  std::string shown;
  if (IsText(letter.payload)) {
    kind = "text";
    shown = letter.payload;
    if (!letter.payload_truncated) {
      rapidjson::Document d;
      d.Parse(letter.payload.c_str(), letter.payload.size());
      if (!d.HasParseError() && (d.IsObject() || d.IsArray())) {
        rapidjson::StringBuffer pretty;
        rapidjson::PrettyWriter<rapidjson::StringBuffer> pw(pretty);
        pw.SetIndent(' ', 2);
        d.Accept(pw);
        kind = "json";
        shown.assign(pretty.GetString(), pretty.GetSize());
      }
    }
  } else {
    shown = HexDump(letter.payload);
  }
  w.Key("payload_kind");
  Str(w, kind);
  w.Key("payload");
  Str(w, shown);
  w.Key("payload_truncated");
  w.Bool(letter.payload_truncated);
  w.Key("headers");
  WritePairs(w, letter.headers);
  w.Key("properties");
  WritePairs(w, letter.properties);
  w.EndObject();
  return Done(buf);
}

std::string RenderScheduledJson(const std::vector<ScheduledJob>& jobs) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("scheduled");
  w.StartArray();
  for (const ScheduledJob& j : jobs) {
    w.StartObject();
    w.Key("queue");
    Str(w, j.queue);
    w.Key("message_id");
    Str(w, j.message_id);
    w.Key("type");
    Str(w, j.type);
    w.Key("attempt");
    w.Int(j.attempt);
    w.Key("due_ms");
    w.Int64(j.due_ms);
    w.Key("last_error");
    Str(w, j.last_error);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return Done(buf);
}

std::string RenderDoneJson(const std::vector<std::string>& ids) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("count");
  w.Uint64(ids.size());
  w.Key("ids");
  w.StartArray();
  for (const auto& id : ids) Str(w, id);
  w.EndArray();
  w.EndObject();
  return Done(buf);
}

std::string RenderCountJson(size_t count) {
  return "{\"count\":" + std::to_string(count) + "}\n";
}

Result<DeadSelection> ParseDeadSelection(std::string_view body) {
  rapidjson::Document d;
  d.Parse(body.data(), body.size());
  if (d.HasParseError() || !d.IsObject())
    return Status::InvalidArgument("body must be a JSON object: {\"ids\": [...]} or {\"all\": true}");
  DeadSelection sel;
  if (d.HasMember("ids")) {
    if (!d["ids"].IsArray()) return Status::InvalidArgument("\"ids\" must be an array of strings");
    for (const auto& v : d["ids"].GetArray()) {
      if (!v.IsString()) return Status::InvalidArgument("\"ids\" must be an array of strings");
      sel.ids.emplace_back(v.GetString(), v.GetStringLength());
    }
  }
  if (d.HasMember("all")) {
    if (!d["all"].IsBool()) return Status::InvalidArgument("\"all\" must be true or false");
    sel.all = d["all"].GetBool();
  }
  if (d.HasMember("reason")) {
    if (!d["reason"].IsString()) return Status::InvalidArgument("\"reason\" must be a string");
    sel.filter.reason_contains.assign(d["reason"].GetString(), d["reason"].GetStringLength());
  }
  if (sel.all == !sel.ids.empty())
    return Status::InvalidArgument("give either \"ids\" (non-empty) or \"all\": true");
  return sel;
}

Result<EnqueueRequest> ParseEnqueue(std::string_view body) {
  rapidjson::Document d;
  d.Parse(body.data(), body.size());
  if (d.HasParseError() || !d.IsObject())
    return Status::InvalidArgument("body must be a JSON object with \"payload\"");
  EnqueueRequest r;
  auto str = [&d](const char* key, std::string* out) -> Status {
    if (!d.HasMember(key)) return Status::Ok();
    if (!d[key].IsString()) return Status::InvalidArgument(std::string("\"") + key + "\" must be a string");
    out->assign(d[key].GetString(), d[key].GetStringLength());
    return Status::Ok();
  };
  if (d.HasMember("payload") && d["payload"].IsString()) {
    r.message.payload.assign(d["payload"].GetString(), d["payload"].GetStringLength());
  } else if (d.HasMember("payload")) {
    // Any other JSON value is sent as its JSON text.
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    d["payload"].Accept(w);
    r.message.payload.assign(buf.GetString(), buf.GetSize());
    if (r.message.props.content_type.empty()) r.message.props.content_type = "application/json";
  } else if (d.HasMember("payload_base64")) {
    std::string b64;
    Status s = str("payload_base64", &b64);
    if (!s.ok()) return s;
    Result<std::string> bytes = DecodeBase64(b64);
    if (!bytes.ok()) return bytes.status();
    r.message.payload = std::move(*bytes);
  } else {
    return Status::InvalidArgument("\"payload\" (text or JSON) or \"payload_base64\" is required");
  }
  for (auto [key, out] : {std::pair<const char*, std::string*>{"type", &r.message.props.message_type},
                          {"content_type", &r.message.props.content_type},
                          {"correlation_id", &r.message.props.correlation_id},
                          {"unique_key", &r.message.props.message_id},
                          {"message_id", &r.message.props.message_id}}) {
    Status s = str(key, out);
    if (!s.ok()) return s;
  }
  if (d.HasMember("headers")) {
    if (!d["headers"].IsObject())
      return Status::InvalidArgument("\"headers\" must be an object of strings");
    for (const auto& m : std::as_const(d["headers"]).GetObject()) {
      if (!m.value.IsString())
        return Status::InvalidArgument("\"headers\" must be an object of strings");
      r.message.headers.emplace_back(std::string(m.name.GetString(), m.name.GetStringLength()),
                                     std::string(m.value.GetString(), m.value.GetStringLength()));
    }
  }
  if (d.HasMember("priority")) {
    if (!d["priority"].IsInt() || d["priority"].GetInt() < 0 || d["priority"].GetInt() > 255)
      return Status::InvalidArgument("\"priority\" must be an integer 0..255");
    r.message.props.priority = static_cast<uint8_t>(d["priority"].GetInt());
    r.message.props.priority_set = true;
    r.message.props.sent_priority = d["priority"].GetInt();
  }
  if (d.HasMember("delay_ms")) {
    if (!d["delay_ms"].IsInt64() || d["delay_ms"].GetInt64() < 0)
      return Status::InvalidArgument("\"delay_ms\" must be a non-negative integer");
    r.delay = Duration(d["delay_ms"].GetInt64());
  } else if (d.HasMember("delay")) {
    std::string text;
    Status s = str("delay", &text);
    if (!s.ok()) return s;
    Result<Duration> dd = ParseDuration(text);
    if (!dd.ok()) return Status::InvalidArgument("\"delay\": " + dd.status().message());
    r.delay = *dd;
  }
  r.message.enqueued_at_ms = WallMs();
  r.message.props.timestamp_ms = r.message.enqueued_at_ms;
  return r;
}

std::string RandomToken() {
  unsigned char bytes[32] = {0};
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    size_t got = 0;
    while (got < sizeof bytes) {
      ssize_t n = read(fd, bytes + got, sizeof bytes - got);
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    close(fd);
  }
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

}  // namespace foxworker
