#!/usr/bin/env bash
# Drive the release binary with the official Python SDK (starfish-sdk 3.0.0a72).
# Needs python3 with venv; installs the pinned SDK into tests/interop/python/.venv.
#
#   bash tests/interop/python/run.sh [--tls]
#
# --tls: the server serves HTTPS with a throw-away CA's certificate
# (scripts/tls-certs) and the SDK is given that CA bundle.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
bin="${STARFISH_BIN:-$root/target/release/starfish}"
tls=0
case "${1:-}" in
  --tls) tls=1 ;;
  "") ;;
  *) echo "usage: run.sh [--tls]" >&2; exit 2 ;;
esac
[ -x "$bin" ] || { echo "missing $bin: run cargo build --release first" >&2; exit 1; }
if [ ! -x "$here/.venv/bin/python" ]; then
  python3 -m venv "$here/.venv"
fi
"$here/.venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
work="$(mktemp -d)"
log="$work/server.log"
trap 'rm -rf "$work"' EXIT
tls_args=() ca_arg=() scheme=http
if [ "$tls" = 1 ]; then
  bash "$root/scripts/tls-certs" "$work/tls" --names 127.0.0.1,localhost
  tls_args=(--tls-cert "$work/tls/cert.pem" --tls-key "$work/tls/key.pem")
  ca_arg=("$work/tls/ca.pem")
  scheme=https
fi
# $STARFISH_STORE_URL (tests/postgres/run.sh): serve from that PostgreSQL
# database instead of memory.
store_args=(--memory)
[ -z "${STARFISH_STORE_URL:-}" ] || store_args=(--store "$STARFISH_STORE_URL")
"$bin" serve "${store_args[@]}" --listen 127.0.0.1:0 --log-level info "${tls_args[@]}" 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  grep -q "listening on" "$log" && break
  sleep 0.05
done
base="$(grep -o "$scheme://127.0.0.1:[0-9]*/v1" "$log" | head -1)"
[ -n "$base" ] || { echo "server did not start:" >&2; cat "$log" >&2; exit 1; }
cargo run -q --release --manifest-path "$root/Cargo.toml" --example mint_cap > "$work/cap.json"
"$here/.venv/bin/python" "$here/check_sdk.py" "$base" "$work/cap.json" "${ca_arg[@]}"
