# tmq2mqtt container image: build the bridge in a Rust image, run it from debian-slim as a non-root user.
#   docker build -t tmq2mqtt .
#   docker run --rm -e TMQ2MQTT_FROM='tmq+ws://…' -e TMQ2MQTT_TO='mqtt://…' tmq2mqtt
# The DSNs (with their passwords) come from the environment, never from the command line.

FROM rust:1-bookworm AS builder
WORKDIR /src
# The whole workspace is needed to resolve it (the simulator is the bridge's dev-dependency), but only
# the bridge is compiled. Cargo.lock pins every dependency (tokio must stay below 1.54).
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p tmq2mqtt --bin tmq2mqtt \
    && install -Dm755 target/release/tmq2mqtt /out/tmq2mqtt

FROM debian:bookworm-slim
# CA certificates for tmq+wss:// and mqtts:// endpoints with public certificates.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin tmq2mqtt
COPY --from=builder /out/tmq2mqtt /usr/local/bin/tmq2mqtt
USER tmq2mqtt
# SIGTERM (docker stop) makes the bridge stop polling, wait for outstanding acks, commit and disconnect.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tmq2mqtt"]
CMD ["run"]
