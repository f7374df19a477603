// SPDX-License-Identifier: MIT
#include "rexec/server/downloads.h"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

using rx::server::Downloads;
using rx::server::HttpRequest;

namespace {

HttpRequest get(std::string path) {
  HttpRequest r;
  r.method = "GET";
  r.path = std::move(path);
  return r;
}

}  // namespace

TEST_CASE("the served installer carries the server URL, safely quoted", "[server][downloads]") {
  const std::string script(rx::server::embedded_install_script());
  REQUIRE(script.rfind("#!/bin/sh\n", 0) == 0);
  REQUIRE(script.find("\ndefault_server=''\n") != std::string::npos);

  const auto filled = rx::server::install_script_for(script, "https://rexec.example.com:8443/");
  CHECK(filled.find("\ndefault_server='https://rexec.example.com:8443'\n") != std::string::npos);
  CHECK(filled.size() == script.size() + std::string("https://rexec.example.com:8443").size());

  // Anything a single-quoted shell string could be broken by is left out, not escaped.
  for (const char* evil :
       {"https://x'; rm -rf ~; '", "https://x/$(id)", "ftp://x", "https://a b"}) {
    INFO(evil);
    CHECK(rx::server::install_script_for(script, evil) == script);
  }
}

TEST_CASE("downloads: published names only, with a sha256sum line", "[server][downloads]") {
  char tmpl[] = "/tmp/rexec-dl-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl;
  {
    std::ofstream(dir + "/rexec-agent-linux-amd64", std::ios::binary) << "abc";
    std::ofstream(dir + "/secret.txt") << "not for you";
  }
  Downloads d(dir);

  auto bin = d.handle(get("/downloads/rexec-agent-linux-amd64"), "");
  REQUIRE(bin);
  CHECK(bin->status == 200);
  CHECK(bin->body == "abc");
  CHECK(bin->content_type == "application/octet-stream");

  auto sum = d.handle(get("/downloads/rexec-agent-linux-amd64.sha256"), "");
  REQUIRE(sum);
  CHECK(sum->status == 200);
  CHECK(sum->body ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  "
        "rexec-agent-linux-amd64\n");

  // A changed file is read again.
  { std::ofstream(dir + "/rexec-agent-linux-amd64", std::ios::binary) << "abcd-longer"; }
  CHECK(d.handle(get("/downloads/rexec-agent-linux-amd64"), "")->body == "abcd-longer");

  for (const char* path :
       {"/downloads/secret.txt", "/downloads/../rexec.db", "/downloads/rexec-agent-linux-arm64",
        "/downloads/", "/downloads/rexec-agent-linux-amd64/x"}) {
    INFO(path);
    auto r = d.handle(get(path), "");
    REQUIRE(r);
    CHECK(r->status == 404);
  }
  CHECK_FALSE(d.handle(get("/api/agents"), ""));

  Downloads none("");
  auto r = none.handle(get("/downloads/rexec-agent-linux-amd64"), "");
  REQUIRE(r);
  CHECK(r->status == 404);
  CHECK(r->body.find("--downloads-dir") != std::string::npos);

  std::filesystem::remove_all(dir);
}
