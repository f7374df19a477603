// SPDX-License-Identifier: MIT
// Reading back a session recording (asciicast v2) in the tests of recordings.
#pragma once

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <sstream>
#include <string>

namespace rx::test {

// The concatenated "o" events of an asciicast v2 recording, after checking its header and the
// shape of every event. `resizes`, when given, counts its "r" events.
inline std::string replay_asciicast(const std::string& cast, int* resizes = nullptr) {
  std::istringstream in(cast);
  std::string line;
  REQUIRE(std::getline(in, line));
  const nlohmann::json header = nlohmann::json::parse(line);
  CHECK(header["version"] == 2);
  CHECK(header["width"].is_number());
  std::string out;
  int r = 0;
  while (std::getline(in, line)) {
    const nlohmann::json e = nlohmann::json::parse(line);
    REQUIRE(e.is_array());
    REQUIRE(e.size() == 3);
    CHECK(e[0].is_number());
    if (e[1] == "o") out += e[2].get<std::string>();
    if (e[1] == "r") ++r;
  }
  if (resizes != nullptr) *resizes = r;
  return out;
}

}  // namespace rx::test
