// SPDX-License-Identifier: MIT
// Plan limits (PROTOCOL §5): agents per user, and distinct agents with open terminals.
#pragma once

#include <map>
#include <optional>
#include <string>

namespace rx::server {

struct PlanLimits {
  std::map<std::string, int> by_tier = {{"guest", 0}, {"free", 5}, {"pro", 10}, {"enterprise", 25}};
  int subscription = 10;  // an active subscription lifts free/guest to this
};

// nullopt: unlimited (admins). Unknown tiers count as guest.
std::optional<int> plan_limit(const std::string& tier, bool is_admin, bool subscription_active,
                              const PlanLimits& limits);

}  // namespace rx::server
