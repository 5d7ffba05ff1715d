#!/usr/bin/env bash
# Builds the operator image without Docker: the release operator and bootstrap.zip, the root
# filesystem from Debian's packages (scripts/image-rootfs.sh, which the Dockerfile runs too),
# and an OCI image layout made by umoci.
#   Output: target/image/oci, tagged latest and the chart's appVersion.
# Push it with skopeo: skopeo copy oci:target/image/oci:latest docker://REGISTRY/chatroom-operator:TAG
set -euo pipefail
cd "$(dirname "$0")/.."
layout=target/image/oci
rootfs=target/image/rootfs

if ! command -v umoci >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq umoci
fi

bash scripts/build-lambda.sh
cargo build --release --locked -p chatroom-operator
bash scripts/image-rootfs.sh target/release/chatroom-operator target/lambda/bootstrap/bootstrap.zip "$rootfs"

# The same commit gives the same layer: every file dated at the commit, as is the image.
epoch=$(git log -1 --format=%ct 2>/dev/null || echo 0)
find "$rootfs" -exec touch -h -d "@$epoch" {} +
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/chatroom-operator/Chart.yaml)
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)

rm -rf "$layout"
umoci init --layout "$layout"
umoci new --image "$layout:latest"
umoci insert --image "$layout:latest" --history.created "$created" \
  --history.created_by "scripts/image-rootfs.sh" "$rootfs" /
# What the Dockerfile's final stage says too (tests/image.rs compares them).
umoci config --image "$layout:latest" --created "$created" --history.created "$created" \
  --architecture amd64 --os linux \
  --config.user 65532:65532 \
  --config.entrypoint /usr/local/bin/chatroom-operator --config.cmd run \
  --config.exposedports 8080/tcp --config.exposedports 8081/tcp \
  --config.label "org.opencontainers.image.title=chatroom-operator" \
  --config.label "org.opencontainers.image.version=$version" \
  --config.label "org.opencontainers.image.revision=$revision"
umoci tag --image "$layout:latest" "$version"
umoci gc --layout "$layout"

size=$(du -sb "$layout/blobs" | cut -f1)
printf '%s: tags %s; %s bytes of blobs (compressed), %s bytes unpacked\n' "$layout" \
  "$(umoci ls --layout "$layout" | tr '\n' ' ')" "$size" "$(du -sb "$rootfs" | cut -f1)"
