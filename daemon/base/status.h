// Status and Result<T>: errors as values on every path below the supervisor.
#ifndef FOXWORKER_BASE_STATUS_H_
#define FOXWORKER_BASE_STATUS_H_

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>

namespace foxworker {

class Status {
 public:
  enum class Code { kOk = 0, kInvalidArgument, kNotFound, kAlreadyExists, kIoError, kUnavailable, kInternal };

  Status() = default;
  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string msg) { return Status(Code::kInvalidArgument, std::move(msg)); }
  static Status NotFound(std::string msg) { return Status(Code::kNotFound, std::move(msg)); }
  static Status AlreadyExists(std::string msg) { return Status(Code::kAlreadyExists, std::move(msg)); }
  static Status IoError(std::string msg) { return Status(Code::kIoError, std::move(msg)); }
  static Status Unavailable(std::string msg) { return Status(Code::kUnavailable, std::move(msg)); }
  static Status Internal(std::string msg) { return Status(Code::kInternal, std::move(msg)); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  bool IsNotFound() const { return code_ == Code::kNotFound; }
  bool IsInvalidArgument() const { return code_ == Code::kInvalidArgument; }
  bool IsUnavailable() const { return code_ == Code::kUnavailable; }
  const std::string& message() const { return message_; }
  std::string ToString() const { return ok() ? "OK" : message_; }

 private:
  Status(Code code, std::string msg) : code_(code), message_(std::move(msg)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

// A value or the Status explaining why there is none.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}           // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {     // NOLINT
    if (status_.ok()) Die("Result built from an OK status without a value");
  }
  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & {
    if (!ok()) Die(status_.message().c_str());
    return *value_;
  }
  const T& value() const& {
    if (!ok()) Die(status_.message().c_str());
    return *value_;
  }
  T&& value() && {
    if (!ok()) Die(status_.message().c_str());
    return std::move(*value_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }

 private:
  // Reading the value of an error is a programming bug: say which and abort
  // (base/ depends on no logging library).
  [[noreturn]] static void Die(const char* what) {
    std::fprintf(stderr, "foxworker: Result has no value: %s\n", what);
    std::abort();
  }
  std::optional<T> value_;
  Status status_;
};

}  // namespace foxworker

#endif  // FOXWORKER_BASE_STATUS_H_
