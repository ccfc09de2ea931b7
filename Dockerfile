# syntax=docker/dockerfile:1
# Multi-stage: compile in the Rust image, run from debian slim as a non-root user.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target dir between builds; the binary is copied out of the cache
# mount because the mount is not part of the image layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin pavemeter \
    && cp target/release/pavemeter /usr/local/bin/pavemeter

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 pavemeter \
    && useradd --system --uid 10001 --gid pavemeter --home-dir /var/lib/pavemeter --shell /usr/sbin/nologin pavemeter \
    && mkdir -p /var/lib/pavemeter \
    && chown pavemeter:pavemeter /var/lib/pavemeter
COPY --from=builder /usr/local/bin/pavemeter /usr/local/bin/pavemeter
USER pavemeter
WORKDIR /var/lib/pavemeter
ENV PAVEMETER_SERVER__LISTEN=0.0.0.0:8080 \
    PAVEMETER_STORE__DATA_DIR=/var/lib/pavemeter
EXPOSE 8080
# No curl in the slim image: bash's /dev/tcp speaks just enough HTTP to see /healthz answer 200.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=5 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["pavemeter"]
CMD ["serve"]
