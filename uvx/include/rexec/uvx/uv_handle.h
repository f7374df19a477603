// SPDX-License-Identifier: MIT
// UvHandle<T>: owns a heap-allocated uv_*_t (libuv's rule: a handle's memory may be freed only
// in its close callback). Destroying the owner clears handle->data and uv_close()s the handle;
// the close callback deletes it. Never free a handle anywhere else.
#pragma once

#include <uv.h>

#include <utility>

namespace rx::uvx {

template <class T>
class UvHandle {
 public:
  UvHandle() = default;

  // Takes ownership of `handle`, which must have been initialised with uv_<type>_init on a loop.
  explicit UvHandle(T* handle) : h_(handle) {}

  ~UvHandle() { reset(); }

  UvHandle(const UvHandle&) = delete;
  UvHandle& operator=(const UvHandle&) = delete;

  UvHandle(UvHandle&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}

  UvHandle& operator=(UvHandle&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, nullptr);
    }
    return *this;
  }

  [[nodiscard]] T* get() const { return h_; }

  T* operator->() const { return h_; }

  explicit operator bool() const { return h_ != nullptr; }

  [[nodiscard]] uv_handle_t* as_handle() const { return reinterpret_cast<uv_handle_t*>(h_); }

  // Closes the handle (asynchronously: memory is freed in the close callback).
  void reset() {
    if (h_ == nullptr) return;
    h_->data = nullptr;
    uv_close(as_handle(), [](uv_handle_t* h) { delete reinterpret_cast<T*>(h); });
    h_ = nullptr;
  }

 private:
  T* h_ = nullptr;
};

}  // namespace rx::uvx
