# SPDX-License-Identifier: MIT
# Script mode: cmake -DIN=<file> -DOUT=<file.cpp> -DFUNCTION=<ns::name> -P RexecEmbed.cmake
# Writes a C++ source whose FUNCTION() returns IN's bytes as a std::string_view. Used to build
# install.sh into rexec-server.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" hex_len)
math(EXPR size "${hex_len} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
string(REGEX MATCH "^(.*)::([^:]+)$" _ "${FUNCTION}")
set(ns "${CMAKE_MATCH_1}")
set(fn "${CMAKE_MATCH_2}")
file(WRITE "${OUT}.tmp" "// Generated from ${IN} by cmake/RexecEmbed.cmake. Do not edit.
#include <string_view>

namespace ${ns} {

std::string_view ${fn}() {
  static const unsigned char kBytes[${size} + 1] = {
${bytes}0};
  return {reinterpret_cast<const char*>(kBytes), ${size}};
}

}  // namespace ${ns}
")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
