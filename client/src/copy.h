// SPDX-License-Identifier: MIT
// `rexec cp`: one file to or from an agent through the server's files API, streamed both ways
// (memory stays bounded whatever the file size), with a progress line on a terminal.
#pragma once

#include "rexec/common/result.h"

#include <string>

#include "terminal.h"

namespace rx::client {

// Sends the local file `local` to `remote_path` (absolute; a trailing '/' appends the local
// file's name) on the target's agent, with the local permission bits, and checks the SHA-256
// that the agent reports against the one computed while reading. Errors: one sentence naming
// the file ("cannot upload x: permission denied"), with the server's text when it refused.
[[nodiscard]] Status upload_file(const Target& target, const std::string& local,
                                 const std::string& remote_path);

// Fetches `remote_path` (absolute) into `local`, or into local/<name> when `local` is a
// directory. The bytes go to a temporary file beside the destination, which replaces it only
// once all of them have arrived and are on disk; on any failure the destination is untouched
// and the temporary file removed. Errors: as upload_file ("cannot download x: ...").
[[nodiscard]] Status download_file(const Target& target, const std::string& remote_path,
                                   const std::string& local);

}  // namespace rx::client
