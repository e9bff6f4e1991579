#!/usr/bin/env bash
# Starts a throw-away PostgreSQL server (initdb in a temporary directory,
# listening on a free 127.0.0.1 port, run as an unprivileged user), runs the
# tests of the `postgres` feature against it (STARFISH_PG_URL), and stops it
# and removes its directory on exit, even on failure. Installs Debian's
# `postgresql` package with apt-get when no initdb is found.
#
#   bash tests/postgres/run.sh            # store conformance + multi-node tests
#   bash tests/postgres/run.sh -- NAME    # cargo test filter
set -euo pipefail
cd "$(dirname "$0")/../.."

find_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/$1" ]; then echo "$d/$1"; return; fi
  done
  command -v "$1" || true
}

INITDB=$(find_bin initdb)
if [ -z "$INITDB" ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "== installing postgresql (apt-get)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
  INITDB=$(find_bin initdb)
fi
BIN=$(dirname "$(readlink -f "$INITDB")")

DIR=$(mktemp -d /tmp/starfish-pg.XXXXXX)
RUNAS=()
if [ "$(id -u)" = 0 ]; then
  # PostgreSQL refuses to run as root.
  if id postgres >/dev/null 2>&1; then U=postgres; else U=nobody; fi
  chown "$U" "$DIR"
  RUNAS=(runuser -u "$U" --)
fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

stop() {
  "${RUNAS[@]}" "$BIN/pg_ctl" -D "$DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap stop EXIT

"${RUNAS[@]}" "$BIN/initdb" -D "$DIR/data" -U starfish --auth=trust -E UTF8 --no-sync >/dev/null
# TLS to the database: a throw-away CA and a certificate for 127.0.0.1
# (tests/postgres.rs connects with sslmode=verify-full), and a second CA
# the server's certificate does not chain to.
scripts/tls-certs "$DIR/tls" >/dev/null
scripts/tls-certs "$DIR/other-ca" >/dev/null
if [ ${#RUNAS[@]} -gt 0 ]; then chown -R "$U" "$DIR/tls"; fi
chmod 600 "$DIR/tls/key.pem"
"${RUNAS[@]}" "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c max_connections=300 -c ssl=on -c ssl_cert_file=$DIR/tls/cert.pem -c ssl_key_file=$DIR/tls/key.pem" start >/dev/null
"${RUNAS[@]}" "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U starfish starfish
echo "== PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT ($DIR)"

export STARFISH_PG_URL="postgres://starfish@127.0.0.1:$PORT/starfish"
export STARFISH_PG_TLS_CA="$DIR/tls/ca.pem" STARFISH_PG_OTHER_CA="$DIR/other-ca/ca.pem"
cargo test --features postgres --test store --test postgres "$@"
if [ $# -eq 0 ]; then
  # The official TypeScript client's suite against nodes on the postgres
  # store (each server a fresh database; the debug binary the tests built).
  echo "== tests/interop/run.sh on the postgres store"
  cargo build --features postgres --bin starfish
  STARFISH_BIN="$PWD/target/debug/starfish" STARFISH_PG_BASE="postgres://starfish@127.0.0.1:$PORT" \
    STARFISH_PG_CREATEDB="$BIN/createdb" bash tests/interop/run.sh
  echo "== tests/interop/python/run.sh on the postgres store"
  "${RUNAS[@]}" "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U starfish python_sdk
  STARFISH_BIN="$PWD/target/debug/starfish" \
    STARFISH_STORE_URL="postgres://starfish@127.0.0.1:$PORT/python_sdk" bash tests/interop/python/run.sh
fi
