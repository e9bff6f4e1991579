#!/bin/sh
# Our Rust code against the official Starfish server (pinned in package.json):
#  1. the Rust client (`examples/official_interop.rs`) against the official
#     server on our default config;
#  2. our replica (`examples/replica_interop.rs`) replicating from the official
#     server on replica-primary.json with anonymous access off;
#  3. CORS and security headers on the wire, the official server's
#     middleware against our release binary's flags (`web_parity.mjs`);
#  4. append-only collections: the same 120 requests to the official server
#     and to our release binary on append-parity.json, statuses and JSON
#     bodies compared (`append_parity.mjs`).
# Installs the Node dependencies from package-lock.json, starts each server
# on a free port, runs the check, stops the server. Exit status: non-zero on
# any failed check, or 1 if a server cannot be installed or started.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)

cd "$here"
npm ci --no-audit --no-fund --silent

logs=""
# start_server runs in a command substitution (a subshell), so it leaves
# each server's pid in LOGFILE.pid for this trap to stop.
stop_servers() {
  for l in $logs; do
    if [ -f "$l.pid" ]; then kill "$(cat "$l.pid")" 2>/dev/null || true; rm -f "$l.pid"; fi
    rm -f "$l"
  done
}
trap stop_servers EXIT INT TERM

# start_server LOGFILE [ENV=VALUE ...]: start server.mjs, print its port.
start_server() {
  log=$1; shift
  env PORT=0 "$@" node "$here/server.mjs" >"$log" 2>&1 &
  pid=$!
  echo "$pid" >"$log.pid"
  i=0
  while [ $i -lt 150 ]; do
    port=$(sed -n 's/^LISTENING //p' "$log")
    if [ -n "$port" ]; then echo "$port"; return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "official server exited:" >&2; cat "$log" >&2; return 1
    fi
    sleep 0.2
    i=$((i + 1))
  done
  echo "official server did not start within 30 s:" >&2; cat "$log" >&2
  return 1
}

log1=$(mktemp); log2=$(mktemp); logs="$log1 $log2"
port=$(start_server "$log1")
echo "official server (starfish-server 3.0.0-alpha.65) on 127.0.0.1:$port"
(cd "$root" && cargo run --quiet --example official_interop -- "http://127.0.0.1:$port")

port2=$(start_server "$log2" STARFISH_CONFIG="$here/replica-primary.json" STARFISH_NO_ANONYMOUS=1)
echo "official server as replica primary (anonymous off) on 127.0.0.1:$port2"
(cd "$root" && cargo run --quiet --example replica_interop -- "http://127.0.0.1:$port2/v1")

echo "CORS and security headers: the official server's middleware against our flags"
(cd "$root" && cargo build --quiet --release --bin starfish)
STARFISH_BIN="$root/target/release/starfish" node "$here/web_parity.mjs"
echo "append-only collections: the official server against our release binary"
STARFISH_BIN="$root/target/release/starfish" node "$here/append_parity.mjs"
