#include "daemon/isolation/wire.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

namespace foxworker::isolation {

void Writer::U32(uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  out_.append(b, 4);
}

void Writer::U64(uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  out_.append(b, 8);
}

void Writer::F64(double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  U64(bits);
}

void Writer::Str(std::string_view s) {
  U32(static_cast<uint32_t>(s.size()));
  out_.append(s.data(), s.size());
}

void Writer::Msg(const Message& m, bool with_payload) {
  Str(m.id);
  Str(with_payload ? std::string_view(m.payload) : std::string_view());
  const Properties& p = m.props;
  for (const std::string* s : {&p.content_type, &p.content_encoding, &p.message_type,
                               &p.correlation_id, &p.reply_to, &p.app_id, &p.user_id,
                               &p.expiration, &p.message_id, &p.cluster_id})
    Str(*s);
  U8(p.priority);
  I64(p.timestamp_ms);
  U8(p.priority_set ? 1 : 0);
  I64(p.sent_priority);
  U8(p.timestamp_set ? 1 : 0);
  U8(p.delivery_mode);
  U32(static_cast<uint32_t>(m.headers.size()));
  for (const auto& [name, value] : m.headers) {
    Str(name);
    Str(value);
  }
  U32(static_cast<uint32_t>(m.header_types.size()));
  for (HeaderType t : m.header_types) U8(static_cast<uint8_t>(t));
  I64(m.enqueued_at_ms);
  U32(m.attempt);
}

bool Reader::Take(size_t n, const char** p) {
  if (!ok_ || in_.size() - pos_ < n) {
    ok_ = false;
    return false;
  }
  *p = in_.data() + pos_;
  pos_ += n;
  return true;
}

uint8_t Reader::U8() {
  const char* p;
  return Take(1, &p) ? static_cast<uint8_t>(*p) : 0;
}

uint32_t Reader::U32() {
  const char* p;
  if (!Take(4, &p)) return 0;
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

uint64_t Reader::U64() {
  const char* p;
  if (!Take(8, &p)) return 0;
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

double Reader::F64() {
  const uint64_t bits = U64();
  double v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

std::string Reader::Str() {
  const uint32_t n = U32();
  const char* p;
  if (!Take(n, &p)) return {};
  return std::string(p, n);
}

void Reader::StrInto(std::string* out) {
  const uint32_t n = U32();
  const char* p;
  if (!Take(n, &p)) {
    out->clear();
    return;
  }
  out->assign(p, n);
}

bool Reader::Msg(Message* m) {
  StrInto(&m->id);
  StrInto(&m->payload);
  Properties& p = m->props;
  for (std::string* s : {&p.content_type, &p.content_encoding, &p.message_type, &p.correlation_id,
                         &p.reply_to, &p.app_id, &p.user_id, &p.expiration, &p.message_id,
                         &p.cluster_id})
    StrInto(s);
  p.priority = U8();
  p.timestamp_ms = I64();
  p.priority_set = U8() != 0;
  p.sent_priority = I64();
  p.timestamp_set = U8() != 0;
  p.delivery_mode = U8();
  uint32_t headers = U32();
  // Each header takes at least its two lengths: a count past what is left
  // is a malformed frame, not an allocation.
  if (headers > (in_.size() - pos_) / 8) {
    ok_ = false;
    headers = 0;
  }
  m->headers.resize(headers);
  for (auto& [name, value] : m->headers) {
    StrInto(&name);
    StrInto(&value);
  }
  const uint32_t types = U32();
  m->header_types.clear();
  for (uint32_t i = 0; i < types && ok_; ++i) m->header_types.push_back(static_cast<HeaderType>(U8()));
  m->enqueued_at_ms = I64();
  m->attempt = U32();
  return ok_;
}

namespace {
std::string_view View(const foxw_str& s) {
  return s.len != 0 ? std::string_view(s.ptr, s.len) : std::string_view();
}
foxw_str Borrow(const std::string& s) { return foxw_str{s.data(), s.size()}; }
}  // namespace

void WritePublish(Writer& w, const foxw_publish& p) {
  for (const foxw_str* s : {&p.queue, &p.payload, &p.message_type, &p.content_type,
                            &p.correlation_id})
    w.Str(View(*s));
  const size_t headers = p.headers != nullptr ? p.header_count : 0;
  w.U32(static_cast<uint32_t>(headers));
  for (size_t i = 0; i < headers; ++i) {
    w.Str(View(p.headers[i].name));
    w.Str(View(p.headers[i].value));
  }
  w.U8(p.priority);
  w.U64(p.delay_ms);
  for (const foxw_str* s : {&p.message_id, &p.app_id, &p.content_encoding}) w.Str(View(*s));
}

bool ReadPublish(Reader& r, PublishFields* out) {
  for (std::string* s : {&out->queue, &out->payload, &out->message_type, &out->content_type,
                         &out->correlation_id})
    *s = r.Str();
  const uint32_t headers = r.U32();
  out->headers.clear();
  for (uint32_t i = 0; i < headers && r.ok(); ++i) {
    std::string name = r.Str();
    std::string value = r.Str();
    out->headers.emplace_back(std::move(name), std::move(value));
  }
  out->priority = r.U8();
  out->delay_ms = r.U64();
  for (std::string* s : {&out->message_id, &out->app_id, &out->content_encoding}) *s = r.Str();
  return r.ok();
}

foxw_publish PublishFields::View(std::vector<foxw_header>* headers_out) const {
  foxw_publish p;
  std::memset(&p, 0, sizeof p);
  p.struct_size = sizeof p;
  p.queue = Borrow(queue);
  p.payload = Borrow(payload);
  p.message_type = Borrow(message_type);
  p.content_type = Borrow(content_type);
  p.correlation_id = Borrow(correlation_id);
  headers_out->clear();
  for (const auto& [name, value] : headers) headers_out->push_back({Borrow(name), Borrow(value)});
  p.headers = headers_out->empty() ? nullptr : headers_out->data();
  p.header_count = headers_out->size();
  p.priority = priority;
  p.delay_ms = delay_ms;
  p.message_id = Borrow(message_id);
  p.app_id = Borrow(app_id);
  p.content_encoding = Borrow(content_encoding);
  return p;
}

void WriteStatus(Writer& w, const Status& s) {
  w.U8(static_cast<uint8_t>(s.code()));
  w.Str(s.message());
}

Status ReadStatus(Reader& r) {
  const auto code = static_cast<Status::Code>(r.U8());
  std::string message = r.Str();
  switch (code) {
    case Status::Code::kOk:
      return Status::Ok();
    case Status::Code::kInvalidArgument:
      return Status::InvalidArgument(std::move(message));
    case Status::Code::kNotFound:
      return Status::NotFound(std::move(message));
    case Status::Code::kAlreadyExists:
      return Status::AlreadyExists(std::move(message));
    case Status::Code::kIoError:
      return Status::IoError(std::move(message));
    case Status::Code::kUnavailable:
      return Status::Unavailable(std::move(message));
    default:
      return Status::Internal(std::move(message));
  }
}

Channel::~Channel() {
  {
    std::lock_guard<std::mutex> lock(send_mu_);
    closing_ = true;
  }
  if (writer_.joinable()) {
    behind_cv_.notify_one();
    ::shutdown(fd_, SHUT_RDWR);  // a send the writer is blocked in returns
    writer_.join();
  }
  ::close(fd_);
}

void Channel::Frame(std::string* out, FrameType type, std::string_view body) {
  char head[5];
  const uint32_t len = static_cast<uint32_t>(body.size() + 1);
  for (int i = 0; i < 4; ++i) head[i] = static_cast<char>((len >> (8 * i)) & 0xff);
  head[4] = static_cast<char>(type);
  out->append(head, sizeof head);
  out->append(body.data(), body.size());
}

Status Channel::Send(FrameType type, std::string_view body) {
  if (body.size() + 1 > kMaxFrame) {
    return Status::InvalidArgument("frame of " + std::to_string(body.size()) +
                                   " bytes is over the channel's limit");
  }
  std::unique_lock<std::mutex> lock(send_mu_);
  if (broken_) return Status::Unavailable("channel closed");
  Frame(&pending_, type, body);
  return FlushLocked(lock);
}

size_t Channel::Queue(FrameType type, std::string_view body) {
  std::lock_guard<std::mutex> lock(send_mu_);
  // An oversized frame is the sender's bug; it never leaves (nor does its
  // message's answer, which the child's end of stream settles).
  if (broken_ || body.size() + 1 > kMaxFrame) return pending_.size();
  Frame(&pending_, type, body);
  return pending_.size();
}

bool Channel::HasQueued() {
  std::lock_guard<std::mutex> lock(send_mu_);
  return !pending_.empty() && !writing_;
}

Status Channel::Flush() {
  std::unique_lock<std::mutex> lock(send_mu_);
  if (broken_) return Status::Unavailable("channel closed");
  return FlushLocked(lock);
}

Status Channel::FlushLocked(std::unique_lock<std::mutex>& lock) {
  if (writing_) return Status::Ok();  // it leaves with the writing thread's next write
  writing_ = true;
  return WriteQueuedLocked(lock, /*may_hand_off=*/write_behind_);
}

Status Channel::WriteQueuedLocked(std::unique_lock<std::mutex>& lock, bool may_hand_off) {
  // This thread writes, until nothing is left: what other threads append
  // meanwhile leaves in the next write, in the order it was appended.
  Status s = Status::Ok();
  while (!pending_.empty() && s.ok()) {
    std::string out;
    out.swap(pending_);
    pending_.swap(spare_);  // an empty buffer with capacity, if one is left
    lock.unlock();
    size_t written = out.size();
    s = WriteAll(out.data(), out.size(), may_hand_off ? &written : nullptr);
    lock.lock();
    if (s.ok() && written < out.size()) {
      if (StartWriterLocked()) {
        // The socket is full: the writer thread takes the rest, and
        // writing_ with it; frames queued meanwhile follow in order.
        behind_ = std::move(out);
        behind_pos_ = written;
        behind_handed_ = true;
        behind_cv_.notify_one();
        return Status::Ok();
      }
      // No thread to leave it to: this caller writes the rest, blocking,
      // as a channel without write_behind does.
      lock.unlock();
      s = WriteAll(out.data() + written, out.size() - written);
      lock.lock();
    }
    out.clear();
    if (out.capacity() <= 4 * kReadChunk) spare_.swap(out);
  }
  writing_ = false;
  if (!s.ok()) {
    broken_ = true;
    pending_.clear();
  }
  return s;
}

bool Channel::StartWriterLocked() {
  if (writer_.joinable()) return true;
  try {
    writer_ = std::thread([this] { WriterLoop(); });
  } catch (const std::system_error&) {
    return false;  // out of threads (EAGAIN): the next full socket tries again
  }
  return true;
}

void Channel::WriterLoop() {
  std::unique_lock<std::mutex> lock(send_mu_);
  for (;;) {
    behind_cv_.wait(lock, [this] { return behind_handed_ || closing_; });
    if (closing_) return;
    // writing_ is this thread's until WriteQueuedLocked lets go of it.
    behind_handed_ = false;
    const std::string out = std::move(behind_);
    const size_t pos = behind_pos_;
    behind_.clear();
    lock.unlock();
    Status s = WriteAll(out.data() + pos, out.size() - pos);
    lock.lock();
    if (s.ok()) {
      (void)WriteQueuedLocked(lock, /*may_hand_off=*/false);
    } else {
      writing_ = false;
      broken_ = true;
      pending_.clear();
    }
  }
}

Status Channel::WriteAll(const char* p, size_t n, size_t* written) {
  size_t done = 0;
  const int flags = MSG_NOSIGNAL | (written != nullptr ? MSG_DONTWAIT : 0);
  while (done < n) {
    const ssize_t w = ::send(fd_, p + done, n - done, flags);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (written != nullptr && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      return Status::Unavailable(std::string("channel closed: ") + std::strerror(errno));
    }
    done += static_cast<size_t>(w);
  }
  if (written != nullptr) *written = done;
  return Status::Ok();
}

Status Channel::Fill(size_t n, bool at_frame_start) {
  if (read_end_ - read_pos_ >= n) return Status::Ok();
  // Move what is left to the front, and make room for the whole frame.
  if (read_pos_ > 0) {
    read_buf_.erase(0, read_pos_);
    read_end_ -= read_pos_;
    read_pos_ = 0;
  }
  if (read_buf_.size() < std::max(n, kReadChunk)) read_buf_.resize(std::max(n, kReadChunk));
  while (read_end_ < n) {
    const ssize_t r = ::read(fd_, read_buf_.data() + read_end_, read_buf_.size() - read_end_);
    if (r < 0) {
      if (errno == EINTR) continue;
      return Status::Unavailable(std::string("channel read failed: ") + std::strerror(errno));
    }
    if (r == 0) {
      return Status::Unavailable(at_frame_start && read_end_ == 0 ? "end of stream"
                                                                   : "end of stream inside a frame");
    }
    read_end_ += static_cast<size_t>(r);
  }
  return Status::Ok();
}

namespace {
// A frame's length field (little-endian u32 at `head`).
uint32_t FrameLength(const char* head) {
  uint32_t len = 0;
  for (int i = 0; i < 4; ++i) len |= static_cast<uint32_t>(static_cast<uint8_t>(head[i])) << (8 * i);
  return len;
}
}  // namespace

Status Channel::Receive(FrameType* type, std::string* body) {
  Status s = Fill(5, /*at_frame_start=*/true);
  if (!s.ok()) return s;
  const char* head = read_buf_.data() + read_pos_;
  const uint32_t len = FrameLength(head);
  if (len == 0 || len > kMaxFrame) {
    return Status::InvalidArgument("malformed frame: length " + std::to_string(len));
  }
  s = Fill(4 + size_t{len}, /*at_frame_start=*/false);
  if (!s.ok()) return s;
  head = read_buf_.data() + read_pos_;
  *type = static_cast<FrameType>(static_cast<uint8_t>(head[4]));
  body->assign(head + 5, len - 1);
  read_pos_ += 4 + size_t{len};
  if (read_pos_ == read_end_) read_pos_ = read_end_ = 0;
  // A buffer grown for one large frame is not kept.
  if (read_pos_ == 0 && read_buf_.size() > 4 * kReadChunk) {
    read_buf_.clear();
    read_buf_.shrink_to_fit();
  }
  return Status::Ok();
}

bool Channel::FrameReady() const {
  if (read_end_ - read_pos_ < 5) return false;
  const char* head = read_buf_.data() + read_pos_;
  const uint32_t len = FrameLength(head);
  return read_end_ - read_pos_ >= 4 + size_t{len};
}

void Channel::ShutdownRead() { ::shutdown(fd_, SHUT_RD); }

}  // namespace foxworker::isolation
