# Build: docker build -t sfprocessor .
# Run:   docker run --rm -v /mnt/data:/data sfprocessor -config /etc/sfprocessor/pipeline.json /data
# Live:  DRIVER=socket INPUT_PATH=/sock/sysflow.sock as upstream's image (config/docker-compose.live.yml)
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY actors ./actors
COPY src ./src
COPY benches ./benches
COPY integration ./integration
RUN cargo build --release --locked --bin sfprocessor --bin sfgen --bin sfprint

FROM debian:bookworm-slim
# libssl3: TLS of the syslog, Kafka and Elasticsearch exporters (the slim image has none);
# ca-certificates: the system roots those exporters verify servers against.
# /sock: the volume the collector shares (upstream's image declares it); it must exist and
# belong to sysflow, or the agent cannot bind its socket there.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home --uid 1001 sysflow \
    && install -d -o sysflow -g sysflow -m 0750 /sock
COPY --from=build /src/target/release/sfprocessor /usr/local/bin/sfprocessor
COPY --from=build /src/target/release/sfgen /usr/local/bin/sfgen
COPY --from=build /src/target/release/sfprint /usr/local/bin/sfprint
COPY config/pipeline.example.json /etc/sfprocessor/pipeline.json
COPY config/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
USER sysflow
VOLUME /sock
# The agent's own probe (no curl in the image): ready when /readyz answers 200. It needs the
# metrics listener: METRICS (e.g. 0.0.0.0:9464) in the environment, or -metrics.
HEALTHCHECK --interval=30s --timeout=10s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/sfprocessor", "-health", "http://127.0.0.1:9464/readyz"]
# Without arguments the run comes from upstream's environment names (DRIVER, INPUT_PATH,
# CONFIG_PATH, LOG_LEVEL) plus METRICS; with arguments they are sfprocessor's.
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
