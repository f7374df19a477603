// SPDX-License-Identifier: MIT
// ScopeExit: runs a callable when the scope ends unless release()d. For C resources that have no
// owning type of their own.
#pragma once

#include <utility>

namespace rx {

template <class F>
class [[nodiscard]] ScopeExit {
 public:
  explicit ScopeExit(F fn) : fn_(std::move(fn)) {}

  ~ScopeExit() {
    if (armed_) fn_();
  }

  ScopeExit(const ScopeExit&) = delete;
  ScopeExit& operator=(const ScopeExit&) = delete;
  ScopeExit(ScopeExit&&) = delete;
  ScopeExit& operator=(ScopeExit&&) = delete;

  void release() { armed_ = false; }

 private:
  F fn_;
  bool armed_ = true;
};

}  // namespace rx
