// SPDX-License-Identifier: MIT
// UvHandle<T>: the one owner of a heap-allocated uv_*_t. libuv's rule is that a handle's memory
// may be freed only in its close callback; this type is where that rule lives, so no other code
// frees a handle (ttyd #997 was a handle freed too early).
#pragma once

#include <uv.h>

#include <utility>

namespace rx::uvx {

// Owns a heap-allocated libuv handle of type T (uv_timer_t, uv_pipe_t, uv_signal_t, ...).
//
// Ownership: takes the pointer from a `new T` that the caller has already initialised with
// uv_<type>_init. reset() and the destructor clear handle->data (so a late callback that looks
// at data finds nullptr) and call uv_close with a callback that deletes the memory. The memory
// is therefore freed on a later loop iteration, never here.
// Thread/loop: use only on the loop thread. The loop must outlive this object and must be run
// (until idle) after the last reset so the close callbacks can free the memory.
// Move-only.
template <class T>
class UvHandle {
 public:
  UvHandle() = default;

  // Takes ownership of `handle`, which must come from `new T` and be initialised on a loop.
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

  // The handle, or nullptr. Valid until reset() or destruction.
  [[nodiscard]] T* get() const { return h_; }

  T* operator->() const { return h_; }

  explicit operator bool() const { return h_ != nullptr; }

  [[nodiscard]] uv_handle_t* as_handle() const { return reinterpret_cast<uv_handle_t*>(h_); }

  [[nodiscard]] uv_stream_t* as_stream() const { return reinterpret_cast<uv_stream_t*>(h_); }

  // Closes the handle: clears data, uv_close(); the close callback deletes the memory. A no-op
  // when empty.
  void reset() {
    if (h_ == nullptr) return;
    T* h = std::exchange(h_, nullptr);
    h->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(h), [](uv_handle_t* closed) {
      delete reinterpret_cast<T*>(closed);  // NOLINT(cppcoreguidelines-owning-memory)
    });
  }

 private:
  T* h_ = nullptr;
};

}  // namespace rx::uvx
