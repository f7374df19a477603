// SPDX-License-Identifier: MIT
// AgentWrites: merging and coalescing the writes of one batch (Store::write_agents).
#include "rexec/server/storage/store.h"

#include <algorithm>
#include <iterator>
#include <unordered_map>

namespace rx::server {

namespace {

template <class T>
void move_append(std::vector<T>& to, std::vector<T>&& from) {
  if (to.empty()) {
    to = std::move(from);
    return;
  }
  to.insert(to.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
}

// Keeps only the last element of each key, in the order of those last elements.
template <class T, class Key>
void keep_last(std::vector<T>& v, Key key) {
  if (v.size() < 2) return;
  std::unordered_map<std::string, std::size_t> last;
  last.reserve(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) last[key(v[i])] = i;
  if (last.size() == v.size()) return;
  std::vector<bool> keep(v.size(), false);
  for (const auto& [k, i] : last) keep[i] = true;
  std::vector<T> out;
  out.reserve(last.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (keep[i]) out.push_back(std::move(v[i]));
  }
  v = std::move(out);
}

std::optional<Millis> later(std::optional<Millis> a, std::optional<Millis> b) {
  if (!a) return b;
  if (!b) return a;
  return std::max(*a, *b);
}

}  // namespace

void AgentWrites::append(AgentWrites&& w) {
  move_append(status, std::move(w.status));
  move_append(heartbeats, std::move(w.heartbeats));
  heartbeat_at = std::max(heartbeat_at, w.heartbeat_at);
  move_append(system_info, std::move(w.system_info));
  move_append(stats, std::move(w.stats));
  move_append(token_uses, std::move(w.token_uses));
  move_append(audit, std::move(w.audit));
  prune_stats_before = later(prune_stats_before, w.prune_stats_before);
  prune_audit_before = later(prune_audit_before, w.prune_audit_before);
}

std::vector<std::pair<std::string, Millis>> AgentWrites::changes(bool online) const {
  std::vector<std::pair<std::string, Millis>> out;
  for (const auto& c : status) {
    if (c.online == online) out.emplace_back(c.agent_id, c.at);
  }
  return out;
}

void AgentWrites::coalesce() {
  keep_last(status, [](const StatusChange& s) { return s.agent_id; });
  keep_last(system_info, [](const auto& p) { return p.first; });
  keep_last(token_uses, [](const auto& p) { return p.first; });
}

}  // namespace rx::server
