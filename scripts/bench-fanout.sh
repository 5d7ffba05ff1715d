#!/usr/bin/env bash
# The fan-out benchmark (docs/benchmarks.md): one broadcast to RECIPIENTS connections by the
# real bootstrap (release, as scripts/build-lambda.sh builds it), its pages handed to a
# process per worker under Lambda's Invoke and Runtime APIs on loopback, each process held to
# VCPU of a CPU (0.07: a 128 MB function; 1: 1,769 MB), posting to a stand-in @connections
# endpoint (20 ms median, p99 60 ms, 429 above POSTS_PER_SECOND, 410 for five ids), DynamoDB
# from moto. With SOAK_SECONDS, broadcasts follow one another for that long. Every broadcast
# is a JSON line; the last line is one JSON object. MEMORY_MB is the function's memory (its
# workers' rate, the listing it keeps); by default 128, or 1,769 when VCPU is 1.
#   bash scripts/bench-fanout.sh RECIPIENTS [POSTS_PER_SECOND] [VCPU] [SOAK_SECONDS] [MEMORY_MB]
set -euo pipefail
cd "$(dirname "$0")/.."
recipients=${1:?usage: bash scripts/bench-fanout.sh RECIPIENTS [POSTS_PER_SECOND] [VCPU] [SOAK_SECONDS] [MEMORY_MB]}
rate=${2:-10000}
vcpu=${3:-0.07}
soak=${4:-0}
memory=${5:-}

bash scripts/build-lambda.sh >&2
mkdir -p target/lambda/unzipped
python3 -m zipfile -e target/lambda/bootstrap/bootstrap.zip target/lambda/unzipped
chmod +x target/lambda/unzipped/bootstrap
cargo build --release -q -p chatroom-handlers --example fanout_bench
ulimit -n "$(ulimit -Hn)"

source scripts/moto.sh
start_moto target/bench-fanout-moto.log >&2
trap 'kill "${moto_pids[@]}" 2>/dev/null || true' EXIT
# moto itself: the function's requests are counted by the benchmark's own proxy, and the IAM
# gate's simulator would be what is measured.
MOTO_ENDPOINT=$MOTO_DIRECT target/release/examples/fanout_bench \
  target/lambda/unzipped/bootstrap "$recipients" "$rate" "$vcpu" "$soak" $memory
