#!/bin/sh
# Rust client against the official Starfish server (pinned in package.json):
# install the Node dependencies from package-lock.json, start server.mjs on a
# free port, run `cargo run --example official_interop`, stop the server.
# Exit status: that of the interop run (non-zero on any failed check), or 1
# if the server cannot be installed or started.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)

cd "$here"
npm ci --no-audit --no-fund --silent

log=$(mktemp)
PORT=0 node server.mjs >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"' EXIT INT TERM

port=""
i=0
while [ $i -lt 150 ]; do
  port=$(sed -n 's/^LISTENING //p' "$log")
  [ -n "$port" ] && break
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "official server exited:" >&2; cat "$log" >&2; exit 1
  fi
  sleep 0.2
  i=$((i + 1))
done
if [ -z "$port" ]; then
  echo "official server did not start within 30 s:" >&2; cat "$log" >&2; exit 1
fi
echo "official server (starfish-server 3.0.0-alpha.65) on 127.0.0.1:$port"

cd "$root"
cargo run --quiet --example official_interop -- "http://127.0.0.1:$port"
