// SPDX-License-Identifier: MIT
#include "rexec/server/downloads.h"

#include <openssl/evp.h>

#include <sys/stat.h>

#include <array>
#include <fstream>
#include <sstream>

namespace rx::server {

namespace {

constexpr std::string_view kBinaryPrefix = "rexec-agent-linux-";
constexpr std::array<std::string_view, 4> kArches = {"amd64", "arm64", "armv7", "386"};

HttpResponse text(int status, std::string body, std::string type = "text/plain; charset=utf-8") {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.content_type = std::move(type);
  r.headers.emplace_back("cache-control", "no-cache");
  return r;
}

std::string sha256_hex(const std::string& bytes) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), md.data(), &len, EVP_sha256(), nullptr) != 1) {
    return {};
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4U]);
    out.push_back(kHex[md[i] & 0xfU]);
  }
  return out;
}

bool url_is_shell_safe(std::string_view url) {
  if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) return false;
  for (char c : url) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == ':' || c == '/' || c == '.' || c == '-' || c == '_' || c == '[' ||
                    c == ']';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::string install_script_for(std::string_view script, std::string_view public_url) {
  constexpr std::string_view kLine = "\ndefault_server=''\n";
  std::string out(script);
  const auto at = out.find(kLine);
  if (at == std::string::npos || !url_is_shell_safe(public_url)) return out;
  std::string url(public_url);
  while (!url.empty() && url.back() == '/') url.pop_back();
  out.replace(at, kLine.size(), "\ndefault_server='" + url + "'\n");
  return out;
}

const Downloads::File* Downloads::load(const std::string& name) {
  const std::string path = dir_ + "/" + name;

  struct stat st {};

  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    cache_.erase(name);
    return nullptr;
  }
  File& f = cache_[name];
  if (f.mtime == st.st_mtime && f.size == static_cast<long long>(st.st_size)) return &f;
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (!in.good() && !in.eof()) {
    cache_.erase(name);
    return nullptr;
  }
  f.bytes = std::move(ss).str();
  f.sha256_hex = sha256_hex(f.bytes);
  f.mtime = st.st_mtime;
  f.size = static_cast<long long>(f.bytes.size());
  return &f;
}

std::optional<HttpResponse> Downloads::handle(const HttpRequest& req, std::string_view public_url) {
  if (req.path == "/install-agent.sh") {
    if (req.method != "GET") return text(405, "method not allowed\n");
    return text(200, install_script_for(embedded_install_script(), public_url),
                "text/x-shellscript; charset=utf-8");
  }
  constexpr std::string_view kDir = "/downloads/";
  if (req.path.rfind(kDir, 0) != 0) return std::nullopt;
  if (req.method != "GET") return text(405, "method not allowed\n");
  std::string name = req.path.substr(kDir.size());
  const bool want_sum = name.size() > 7 && name.compare(name.size() - 7, 7, ".sha256") == 0;
  if (want_sum) name.resize(name.size() - 7);
  // Only the published names: nothing else under the directory is reachable.
  bool known = false;
  for (auto arch : kArches) known = known || name == std::string(kBinaryPrefix) + std::string(arch);
  if (!known) return text(404, "no such download\n");
  if (dir_.empty()) {
    return text(404, "this server offers no agent binaries (start it with --downloads-dir)\n");
  }
  const File* f = load(name);
  if (f == nullptr) return text(404, "no " + name + " on this server\n");
  if (want_sum) return text(200, f->sha256_hex + "  " + name + "\n");
  HttpResponse r = text(200, f->bytes, "application/octet-stream");
  r.headers.emplace_back("content-disposition", "attachment; filename=\"" + name + "\"");
  return r;
}

}  // namespace rx::server
