#!/usr/bin/env bash
# The fleet soak (docs/benchmarks.md): the release operator over ROOMS rooms against moto and
# the HTTP test API server, MINUTES of steady state. Prints one JSON line.
#   bash scripts/bench-fleet.sh [ROOMS] [MINUTES] [RATE_LIMITS]     (default: 100 10 defaults)
# RATE_LIMITS is the operator's --aws-rate-limit, e.g. apigateway=50.
set -euo pipefail
cd "$(dirname "$0")/.."
rooms=${1:-100}
minutes=${2:-10}
limits=${3:-}

if [ ! -x tools/venv/bin/moto_server ]; then
  python3 -m venv tools/venv
  tools/venv/bin/pip install --quiet --disable-pip-version-check -r tools/requirements.txt
fi
mkdir -p target
source scripts/moto.sh
start_moto target/moto-soak.log
trap 'kill "${moto_pids[@]}" 2>/dev/null || true' EXIT

# A fleet of a thousand rooms keeps a connection or two per watch and per AWS service.
ulimit -n "$(ulimit -Hn)"
cargo bench -p chatroom-operator --bench fleet_soak -- \
  --rooms "$rooms" --minutes "$minutes" --rate-limits "$limits"
