#!/usr/bin/env bash
# Builds stampede's container image (deploy/ecs/Dockerfile) on a machine without a registry, under a
# private Docker daemon of its own. Called by the container tests and by deploy/ecs/README.md.
#
#   scripts/container.sh start        starts the daemon for the calling process and prints
#                                     "DOCKER_HOST=unix://... PID=N" on stdout
#   scripts/container.sh stop PID     stops the daemon that `start` reported (TERM, then KILL)
#   scripts/container.sh base         makes the Debian 12 base image once (debootstrap + import)
#   scripts/container.sh build [TAG]  base, then the image from the tree (default stampede:latest),
#                                     then its size and what its layers add to the base
#   scripts/container.sh image        start, build, stop: the whole thing in one call
#
# Everything lives under $STAMPEDE_DOCKER_DIR (default ~/.cache/stampede/docker): the daemon's data
# root, exec root, socket and pid file, and the base image's tarball (base-TAG.tar). A second run
# neither bootstraps again (the imported image, or else the tarball, is reused) nor reinstalls the
# build stage's packages (the daemon's build cache). One daemon per cache directory: `start` waits
# up to $ST_DOCKER_LOCK_WAIT seconds (default 900) for another caller's daemon to stop, and stops a
# daemon whose caller (the process that ran `start`) is gone without stopping it.
#
# Exit codes: 0 done; 2 bad usage; 3 the daemon did not start or answer; 4 debootstrap or the
# import failed; 5 the image build failed; 6 another caller held the cache for too long.
# Needs root (dockerd, debootstrap); installs docker.io and debootstrap when missing.
set -euo pipefail
ST_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ST_ROOT/scripts/deps.sh"

ST_DOCKER_DIR=${STAMPEDE_DOCKER_DIR:-$HOME/.cache/stampede/docker}
ST_DOCKER=${ST_DOCKER:-/usr/bin/docker}
ST_DOCKER_SOCK=$ST_DOCKER_DIR/docker.sock
# The base image: Debian 12 made locally. Bump the tag to bootstrap a new one.
ST_BASE_IMAGE=${ST_BASE_IMAGE:-stampede-base:bookworm-minbase-2}
ST_DEBIAN_MIRROR=${ST_DEBIAN_MIRROR:-http://deb.debian.org/debian}

st_docker() {
    DOCKER_HOST=unix://$ST_DOCKER_SOCK DOCKER_BUILDKIT=0 "$ST_DOCKER" "$@"
}

st_die() {
    local code=$1
    shift
    echo "container.sh: $*" >&2
    exit "$code"
}

# Waits until the daemon on $ST_DOCKER_SOCK answers, or PID is gone, or 60 s passed.
st_docker_wait() {
    local pid=$1 i
    for i in $(seq 1 300); do
        st_docker info >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.2
    done
    return 1
}

# Starts the cache's daemon for the caller OWNER (a pid); prints "DOCKER_HOST=... PID=..." on
# stdout. The daemon keeps a lock on the cache (fd 9) for as long as it runs, so a second caller
# waits for it instead of sharing.
st_docker_start() {
    local owner=$1
    command -v dockerd >/dev/null 2>&1 && [ -x "$ST_DOCKER" ] || st_need_apt "${ST_CONTAINER_PKGS[@]}"
    mkdir -p "$ST_DOCKER_DIR"
    local lock=$ST_DOCKER_DIR/lock log=$ST_DOCKER_DIR/dockerd.log wait=${ST_DOCKER_LOCK_WAIT:-900}
    local old_owner old_pid
    old_owner=$(cat "$ST_DOCKER_DIR/owner" 2>/dev/null || true)
    old_pid=$(cat "$ST_DOCKER_DIR/dockerd.pid" 2>/dev/null || true)
    if [[ $old_owner =~ ^[0-9]+$ && $old_pid =~ ^[0-9]+$ ]] && ! kill -0 "$old_owner" 2>/dev/null &&
        [ "$(cat "/proc/$old_pid/comm" 2>/dev/null)" = dockerd ]; then
        echo "container.sh: stopping dockerd $old_pid, left running by $old_owner (gone)" >&2
        st_docker_stop "$old_pid"
    fi
    (
        exec 9>"$lock"
        flock -w "$wait" 9 || exit 75
        rm -f "$ST_DOCKER_SOCK" "$ST_DOCKER_DIR/dockerd.pid"
        exec dockerd --storage-driver=vfs --iptables=false --ip-masq=false --bridge=none \
            --data-root "$ST_DOCKER_DIR/data" --exec-root "$ST_DOCKER_DIR/exec" \
            --pidfile "$ST_DOCKER_DIR/dockerd.pid" -H "unix://$ST_DOCKER_SOCK" \
            </dev/null >"$log" 2>&1
    ) &
    local pid=$!
    # Waiting for the lock counts against the lock's own time, not the 60 s to answer.
    while kill -0 "$pid" 2>/dev/null && ! [ -f "$ST_DOCKER_DIR/dockerd.pid" ]; do
        sleep 0.2
    done
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid" && true
        [ $? -eq 75 ] && st_die 6 "another daemon held $lock for more than ${wait}s"
        st_die 3 "dockerd exited at once; its log: $log"
    fi
    st_docker_wait "$pid" || {
        kill -KILL "$pid" 2>/dev/null || true
        st_die 3 "dockerd did not answer on $ST_DOCKER_SOCK within 60 s; its log: $log"
    }
    echo "$owner" >"$ST_DOCKER_DIR/owner"
    echo "DOCKER_HOST=unix://$ST_DOCKER_SOCK PID=$pid"
}

# Stops the daemon started by st_docker_start (its pid): TERM, then KILL after 20 s; then unmounts
# the network namespace the daemon leaves mounted in its exec root.
st_docker_stop() {
    local pid=$1 i netns=$ST_DOCKER_DIR/exec/netns/default
    [[ $pid =~ ^[0-9]+$ ]] || st_die 2 "stop: PID must be a number, not '$pid'"
    if kill -TERM "$pid" 2>/dev/null; then
        for i in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$pid" 2>/dev/null && sleep 0.5
    fi
    if mountpoint -q "$netns" 2>/dev/null; then umount "$netns" || true; fi
}

# Makes $ST_BASE_IMAGE once: debootstrap into a temporary root, tar it into the cache, import it.
st_docker_base() {
    st_docker info >/dev/null 2>&1 || st_die 3 "no daemon answers on $ST_DOCKER_SOCK (container.sh start)"
    st_docker image inspect "$ST_BASE_IMAGE" >/dev/null 2>&1 && return 0
    local tarball=$ST_DOCKER_DIR/base-${ST_BASE_IMAGE//[:\/]/-}.tar started=$SECONDS
    if ! [ -s "$tarball" ]; then
        command -v debootstrap >/dev/null 2>&1 || st_need_apt "${ST_CONTAINER_PKGS[@]}"
        local rootfs
        rootfs=$(mktemp -d "$ST_DOCKER_DIR/rootfs.XXXXXX")
        echo "container.sh: debootstrap --variant=minbase bookworm (once per cache)" >&2
        debootstrap --variant=minbase bookworm "$rootfs" "$ST_DEBIAN_MIRROR" >"$rootfs.log" 2>&1 || {
            rm -rf "$rootfs"
            st_die 4 "debootstrap failed; its log: $rootfs.log"
        }
        # The root filesystem without apt's downloaded packages and lists.
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        chmod 755 "$rootfs" # mktemp's 0700 would become the image's / and lock non-root users out
        tar -C "$rootfs" --numeric-owner -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
        rm -rf "$rootfs" "$rootfs.log"
    fi
    st_docker import "$tarball" "$ST_BASE_IMAGE" >/dev/null || st_die 4 "docker import of $tarball failed"
    echo "container.sh: base image $ST_BASE_IMAGE made in $((SECONDS - started)) s" >&2
}

# Builds the image from the tree as TAG, on $ST_BASE_IMAGE, then reports its size.
st_docker_build() {
    local tag=${1:-stampede:latest}
    st_docker_base
    echo "container.sh: building $tag on $ST_BASE_IMAGE" >&2
    # The build stage is tagged too, so that its package layer stays in the build cache when the
    # previous build's images are pruned below.
    local log=$ST_DOCKER_DIR/build.log
    if ! { st_docker build --network host --build-arg "BASE=$ST_BASE_IMAGE" --target build \
        -t "${tag%%:*}:build-stage" -f "$ST_ROOT/deploy/ecs/Dockerfile" "$ST_ROOT" &&
        st_docker build --network host --build-arg "BASE=$ST_BASE_IMAGE" \
            -t "$tag" -f "$ST_ROOT/deploy/ecs/Dockerfile" "$ST_ROOT"; } >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        st_die 5 "the build of $tag failed; its whole log: $log"
    fi
    st_docker image prune -f >/dev/null
    st_docker_report "$tag"
}

# Prints the image's size, the base's, and what each layer above the base adds.
st_docker_report() {
    local tag=$1 size base
    size=$(st_docker image inspect -f '{{.Size}}' "$tag")
    base=$(st_docker image inspect -f '{{.Size}}' "$ST_BASE_IMAGE")
    size=$((size / 1000000)) base=$((base / 1000000))
    echo "image $tag: $size MB; base $ST_BASE_IMAGE: $base MB; added by the layers: $((size - base)) MB"
    st_docker history --format '  {{.Size}}\t{{.CreatedBy}}' "$tag" |
        awk -F'\t' '$1 != "  0B" { print $1 "\t" substr($2, 1, 100) }' | sed '$d'
}

st_container_main() {
    local cmd=${1:-}
    [ $# -gt 0 ] && shift
    case $cmd in
    start) st_docker_start "$PPID" ;;
    stop)
        [ $# -eq 1 ] || st_die 2 "usage: container.sh stop PID"
        st_docker_stop "$1"
        ;;
    base) st_docker_base ;;
    build) st_docker_build "$@" ;;
    image)
        local line pid
        line=$(st_docker_start $$)
        pid=${line##*PID=}
        trap 'st_docker_stop '"$pid" EXIT
        st_docker_build "$@"
        ;;
    *) st_die 2 "usage: container.sh start | stop PID | base | build [TAG] | image [TAG]" ;;
    esac
}

# Sourced: only the functions; run: the command.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    st_container_main "$@"
fi
