#!/usr/bin/env bash
# Interop tests: the official Starfish TS client (pinned in package-lock.json)
# against the starfish-rs release binary.
#
#   bash tests/interop/run.sh            # from anywhere; needs target/release/starfish
#   STARFISH_BIN=/path/to/starfish bash tests/interop/run.sh
#   bash tests/interop/run.sh --tls      # the same suite over HTTPS
#
# --tls: a throw-away CA and a certificate for 127.0.0.1 are made with
# scripts/tls-certs (cargo, dev profile), every server is started with
# --tls-cert/--tls-key, and Node trusts that CA through NODE_EXTRA_CA_CERTS
# (replacing whatever the environment set it to: it must name this CA).
#
# Building the binary is left to the caller (cargo build --release).
# Exits non-zero on any failure. Prints node's summary (# pass N / # fail N)
# and then "interop: N checks passed".
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

bin="${STARFISH_BIN:-../../target/release/starfish}"
case "$bin" in /*) abs="$bin" ;; *) abs="$here/$bin" ;; esac
if [ ! -x "$abs" ]; then
  echo "interop: starfish binary not found or not executable at $abs" >&2
  echo "interop: build it first with 'cargo build --release' (or set STARFISH_BIN)" >&2
  exit 2
fi
export STARFISH_BIN="$abs"

tls=0
case "${1:-}" in
  --tls) tls=1 ;;
  "") ;;
  *) echo "usage: run.sh [--tls]" >&2; exit 2 ;;
esac

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "interop: node and npm (Node >= 20) are required" >&2
  exit 2
fi

npm ci --silent --no-audit --no-fund >/dev/null

count_file="$(mktemp)"
tls_dir=""
trap 'rm -f "$count_file"; [ -z "$tls_dir" ] || rm -rf "$tls_dir"' EXIT
export INTEROP_COUNT_FILE="$count_file"

if [ "$tls" = 1 ]; then
  tls_dir="$(mktemp -d)"
  bash ../../scripts/tls-certs "$tls_dir" --names 127.0.0.1,localhost
  export STARFISH_TLS_DIR="$tls_dir"
  export NODE_EXTRA_CA_CERTS="$tls_dir/ca.pem"
  echo "interop: over HTTPS (CA $NODE_EXTRA_CA_CERTS)"
else
  unset STARFISH_TLS_DIR
fi

status=0
node --test --test-concurrency=1 --test-reporter=tap test/ || status=$?

if [ "$status" -ne 0 ]; then
  echo "interop: FAILED (node --test exit $status)"
  exit "$status"
fi
checks="$(awk '{s += $1} END {print s + 0}' "$count_file")"
echo "interop$([ "$tls" = 1 ] && echo -https): $checks passed, 0 failed"
