# syntax=docker/dockerfile:1
# The operator image: builds the operator and the room function's bootstrap.zip, then ships both
# on a minimal base as a non-root user. The chart's default --handler-zip is the path below.
#   docker build -t chatroom-operator:0.1.0 .

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv \
 && rm -rf /var/lib/apt/lists/*
# cargo-lambda (with zig) from PyPI, pinned as in tools/requirements.txt.
RUN python3 -m venv /opt/tools && /opt/tools/bin/pip install --no-cache-dir cargo-lambda==1.9.2
ENV PATH=/opt/tools/bin:$PATH
WORKDIR /src
COPY . .
RUN cargo lambda build --profile lambda --output-format zip -p chatroom-handlers --bin bootstrap \
 && cargo build --release --locked -p chatroom-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/chatroom-operator /usr/local/bin/chatroom-operator
COPY --from=build /src/target/lambda/bootstrap/bootstrap.zip /opt/chatroom/bootstrap.zip
USER 65532:65532
# 8080: /metrics, /healthz, /readyz. 8081: the local provider's gateway.
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/chatroom-operator"]
CMD ["run"]
