# shellcheck shell=bash
# SPDX-License-Identifier: MIT
# Sourced by scripts/build-lws.sh and scripts/build-openssl.sh: fetch and unpack one of Debian's
# source packages with a temporary deb-src list derived from the machine's own Debian sources.
# The system's apt configuration and lists are not touched.
#
#   fetch_debian_source PACKAGE VERSION_PREFIX WORK_DIR
#
# Unpacks the newest version of PACKAGE whose version starts with VERSION_PREFIX into
# WORK_DIR/src (Debian's patches applied) and prints that version. A mirror's index can name a
# version whose files are gone (a superseded security update): the next older one is tried.

fetch_debian_source() {
  local package=$1 prefix=$2 work=$3
  command -v apt-get >/dev/null || { echo "apt-get not found" >&2; return 1; }
  command -v dpkg-source >/dev/null ||
    { echo "dpkg-source not found: install dpkg-dev (scripts/install-deps.sh does)" >&2; return 1; }
  local apt_dir="$work/apt"
  mkdir -p "$apt_dir/parts" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
  : > "$apt_dir/sources.list"
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && sed -n '/^Types:/s/^Types:.*/Types: deb-src/;p' "$f" > "$apt_dir/parts/$(basename "$f")"
  done
  if [ -f /etc/apt/sources.list ]; then
    sed -n 's/^deb \(.*\)/deb-src \1/p' /etc/apt/sources.list > "$apt_dir/sources.list"
  fi
  for f in /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] && sed -n 's/^deb \(.*\)/deb-src \1/p' "$f" >> "$apt_dir/parts/$(basename "$f")"
  done
  local apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=$apt_dir/parts"
                  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
                  -o "APT::Sandbox::User=$(id -un)" -o Debug::NoLocking=1)
  echo "fetching Debian's $package source package" >&2
  apt-get "${apt_opts[@]}" -qq update >"$work/apt-update.log" 2>&1 ||
    { echo "could not reach Debian's package mirrors (offline?): see $work/apt-update.log" >&2; return 1; }
  local versions version
  versions=$(apt-cache "${apt_opts[@]}" showsrc "$package" 2>/dev/null |
    sed -n 's/^Version: //p' | grep "^$prefix" | sort -u -r -V)
  [ -n "$versions" ] || { echo "Debian's mirror has no $package $prefix* source" >&2; return 1; }
  for version in $versions; do
    rm -f "$work"/*.dsc
    if (cd "$work" && apt-get "${apt_opts[@]}" -qq source --download-only "$package=$version" \
          >"$work/apt-source.log" 2>&1); then
      local dsc=("$work"/*.dsc)
      (cd "$work" && dpkg-source -q -x "${dsc[0]}" src >"$work/dpkg-source.log" 2>&1) ||
        { echo "dpkg-source -x failed: see $work/dpkg-source.log" >&2; return 1; }
      rm -rf "$apt_dir"
      echo "$version"
      return 0
    fi
    echo "$package $version could not be downloaded; trying an older one" >&2
  done
  echo "no $package source could be downloaded: see $work/apt-source.log" >&2
  return 1
}
