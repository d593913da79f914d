#!/usr/bin/env bash
# How fast the release daemon follows OpenClaw's files and how far behind it
# stays: a 100 MB gateway log (lines/s, VmHWM, against Python's json.loads
# over the same lines in the same run), a transcript of 100,000 calls
# (calls/s), and the lag of both under a steady writer at the default 5 s
# poll. Usage: benches/openclaw_follow.sh [tail|transcript|lag ...]
# (LOG_MB, CALLS, RATE, SECONDS_STEADY adjust the sizes).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin openclaw-trace
DAEMON_BIN=${CARGO_TARGET_DIR:-target}/release/openclaw-trace
export DAEMON_BIN
exec python3 benches/openclaw_follow.py "$@"
