// SPDX-License-Identifier: MIT
// The pure parts of `rexec cp`: telling AGENT:PATH from a local path, naming the destination,
// query escaping, and the text of the progress line. No I/O, so unit tests compile this file
// on its own.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rx::client {

struct RemotePath {
  std::string agent;  // id or name, as typed
  std::string path;   // as typed; callers check that it is absolute
};

// "AGENT:PATH" gives {AGENT, PATH}. Anything else is a local path and gives nullopt: no ':', an
// empty AGENT (":x"), or a '/' before the first ':' ("./a:b", "/tmp/a:b"), the way scp tells
// them apart.
std::optional<RemotePath> parse_remote(std::string_view arg);

// The last component of `path`: "" when it ends with '/' (or is empty).
std::string base_name(std::string_view path);

// The directory part of `path` for creating a file beside it: "." when there is none.
std::string dir_name(std::string_view path);

// `path` with `name` appended when it ends with '/', else `path` unchanged.
std::string with_name_if_dir(const std::string& path, const std::string& name);

// Permission bits as the API writes them ("0644"), and back. parse_mode accepts 1 to 4 octal
// digits with value <= 07777; anything else is nullopt.
std::string format_mode(mode_t mode);
std::optional<mode_t> parse_mode(std::string_view text);

// "512 B", "1.5 KiB", "90.0 MiB".
std::string human_bytes(double bytes);

// One redraw of the progress line (without '\r'), for example
// "data.bin  45%  90.0 MiB / 200.0 MiB  85.3 MiB/s", or without a known total
// "data.bin  90.0 MiB  85.3 MiB/s". `seconds` is the time since the transfer started.
std::string progress_line(std::string_view name, std::uint64_t done,
                          std::optional<std::uint64_t> total, double seconds);

// The last line, with the total and the average speed:
// "data.bin  100%  200.0 MiB in 2.3 s  85.3 MiB/s".
std::string summary_line(std::string_view name, std::uint64_t total, double seconds);

// The server's error sentence from a JSON body {"error":"..."}, else "HTTP <status>".
std::string server_error_text(int status, std::string_view body);

}  // namespace rx::client
