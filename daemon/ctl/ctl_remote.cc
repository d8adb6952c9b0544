#include "daemon/ctl/ctl_remote.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "daemon/ctl/ctl_commands.h"

namespace foxworker {
namespace {

constexpr int kTimeoutMs = 30000;

struct Answer {
  int status = 0;
  std::string body;
  std::string error;  // could not talk to the daemon
};

std::string JsonString(const std::string& s) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.String(s.c_str(), static_cast<rapidjson::SizeType>(s.size()));
  return std::string(buf.GetString(), buf.GetSize());
}

std::string PathEscape(const std::string& s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ':') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// One request to http://HOST:PORT (Connection: close; read to the end).
Answer Call(const std::string& url, const std::string& method, const std::string& path,
            const std::string& token, const std::string& body = "") {
  Answer a;
  std::string hostport = url.substr(7);
  if (size_t slash = hostport.find('/'); slash != std::string::npos) hostport.resize(slash);
  std::string host = hostport, port = "80";
  if (!hostport.empty() && hostport[0] == '[') {
    size_t close = hostport.find(']');
    host = hostport.substr(1, close - 1);
    if (close + 1 < hostport.size() && hostport[close + 1] == ':') port = hostport.substr(close + 2);
  } else if (size_t colon = hostport.rfind(':'); colon != std::string::npos) {
    host = hostport.substr(0, colon);
    port = hostport.substr(colon + 1);
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    a.error = "cannot resolve " + host + ": " + gai_strerror(rc);
    return a;
  }
  int fd = -1;
  for (addrinfo* ai = res; ai != nullptr && fd < 0; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd < 0) {
    a.error = "cannot connect to " + url;
    return a;
  }
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: " + hostport +
                    "\r\nConnection: close\r\nAccept: application/json\r\n";
  if (!token.empty()) req += "Authorization: Bearer " + token + "\r\n";
  if (!body.empty() || method == "POST")
    req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n";
  req += "\r\n" + body;
  for (size_t off = 0; off < req.size();) {
    ssize_t n = send(fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
    if (n <= 0) {
      a.error = "cannot send to " + url;
      close(fd);
      return a;
    }
    off += static_cast<size_t>(n);
  }
  std::string in;
  char buf[16384];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, kTimeoutMs) <= 0) {
      a.error = "no answer from " + url + " within 30s";
      close(fd);
      return a;
    }
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    in.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  size_t end = in.find("\r\n\r\n");
  if (in.rfind("HTTP/1.", 0) != 0 || end == std::string::npos) {
    a.error = "not an HTTP answer from " + url;
    return a;
  }
  a.status = atoi(in.c_str() + 9);
  a.body = in.substr(end + 4);
  return a;
}

std::string ReadToken(const CtlArgs& args, std::string* error) {
  std::string path = args.token_file;
  if (path.empty()) {
    if (const char* t = getenv("FOXWORKER_ADMIN_TOKEN"); t != nullptr && *t) return t;
    if (const char* f = getenv("FOXWORKER_ADMIN_TOKEN_FILE"); f != nullptr) path = f;
  }
  if (path.empty()) return "";
  std::ifstream in(path);
  if (!in) {
    *error = "cannot read the token file " + path;
    return "";
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string t = ss.str();
  while (!t.empty() && isspace(static_cast<unsigned char>(t.back()))) t.pop_back();
  while (!t.empty() && isspace(static_cast<unsigned char>(t.front()))) t.erase(0, 1);
  return t;
}

std::string Text(const rapidjson::Value& v, const char* key) {
  if (!v.IsObject() || !v.HasMember(key)) return "";
  const rapidjson::Value& x = v[key];
  if (x.IsString()) return std::string(x.GetString(), x.GetStringLength());
  if (x.IsInt64()) return std::to_string(x.GetInt64());
  if (x.IsUint64()) return std::to_string(x.GetUint64());
  if (x.IsBool()) return x.GetBool() ? "yes" : "no";
  if (x.IsNull()) return "-";
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  x.Accept(w);
  return std::string(buf.GetString(), buf.GetSize());
}

// Control characters in text from the broker would reach the terminal.
std::string Safe(std::string s) {
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t') c = '?';
  return s;
}

void PrintDeadList(const rapidjson::Document& d, std::ostream& out) {
  out << "ID\tTYPE\tATTEMPTS\tFAILED_AT_MS\tREASON\n";
  for (const auto& l : d["letters"].GetArray())
    out << Safe(Text(l, "id")) << '\t' << Safe(Text(l, "type")) << '\t' << Text(l, "attempts")
        << '\t' << Text(l, "failed_at_ms") << '\t' << Safe(Text(l, "reason")) << '\n';
  out << Text(d, "total") << (d["total_exact"].GetBool() ? "" : "+") << " dead letter(s)\n";
}

void PrintLetter(const rapidjson::Document& d, std::ostream& out) {
  const rapidjson::Value& l = d["letter"];
  for (const char* k : {"id", "queue", "message_id", "type", "reason", "attempts",
                        "first_seen_ms", "failed_at_ms", "payload_bytes"})
    out << k << ": " << Safe(Text(l, k)) << '\n';
  for (const char* section : {"headers", "properties"}) {
    out << section << ":\n";
    for (const auto& kv : d[section].GetArray())
      out << "  " << Safe(kv[0].GetString()) << ": " << Safe(kv[1].GetString()) << '\n';
  }
  out << "payload (" << Text(d, "payload_kind")
      << (d["payload_truncated"].GetBool() ? ", cut" : "") << "):\n"
      << Safe(Text(d, "payload")) << '\n';
}

void PrintStats(const rapidjson::Document& d, std::ostream& out) {
  out << "QUEUE\tBACKEND\tBACKLOG\tIN_FLIGHT\tRUNNING\tDEAD\tPAUSED\n";
  for (const auto& q : d["queues"].GetArray()) {
    std::string backlog = "-", dead = "-";
    if (q.HasMember("depth") && q["depth"].IsObject()) {
      backlog = Text(q["depth"], "backlog");
      dead = Text(q["depth"], "dead_letters");
    }
    out << Text(q, "name") << '\t' << Text(q, "backend") << '\t' << backlog << '\t'
        << Text(q, "in_flight") << '\t' << Text(q, "running") << '\t' << dead << '\t'
        << Text(q, "paused") << '\n';
  }
}

}  // namespace

int RunRemoteCommand(const CtlArgs& args, std::istream& in, std::ostream& out, std::ostream& err) {
  std::string token_error;
  const std::string token = ReadToken(args, &token_error);
  if (!token_error.empty()) {
    err << "foxworkerctl: " << token_error << '\n';
    return kCtlError;
  }
  const std::string q = "/api/v1/queues/" + PathEscape(args.queue);
  std::string method = "GET", path, body;
  auto selection = [&]() {
    if (args.all) return "{\"all\":true,\"reason\":" + JsonString(args.reason) + "}";
    std::string ids = "{\"ids\":[";
    for (size_t i = 0; i < args.str_ids.size(); ++i)
      ids += (i ? "," : "") + JsonString(args.str_ids[i]);
    return ids + "]}";
  };
  switch (args.command) {
    case CtlCommand::kStats:
      path = "/api/v1/queues";
      break;
    case CtlCommand::kPause:
    case CtlCommand::kResume:
      method = "POST";
      path = q + (args.command == CtlCommand::kPause ? "/pause" : "/resume");
      break;
    case CtlCommand::kDeadList:
      path = q + "/dead?limit=" + std::to_string(args.limit) + "&reason=" + PathEscape(args.reason);
      break;
    case CtlCommand::kDeadShow:
      path = q + "/dead/" + PathEscape(args.str_ids.at(0));
      break;
    case CtlCommand::kDeadRetry:
    case CtlCommand::kDeadPurge:
      method = "POST";
      path = q + (args.command == CtlCommand::kDeadRetry ? "/dead/retry" : "/dead/delete");
      body = selection();
      break;
    case CtlCommand::kEnqueue: {
      std::string payload = args.payload;
      if (!args.payload_given) {
        std::stringstream ss;
        if (args.payload_file == "-") {
          ss << in.rdbuf();
        } else {
          std::ifstream f(args.payload_file, std::ios::binary);
          if (!f) {
            err << "foxworkerctl: cannot read " << args.payload_file << '\n';
            return kCtlError;
          }
          ss << f.rdbuf();
        }
        payload = ss.str();
      }
      method = "POST";
      path = q + "/messages";
      body = "{\"payload\":" + JsonString(payload);
      if (!args.message_type.empty()) body += ",\"type\":" + JsonString(args.message_type);
      if (!args.content_type.empty()) body += ",\"content_type\":" + JsonString(args.content_type);
      if (!args.correlation_id.empty())
        body += ",\"correlation_id\":" + JsonString(args.correlation_id);
      if (!args.unique_key.empty()) body += ",\"unique_key\":" + JsonString(args.unique_key);
      if (args.priority != 0) body += ",\"priority\":" + std::to_string(args.priority);
      int64_t delay = args.delay_ms;
      if (args.run_at_ms != 0) {
        const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
        delay = args.run_at_ms > now ? args.run_at_ms - now : 0;
      }
      if (delay > 0) body += ",\"delay_ms\":" + std::to_string(delay);
      if (!args.headers.empty()) {
        body += ",\"headers\":{";
        for (size_t i = 0; i < args.headers.size(); ++i)
          body += (i ? "," : "") + JsonString(args.headers[i].first) + ":" +
                  JsonString(args.headers[i].second);
        body += "}";
      }
      body += "}";
      break;
    }
    default:
      err << "foxworkerctl: not a command for --url\n";
      return kCtlError;
  }
  Answer a = Call(args.url, method, path, token, body);
  if (!a.error.empty()) {
    err << "foxworkerctl: " << a.error << '\n';
    return kCtlError;
  }
  rapidjson::Document d;
  d.Parse(a.body.c_str(), a.body.size());
  if (a.status != 200) {
    err << "foxworkerctl: " << a.status << ": "
        << (!d.HasParseError() && d.IsObject() && d.HasMember("error") ? Text(d, "error") : a.body)
        << '\n';
    return kCtlError;
  }
  if (args.json || d.HasParseError()) {
    out << a.body;
    if (!a.body.empty() && a.body.back() != '\n') out << '\n';
    return kCtlOk;
  }
  switch (args.command) {
    case CtlCommand::kStats: PrintStats(d, out); break;
    case CtlCommand::kDeadList: PrintDeadList(d, out); break;
    case CtlCommand::kDeadShow: PrintLetter(d, out); break;
    case CtlCommand::kDeadRetry:
    case CtlCommand::kDeadPurge:
      out << (args.command == CtlCommand::kDeadRetry ? "retried " : "purged ") << Text(d, "count")
          << " dead letter(s)\n";
      break;
    case CtlCommand::kPause: out << "paused " << args.queue << '\n'; break;
    case CtlCommand::kResume: out << "resumed " << args.queue << '\n'; break;
    case CtlCommand::kEnqueue: out << "enqueued on " << args.queue << '\n'; break;
    default: break;
  }
  return kCtlOk;
}

}  // namespace foxworker
