// Status and Result<T>: core's error type. core/ cannot depend on abseil (it
// must build against LibTorch alone), so it carries its own small pair; the
// codes map one to one onto absl::StatusCode / grpc::StatusCode at the
// boundary (same names, same meaning as grpc doc/statuscodes.md).
//
// Exceptions thrown by LibTorch (c10::Error) or the standard library are
// caught inside core/ and turned into a Status; none escapes a core call.
#ifndef LETHE_CORE_STATUS_H_
#define LETHE_CORE_STATUS_H_

#include <optional>
#include <string>
#include <utility>

namespace lethe::core {

enum class Code {
  kOk = 0,
  kInvalidArgument = 3,     // the caller's input is wrong; retrying won't help
  kDeadlineExceeded = 4,    // the policy's time budget ran out
  kNotFound = 5,            // e.g. no record of the requested subjects
  kResourceExhausted = 8,   // out of memory (host or device)
  kFailedPrecondition = 9,  // state does not allow it (e.g. missing SISA state)
  kAborted = 10,            // a method gave up (divergence, NaN); escalate
  kInternal = 13,           // a bug or an unexpected library failure
};

// The gRPC/absl name of a code ("INVALID_ARGUMENT", ...).
const char* CodeName(Code code);

class Status {
 public:
  Status() = default;
  Status(Code code, std::string message)
      : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "INVALID_ARGUMENT: message", or "OK".
  std::string ToString() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status OkStatus() { return Status(); }
Status InvalidArgumentError(std::string message);
Status NotFoundError(std::string message);
Status FailedPreconditionError(std::string message);
Status ResourceExhaustedError(std::string message);
Status InternalError(std::string message);
Status AbortedError(std::string message);
Status DeadlineExceededError(std::string message);

// Either a value or a non-OK Status. Accessing value() of an error is a bug
// (checked by assert in debug builds).
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT
    if (status_.ok()) status_ = Status(Code::kInternal, "Result from OK");
  }

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace lethe::core

// Named LETHE_CORE_* so that they never clash with the abseil-based macros
// of the service libraries, which a file may include beside these.
#define LETHE_CORE_CONCAT_INNER_(a, b) a##b
#define LETHE_CORE_CONCAT_(a, b) LETHE_CORE_CONCAT_INNER_(a, b)

#define LETHE_CORE_RETURN_IF_ERROR(expr)           \
  do {                                             \
    ::lethe::core::Status lethe_status_ = (expr);  \
    if (!lethe_status_.ok()) return lethe_status_; \
  } while (0)

// `lhs` may be a declaration (`int x`) and `result` is a name: neither can
// be parenthesised.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define LETHE_CORE_ASSIGN_OR_RETURN(lhs, expr) \
  LETHE_CORE_ASSIGN_OR_RETURN_IMPL_(           \
      LETHE_CORE_CONCAT_(lethe_result_, __LINE__), lhs, expr)
#define LETHE_CORE_ASSIGN_OR_RETURN_IMPL_(result, lhs, expr) \
  auto result = (expr);                                      \
  if (!result.ok()) return result.status();                  \
  lhs = std::move(result).value()
// NOLINTEND(bugprone-macro-parentheses)

#endif  // LETHE_CORE_STATUS_H_
