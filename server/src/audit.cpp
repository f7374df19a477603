// SPDX-License-Identifier: MIT
// Audit events: a row in the Store and a JSON line in the log for each.
#include "rexec/server/audit.h"

#include "rexec/server/hub.h"

#include <spdlog/spdlog.h>

namespace rx::server {

namespace {

using nlohmann::json;
using SysClock = std::chrono::system_clock;

using ordered_json = nlohmann::ordered_json;

ordered_json opt(const std::optional<std::string>& s) {
  return s ? ordered_json(*s) : ordered_json(nullptr);
}

}  // namespace

Audit::Audit(Store& store, std::chrono::milliseconds retention)
    : store_(store), retention_(retention) {
  prune();
}

void Audit::record(const std::string& type, const std::string& user_id, const std::string& owner_id,
                   std::optional<std::string> agent_id, std::optional<std::string> session_id,
                   const json& details) {
  AuditEvent e;
  e.at = now_ms();
  e.type = type;
  e.user_id = user_id;
  e.owner_id = owner_id;
  e.agent_id = std::move(agent_id);
  e.session_id = std::move(session_id);
  // Paths and names are the user's text: ill-formed UTF-8 is replaced, never thrown on.
  e.details = details.is_object() ? details.dump(-1, ' ', false, json::error_handler_t::replace)
                                  : std::string("{}");
  if (auto st = store_.add_audit(e); !st) {
    spdlog::warn("audit event not stored type={} error={}", type, st.error().message);
  }
  if (spdlog::should_log(spdlog::level::info)) {  // not even built at a higher level
    spdlog::info("audit {}", to_json(e).dump(-1, ' ', false, json::error_handler_t::replace));
  }
  if (++since_prune_ >= kPruneEvery) prune();
}

void Audit::prune() {
  since_prune_ = 0;
  if (retention_.count() <= 0) return;
  if (auto st = store_.prune_audit(now_ms() - retention_.count()); !st) {
    spdlog::warn("audit prune failed error={}", st.error().message);
  }
}

ordered_json Audit::to_json(const AuditEvent& e) {
  ordered_json details = ordered_json::parse(e.details, nullptr, false);
  if (!details.is_object()) details = ordered_json::object();
  return {{"type", e.type},
          {"at", e.at},
          {"time", format_time(SysClock::time_point(std::chrono::milliseconds(e.at)))},
          {"user_id", e.user_id},
          {"owner_id", e.owner_id},
          {"agent_id", opt(e.agent_id)},
          {"session_id", opt(e.session_id)},
          {"details", std::move(details)}};
}

}  // namespace rx::server
