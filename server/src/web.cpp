// SPDX-License-Identifier: MIT
#include "rexec/server/web.h"

namespace rx::server {

namespace {

// 'unsafe-inline' for styles only: xterm.js writes its theme into a <style> element. Scripts come
// from this origin alone, so an injected <script> does not run. 'wasm-unsafe-eval' lets the page
// compile WebAssembly (asciinema-player's terminal emulator is built in as WebAssembly); it does
// not allow eval() or new Function() of JavaScript.
constexpr std::string_view kCsp =
    "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' "
    "data:; font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'";

HttpResponse page(int status, std::string body, std::string type) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.content_type = std::move(type);
  r.headers.emplace_back("content-security-policy", std::string(kCsp));
  r.headers.emplace_back("x-content-type-options", "nosniff");
  r.headers.emplace_back("x-frame-options", "DENY");
  r.headers.emplace_back("referrer-policy", "no-referrer");
  // The assets change with the binary; revalidating a few hundred KiB on load is cheap.
  r.headers.emplace_back("cache-control", "no-cache");
  return r;
}

}  // namespace

std::optional<HttpResponse> web_response(const HttpRequest& req) {
  const bool ours =
      req.path == "/" || req.path == "/index.html" || req.path.rfind("/static/", 0) == 0;
  if (!ours) return std::nullopt;
  if (req.method != "GET") return page(405, "method not allowed\n", "text/plain; charset=utf-8");
  const std::string_view path = req.path == "/index.html" ? "/" : std::string_view(req.path);
  for (const WebAsset& a : embedded_web_assets()) {
    if (a.path != path) continue;
    std::string type(a.content_type);
    if (type.rfind("text/", 0) == 0) type += "; charset=utf-8";
    return page(200, std::string(a.bytes), type);
  }
  return page(404, "not found\n", "text/plain; charset=utf-8");
}

}  // namespace rx::server
