// Errors are values: Result<T> carries either a T or an Error that says where it
// came from and whether retrying could help. No exceptions on the data path.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>

namespace ramjet {

enum class ErrorSource : std::uint8_t {
  kDownstream,  // the client side of a connection
  kUpstream,    // the server side, DNS, connect
  kInternal,    // our own invariants, resource limits
  kKernel,      // a syscall or io_uring operation
  kConfig,      // configuration input
};

inline const char* to_string(ErrorSource s) {
  switch (s) {
    case ErrorSource::kDownstream:
      return "downstream";
    case ErrorSource::kUpstream:
      return "upstream";
    case ErrorSource::kInternal:
      return "internal";
    case ErrorSource::kKernel:
      return "kernel";
    case ErrorSource::kConfig:
      return "config";
  }
  return "unknown";
}

struct Error {
  ErrorSource source = ErrorSource::kInternal;
  int code = 0;  // errno where one applies, else 0
  bool retryable = false;
  std::string message;

  static Error kernel(int err, std::string what, bool retryable = false) {
    return Error{ErrorSource::kKernel, err, retryable, std::move(what)};
  }
  static Error upstream(std::string what, int err = 0, bool retryable = false) {
    return Error{ErrorSource::kUpstream, err, retryable, std::move(what)};
  }
  static Error internal(std::string what) {
    return Error{ErrorSource::kInternal, 0, false, std::move(what)};
  }
  static Error config(std::string what) {
    return Error{ErrorSource::kConfig, 0, false, std::move(what)};
  }
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const { return std::get<1>(v_); }
  Error&& take_error() { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: success or an Error.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }
  Error&& take_error() { return std::move(error_); }

 private:
  Error error_;
  bool ok_ = true;
};

}  // namespace ramjet
