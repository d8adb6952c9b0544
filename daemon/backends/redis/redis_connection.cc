#include "daemon/backends/redis/redis_connection.h"

#include <poll.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "daemon/backends/redis/redis_url.h"

namespace foxworker {
namespace {

timeval ToTimeval(std::chrono::milliseconds ms) {
  timeval tv;
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

// The protocol buffer keeps its capacity between pipelines up to this.
constexpr size_t kMaxKeptOutput = 1024 * 1024;

constexpr size_t kFirstBlock = 64 * 1024;
// A rewind keeps one block of what the largest round needed, up to this.
constexpr size_t kMaxKeptBlock = 8 * 1024 * 1024;

ReplyArena* ArenaOf(const redisReadTask* task) { return static_cast<ReplyArena*>(task->privdata); }

// The size of the last array header refused on this thread (hiredis reads
// on the thread that asks for a reply), for the error message: hiredis itself
// only says "Out of memory" when a builder returns NULL.
thread_local long long refused_array = -1;

bool ArrayTooLarge(int elements) {
  if (elements <= kMaxReplyElements) return false;
  refused_array = elements;
  return true;
}

// hiredis 0.14's own builders are static; these are the same (calloc'ed
// redisReply, malloc'ed NUL-terminated strings, freeReplyObject frees them)
// plus the array limit.
void* LinkHeap(const redisReadTask* task, redisReply* r) {
  if (task->parent != nullptr) {
    static_cast<redisReply*>(task->parent->obj)->element[task->idx] = r;
  }
  return r;
}

redisReply* HeapReply(int type) {
  auto* r = static_cast<redisReply*>(std::calloc(1, sizeof(redisReply)));
  if (r != nullptr) r->type = type;
  return r;
}

void* HeapString(const redisReadTask* task, char* str, size_t len) {
  redisReply* r = HeapReply(task->type);
  if (r == nullptr) return nullptr;
  r->str = static_cast<char*>(std::malloc(len + 1));
  if (r->str == nullptr) {
    std::free(r);
    return nullptr;
  }
  if (len > 0) std::memcpy(r->str, str, len);
  r->str[len] = '\0';
  r->len = len;
  return LinkHeap(task, r);
}

void* HeapArray(const redisReadTask* task, int elements) {
  if (ArrayTooLarge(elements)) return nullptr;
  redisReply* r = HeapReply(REDIS_REPLY_ARRAY);
  if (r == nullptr) return nullptr;
  if (elements > 0) {
    r->element = static_cast<redisReply**>(std::calloc(static_cast<size_t>(elements),
                                                       sizeof(redisReply*)));
    if (r->element == nullptr) {
      std::free(r);
      return nullptr;
    }
  }
  r->elements = static_cast<size_t>(std::max(elements, 0));
  return LinkHeap(task, r);
}

void* HeapInteger(const redisReadTask* task, long long value) {
  redisReply* r = HeapReply(REDIS_REPLY_INTEGER);
  if (r == nullptr) return nullptr;
  r->integer = value;
  return LinkHeap(task, r);
}

void* HeapNil(const redisReadTask* task) {
  redisReply* r = HeapReply(REDIS_REPLY_NIL);
  return r == nullptr ? nullptr : LinkHeap(task, r);
}

redisReplyObjectFunctions kHeapFunctions = {HeapString, HeapArray, HeapInteger, HeapNil,
                                            freeReplyObject};

// A root reply carries its arena, for hiredis's freeObject (which gets
// nothing but the reply).
struct ArenaRoot {
  ReplyArena* arena;
  redisReply reply;
};

ArenaRoot* RootOf(void* reply) {
  return reinterpret_cast<ArenaRoot*>(static_cast<char*>(reply) - offsetof(ArenaRoot, reply));
}

// hiredis's createXxxObject, in the arena. A child is linked into its
// parent's element array, which the parent's createArray sized.
redisReply* NewReply(const redisReadTask* task, int type) {
  ReplyArena* arena = ArenaOf(task);
  redisReply* r;
  if (task->parent != nullptr) {
    r = static_cast<redisReply*>(arena->Alloc(sizeof(redisReply)));
    static_cast<redisReply*>(task->parent->obj)->element[task->idx] = r;
  } else {
    auto* root = static_cast<ArenaRoot*>(arena->Alloc(sizeof(ArenaRoot)));
    root->arena = arena;
    arena->Hold();
    r = &root->reply;
  }
  r->type = type;
  return r;
}

void* ArenaString(const redisReadTask* task, char* str, size_t len) {
  redisReply* r = NewReply(task, task->type);
  char* copy = static_cast<char*>(ArenaOf(task)->Alloc(len + 1, /*zeroed=*/false));
  if (len > 0) std::memcpy(copy, str, len);
  copy[len] = '\0';
  r->str = copy;
  r->len = len;
  return r;
}

void* ArenaArray(const redisReadTask* task, int elements) {
  if (ArrayTooLarge(elements)) return nullptr;
  redisReply* r = NewReply(task, REDIS_REPLY_ARRAY);
  if (elements > 0) {
    r->element = static_cast<redisReply**>(
        ArenaOf(task)->Alloc(static_cast<size_t>(elements) * sizeof(redisReply*)));
  }
  r->elements = static_cast<size_t>(std::max(elements, 0));
  return r;
}

void* ArenaInteger(const redisReadTask* task, long long value) {
  redisReply* r = NewReply(task, REDIS_REPLY_INTEGER);
  r->integer = value;
  return r;
}

void* ArenaNil(const redisReadTask* task) { return NewReply(task, REDIS_REPLY_NIL); }

// hiredis calls it only on a root reply: one it read half of when the
// connection fails or is freed.
void ArenaFree(void* reply) { RootOf(reply)->arena->Release(); }

redisReplyObjectFunctions kArenaFunctions = {ArenaString, ArenaArray, ArenaInteger, ArenaNil,
                                             ArenaFree};

}  // namespace

std::string_view ReplyText(const redisReply* r) {
  if (r == nullptr) return {};
  if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
      r->type == REDIS_REPLY_ERROR) {
    return std::string_view(r->str, r->len);
  }
  return {};
}

void RedisReplyDeleter::operator()(redisReply* r) const {
  if (arena == nullptr) {
    freeReplyObject(r);
  } else {
    arena->Release();
  }
}

void LimitReplies(redisReader* reader) {
  reader->fn = &kHeapFunctions;
  reader->privdata = nullptr;
}

redisReader* NewLimitedReader() {
  redisReader* reader = redisReaderCreate();
  if (reader != nullptr) LimitReplies(reader);
  return reader;
}

void ReplyArena::Attach(redisContext* c) {
  c->reader->fn = &kArenaFunctions;
  c->reader->privdata = this;
}

void* ReplyArena::Alloc(size_t n, bool zeroed) {
  n = (n + 7) & ~size_t{7};
  if (n > left_) Grow(n);
  char* p = cur_;
  cur_ += n;
  left_ -= n;
  used_ += n;
  if (zeroed) std::memset(p, 0, n);
  return p;
}

void ReplyArena::Grow(size_t n) {
  const size_t size = std::max({n, kFirstBlock, sizes_.empty() ? 0 : 2 * sizes_.back()});
  blocks_.emplace_back(new char[size]);
  sizes_.push_back(size);
  cur_ = blocks_.back().get();
  left_ = size;
}

void ReplyArena::Release() {
  if (--live_ == 0) Rewind();
}

void ReplyArena::Rewind() {
  if (blocks_.size() > 1 || (!sizes_.empty() && sizes_[0] > kMaxKeptBlock)) {
    // One block that holds what this round needed (bounded), instead of a
    // chain of them.
    const size_t size = std::clamp(used_, kFirstBlock, kMaxKeptBlock);
    blocks_.clear();
    sizes_.clear();
    blocks_.emplace_back(new char[size]);
    sizes_.push_back(size);
  }
  cur_ = blocks_.empty() ? nullptr : blocks_[0].get();
  left_ = sizes_.empty() ? 0 : sizes_[0];
  used_ = 0;
}

size_t ReplyArena::capacity() const {
  size_t total = 0;
  for (size_t s : sizes_) total += s;
  return total;
}

bool IsError(const redisReply* r) { return r != nullptr && r->type == REDIS_REPLY_ERROR; }

bool IsErrorCode(const redisReply* r, std::string_view code) {
  if (!IsError(r)) return false;
  std::string_view text = ReplyText(r);
  return text.substr(0, code.size()) == code &&
         (text.size() == code.size() || text[code.size()] == ' ');
}

bool IsTransientError(const redisReply* r) {
  for (std::string_view code : {"LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "READONLY", "OOM"}) {
    if (IsErrorCode(r, code)) return true;
  }
  return false;
}

Result<std::unique_ptr<RedisConnection>> RedisConnection::Connect(
    const RedisBackendOptions& options, const std::string& client_name, bool arena_replies) {
  const std::string endpoint = RedactedRedisUrl(options);
  redisContext* c =
      options.unix_path.empty()
          ? redisConnectWithTimeout(options.host.c_str(), options.port,
                                    ToTimeval(options.connect_timeout))
          : redisConnectUnixWithTimeout(options.unix_path.c_str(),
                                        ToTimeval(options.connect_timeout));
  if (c == nullptr) return Status::Unavailable("cannot connect to " + endpoint + ": out of memory");
  std::unique_ptr<RedisConnection> conn(new RedisConnection(c));
  conn->endpoint_ = endpoint;
  if (c->err != 0) {
    return Status::Unavailable("cannot connect to " + endpoint + ": " + c->errstr);
  }
  if (arena_replies) {
    conn->arena_ = std::make_unique<ReplyArena>();
    conn->arena_->Attach(c);
  } else {
    LimitReplies(c->reader);
  }
  if (options.unix_path.empty()) redisEnableKeepAlive(c);
  conn->SetTimeout(options.command_timeout);

  std::vector<RedisCommand> setup;
  if (!options.password.empty()) {
    if (options.user.empty()) {
      setup.push_back({"AUTH", options.password});
    } else {
      setup.push_back({"AUTH", options.user, options.password});
    }
  }
  if (options.db != 0) setup.push_back({"SELECT", std::to_string(options.db)});
  setup.push_back({"CLIENT", "SETNAME", client_name});
  // Answers LOADING while a restarted Redis reads its AOF: not up yet.
  setup.push_back({"DBSIZE"});
  setup.push_back({"CLIENT", "ID"});
  std::vector<RedisReplyPtr> replies;
  Status s = conn->Pipeline(setup, &replies);
  if (!s.ok()) return s;
  for (size_t i = 0; i < replies.size(); ++i) {
    if (IsError(replies[i].get())) {
      // Never echo the AUTH command: only its reply.
      return Status::Unavailable("connected to " + endpoint + " but " + setup[i][0] + " " +
                                 (setup[i][0] == "AUTH" || setup[i].size() < 2 ? "" : setup[i][1] + " ") +
                                 "failed: " + std::string(ReplyText(replies[i].get())));
    }
  }
  if (replies.back()->type == REDIS_REPLY_INTEGER) conn->client_id_ = replies.back()->integer;
  return conn;
}

RedisConnection::~RedisConnection() { redisFree(c_); }

void RedisConnection::SetTimeout(std::chrono::milliseconds timeout) {
  if (timeout == timeout_) return;
  timeout_ = timeout;
  redisSetTimeout(c_, ToTimeval(timeout));
}

void RedisConnection::AppendHeader(char type, size_t n) {
  char buf[24];
  buf[0] = type;
  char* end = std::to_chars(buf + 1, buf + sizeof(buf) - 2, n).ptr;
  *end++ = '\r';
  *end++ = '\n';
  out_.append(buf, static_cast<size_t>(end - buf));
}

Status RedisConnection::IoError(std::string_view what) const {
  std::string detail = c_->err != 0 ? std::string(c_->errstr) : "unknown error";
  if (c_->err == REDIS_ERR_OOM && refused_array >= 0) {
    detail = "the server announced an array of " + std::to_string(refused_array) +
             " elements, over the limit of " + std::to_string(kMaxReplyElements) +
             " (not a Redis reply to anything foxworker sends)";
    refused_array = -1;
  }
  if (c_->err == REDIS_ERR_IO && detail.find("temporarily unavailable") != std::string::npos) {
    detail = "timed out after " + std::to_string(timeout_.count()) + " ms";
  }
  return Status::Unavailable(std::string(what) + " " + endpoint_ + ": " + detail);
}

template <typename Command>
Status RedisConnection::SendOf(const std::vector<Command>& commands) {
  // The protocol text of every command, written here and handed to hiredis
  // in one piece: redisAppendCommandArgv formats each argument with
  // sdscatfmt, which cost more than anything else on the command thread
  // (an XACK has one argument per entry).
  out_.clear();
  for (const Command& cmd : commands) {
    AppendHeader('*', cmd.size());
    for (const auto& arg : cmd) {
      AppendHeader('$', arg.size());
      out_.append(arg.data(), arg.size());
      out_.append("\r\n", 2);
    }
  }
  const int appended = redisAppendFormattedCommand(c_, out_.data(), out_.size());
  if (out_.capacity() > kMaxKeptOutput) std::string().swap(out_);
  if (appended != REDIS_OK) return IoError("cannot send to");
  return Status::Ok();
}

template <typename Command>
Status RedisConnection::PipelineOf(const std::vector<Command>& commands,
                                   std::vector<RedisReplyPtr>* replies) {
  replies->clear();
  Status s = SendOf(commands);
  if (!s.ok()) return s;
  replies->reserve(commands.size());
  for (size_t i = 0; i < commands.size(); ++i) {
    replies->emplace_back();
    s = Receive(&replies->back());
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

Status RedisConnection::Send(const std::vector<RedisArgs>& commands) {
  Status s = SendOf(commands);
  if (!s.ok()) return s;
  // redisGetReply writes only when no reply is buffered yet: flush now, so
  // that Redis has these commands while the replies before them are read.
  int done = 0;
  while (done == 0) {
    if (redisBufferWrite(c_, &done) != REDIS_OK) return IoError("cannot send to");
  }
  return Status::Ok();
}

Status RedisConnection::Receive(RedisReplyPtr* reply) {
  void* r = nullptr;
  if (redisGetReply(c_, &r) != REDIS_OK || r == nullptr) return IoError("lost the connection to");
  *reply = RedisReplyPtr(static_cast<redisReply*>(r), RedisReplyDeleter{arena_.get()});
  return Status::Ok();
}

Status RedisConnection::Receive(RedisReplyPtr* reply, int wake_fd) {
  reply->reset();
  void* r = nullptr;
  if (redisGetReplyFromReader(c_, &r) != REDIS_OK) return IoError("lost the connection to");
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  bool woken = false;
  while (r == nullptr && !woken) {
    pollfd fds[2] = {{c_->fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    int ms = -1;
    if (timeout_.count() > 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      ms = static_cast<int>(std::max<int64_t>(0, left.count() + 1));
    }
    const int n = poll(fds, 2, ms);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError("cannot wait for");
    if (n == 0) {
      return Status::Unavailable("no reply from " + endpoint_ + ": timed out after " +
                                 std::to_string(timeout_.count()) + " ms");
    }
    if (fds[1].revents != 0) {
      uint64_t count;
      if (read(wake_fd, &count, sizeof(count)) < 0 && errno != EAGAIN) {
        return Status::Internal("reading the reader's wake-up eventfd failed");
      }
      woken = true;
    }
    if (fds[0].revents != 0) {
      // Readable (or closed): one read() that cannot block, then parse.
      if (redisBufferRead(c_) != REDIS_OK) return IoError("lost the connection to");
      if (redisGetReplyFromReader(c_, &r) != REDIS_OK) return IoError("lost the connection to");
    }
  }
  if (r != nullptr) *reply = RedisReplyPtr(static_cast<redisReply*>(r), RedisReplyDeleter{arena_.get()});
  return Status::Ok();
}

Status RedisConnection::Pipeline(const std::vector<RedisCommand>& commands,
                                 std::vector<RedisReplyPtr>* replies) {
  return PipelineOf(commands, replies);
}

Status RedisConnection::Pipeline(const std::vector<RedisArgs>& commands,
                                 std::vector<RedisReplyPtr>* replies) {
  return PipelineOf(commands, replies);
}

Result<RedisReplyPtr> RedisConnection::Run(const RedisCommand& command) {
  std::vector<RedisReplyPtr> replies;
  Status s = Pipeline(std::vector<RedisCommand>{command}, &replies);
  if (!s.ok()) return s;
  return std::move(replies[0]);
}

}  // namespace foxworker
