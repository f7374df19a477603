// SPDX-License-Identifier: MIT
// The percentile rexec-bench reports (its own figures and the fleet's).
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

namespace rx::bench {

// The value at fraction `p` (0..1) of `v` sorted, the nearest index rounded; 0 when empty.
inline double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

}  // namespace rx::bench
