// SPDX-License-Identifier: MIT
// Table-driven base64. Hand-written rather than OpenSSL's EVP_DecodeBlock: that one skips leading
// and trailing whitespace, keeps the padding bytes in its output length and does not say where the
// input is bad, and proto must stay free of OpenSSL.
#include "rexec/proto/base64.h"

#include <array>
#include <cstdint>

namespace rx::proto {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::uint8_t kInvalid = 0xFF;

constexpr std::array<std::uint8_t, 256> make_reverse() {
  std::array<std::uint8_t, 256> r{};
  for (auto& v : r) v = kInvalid;
  for (std::size_t i = 0; i < 64; ++i) {
    r[static_cast<std::uint8_t>(kAlphabet[i])] = static_cast<std::uint8_t>(i);
  }
  return r;
}

constexpr auto kReverse = make_reverse();

Error bad_char(std::size_t at) { return {Errc::kBadBase64, "invalid base64 character", 0, at}; }

}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out(base64_encoded_size(bytes.size()), '\0');
  base64_encode_into(bytes, out.data());
  return out;
}

void base64_encode_into(std::string_view bytes, char* out) {
  const std::size_t n = bytes.size();
  std::size_t i = 0;
  std::size_t o = 0;
  const auto at = [&](std::size_t k) { return std::uint32_t{static_cast<std::uint8_t>(bytes[k])}; };
  for (; i + 3 <= n; i += 3) {
    const std::uint32_t v = (at(i) << 16U) | (at(i + 1) << 8U) | at(i + 2);
    out[o++] = kAlphabet[(v >> 18U) & 63U];
    out[o++] = kAlphabet[(v >> 12U) & 63U];
    out[o++] = kAlphabet[(v >> 6U) & 63U];
    out[o++] = kAlphabet[v & 63U];
  }
  const std::size_t rest = n - i;
  if (rest != 0) {
    const std::uint32_t v = (at(i) << 16U) | (rest == 2 ? at(i + 1) << 8U : 0U);
    out[o++] = kAlphabet[(v >> 18U) & 63U];
    out[o++] = kAlphabet[(v >> 12U) & 63U];
    out[o++] = rest == 2 ? kAlphabet[(v >> 6U) & 63U] : '=';
    out[o] = '=';
  }
}

Result<std::string> base64_decode(std::string_view text) {
  const std::size_t n = text.size();
  if (n % 4 != 0) {
    return Error(Errc::kBadBase64, "base64 length is not a multiple of 4", 0, n);
  }
  if (n == 0) return std::string();
  std::size_t pad = 0;
  if (text[n - 1] == '=') pad = text[n - 2] == '=' ? 2 : 1;
  std::string out(n / 4 * 3 - pad, '\0');
  const auto digit = [&](std::size_t k) { return kReverse[static_cast<std::uint8_t>(text[k])]; };
  // Every quad but the last has no padding.
  std::size_t o = 0;
  for (std::size_t i = 0; i + 4 < n; i += 4) {
    const std::uint8_t a = digit(i);
    const std::uint8_t b = digit(i + 1);
    const std::uint8_t c = digit(i + 2);
    const std::uint8_t d = digit(i + 3);
    if (((a | b | c | d) & 0xC0U) != 0) {  // a digit is <= 63; kInvalid has the top bits set
      std::size_t k = i;
      while (digit(k) != kInvalid) ++k;
      return bad_char(k);
    }
    const std::uint32_t v = (std::uint32_t{a} << 18U) | (std::uint32_t{b} << 12U) |
                            (std::uint32_t{c} << 6U) | std::uint32_t{d};
    out[o++] = static_cast<char>((v >> 16U) & 0xFFU);
    out[o++] = static_cast<char>((v >> 8U) & 0xFFU);
    out[o++] = static_cast<char>(v & 0xFFU);
  }
  // The last quad: "xxxx", "xxx=" or "xx==".
  const std::size_t i = n - 4;
  std::uint32_t v = 0;
  for (std::size_t k = 0; k < 4 - pad; ++k) {
    const std::uint8_t d = digit(i + k);
    if (d == kInvalid) return bad_char(i + k);
    v |= std::uint32_t{d} << (18U - 6U * k);
  }
  out[o++] = static_cast<char>((v >> 16U) & 0xFFU);
  if (pad < 2) out[o++] = static_cast<char>((v >> 8U) & 0xFFU);
  if (pad < 1) out[o] = static_cast<char>(v & 0xFFU);
  return out;
}

}  // namespace rx::proto
