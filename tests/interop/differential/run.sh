#!/usr/bin/env bash
# Differential test (issue 11): one script of request steps (run.mjs: raw HTTP
# through fetch, signed with the official protocol helpers, and official client
# calls, hostile ones included) sent to the official Starfish server (pinned in
# package.json, started by official.mjs) and to the starfish-rs release binary,
# both started from the same config on 127.0.0.1 ephemeral ports, one profile
# (config + flags) at a time. Statuses, JSON bodies and the headers a client
# reads must be equal, except for the steps listed in differences.json (each
# also a row of COMPATIBILITY.md). Exit status non-zero on any other
# difference, or on a listed step that no longer differs.
#
#   bash tests/interop/differential/run.sh [--only PROFILE] [--verbose]
#
# Needs Node >= 20 with npm; builds target/release/starfish when it is missing
# (STARFISH_BIN overrides it). Both servers of every profile are stopped when
# the run ends, whatever its outcome: run.mjs kills them on exit, and this
# script kills run.mjs's whole process group (servers included) on exit.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
export STARFISH_BIN="${STARFISH_BIN:-$root/target/release/starfish}"
if [ ! -x "$STARFISH_BIN" ]; then
  (cd "$root" && cargo build --release --bin starfish)
fi
cd "$here"
npm ci --no-audit --no-fund --silent

# run.mjs in its own process group (job control on), so the trap can stop it
# and every server it started even if it is killed before its own cleanup.
set -m
node run.mjs "$@" &
group=$!
set +m
cleanup() {
  kill -TERM -- "-$group" 2>/dev/null || true
  sleep 0.2
  kill -KILL -- "-$group" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
status=0
wait "$group" || status=$?
exit "$status"
