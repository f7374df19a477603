// SPDX-License-Identifier: MIT
// rx::Result<T>: a small Expected<T, Error> with the std::expected API subset we use
// (has_value, value, error, *, ->, operator bool), so moving to C++23 std::expected is a rename.
// Unlike std::expected it also converts implicitly from Error, which keeps call sites short:
//   if (fd < 0) return Error::from_errno("open", errno);
#pragma once

#include "rexec/common/check.h"
#include "rexec/common/error.h"

#include <optional>
#include <utility>
#include <variant>

namespace rx {

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design

  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  [[nodiscard]] bool has_value() const { return v_.index() == 0; }

  explicit operator bool() const { return has_value(); }

  // Precondition for value() and the dereference operators: has_value(). Checked in every build.
  T& value() & {
    REXEC_CHECK(has_value());
    return std::get<0>(v_);
  }

  const T& value() const& {
    REXEC_CHECK(has_value());
    return std::get<0>(v_);
  }

  T&& value() && {
    REXEC_CHECK(has_value());
    return std::get<0>(std::move(v_));
  }

  T& operator*() & { return value(); }

  const T& operator*() const& { return value(); }

  T&& operator*() && { return std::move(*this).value(); }

  T* operator->() { return &value(); }

  const T* operator->() const { return &value(); }

  // Precondition: !has_value().
  [[nodiscard]] const Error& error() const& {
    REXEC_CHECK(!has_value());
    return std::get<1>(v_);
  }

  Error&& error() && {
    REXEC_CHECK(!has_value());
    return std::get<1>(std::move(v_));
  }

  template <class U>
  T value_or(U&& fallback) const& {
    return has_value() ? std::get<0>(v_) : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;

  Result(Error error) : error_(std::move(error)) {}  // NOLINT: implicit by design

  [[nodiscard]] bool has_value() const { return !error_.has_value(); }

  explicit operator bool() const { return has_value(); }

  void value() const { REXEC_CHECK(has_value()); }

  [[nodiscard]] const Error& error() const& {
    REXEC_CHECK(!has_value());
    return *error_;
  }

  Error&& error() && {
    REXEC_CHECK(!has_value());
    return std::move(*error_);
  }

 private:
  std::optional<Error> error_;
};

using Status = Result<void>;

}  // namespace rx
