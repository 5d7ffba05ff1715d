#!/usr/bin/env bash
# A real Kubernetes control plane on loopback, envtest-style: etcd and kube-apiserver of one
# pinned release, built here from their Go modules (no download site, no Docker), plus kubectl of
# the same release.
#
#   scripts/k8s.sh build   build the binaries into tools/k8s/<version>/bin (once; cached)
#   scripts/k8s.sh up      build if needed, start etcd and kube-apiserver, wait for /readyz,
#                          write target/k8s/kubeconfig (admin) and target/k8s/env (to source)
#   scripts/k8s.sh down    stop exactly the processes `up` started (their pids are in target/k8s)
#
# As controller-runtime's envtest: RBAC and Node authorization, a service-account issuer and
# signing key (so `kubectl create token` works), an admin client certificate (O=system:masters).
# No kubelet, no controller-manager, no scheduler: Deployments never get Pods.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# The newest 1.3x release the module proxy serves that builds with Go 1.26 (its go.mod says
# `go 1.26.0`). etcd: the server release of the client line this Kubernetes requires (v3.7).
K8S_VERSION=${K8S_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.7.4}
bin_dir="$root/tools/k8s/$K8S_VERSION-etcd$ETCD_VERSION/bin"
state="$root/target/k8s"

log() { printf 'k8s.sh: %s\n' "$*" >&2; }

# One throw-away module per binary set: it requires the release and replaces every k8s.io/*
# staging module (which k8s.io/kubernetes's go.mod points at ./staging/...) with its v0.Y.Z
# release, read from the release's own go.mod as the proxy serves it.
build_kubernetes() {
  local work=$1 minor patch gomod
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  patch=$(echo "$K8S_VERSION" | cut -d. -f3)
  mkdir -p "$work" && cd "$work"
  rm -f go.mod go.sum
  go mod init chatroom-operator.local/k8sbuild >/dev/null 2>&1
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  local replaces=()
  while read -r module; do
    replaces+=("-replace=$module=$module@v0.$minor.$patch")
  done < <(awk '$2 == "=>" && $3 ~ /^\.\/staging\// { print $1 }' "$gomod")
  [ ${#replaces[@]} -gt 10 ] || { log "found only ${#replaces[@]} staging modules in $gomod"; exit 1; }
  go mod edit "${replaces[@]}" "-require=k8s.io/kubernetes@$K8S_VERSION"
  cat > tools.go <<'EOF'
//go:build tools

package tools

import (
	_ "k8s.io/client-go/plugin/pkg/client/auth"
	_ "k8s.io/component-base/cli"
	_ "k8s.io/kubectl/pkg/cmd"
	_ "k8s.io/kubernetes/cmd/kube-apiserver/app"
)
EOF
  GOFLAGS=-mod=mod go mod tidy >/dev/null
  # The version the binaries report, as the release's own build stamps it (hack/lib/version.sh),
  # so `kubectl version` and Helm's kubeVersion checks see a real release.
  local pkg ldflags
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$bin_dir/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$bin_dir/kubectl" k8s.io/kubernetes/cmd/kubectl
  cd "$root"
}

build_etcd() {
  local work=$1
  mkdir -p "$work" && cd "$work"
  rm -f go.mod go.sum
  go mod init chatroom-operator.local/etcdbuild >/dev/null 2>&1
  go mod edit "-require=go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  cat > tools.go <<'EOF'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3/etcdmain"
EOF
  GOFLAGS=-mod=mod go mod tidy >/dev/null
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$bin_dir/etcd" go.etcd.io/etcd/server/v3
  cd "$root"
}

build() {
  if [ -x "$bin_dir/kube-apiserver" ] && [ -x "$bin_dir/etcd" ] && [ -x "$bin_dir/kubectl" ]; then
    return
  fi
  command -v go >/dev/null || { log "Go is needed to build the control plane (go 1.26 or later)"; exit 1; }
  local started=$SECONDS work="$root/target/k8s-build"
  log "building kube-apiserver and kubectl $K8S_VERSION, etcd $ETCD_VERSION from their Go modules (once; 10-20 min cold)"
  mkdir -p "$bin_dir"
  build_etcd "$work/etcd"
  build_kubernetes "$work/kubernetes"
  log "built in $((SECONDS - started)) s into ${bin_dir#"$root"/}"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Certificates as envtest makes them: one CA that signs the serving certificate (for 127.0.0.1
# and localhost) and the admin client certificate, and an RSA key for service-account tokens.
make_certs() {
  local d=$state/pki
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=chatroom-test-ca \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver -keyout "$d/serving.key" \
    -out "$d/serving.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > "$d/serving.ext"
  openssl x509 -req -in "$d/serving.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 30 -extfile "$d/serving.ext" -out "$d/serving.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=chatroom-test-admin" \
    -keyout "$d/admin.key" -out "$d/admin.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' > "$d/admin.ext"
  openssl x509 -req -in "$d/admin.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 30 -extfile "$d/admin.ext" -out "$d/admin.crt" 2>/dev/null
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
}

write_kubeconfig() {
  local url=$1 d=$state/pki
  cat > "$state/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: chatroom-test
  cluster:
    server: $url
    certificate-authority-data: $(base64 -w0 < "$d/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(base64 -w0 < "$d/admin.crt")
    client-key-data: $(base64 -w0 < "$d/admin.key")
contexts:
- name: chatroom-test
  context: { cluster: chatroom-test, user: admin, namespace: default }
current-context: chatroom-test
EOF
  chmod 600 "$state/kubeconfig"
}

start_etcd() {
  local client_port peer_port
  client_port=$(free_port)
  peer_port=$(free_port)
  rm -rf "$state/etcd-data"
  "$bin_dir/etcd" --name chatroom-test --data-dir "$state/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$client_port" \
    --advertise-client-urls "http://127.0.0.1:$client_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "chatroom-test=http://127.0.0.1:$peer_port" \
    --unsafe-no-fsync --quota-backend-bytes 1073741824 \
    > "$state/etcd.log" 2>&1 &
  echo $! > "$state/etcd.pid"
  echo "http://127.0.0.1:$client_port" > "$state/etcd.url"
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$client_port") 2>/dev/null; then return; fi
    sleep 0.1
  done
  log "etcd did not listen on $client_port within 10 s; see $state/etcd.log"
  exit 1
}

# Started on its own so that tests can restart it (`restart-apiserver`) on the same port and
# etcd, the way a control-plane upgrade or a crash looks to a client.
# Every request at the Metadata level (who, verb, resource, answer), for the tests that check
# what the operator did with the chart's RBAC; the server's own and health requests left out.
write_audit_policy() {
  cat > "$state/audit-policy.yaml" <<'EOF'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  users: ["system:apiserver"]
- level: None
  nonResourceURLs: ["/readyz*", "/healthz*", "/livez*"]
- level: Metadata
EOF
}

start_apiserver() {
  local port=$1 d=$state/pki
  "$bin_dir/kube-apiserver" \
    --bind-address 127.0.0.1 --secure-port "$port" --advertise-address 127.0.0.1 \
    --endpoint-reconciler-type none \
    --etcd-servers "$(cat "$state/etcd.url")" \
    --cert-dir "$d" --tls-cert-file "$d/serving.crt" --tls-private-key-file "$d/serving.key" \
    --client-ca-file "$d/ca.crt" \
    --authorization-mode RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$d/sa.pub" --service-account-signing-key-file "$d/sa.key" \
    --service-cluster-ip-range 10.0.0.0/24 --allow-privileged=true \
    --audit-policy-file "$state/audit-policy.yaml" --audit-log-path "$state/audit.log" \
    --audit-log-maxsize 0 --audit-log-mode blocking \
    > "$state/kube-apiserver.log" 2>&1 &
  echo $! > "$state/kube-apiserver.pid"
}

wait_ready() {
  local deadline=$((SECONDS + ${1:-60}))
  while [ $SECONDS -lt $deadline ]; do
    if "$bin_dir/kubectl" --kubeconfig "$state/kubeconfig" get --raw /readyz >/dev/null 2>&1; then
      return
    fi
    if ! kill -0 "$(cat "$state/kube-apiserver.pid")" 2>/dev/null; then
      log "kube-apiserver exited; the end of $state/kube-apiserver.log:"
      tail -20 "$state/kube-apiserver.log" >&2
      exit 1
    fi
    sleep 0.3
  done
  log "kube-apiserver not ready within ${1:-60} s; see $state/kube-apiserver.log"
  exit 1
}

up() {
  build
  if [ -f "$state/kube-apiserver.pid" ] && kill -0 "$(cat "$state/kube-apiserver.pid")" 2>/dev/null; then
    log "already up (target/k8s/kubeconfig); scripts/k8s.sh down first"
    return
  fi
  mkdir -p "$state"
  # A half-started control plane is stopped whole.
  trap 'down' ERR EXIT
  make_certs
  write_audit_policy
  rm -f "$state/audit.log"
  start_etcd
  local port
  port=$(free_port)
  echo "$port" > "$state/apiserver.port"
  start_apiserver "$port"
  write_kubeconfig "https://127.0.0.1:$port"
  wait_ready 90
  cat > "$state/env" <<EOF
export KUBECONFIG=$state/kubeconfig
export KUBECTL=$bin_dir/kubectl
export K8S_BIN=$bin_dir
export K8S_VERSION=$K8S_VERSION
EOF
  trap - ERR EXIT
  log "kube-apiserver $K8S_VERSION ready at https://127.0.0.1:$port; export KUBECONFIG=$state/kubeconfig"
}

stop_pid_file() {
  local f=$1 pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

# Stops the API server and starts it again on the same port and etcd: what a client sees when
# the control plane restarts (connections reset, watches end, then a re-list).
restart_apiserver() {
  stop_pid_file "$state/kube-apiserver.pid"
  start_apiserver "$(cat "$state/apiserver.port")"
  wait_ready 90
}

down() {
  stop_pid_file "$state/kube-apiserver.pid"
  stop_pid_file "$state/etcd.pid"
  rm -rf "$state/etcd-data"
}

case "${1:-}" in
  build) build ;;
  up) up ;;
  down) down ;;
  restart-apiserver) restart_apiserver ;;
  *) echo "usage: scripts/k8s.sh build|up|down|restart-apiserver" >&2; exit 2 ;;
esac
