# Build: docker build -t sfprocessor .
# Run:   docker run --rm -v /mnt/data:/data sfprocessor -config /etc/sfprocessor/pipeline.json /data
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY actors ./actors
COPY src ./src
COPY benches ./benches
COPY integration ./integration
RUN cargo build --release --locked --bin sfprocessor --bin sfgen

FROM debian:bookworm-slim
RUN useradd --system --no-create-home sysflow
COPY --from=build /src/target/release/sfprocessor /usr/local/bin/sfprocessor
COPY --from=build /src/target/release/sfgen /usr/local/bin/sfgen
COPY config/pipeline.example.json /etc/sfprocessor/pipeline.json
USER sysflow
ENTRYPOINT ["/usr/local/bin/sfprocessor"]
CMD ["-config", "/etc/sfprocessor/pipeline.json", "/data"]
