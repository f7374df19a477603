// SPDX-License-Identifier: MIT
// Hand-written rather than OpenSSL's EVP_DecodeBlock: that one accepts whitespace and does not
// report where input is bad, and proto is pure (no OpenSSL dependency).
#include "rexec/proto/base64.h"

#include <array>
#include <cstdint>

namespace rx::proto {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<std::int8_t, 256> make_reverse() {
  std::array<std::int8_t, 256> r{};
  for (auto& v : r) v = -1;
  for (int i = 0; i < 64; ++i)
    r[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::int8_t>(i);
  return r;
}

constexpr auto kReverse = make_reverse();

}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.resize((bytes.size() + 2) / 3 * 4);
  const auto* in = reinterpret_cast<const unsigned char*>(bytes.data());
  std::size_t i = 0;
  std::size_t o = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const std::uint32_t v =
        (std::uint32_t{in[i]} << 16U) | (std::uint32_t{in[i + 1]} << 8U) | in[i + 2];
    out[o++] = kAlphabet[(v >> 18U) & 63U];
    out[o++] = kAlphabet[(v >> 12U) & 63U];
    out[o++] = kAlphabet[(v >> 6U) & 63U];
    out[o++] = kAlphabet[v & 63U];
  }
  const std::size_t rest = bytes.size() - i;
  if (rest != 0) {
    std::uint32_t v = std::uint32_t{in[i]} << 16U;
    if (rest == 2) v |= std::uint32_t{in[i + 1]} << 8U;
    out[o++] = kAlphabet[(v >> 18U) & 63U];
    out[o++] = kAlphabet[(v >> 12U) & 63U];
    out[o++] = rest == 2 ? kAlphabet[(v >> 6U) & 63U] : '=';
    out[o++] = '=';
  }
  return out;
}

Result<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) {
    return Error(Errc::kBadBase64, "base64 length is not a multiple of 4", 0, text.size());
  }
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    std::uint32_t v = 0;
    int pad = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      const auto c = static_cast<unsigned char>(text[i + k]);
      if (c == '=' && last && k >= 2) {
        ++pad;
        v <<= 6U;
        continue;
      }
      const int d = kReverse[c];
      if (d < 0 || pad != 0) {
        return Error(Errc::kBadBase64, "invalid base64 character", 0, i + k);
      }
      v = (v << 6U) | static_cast<std::uint32_t>(d);
    }
    out += static_cast<char>((v >> 16U) & 0xFFU);
    if (pad < 2) out += static_cast<char>((v >> 8U) & 0xFFU);
    if (pad < 1) out += static_cast<char>(v & 0xFFU);
  }
  return out;
}

}  // namespace rx::proto
