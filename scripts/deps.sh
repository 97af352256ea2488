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
    libcurl4-openssl-dev libssl-dev libev-dev libcjson-dev libcmocka-dev libncurses-dev libhttp-parser-dev libnghttp2-dev)
# What the tests take beyond that: real peers and tools they drive (the AWS CLI reads back what the
# sink wrote; botocore's signer checks ours; headless Chromium opens the HTML report; tmux drives
# the terminal UI).
ST_TEST_PKGS=(python3 nng-utils nginx-light libnginx-mod-http-echo openssl curl awscli python3-botocore libxml2-utils
    chromium tmux)
# Node.js and npm run the AWS emulators. Installed from Debian only when `node` or `npm` is missing,
# so that a Node.js already on the machine (with its own npm) is left alone.
ST_NODE_PKGS=(nodejs npm)
# What the container tests take (scripts/container.sh): a private Docker daemon, and debootstrap for
# a Debian 12 base image made without a registry.
ST_CONTAINER_PKGS=(docker.io debootstrap)
# The emulators, from the npm registry, in a cache shared by every build tree.
ST_NPM_PKGS=(dynalite@4.0.0 local-aws-sqs@2.0.2)
ST_NPM_DIR=${STAMPEDE_NPM_DIR:-$HOME/.cache/stampede/npm}

# Installs the AWS emulators (DynamoDB: dynalite, SQS: local-aws-sqs) into $ST_NPM_DIR when missing.
st_need_npm() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        st_need_apt "${ST_NODE_PKGS[@]}"
    fi
    if [ -f "$ST_NPM_DIR/node_modules/dynalite/cli.js" ] &&
        [ -f "$ST_NPM_DIR/node_modules/local-aws-sqs/package.json" ]; then
        return 0
    fi
    echo "stampede: installing ${ST_NPM_PKGS[*]} into $ST_NPM_DIR" >&2
    mkdir -p "$ST_NPM_DIR"
    npm install --no-audit --no-fund --prefix "$ST_NPM_DIR" "${ST_NPM_PKGS[@]}" >&2
}

# Configures and builds into $1 with extra CMake arguments after it.
st_build() {
    local dir=$1
    shift
    cmake -S "$ST_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
    cmake --build "$dir" -j"$(nproc)" >&2
}
