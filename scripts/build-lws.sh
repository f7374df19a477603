#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds libwebsockets 4.1.6 from Debian's own source package as a static library with libuv
# compiled in (Debian's binary package keeps libuv in a runtime plugin that a static binary cannot
# load). Called by CMake at configure time (cmake/RexecDeps.cmake); safe to run by hand.
#
#   scripts/build-lws.sh CACHE_DIR
#
# Result: CACHE_DIR/lws-<stamp>/install/{include,lib/libwebsockets.a}; that prefix is the one line
# printed on stdout. A second run with the same options is a no-op. Set REXEC_LWS_SOURCE_DIR to an unpacked libwebsockets 4.1.6 tree to build
# offline.
set -euo pipefail

cache=${1:?usage: build-lws.sh CACHE_DIR}
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
  command -v apt-get >/dev/null || die "apt-get not found: set REXEC_LWS_SOURCE_DIR to an unpacked libwebsockets $want_version source tree"
  command -v dpkg-source >/dev/null || die "dpkg-source not found: install dpkg-dev (scripts/install-deps.sh does)"
  # A temporary deb-src list derived from the machine's own Debian sources; the system's apt
  # configuration and lists are not touched.
  apt_dir="$work/apt"
  mkdir -p "$apt_dir/parts" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
  : > "$apt_dir/sources.list"
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && sed -n '/^Types:/s/^Types:.*/Types: deb-src/;p' "$f" > "$apt_dir/parts/$(basename "$f")"
  done
  if [ -f /etc/apt/sources.list ]; then
    sed -n 's/^deb \(.*\)/deb-src \1/p' /etc/apt/sources.list > "$apt_dir/sources.list"
  fi
  for f in /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] && sed -n 's/^deb \(.*\)/deb-src \1/p' "$f" >> "$apt_dir/parts/$(basename "$f")"
  done
  apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=$apt_dir/parts"
            -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
            -o "APT::Sandbox::User=$(id -un)" -o Debug::NoLocking=1)
  echo "build-lws.sh: fetching Debian's libwebsockets source package" >&2
  apt-get "${apt_opts[@]}" -qq update >"$work/apt-update.log" 2>&1 ||
    die "could not reach Debian's package mirrors (offline?): see $work/apt-update.log, or set REXEC_LWS_SOURCE_DIR"
  (cd "$work" && apt-get "${apt_opts[@]}" -qq source --download-only libwebsockets >"$work/apt-source.log" 2>&1) ||
    die "apt-get source libwebsockets failed: see $work/apt-source.log"
  dsc=$(ls "$work"/libwebsockets_*.dsc 2>/dev/null | head -n 1)
  [ -n "$dsc" ] || die "no libwebsockets .dsc downloaded"
  case "$(basename "$dsc")" in
    libwebsockets_"$want_version"-*) ;;
    *) die "Debian's libwebsockets is $(basename "$dsc"), expected $want_version" ;;
  esac
  (cd "$work" && dpkg-source -q -x "$dsc" src >"$work/dpkg-source.log" 2>&1) || die "dpkg-source -x failed: see $work/dpkg-source.log"
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
rm -rf "$work/build" "$work/src" "$work/apt"
echo "build-lws.sh: done" >&2
echo "$out/install"
