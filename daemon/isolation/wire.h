// The channel between foxworkerd and a handler child (isolation: process):
// length-prefixed frames over an AF_UNIX stream socketpair, and
// the binary encoding of what crosses it. Both ends are built from this
// tree, so the format carries no version; the child is always the one
// installed next to the daemon.
//
//   frame := u32 length (of type + body, little endian) | u8 type | body
//
// Integers are little endian, strings are u32 length + bytes.
#ifndef FOXWORKER_ISOLATION_WIRE_H_
#define FOXWORKER_ISOLATION_WIRE_H_

#include <foxworker/plugin.h>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "daemon/base/status.h"
#include "daemon/core/message.h"

namespace foxworker::isolation {

enum class FrameType : uint8_t {
  // daemon -> child
  kInit = 1,      // plugin name, path, config JSON, queue name, slots, minloglevel, v
  kRun = 2,       // id, handler name, deadline (ms from now, 0 = none), message
  kCancel = 3,    // id
  kShutdown = 4,  // finish what runs, destroy instances, call the plugin's shutdown, exit 0
  kPublished = 5, // request id, status (u8 code, text): the answer to a PUBLISH
  kRunBatch = 6,  // first id, handler name, deadline, count, messages: one call of a
                  // batch handler; the messages' ids are first id, first id + 1, ...
  // child -> daemon
  kReady = 20,    // pid
  kFailed = 21,   // error text (init failed; the child exits 1 after it)
  kDone = 22,     // id, verdict (raw), retry delay ms, reason
  kLog = 23,      // severity, file, line, text
  // metric id (the child's own, from 1), kind, full name, help; before the
  // first METRIC_UPDATE that names the id
  kMetricDefine = 24,
  // count, then per metric: id, kind, and a counter's increase (f64), a
  // gauge's value (f64), or a histogram's new observations (u32 n, n u64
  // per-bucket counts, f64 sum); what changed since the last one
  kMetricUpdate = 25,
  // request id, u8 has parent, the parent's Message without payload, then
  // the foxw_publish: queue, payload, message_type, content_type,
  // correlation_id, u32 n + n (name, value), u8 priority, u64 delay_ms,
  // message_id, app_id, content_encoding
  kPublish = 26,
};

// The largest frame either side accepts: the largest message a backend
// takes (a RabbitMQ frame_max-bounded body can reach 512 MiB; the local and
// Redis backends accept what Redis' proto-max-bulk-len does) plus headers.
inline constexpr uint32_t kMaxFrame = 640u * 1024 * 1024;

// Appends primitives to a body.
class Writer {
 public:
  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U32(uint32_t v);
  void U64(uint64_t v);
  void I64(int64_t v) { U64(static_cast<uint64_t>(v)); }
  void F64(double v);
  void Str(std::string_view s);
  // `with_payload` false: an empty payload (a publish's parent, whose
  // payload the daemon has no use for).
  void Msg(const Message& m, bool with_payload = true);
  std::string& body() { return out_; }

 private:
  std::string out_;
};

// Reads primitives from a body; any read past the end sets !ok() and
// returns zeros.
class Reader {
 public:
  explicit Reader(std::string_view body) : in_(body) {}
  uint8_t U8();
  uint32_t U32();
  uint64_t U64();
  int64_t I64() { return static_cast<int64_t>(U64()); }
  double F64();
  std::string Str();
  // Str into `out`, whose capacity it keeps (a reused message's strings).
  void StrInto(std::string* out);
  // Every field of `m` (a reused message: its strings keep their capacity).
  bool Msg(Message* m);
  bool ok() const { return ok_; }

 private:
  bool Take(size_t n, const char** p);
  std::string_view in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

// The fields of a foxw_publish as a PUBLISH frame carries them (every field
// of ABI 1.1), owned by the daemon side that reads them.
struct PublishFields {
  std::string queue, payload, message_type, content_type, correlation_id;
  std::vector<std::pair<std::string, std::string>> headers;
  uint8_t priority = 0;
  uint64_t delay_ms = 0;
  std::string message_id, app_id, content_encoding;

  // A foxw_publish over these strings, valid while this and `headers_out`
  // live unchanged.
  foxw_publish View(std::vector<foxw_header>* headers_out) const;
};
// `p` as the HostPublish checks left it (struct_size the host's, no
// pointer NULL with a length).
void WritePublish(Writer& w, const foxw_publish& p);
bool ReadPublish(Reader& r, PublishFields* out);

// A Status as u8 code + message (PUBLISHED).
void WriteStatus(Writer& w, const Status& s);
Status ReadStatus(Reader& r);

// One end of the channel. Send is safe from any thread (frames never
// interleave); Receive from one thread at a time.
//
// Frames are batched both ways without waiting for a batch to fill: a Send
// that finds another thread writing appends its frame to what that thread
// writes next and returns at once (so under load one write(2) carries many
// frames, and with no load a frame leaves at once), and Receive reads what
// is there, up to kReadChunk, and hands out the frames one by one. See
// docs/architecture.md ("The channel").
//
// With `write_behind` (the daemon's end) a write never blocks its caller:
// what the socket cannot take now is left to a thread of the channel's own,
// started the first time, and the caller returns as if another thread were
// writing. A child that is stopped or slow to read then holds up only its
// own frames, never the thread that feeds the other children. Those frames
// are bounded by the child's slots.
class Channel {
 public:
  explicit Channel(int fd, bool write_behind = false)
      : fd_(fd), write_behind_(write_behind) {}
  // Stops the channel's writer (a write it is blocked in fails) and closes.
  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  int fd() const { return fd_; }
  // Ok once the frame is written or queued behind the write in progress;
  // Unavailable when the channel is known to be closed. A frame queued
  // behind a write that then fails is lost with the channel: the other side
  // is gone and its end of stream tells every reader so. With write_behind,
  // frames still queued when the channel is destroyed are dropped (every
  // caller destroys it only once the child is gone or killed).
  Status Send(FrameType type, std::string_view body);
  // Appends a frame without writing it: it leaves with the next Send or
  // Flush (of any thread). For a thread that sends several frames in a row.
  // Returns the bytes queued and not yet being written.
  size_t Queue(FrameType type, std::string_view body);
  // Whether frames are queued that no thread is writing yet.
  bool HasQueued();
  // Writes what is queued (or leaves it to the thread writing now).
  Status Flush();
  // Blocks for the next frame. Unavailable on end of stream (the other side
  // exited or closed), InvalidArgument on a malformed frame.
  Status Receive(FrameType* type, std::string* body);
  // Whether a frame (or part of one) is already read and waiting: the next
  // Receive may not block.
  bool Buffered() const { return read_end_ > read_pos_; }
  // Whether a whole frame is read and waiting: the next Receive will not
  // block.
  bool FrameReady() const;
  // Wakes a Receive blocked on another thread with end of stream.
  void ShutdownRead();

 private:
  static constexpr size_t kReadChunk = 256 * 1024;
  // Writes `n` bytes. With `written` it stops when the socket would block
  // and says how far it got; without, it blocks until all are written.
  Status WriteAll(const char* p, size_t n, size_t* written = nullptr);
  // The write-behind thread: writes what FlushLocked left it, then what is
  // queued meanwhile, blocking, until nothing is left.
  void WriterLoop();
  // Starts writer_ if it is not running. False when no thread could be
  // started (the caller then writes the rest itself). REQUIRES: send_mu_.
  bool StartWriterLocked();
  static void Frame(std::string* out, FrameType type, std::string_view body);
  // REQUIRES: send_mu_ held by `lock`.
  Status FlushLocked(std::unique_lock<std::mutex>& lock);
  // Writes pending_ until it is empty, then lets go of writing_ (or hands
  // both to the writer thread when the socket is full and `may_hand_off`).
  // REQUIRES: send_mu_ held by `lock`; this thread set writing_.
  Status WriteQueuedLocked(std::unique_lock<std::mutex>& lock, bool may_hand_off);
  // Makes at least `n` bytes readable at read_pos_.
  Status Fill(size_t n, bool at_frame_start);
  const int fd_;
  std::mutex send_mu_;
  bool writing_ = false;  // GUARDED_BY(send_mu_): a thread is in WriteAll
  bool broken_ = false;   // GUARDED_BY(send_mu_)
  std::string pending_;   // GUARDED_BY(send_mu_): frames for the writing thread
  std::string spare_;     // GUARDED_BY(send_mu_): the buffer last written, reused
  const bool write_behind_;
  // GUARDED_BY(send_mu_): bytes a write left from behind_pos_ on, for the
  // writer thread; it owns writing_ while behind_handed_.
  std::string behind_;
  size_t behind_pos_ = 0;
  bool behind_handed_ = false;
  bool closing_ = false;  // GUARDED_BY(send_mu_): the destructor runs
  std::condition_variable behind_cv_;
  std::thread writer_;  // started by the first write that would block
  // Receive's buffer (one reading thread).
  std::string read_buf_;
  size_t read_pos_ = 0, read_end_ = 0;
};

}  // namespace foxworker::isolation

#endif  // FOXWORKER_ISOLATION_WIRE_H_
