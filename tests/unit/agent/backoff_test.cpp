// SPDX-License-Identifier: MIT
#include "rexec/agent/backoff.h"

#include <catch2/catch.hpp>

using rx::agent::Backoff;
using Ms = std::chrono::milliseconds;

TEST_CASE("backoff window doubles from 1 s up to the 60 s cap", "[agent]") {
  Backoff b(Ms(1000), Ms(60000), 42);
  CHECK(b.window() == Ms(1000));
  const Ms expected[] = {Ms(1000),  Ms(2000),  Ms(4000),  Ms(8000),
                         Ms(16000), Ms(32000), Ms(60000), Ms(60000)};
  for (Ms want : expected) {
    CHECK(b.window() == want);
    const Ms d = b.next_delay();
    CHECK(d >= Ms(0));
    CHECK(d <= want);  // full jitter: anywhere in [0, window]
  }
  for (int i = 0; i < 100; ++i) CHECK(b.next_delay() <= Ms(60000));  // forever, never past cap
}

TEST_CASE("backoff jitter spreads over the window", "[agent]") {
  Backoff b(Ms(1000), Ms(60000), 7);
  for (int i = 0; i < 10; ++i) (void)b.next_delay();  // at the cap
  Ms lo = Ms(60000);
  Ms hi = Ms(0);
  for (int i = 0; i < 200; ++i) {
    const Ms d = b.next_delay();
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  CHECK(lo < Ms(15000));
  CHECK(hi > Ms(45000));
}

TEST_CASE("a long connection makes the next retry immediate, a short one does not", "[agent]") {
  Backoff b(Ms(1000), Ms(60000), 1);
  for (int i = 0; i < 5; ++i) (void)b.next_delay();
  b.on_connection_ended(Ms(5000));
  CHECK(b.window() == Ms(32000));  // a flapping server is not hammered
  b.on_connection_ended(Ms(61000));
  CHECK(b.next_delay() == Ms(0));
  CHECK(b.window() == Ms(1000));
}
