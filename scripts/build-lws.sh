#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds libwebsockets 4.1.6 from Debian's own source package as a static library with libuv
# compiled in (Debian's binary package keeps libuv in a runtime plugin that a static binary cannot
# load). Called by CMake at configure time (cmake/RexecDeps.cmake); safe to run by hand.
#
#   scripts/build-lws.sh CACHE_DIR [OPENSSL_PREFIX]
#
# With OPENSSL_PREFIX (an install of scripts/build-openssl.sh), the library is built for the
# static agent: against that OpenSSL, in sections the linker can drop. Without it, against the
# system's OpenSSL, for everything else.
#
# Result: CACHE_DIR/lws-<stamp>/install/{include,lib/libwebsockets.a}; that prefix is the one line
# printed on stdout. A second run with the same options is a no-op. Set REXEC_LWS_SOURCE_DIR to an
# unpacked libwebsockets 4.1.6 tree to build offline.
set -euo pipefail

cache=${1:?usage: build-lws.sh CACHE_DIR [OPENSSL_PREFIX]}
cache=$(mkdir -p "$cache" && cd "$cache" && pwd)  # absolute: apt reads relative paths from /etc/apt
openssl=${2:-}
want_version=4.1.6

# Everything the project does not use is off: no HTTP/2, raw files, LEJP, UDP, test apps, plugins.
options=(
  -DLWS_WITH_LIBUV=ON -DLWS_WITH_EVLIB_PLUGINS=OFF
  -DLWS_WITH_STATIC=ON -DLWS_WITH_SHARED=OFF -DLWS_STATIC_PIC=ON -DDISABLE_WERROR=ON
  -DLWS_WITH_SSL=ON -DLWS_IPV6=ON
  -DLWS_WITHOUT_TESTAPPS=ON -DLWS_WITH_MINIMAL_EXAMPLES=OFF
  -DLWS_WITH_HTTP2=OFF -DLWS_ROLE_RAW_FILE=OFF -DLWS_WITH_LEJP=OFF -DLWS_WITH_LEJP_CONF=OFF
  -DLWS_WITH_DIR=OFF -DLWS_WITH_UDP=OFF -DLWS_WITH_SYS_SMD=OFF
)
if [ -n "$openssl" ]; then
  [ -f "$openssl/lib/libssl.a" ] || { echo "build-lws.sh: no $openssl/lib/libssl.a" >&2; exit 1; }
  options+=(
    "-DLWS_OPENSSL_INCLUDE_DIRS=$openssl/include"
    "-DLWS_OPENSSL_LIBRARIES=$openssl/lib/libssl.a;$openssl/lib/libcrypto.a"
    "-DCMAKE_C_FLAGS=-ffunction-sections -fdata-sections"
  )
fi
# Our patches (scripts/lws-patches/*.patch, applied in name order) are part of the stamp, so a
# new or changed patch rebuilds the library.
patches=("$(cd "$(dirname "$0")" && pwd)"/lws-patches/*.patch)
[ -f "${patches[0]}" ] || patches=()
stamp=$( { printf '%s\n' "$want_version" "${options[@]}"; cat "${patches[@]}" /dev/null; } |
  sha256sum | cut -c1-12)
out="$cache/lws-$stamp"
if [ -f "$out/install/lib/libwebsockets.a" ] && [ -f "$out/install/include/lws_config.h" ]; then
  echo "$out/install"
  exit 0
fi

die() { echo "build-lws.sh: $*" >&2; exit 1; }
mkdir -p "$out"
work="$out/work"
rm -rf "$work" && mkdir -p "$work"

if [ -n "${REXEC_LWS_SOURCE_DIR:-}" ]; then
  [ -f "$REXEC_LWS_SOURCE_DIR/CMakeLists.txt" ] ||
    die "REXEC_LWS_SOURCE_DIR=$REXEC_LWS_SOURCE_DIR holds no CMakeLists.txt"
  src="$work/src"
  cp -R "$REXEC_LWS_SOURCE_DIR" "$src"  # patched below: never the caller's tree
else
  # shellcheck source=scripts/debian-source.sh
  . "$(dirname "$0")/debian-source.sh"
  version=$(fetch_debian_source libwebsockets "$want_version-" "$work") ||
    die "could not fetch Debian's libwebsockets $want_version source (offline? set REXEC_LWS_SOURCE_DIR)"
  echo "build-lws.sh: libwebsockets $version" >&2
  src="$work/src"
fi

for p in "${patches[@]}"; do
  patch -d "$src" -p1 --forward --quiet < "$p" >"$work/patch.log" 2>&1 ||
    die "patch $(basename "$p") does not apply: see $work/patch.log"
done

gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
echo "build-lws.sh: building libwebsockets $want_version (static, libuv built in)" >&2
cmake -S "$src" -B "$work/build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$out/install" "${options[@]}" >"$work/configure.log" 2>&1 ||
  die "libwebsockets configure failed: see $work/configure.log"
cmake --build "$work/build" --parallel "$(nproc)" >"$work/build.log" 2>&1 ||
  die "libwebsockets build failed: see $work/build.log"
cmake --install "$work/build" >"$work/install.log" 2>&1 || die "libwebsockets install failed"
# Keep the install tree and the logs; drop the sources and objects.
rm -rf "$work/build" "$work/src" "$work"/*.tar.* "$work"/*.dsc
echo "build-lws.sh: done" >&2
echo "$out/install"
