#!/usr/bin/env bash
# The local gateway against its ceiling (docs/benchmarks.md): the same load — 1,000 clients,
# 2 senders x 10 and 10 senders x 50 messages of 100 B — on the gateway with every limit in
# force, on the gateway with every client in one channel and every message sent to it, and on
# bare-broadcaster (parse, wrap, serialise once, send to all), in alternating runs, each on a
# fresh server. Prints every run as a JSON line and then, per scenario, the medians and the
# gateway's ratios.
#   bash scripts/bench-ceiling.sh [RUNS]        (default 5 of each)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}

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

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_listening() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return; fi
    sleep 0.05
  done
}

start() {
  local port
  port=$(free_port)
  case $1 in
    # Every limit as shipped but AWS's 500 new connections per second, which the 1,000
    # connections of the set-up would otherwise wait on.
    gateway) RUST_LOG=warn target/release/chatroom-operator local examples/chatroom.yaml \
               --listen "127.0.0.1:$port" --management-listen 127.0.0.1:0 \
               --new-connections-per-second 100000 > /dev/null & ;;
    channel) RUST_LOG=warn target/release/chatroom-operator local examples/chatroom-channels.yaml \
               --listen "127.0.0.1:$port" --management-listen 127.0.0.1:0 \
               --new-connections-per-second 100000 > /dev/null & ;;
    bare) target/release/bare-broadcaster --listen "127.0.0.1:$port" > /dev/null & ;;
  esac
  server_pid=$!
  wait_listening "$port"
  url="ws://127.0.0.1:$port/default/lobby/dev"
  channel_flags=()
  if [ "$1" = channel ]; then
    url="ws://127.0.0.1:$port/default/market/dev"
    channel_flags=(--channel bench)
  fi
}

results=target/bench-ceiling.jsonl
: > "$results"
for run in $(seq 1 "$runs"); do
  for scenario in "2x10:--senders 2 --messages 10" "10x50:--senders 10 --messages 50"; do
    name=${scenario%%:*}
    flags=${scenario#*:}
    for server in gateway channel bare; do
      start "$server"
      # shellcheck disable=SC2086
      line=$(target/release/chatroom-loadgen --url "$url" --clients 1000 $flags --payload-bytes 100 "${channel_flags[@]}" || true)
      stop_server
      echo "{\"run\":$run,\"scenario\":\"$name\",\"server\":\"$server\",\"result\":$line}" | tee -a "$results"
    done
  done
done

python3 - "$results" <<'EOF'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
for scenario in ("2x10", "10x50"):
    med = {}
    for server in ("gateway", "channel", "bare"):
        got = [r["result"] for r in rows if r["scenario"] == scenario and r["server"] == server]
        complete = [g for g in got if g["delivered"] == g["expected_deliveries"]]
        med[server] = (
            statistics.median(g["deliveries_per_second"] for g in got),
            statistics.median(g["latency_ms"]["p99"] for g in got),
            len(complete), len(got),
        )
    (g_rate, g_p99, g_ok, n), (b_rate, b_p99, b_ok, _) = med["gateway"], med["bare"]
    c_rate, c_p99, c_ok, _ = med["channel"]
    print(f"{scenario}: gateway {g_rate:,.0f}/s p99 {g_p99:.1f} ms ({g_ok}/{n} complete); "
          f"bare {b_rate:,.0f}/s p99 {b_p99:.1f} ms ({b_ok}/{n} complete); "
          f"deliveries {g_rate / b_rate:.2f}x, p99 {g_p99 / b_p99:.2f}x")
    print(f"{scenario}: channel {c_rate:,.0f}/s p99 {c_p99:.1f} ms ({c_ok}/{n} complete); "
          f"deliveries {c_rate / b_rate:.2f}x of bare, {c_rate / g_rate:.2f}x of the room; "
          f"p99 {c_p99 / b_p99:.2f}x of bare")
EOF
