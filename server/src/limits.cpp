// SPDX-License-Identifier: MIT
#include "rexec/server/limits.h"

#include <algorithm>

namespace rx::server {

std::optional<int> plan_limit(const std::string& tier, bool is_admin, bool subscription_active,
                              const PlanLimits& limits) {
  if (is_admin) return std::nullopt;
  const auto it = limits.by_tier.find(tier);
  int limit = it != limits.by_tier.end() ? it->second : 0;  // unknown tiers: as guest
  if (subscription_active) limit = std::max(limit, limits.subscription);
  return limit;
}

}  // namespace rx::server
