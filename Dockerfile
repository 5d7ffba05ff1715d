# syntax=docker/dockerfile:1
# The operator image: builds the operator and the room function's bootstrap.zip, then ships
# both on no base at all — the root filesystem is what scripts/image-rootfs.sh assembles from
# Debian's packages, exactly as scripts/build-image.sh does without Docker.
#   docker build -t chatroom-operator:0.1.0 .

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv
# cargo-lambda (with zig) from PyPI, pinned as in tools/requirements.txt.
RUN python3 -m venv /opt/tools && /opt/tools/bin/pip install --no-cache-dir cargo-lambda==1.9.2
ENV PATH=/opt/tools/bin:$PATH
WORKDIR /src
COPY . .
RUN cargo lambda build --profile lambda --output-format zip -p chatroom-handlers --bin bootstrap \
 && cargo build --release --locked -p chatroom-operator \
 && bash scripts/image-rootfs.sh target/release/chatroom-operator target/lambda/bootstrap/bootstrap.zip /rootfs

FROM scratch
COPY --from=build /rootfs /
USER 65532:65532
# 8080: /metrics, /healthz, /readyz. 8081: the local provider's gateway.
EXPOSE 8080/tcp 8081/tcp
ENTRYPOINT ["/usr/local/bin/chatroom-operator"]
CMD ["run"]
