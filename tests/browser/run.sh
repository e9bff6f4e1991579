#!/usr/bin/env bash
# The real-browser test: headless Chromium (Debian's package, installed with
# apt-get when missing) loads a page from one loopback origin that runs the
# official Starfish TS client (bundled by esbuild, pinned in
# package-lock.json) against the starfish-rs release binary on another
# origin. Passes with --cors-origin (the page's origin, and *), fails as a
# browser CORS failure without it (see run.mjs for the cases).
#
#   bash tests/browser/run.sh        # needs target/release/starfish, Node >= 20
#   STARFISH_BIN=/path/to/starfish CHROMIUM=/path/to/chromium bash tests/browser/run.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

chromium="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  echo "browser: $chromium not found; installing Debian's chromium"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "browser: node and npm (Node >= 20) are required" >&2
  exit 2
fi
npm ci --silent --no-audit --no-fund >/dev/null
exec node run.mjs
