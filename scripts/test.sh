#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests drive, starts what they
# need, runs formatting, lints and every test (including the ones that need real external
# clients), and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step() { printf '\n==> %s\n' "$*"; }

started_pids=()
cleanup() {
  for pid in "${started_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

step "Node.js tools (wscat) from tools/package-lock.json"
if ! command -v npm >/dev/null; then
  apt-get update -qq && apt-get install -y -qq nodejs npm
fi
npm ci --prefix tools --no-audit --no-fund --loglevel=error
export WSCAT="$root/tools/node_modules/.bin/wscat"

# A thousand-client test needs two descriptors per client on one machine.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test (including tests that drive external clients)"
cargo test --workspace --all-targets -- --include-ignored
