// SPDX-License-Identifier: MIT
// The JSON request bodies of every route, through the real Api on an in-memory SQLite store,
// as an authenticated owner. Input: one byte picks the route, the rest is the body. Property:
// no crash, and never a 500 (bad input is the client's error, not the server's).
#include "rexec/common/check.h"
#include "rexec/server/api.h"
#include "rexec/server/auth/authenticator.h"
#include "rexec/server/auth/tokens.h"
#include "rexec/server/hub.h"
#include "rexec/server/storage/sqlite_store.h"

#include <spdlog/spdlog.h>
#include <uv.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace {

struct World {
  uv_loop_t loop{};
  std::unique_ptr<rx::server::Store> store;
  std::unique_ptr<rx::server::Authenticator> auth;
  std::unique_ptr<rx::server::Api> api;
  std::unique_ptr<rx::server::Hub> hub;
  std::string token;
  std::string agent_id;
  std::string token_id;

  World() {
    spdlog::set_level(spdlog::level::off);  // millions of requests: no log lines
    REXEC_CHECK(uv_loop_init(&loop) == 0);
    auto s = rx::server::SqliteStore::open(":memory:");
    REXEC_CHECK(s);
    store = std::move(s).value();
    rx::server::User u{"u-fuzz", "fuzz", "pro", false, false, 1, ""};
    REXEC_CHECK(store->create_user(u));
    token = rx::server::generate_api_token();
    rx::server::ApiToken t;
    t.id = token_id = rx::server::new_uuid_v4();
    t.user_id = u.id;
    t.name = "fuzz";
    t.token_hash = rx::server::hash_token(token);
    t.token_prefix = token.substr(0, 12);
    t.scopes = {"read", "write"};
    t.created_at = 1;
    REXEC_CHECK(store->create_token(t));
    rx::server::Agent a;
    a.id = agent_id = rx::server::new_uuid_v4();
    a.user_id = u.id;
    a.name = "target";
    a.created_at = a.updated_at = 1;
    REXEC_CHECK(store->create_agent(a));
    REXEC_CHECK(store->set_mfa(u.id, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 1));
    auth = std::make_unique<rx::server::Authenticator>(*store, std::string(40, 'k'));  // ≥ 32 bytes
    rx::server::ServerConfig config;
    config.rate_limit_per_sec = 1e9;
    config.rate_limit_burst = 1e9;
    api = std::make_unique<rx::server::Api>(config, *store, *auth);
    hub = std::make_unique<rx::server::Hub>(&loop, rx::server::HubConfig{}, *api);
    api->attach(*hub);
  }
};

World& world() {
  static World* w = new World();  // NOLINT(cppcoreguidelines-owning-memory): lives for the run
  return *w;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  World& w = world();
  const std::string agent = "/api/agents/" + w.agent_id;
  const std::string mfa = "/api/security/terminal/agent:" + w.agent_id + "/";
  const std::array<std::pair<const char*, std::string>, 12> routes = {{
      {"POST", "/api/agents/register"},
      {"POST", "/api/agents"},
      {"PATCH", agent},
      {"POST", "/api/tokens"},
      {"POST", mfa + "mfa-verify"},
      {"POST", mfa + "mfa-unlock"},
      {"POST", mfa + "mfa-lock"},
      {"GET", "/api/agents"},
      {"GET", agent + "/status"},
      {"GET", "/api/profile"},
      {"GET", "/api/containers"},
      {"DELETE", "/api/tokens/" + std::string(reinterpret_cast<const char*>(data) + 1,
                                              std::min<std::size_t>(size - 1, 64))},
  }};
  const auto& [method, path] = routes[data[0] % routes.size()];
  rx::server::HttpRequest req;
  req.method = method;
  req.path = path;
  req.headers["authorization"] = "Bearer " + w.token;
  req.body.assign(reinterpret_cast<const char*>(data) + 1, size - 1);
  req.peer = "127.0.0.1";
  const auto r = w.api->handle(req);
  REXEC_CHECK(r.status != 500);
  REXEC_CHECK(r.status >= 200 && r.status < 500);
  return 0;
}
