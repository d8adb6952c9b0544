// RedisConnection: one blocking hiredis connection with the endpoint,
// timeouts and authentication of a `type: redis` backend.
//
// Not safe for concurrent use: a connection belongs to one thread.
#ifndef FOXWORKER_BACKENDS_REDIS_REDIS_CONNECTION_H_
#define FOXWORKER_BACKENDS_REDIS_REDIS_CONNECTION_H_

#include <hiredis/hiredis.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/backends/redis/redis_config.h"
#include "daemon/base/status.h"

namespace foxworker {

class ReplyArena;

// hiredis 0.14 allocates an array reply's element pointers when it reads
// the header ("*N"), before any element arrives: a server (or anything in
// between) announcing *1000000000 would make the daemon allocate 8 GB at
// once. Every connection's reply builders refuse an array over this many
// elements (8 MiB of pointers); the connection then fails with an error
// that says so, and is made again. hiredis nests at most 7 arrays, so what
// is allocated ahead of the bytes that fill it stays bounded. The largest
// reply foxworker asks for (XREADGROUP of `prefetch` entries, or one entry's
// fields) is far below it: a stream entry would need over 524,288 fields.
inline constexpr int kMaxReplyElements = 1 << 20;

// Puts the limited heap builders on a reader (replies freed with
// freeReplyObject, as hiredis's own). NewLimitedReader: a fresh reader with
// them, for code that feeds bytes itself (the fuzzer).
void LimitReplies(redisReader* reader);
redisReader* NewLimitedReader();

// Frees a reply: hiredis's own (arena null), or one built in a connection's
// ReplyArena, which must still exist.
struct RedisReplyDeleter {
  ReplyArena* arena = nullptr;
  void operator()(redisReply* r) const;
};
using RedisReplyPtr = std::unique_ptr<redisReply, RedisReplyDeleter>;

// Where a connection with `arena_replies` builds its replies: hiredis's
// reply objects (same redisReply layout, strings NUL-terminated) carved out
// of a few large blocks instead of one malloc per element. An XREADGROUP of
// n entries is about 7n objects; with malloc the reader thread spent more
// time in the allocator than anywhere else. The blocks are reused once every
// reply built in them was freed (RedisReplyDeleter or hiredis's freeObject
// of a half-read reply), so steady reading allocates nothing.
//
// Not safe for concurrent use: it belongs to its connection's thread.
class ReplyArena {
 public:
  ReplyArena() = default;
  ReplyArena(const ReplyArena&) = delete;
  ReplyArena& operator=(const ReplyArena&) = delete;

  // Installs the arena as `c`'s reply builder. The arena must outlive `c`
  // (redisFree frees a half-read reply through it).
  void Attach(redisContext* c);

  // 8-byte aligned memory (zeroed unless told), valid until the arena rewinds.
  void* Alloc(size_t n, bool zeroed = true);
  // A root reply was started / freed; the blocks rewind when none is left.
  void Hold() { ++live_; }
  void Release();

  // Bytes of the blocks kept (for tests).
  size_t capacity() const;

 private:
  void Grow(size_t n);
  void Rewind();

  std::vector<std::unique_ptr<char[]>> blocks_;
  std::vector<size_t> sizes_;
  char* cur_ = nullptr;
  size_t left_ = 0;
  size_t used_ = 0;  // bytes handed out since the last rewind
  int live_ = 0;     // root replies not yet freed
};

// One command as its arguments ("XACK", key, group, id...). Binary safe.
using RedisCommand = std::vector<std::string>;

// One command as views of its arguments, which must outlive the call that
// sends it: lets a batch of XACKs point at ids held elsewhere.
using RedisArgs = std::vector<std::string_view>;

inline void AppendArgs(RedisCommand& cmd, std::vector<std::string>&& more) {
  for (std::string& s : more) cmd.push_back(std::move(s));
}

// A reply's text (string, status or error replies); empty otherwise.
std::string_view ReplyText(const redisReply* r);
bool IsError(const redisReply* r);
// An error reply whose first word is `code` ("NOGROUP", "BUSYGROUP").
bool IsErrorCode(const redisReply* r, std::string_view code);
// An error that goes away by itself (LOADING after a restart, BUSY script,
// TRYAGAIN, MASTERDOWN, READONLY during a failover, OOM until memory frees):
// the command is worth sending again after a backoff.
bool IsTransientError(const redisReply* r);

class RedisConnection {
 public:
  // Connects within options.connect_timeout, then authenticates, selects the
  // database and names the client. The message of a failure names the
  // endpoint (without the password).
  // With `arena_replies`, replies are built in a ReplyArena (see there) and
  // must be freed before the connection is destroyed.
  static Result<std::unique_ptr<RedisConnection>> Connect(const RedisBackendOptions& options,
                                                          const std::string& client_name,
                                                          bool arena_replies = false);
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Sends `commands` in one write (pipelined) and reads every reply. Error
  // replies are replies; a non-OK Status means the connection failed (I/O
  // error or timeout) and must be dropped.
  Status Pipeline(const std::vector<RedisCommand>& commands, std::vector<RedisReplyPtr>* replies);
  Status Pipeline(const std::vector<RedisArgs>& commands, std::vector<RedisReplyPtr>* replies);
  Result<RedisReplyPtr> Run(const RedisCommand& command);

  // The two halves of a pipeline, for keeping requests in flight: Send
  // writes `commands` out at once; each Receive reads the next reply, in
  // the order the commands were sent. Same errors as Pipeline.
  Status Send(const std::vector<RedisArgs>& commands);
  Status Receive(RedisReplyPtr* reply);
  // Receive that also returns, with *reply null, once the eventfd `wake_fd`
  // is readable (it is read, which resets it).
  Status Receive(RedisReplyPtr* reply, int wake_fd);

  // The read timeout for the following commands (a blocking XREADGROUP needs
  // its BLOCK time on top of the command timeout).
  void SetTimeout(std::chrono::milliseconds timeout);

  int64_t client_id() const { return client_id_; }

 private:
  explicit RedisConnection(redisContext* c) : c_(c) {}
  Status IoError(std::string_view what) const;
  template <typename Command>
  Status SendOf(const std::vector<Command>& commands);
  template <typename Command>
  Status PipelineOf(const std::vector<Command>& commands, std::vector<RedisReplyPtr>* replies);

  // Null unless arena_replies. Outlives the destructor's redisFree, which
  // may free a half-read reply through it.
  std::unique_ptr<ReplyArena> arena_;
  redisContext* c_;
  int64_t client_id_ = -1;
  std::chrono::milliseconds timeout_{0};
  std::string endpoint_;  // redacted, for messages
  // "*<n>\r\n" or "$<n>\r\n" onto out_.
  void AppendHeader(char type, size_t n);
  // The protocol text of a pipeline, reused (no allocation once grown).
  std::string out_;
};

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_REDIS_REDIS_CONNECTION_H_
