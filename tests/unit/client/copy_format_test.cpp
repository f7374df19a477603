// SPDX-License-Identifier: MIT
// The pure parts of `rexec cp`: which argument is remote, destination names, query escaping,
// modes and the progress text.
#include "copy_format.h"

#include <catch2/catch.hpp>

using namespace rx::client;

TEST_CASE("AGENT:PATH is remote, and a path with a slash before the colon is local", "[client]") {
  auto r = parse_remote("web-1:/etc/hosts");
  REQUIRE(r.has_value());
  CHECK(r->agent == "web-1");
  CHECK(r->path == "/etc/hosts");

  r = parse_remote("3f2a9c1e-0000-4000-8000-000000000001:/tmp/a:b");
  REQUIRE(r.has_value());
  CHECK(r->agent == "3f2a9c1e-0000-4000-8000-000000000001");
  CHECK(r->path == "/tmp/a:b");  // only the first colon separates

  r = parse_remote("box:relative");  // remote; the caller refuses a relative path
  REQUIRE(r.has_value());
  CHECK(r->path == "relative");

  r = parse_remote("box:");
  REQUIRE(r.has_value());
  CHECK(r->path.empty());

  CHECK_FALSE(parse_remote("./a:b").has_value());
  CHECK_FALSE(parse_remote("/tmp/a:b").has_value());
  CHECK_FALSE(parse_remote("dir/a:b").has_value());
  CHECK_FALSE(parse_remote("plain.txt").has_value());
  CHECK_FALSE(parse_remote(":/etc/hosts").has_value());
  CHECK_FALSE(parse_remote("").has_value());
}

TEST_CASE("Destination names: base_name, dir_name, a trailing slash appends the name", "[client]") {
  CHECK(base_name("/var/log/syslog") == "syslog");
  CHECK(base_name("file") == "file");
  CHECK(base_name("/tmp/") == "");
  CHECK(base_name("") == "");
  CHECK(dir_name("/var/log/syslog") == "/var/log");
  CHECK(dir_name("/syslog") == "/");
  CHECK(dir_name("syslog") == ".");
  CHECK(dir_name("a/b") == "a");
  CHECK(with_name_if_dir("/tmp/", "x.tar") == "/tmp/x.tar");
  CHECK(with_name_if_dir("/tmp/y.tar", "x.tar") == "/tmp/y.tar");
  CHECK(with_name_if_dir("", "x.tar") == "");
}

TEST_CASE("Modes are four octal digits and parse back strictly", "[client]") {
  CHECK(format_mode(0644) == "0644");
  CHECK(format_mode(0755) == "0755");
  CHECK(format_mode(04755) == "4755");
  CHECK(format_mode(0100644) == "0644");  // file type bits dropped
  CHECK(parse_mode("0644") == mode_t{0644});
  CHECK(parse_mode("755") == mode_t{0755});
  CHECK(parse_mode("7777") == mode_t{07777});
  CHECK_FALSE(parse_mode("").has_value());
  CHECK_FALSE(parse_mode("0648").has_value());
  CHECK_FALSE(parse_mode("17777").has_value());
  CHECK_FALSE(parse_mode("-644").has_value());
  CHECK_FALSE(parse_mode("0x1ff").has_value());
}

TEST_CASE("Progress lines show percent, sizes and speed", "[client]") {
  CHECK(human_bytes(0) == "0 B");
  CHECK(human_bytes(1023) == "1023 B");
  CHECK(human_bytes(1536) == "1.5 KiB");
  CHECK(human_bytes(200.0 * 1024 * 1024) == "200.0 MiB");
  CHECK(human_bytes(3.0 * 1024 * 1024 * 1024 * 1024 * 1024) == "3072.0 TiB");

  const std::uint64_t mib = 1024U * 1024U;
  CHECK(progress_line("data.bin", 90 * mib, 200 * mib, 90.0 / 85.3) ==
        "data.bin  45%  90.0 MiB / 200.0 MiB  85.3 MiB/s");
  CHECK(progress_line("data.bin", 0, 200 * mib, 0.0) == "data.bin  0%  0 B / 200.0 MiB  - B/s");
  CHECK(progress_line("data.bin", 5 * mib, std::nullopt, 2.0) == "data.bin  5.0 MiB  2.5 MiB/s");
  CHECK(progress_line("empty", 0, 0, 0.5) == "empty  100%  0 B / 0 B  0 B/s");
  CHECK(progress_line("x", 300, 200, 1.0) == "x  100%  300 B / 200 B  300 B/s");  // capped
  CHECK(summary_line("data.bin", 200 * mib, 2.5) ==
        "data.bin  100%  200.0 MiB in 2.5 s  80.0 MiB/s");
}

TEST_CASE("The server's error text comes from its JSON body", "[client]") {
  CHECK(server_error_text(403, R"({"error":"permission denied"})") == "permission denied");
  CHECK(server_error_text(502, "<html>bad gateway</html>") == "HTTP 502");
  CHECK(server_error_text(500, R"({"error":42})") == "HTTP 500");
}
