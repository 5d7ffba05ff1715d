# Sourced: start_moto starts moto (from tools/venv) on a free loopback port, exports
# MOTO_ENDPOINT, and leaves its pid in moto_pid for the caller to stop.
start_moto() {
  local port log=${1:-target/moto.log}
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # moto_server, plus the two API Gateway operations moto lacks: tools/moto_server_plus.py.
  tools/venv/bin/python tools/moto_server_plus.py -H 127.0.0.1 -p "$port" > "$log" 2>&1 &
  moto_pid=$!
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.1
  done
  export MOTO_ENDPOINT="http://127.0.0.1:$port"
  echo "moto at $MOTO_ENDPOINT"
}
