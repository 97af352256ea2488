#!/bin/sh
# The CDK app's tests, offline: installs the npm packages pinned in package-lock.json into
# node_modules/ when they are missing or older than the lock file (`npm ci`), synthesizes the app
# with the cdk CLI from node_modules/.bin, then runs test/*.test.js under `node --test`.
# Exit: 0 all passed; 1 a synth or a test failed; 2 npm could not install the packages;
# 77 node or npm is missing (ctest counts that as skipped).
set -eu
cd "$(dirname "$0")"

for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "deploy/ecs/cdk/test.sh: $tool is not installed (Debian: apt-get install nodejs npm)" >&2
        exit 77
    fi
done

# npm keeps a copy of the lock it installed in node_modules/.package-lock.json.
if [ ! -x node_modules/.bin/cdk ] || [ ! -f node_modules/.package-lock.json ] ||
    [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "deploy/ecs/cdk/test.sh: npm ci (aws-cdk-lib, constructs, aws-cdk as pinned in package-lock.json)" >&2
    if ! npm ci --no-audit --no-fund >&2; then
        echo "deploy/ecs/cdk/test.sh: npm ci failed: is the npm registry reachable?" >&2
        exit 2
    fi
fi

out=$(mktemp -d "${TMPDIR:-/tmp}/stampede-cdk-synth.XXXXXX")
trap 'rm -rf "$out"' EXIT INT TERM
export CDK_DISABLE_CLI_TELEMETRY=true
# The image asset needs deploy/ecs/Dockerfile; a tree without it synthesizes with an ECR image.
if [ -f ../Dockerfile ]; then
    set --
else
    echo "deploy/ecs/cdk/test.sh: no deploy/ecs/Dockerfile: synthesizing with -c ecrRepository=stampede" >&2
    set -- -c ecrRepository=stampede
fi
if ! node_modules/.bin/cdk synth --no-notices --no-version-reporting -q -o "$out" "$@"; then
    echo "deploy/ecs/cdk/test.sh: cdk synth failed" >&2
    exit 1
fi
echo "deploy/ecs/cdk/test.sh: cdk synth wrote $(ls "$out"/*.template.json | wc -l) template(s)" >&2
node --test test/
