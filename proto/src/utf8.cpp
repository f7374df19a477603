// SPDX-License-Identifier: MIT
#include "rexec/proto/utf8.h"

#include <cstdint>

namespace rx::proto {

namespace {

// Expected length of a sequence starting with `lead`, or 0 for a byte that cannot lead one.
std::size_t sequence_length(unsigned char lead) {
  if (lead < 0x80U) return 1;
  if (lead >= 0xC2U && lead <= 0xDFU) return 2;
  if (lead >= 0xE0U && lead <= 0xEFU) return 3;
  if (lead >= 0xF0U && lead <= 0xF4U) return 4;
  return 0;
}

// Whether `b` may follow `lead` as the first continuation byte (excludes overlongs, surrogates
// and values past U+10FFFF, RFC 3629 §4).
bool valid_second(unsigned char lead, unsigned char b) {
  switch (lead) {
    case 0xE0U:
      return b >= 0xA0U && b <= 0xBFU;
    case 0xEDU:
      return b >= 0x80U && b <= 0x9FU;
    case 0xF0U:
      return b >= 0x90U && b <= 0xBFU;
    case 0xF4U:
      return b >= 0x80U && b <= 0x8FU;
    default:
      return b >= 0x80U && b <= 0xBFU;
  }
}

bool is_continuation(unsigned char b) { return (b & 0xC0U) == 0x80U; }

}  // namespace

std::size_t utf8_complete_prefix(std::string_view bytes) {
  const std::size_t n = bytes.size();
  // Only the last 3 bytes can start an incomplete sequence.
  const std::size_t from = n > 3 ? n - 3 : 0;
  for (std::size_t start = n; start-- > from;) {
    const auto lead = static_cast<unsigned char>(bytes[start]);
    if (is_continuation(lead)) continue;
    const std::size_t need = sequence_length(lead);
    const std::size_t have = n - start;
    if (need <= have || need == 0) return n;  // complete, or not a lead byte: nothing to hold
    // Hold back only if what we have so far could still become valid.
    if (have >= 2 && !valid_second(lead, static_cast<unsigned char>(bytes[start + 1]))) return n;
    for (std::size_t k = start + 2; k < n; ++k) {
      if (!is_continuation(static_cast<unsigned char>(bytes[k]))) return n;
    }
    return start;
  }
  return n;
}

bool is_valid_utf8(std::string_view bytes) {
  std::size_t i = 0;
  while (i < bytes.size()) {
    const auto lead = static_cast<unsigned char>(bytes[i]);
    const std::size_t need = sequence_length(lead);
    if (need == 0 || i + need > bytes.size()) return false;
    if (need >= 2 && !valid_second(lead, static_cast<unsigned char>(bytes[i + 1]))) return false;
    for (std::size_t k = 2; k < need; ++k) {
      if (!is_continuation(static_cast<unsigned char>(bytes[i + k]))) return false;
    }
    i += need;
  }
  return true;
}

}  // namespace rx::proto
