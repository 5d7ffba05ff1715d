#!/usr/bin/env bash
# The local gateway's benchmark targets (docs/benchmarks.md), on release builds, load
# generator and server on this machine over loopback. Each scenario gets a fresh server so its
# peak RSS is its own. Prints one JSON line per scenario.
#   bash scripts/bench-gateway.sh [1|2|3 ...]     (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -q -p chatroom-operator -p chatroom-loadgen
ulimit -n "$(ulimit -Hn)"

server_pid=""
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
trap stop_server EXIT

start_server() {
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # Every limit stays as shipped but AWS's 500 new connections per second: target 3 opens
  # 10,000 at once to measure capacity, not that quota.
  RUST_LOG=warn target/release/chatroom-operator local examples/chatroom.yaml --listen "127.0.0.1:$port" \
    --management-listen 127.0.0.1:0 --new-connections-per-second 100000 > /dev/null &
  server_pid=$!
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.05
  done
  url="ws://127.0.0.1:$port/default/lobby/dev"
}

scenario() {
  local name=$1; shift
  start_server
  printf '%s: ' "$name"
  target/release/chatroom-loadgen --url "$url" --server-pid "$server_pid" "$@" || true
  stop_server
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(1 2 3)
for target in "${targets[@]}"; do
  case $target in
    1) scenario "target 1: 1,000 clients, 2 senders x 10 messages, 100 B" \
         --clients 1000 --senders 2 --messages 10 --payload-bytes 100 ;;
    2) scenario "target 2: 1,000 clients, 200 broadcasts/s for 10 s, 100 B" \
         --clients 1000 --senders 2 --rate 200 --duration 10s --payload-bytes 100 ;;
    3) scenario "target 3: 10,000 idle connections" \
         --clients 10000 --senders 0 --hold 1s --connect-concurrency 500 ;;
    *) echo "unknown target $target" >&2; exit 2 ;;
  esac
done
