#!/usr/bin/env bash
# Idle footprint of the release daemon: RSS after it has sat idle for
# IDLE_SECONDS (default 60), and the stripped binary's size.
# Usage: benches/idle_rss.sh   (builds the release binary first)
set -euo pipefail
cd "$(dirname "$0")/.."
# Only the daemon (benches/run.sh builds the baselines too).
cargo build --release --quiet --bin openclaw-trace
bin=${CARGO_TARGET_DIR:-target}/release/openclaw-trace
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
TRACE_LISTEN_ADDR=127.0.0.1:0 TRACE_DB_PATH="$dir/idle.db" "$bin" >"$dir/log" &
pid=$!
sleep "${IDLE_SECONDS:-60}"
echo "binary: $(stat -c %s "$bin") bytes ($(file -b "$bin" | grep -o 'stripped\|not stripped'))"
grep -E 'VmRSS|VmHWM|Threads' "/proc/$pid/status"
kill -TERM "$pid"
wait "$pid" && echo "exit: 0 after SIGTERM"
