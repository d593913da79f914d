# openclaw-trace added to OpenClaw's own image.
#
#   docker build -t my-openclaw-with-trace .
#   docker build --build-arg OPENCLAW_IMAGE=openclaw/openclaw:<tag> .
#
# Stage 1 builds the release binary on the official Rust image (Debian
# bookworm, the base of OpenClaw's images, so the binary finds the glibc it
# was linked against). Stage 2 is OpenClaw's published image with the binary
# at /usr/local/bin/openclaw-trace and the start script beside it; the
# image's user (node, uid 1000), entrypoint (tini) and health check are kept.
#
# Every command here is also run by tests/deploy.rs outside a container
# (the build command in the repository, the final stage's check on the built
# binary and the script), as no container engine was at hand to build it.

ARG RUST_IMAGE=rust:1.95.0-bookworm
# OpenClaw's published image, under the name its docs give for the mirror
# each release is pushed to (its primary name works as well).
ARG OPENCLAW_IMAGE=openclaw/openclaw:2026.9.6

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM ${OPENCLAW_IMAGE}
COPY --from=build /src/target/release/openclaw-trace /usr/local/bin/openclaw-trace
COPY scripts/start-with-openclaw.sh /usr/local/bin/start-with-openclaw.sh
RUN ["/usr/local/bin/openclaw-trace", "--version"]
