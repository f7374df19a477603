#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds the OpenSSL that the static rexec-agent links: Debian's own OpenSSL 3.0 source package,
# configured with only what a TLS 1.2/1.3 client with certificate verification uses. The server,
# the client and the tests keep the system's full OpenSSL. Called by CMake at configure time
# (cmake/RexecDeps.cmake, REXEC_STATIC only); safe to run by hand.
#
#   scripts/build-openssl.sh CACHE_DIR
#
# Result: CACHE_DIR/openssl-<stamp>/install/{include,lib/libssl.a,lib/libcrypto.a}; that prefix
# is the one line printed on stdout. A second run with the same options is a no-op. Set
# REXEC_OPENSSL_SOURCE_DIR to an unpacked OpenSSL 3.0 tree to build offline.
#
# Why each group is off (docs/install.md, "Size"): the agent is a TLS client only; it verifies
# the server's chain and name against PEM CA certificates from files, and speaks TLS 1.2 and 1.3
# with ECDHE and RSA, ECDSA or Ed25519 certificates. Kept: AES-GCM, ChaCha20-Poly1305, SHA-1/2,
# RSA, EC (prime curves, X25519, Ed25519), X.509, PEM. The assembler is kept: without it the
# ciphers are 5-30 times slower. The deprecated APIs are kept too: libwebsockets 4.1.6's headers
# name the RSA type, which no-deprecated removes.
set -euo pipefail

cache=${1:?usage: build-openssl.sh CACHE_DIR}
cache=$(mkdir -p "$cache" && cd "$cache" && pwd)  # absolute: apt reads relative paths from /etc/apt
want_version=3.0

configure=(
  linux-x86_64 no-shared no-module no-legacy no-engine no-dso no-comp no-tests
  no-autoload-config no-ui-console no-async
  # protocols and TLS extensions a client of our server never uses
  no-dtls no-dgram no-ssl3 no-tls1 no-tls1_1 no-srp no-psk no-srtp no-sctp no-nextprotoneg
  no-ct no-ocsp no-ssl-trace no-ktls no-multiblock
  # algorithms no TLS 1.2/1.3 suite or certificate of ours needs
  no-idea no-camellia no-seed no-bf no-cast no-des no-rc2 no-rc4 no-rc5 no-md4 no-mdc2
  no-rmd160 no-whirlpool no-sm2 no-sm3 no-sm4 no-siphash no-aria no-ec2m no-gost no-scrypt
  no-dsa no-dh no-ocb no-cmac no-blake2
  # message formats
  no-cms no-ts no-cmp no-rfc3779
  # small, and in sections the linker can drop; static-pie needs position-independent code
  -Os -fPIC -ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables
  -fno-unwind-tables
)
# x86-64 only for now: the static agent is built for amd64 (docs/install.md).
[ "$(uname -m)" = x86_64 ] || { echo "build-openssl.sh: only x86_64 is configured" >&2; exit 1; }
# Our patches (scripts/openssl-patches/*.patch, applied in name order) are part of the stamp.
patches=("$(cd "$(dirname "$0")" && pwd)"/openssl-patches/*.patch)
[ -f "${patches[0]}" ] || patches=()
stamp=$( { printf '%s\n' "$want_version" "${configure[@]}"; cat "${patches[@]}" /dev/null; } |
  sha256sum | cut -c1-12)
out="$cache/openssl-$stamp"
if [ -f "$out/install/lib/libssl.a" ] && [ -f "$out/install/lib/libcrypto.a" ]; then
  echo "$out/install"
  exit 0
fi

die() { echo "build-openssl.sh: $*" >&2; exit 1; }
mkdir -p "$out"
work="$out/work"
rm -rf "$work" && mkdir -p "$work"

if [ -n "${REXEC_OPENSSL_SOURCE_DIR:-}" ]; then
  [ -x "$REXEC_OPENSSL_SOURCE_DIR/Configure" ] ||
    die "REXEC_OPENSSL_SOURCE_DIR=$REXEC_OPENSSL_SOURCE_DIR holds no Configure"
  src="$work/src"
  cp -R "$REXEC_OPENSSL_SOURCE_DIR" "$src"
else
  # shellcheck source=scripts/debian-source.sh
  . "$(dirname "$0")/debian-source.sh"
  version=$(fetch_debian_source openssl "$want_version." "$work") ||
    die "could not fetch Debian's OpenSSL $want_version source (offline? set REXEC_OPENSSL_SOURCE_DIR)"
  echo "build-openssl.sh: OpenSSL $version" >&2
  src="$work/src"
fi

for p in "${patches[@]}"; do
  patch -d "$src" -p1 --forward --quiet < "$p" >"$work/patch.log" 2>&1 ||
    die "patch $(basename "$p") does not apply: see $work/patch.log"
done

echo "build-openssl.sh: building a client-only OpenSSL (1-3 minutes on an idle 2-core machine)" >&2
(cd "$src" && ./Configure "${configure[@]}" --prefix="$out/install" --libdir=lib \
   --openssldir=/usr/lib/ssl >"$work/configure.log" 2>&1) ||
  die "OpenSSL configure failed: see $work/configure.log"
make -C "$src" -j "$(nproc)" build_libs >"$work/build.log" 2>&1 ||
  die "OpenSSL build failed: see $work/build.log"
make -C "$src" install_dev >"$work/install.log" 2>&1 || die "OpenSSL install failed"
# Keep the libraries, the headers and the logs; drop the sources and objects.
rm -rf "$work/src" "$work"/*.tar.* "$work"/*.dsc "$work"/*.asc "$out/install/lib/pkgconfig"
echo "build-openssl.sh: done" >&2
echo "$out/install"
