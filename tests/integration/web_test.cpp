// SPDX-License-Identifier: MIT
// The web page's server side (docs/web.md): the built-in page and its assets with their security
// headers, the API-token → JWT exchange, and a browser-style terminal socket that carries that
// JWT in its subprotocol list (the list lws 4.1.6 refused past 128 bytes until our patch).
#include <catch2/catch.hpp>

#include <ctime>

#include "fixture.h"
#include "jwt_sign.h"

using nlohmann::json;
using rx::test::System;
using rx::test::TestSocket;
using namespace std::chrono_literals;

// Headers (CSP and the rest) are checked by the browser test, which sees them as Chromium does.
TEST_CASE("web: the page and its assets are built in", "[integration][web]") {
  System sys;
  auto& loop = sys.loop();
  const auto page = rx::test::http(loop, "GET", sys.http_url("/"));
  REQUIRE(page.status == 200);
  CHECK(page.raw.find("<script type=\"module\" src=\"/static/app.js\">") != std::string::npos);
  for (const auto& [path, needle] :
       {std::pair{"/static/app.js", "class Pane"}, std::pair{"/static/xterm.mjs", "Terminal"},
        std::pair{"/static/addon-fit.mjs", "FitAddon"}, std::pair{"/static/xterm.css", ".xterm"},
        std::pair{"/static/app.css", "#panes"}, std::pair{"/static/manage.js", "showAgent"},
        std::pair{"/static/addon-search.mjs", "SearchAddon"},
        std::pair{"/static/addon-web-links.mjs", "WebLinksAddon"},
        std::pair{"/static/uplot.js", "uPlot"},
        std::pair{"/static/asciinema-player.js", "AsciinemaPlayer"}}) {
    INFO(path);
    const auto r = rx::test::http(loop, "GET", sys.http_url(path));
    CHECK(r.status == 200);
    CHECK(r.raw.find(needle) != std::string::npos);
  }
  CHECK(rx::test::http(loop, "GET", sys.http_url("/static/../rexec.db")).status == 404);
  CHECK(rx::test::http(loop, "GET", sys.http_url("/static/nothing.js")).status == 404);
  CHECK(rx::test::http(loop, "POST", sys.http_url("/"), "", "x").status == 405);
}

TEST_CASE("web: an API token buys a short-lived JWT that opens a browser-style terminal",
          "[integration][web]") {
  System sys;
  auto& loop = sys.loop();
  const std::string token = sys.add_user("wendy");
  auto agent = sys.start_agent(token);
  REQUIRE(sys.wait_online(token, agent.id));

  const auto ex = rx::test::http(loop, "POST", sys.http_url("/api/auth/token"), token);
  REQUIRE(ex.status == 200);
  const std::string jwt = ex.body.value("token", "");
  CHECK(jwt.size() > 128);  // longer than lws 4.1.6's subprotocol buffer
  const int life = ex.body.value("expires_in", 0);
  CHECK((life > 3590 && life <= 3600));
  CHECK(ex.body["user"].value("username", "") == "wendy");

  // The JWT works like the token and renews itself (up to --web-session-max after the sign-in,
  // checked by the unit test); a JWT that is no web session (no auth_time) cannot. A POST
  // without a body or Content-Length is answered, not left waiting.
  CHECK(rx::test::http(loop, "GET", sys.http_url("/api/agents"), jwt).status == 200);
  const auto again = rx::test::http(loop, "POST", sys.http_url("/api/auth/token"), jwt);
  CHECK(again.status == 200);
  CHECK(rx::test::http(loop, "GET", sys.http_url("/api/agents"), again.body.value("token", ""))
            .status == 200);
  const std::string user_id = again.body["user"].value("id", "");
  const auto foreign = rx::test::make_jwt(
      {{"user_id", user_id}, {"exp", static_cast<long long>(std::time(nullptr)) + 600}},
      sys.jwt_secret());
  const auto refused = rx::test::http(loop, "POST", sys.http_url("/api/auth/token"), foreign);
  CHECK(refused.status == 403);
  CHECK(refused.body == json{{"error", "sign in with an API token"}});
  CHECK(rx::test::http(loop, "GET", sys.http_url("/api/auth/token"), token).status == 405);

  // What the page does: ask whether the upgrade would pass, then open with the JWT as the
  // rexec.token.<jwt> subprotocol (a browser cannot set Authorization), offering v2 first.
  const std::string path = "/ws/agent/" + agent.id + "/terminal?id=webtest";
  CHECK(rx::test::http(loop, "GET", sys.http_url(path + "&check=1"), jwt).status == 204);
  CHECK(rx::test::http(loop, "GET", sys.http_url(path), jwt).status == 426);
  TestSocket user(loop);
  const bool opened =
      user.open(sys.ws_url(path), "", "rexec.v2, rexec.v1, rexec.token." + jwt, sys.http_url());
  if (!opened) sys.dump_logs();
  REQUIRE(opened);
  CHECK(user.subprotocol() == "rexec.v2");
  REQUIRE(user.wait_type("shell_started"));
  user.send_binary("echo web-'jwt'-ok\n");
  CHECK(user.wait_output("web-jwt-ok"));

  // The token first in the list, as some clients send it, works too.
  TestSocket first(loop);
  REQUIRE(first.open(sys.ws_url("/ws/agent/" + agent.id + "/terminal?id=webtest2"), "",
                     "rexec.token." + jwt + ", rexec.v1", sys.http_url()));
  CHECK(first.subprotocol() == "rexec.v1");

  // A list with no protocol we speak is refused, and the refusal does not log the token.
  TestSocket none(loop);
  CHECK_FALSE(none.open(sys.ws_url(path), "", "rexec.token." + jwt, sys.http_url()));
  const std::string log = sys.server().log();
  CHECK(log.find("rexec.token.") == std::string::npos);
  CHECK(log.find(jwt.substr(jwt.size() - 20)) == std::string::npos);
}
