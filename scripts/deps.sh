#!/usr/bin/env bash
# Installs what stampede needs on Debian 12 when it is missing. Sourced by demo.sh and test.sh.
#   st_need_apt PKG...   installs the Debian packages that are not installed yet
set -euo pipefail

st_sudo() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

st_need_apt() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "stampede: installing ${missing[*]}" >&2
    if [ -z "${ST_APT_UPDATED:-}" ]; then
        st_sudo apt-get update -qq >&2
        export ST_APT_UPDATED=1
    fi
    st_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >&2
}

# What building stampede takes.
ST_BUILD_PKGS=(build-essential cmake pkg-config libnng-dev libprotobuf-c-dev protobuf-c-compiler
    libcurl4-openssl-dev libev-dev libcjson-dev libcmocka-dev libncurses-dev libhttp-parser-dev)
# What the tests take beyond that: real peers and tools they drive.
ST_TEST_PKGS=(python3 nng-utils nginx-light curl)

# Configures and builds into $1 with extra CMake arguments after it.
st_build() {
    local dir=$1
    shift
    cmake -S "$ST_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
    cmake --build "$dir" -j"$(nproc)" >&2
}
