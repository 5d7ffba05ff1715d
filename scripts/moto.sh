# Sourced: start_moto starts moto (from tools/venv) on a free loopback port and the IAM gate
# (tools/iam-gate) in front of it, exports MOTO_ENDPOINT (the gate: every AWS test's requests
# are authorized as AWS would, and their parameters checked against AWS's service models,
# before moto sees them), MOTO_DIRECT (moto itself) and
# IAM_GATE_LOG, and leaves both pids in moto_pids for the caller to stop.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  return 1
}

start_moto() {
  local port gate_port log=${1:-target/moto.log}
  port=$(free_port)
  # moto_server, plus the two API Gateway operations moto lacks: tools/moto_server_plus.py.
  tools/venv/bin/python tools/moto_server_plus.py -H 127.0.0.1 -p "$port" > "$log" 2>&1 &
  moto_pids=($!)
  wait_for_port "$port"
  gate_port=$(free_port)
  export IAM_GATE_LOG="$PWD/target/iam-gate.jsonl"
  : > "$IAM_GATE_LOG"
  botocore_data=$(tools/venv/bin/python -c 'import os, botocore; print(os.path.join(os.path.dirname(botocore.__file__), "data"))')
  node tools/iam-gate/gate.mjs --listen "$gate_port" --upstream "http://127.0.0.1:$port" \
    --principals tools/iam-gate/principals.json --log "$IAM_GATE_LOG" --root "$PWD" \
    --botocore-data "$botocore_data" \
    > "${log%.log}-iam-gate.log" 2>&1 &
  moto_pids+=($!)
  wait_for_port "$gate_port"
  export MOTO_DIRECT="http://127.0.0.1:$port"
  export MOTO_ENDPOINT="http://127.0.0.1:$gate_port"
  echo "moto at $MOTO_DIRECT, behind the IAM gate at $MOTO_ENDPOINT"
}
