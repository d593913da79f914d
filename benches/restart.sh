#!/usr/bin/env bash
# The start script's restart timings, with the release daemon as the sidecar
# and tests/fixtures/stand-in-gateway.sh as the gateway:
#
# 1. KILLS times (default 7): the sidecar killed with SIGKILL, then the time
#    until the new one answers GET /health with 200 (the script's 1 s first
#    delay, the daemon's start, the first answer). Each kill comes after the
#    sidecar has been up longer than OPENCLAW_TRACE_STABLE_AFTER (set to 2 s
#    here), so every one starts from the first delay.
# 2. A sidecar that keeps dying (a bad TRACE_LOG_LEVEL, exit status 2): the
#    delays the script logs, and when each restart came, for DYING_SECONDS
#    (default 70).
#
# Usage: benches/restart.sh   (builds the release binary first, in
# CARGO_TARGET_DIR when set).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin openclaw-trace
bin=$(realpath "${CARGO_TARGET_DIR:-target}/release/openclaw-trace")
dir=$(mktemp -d)
script_pid=""
trap '[ -n "$script_pid" ] && kill -TERM "$script_pid" 2>/dev/null; sleep 1; rm -rf "$dir"' EXIT

now() { date +%s.%N; }

export OPENCLAW_TRACE_BIN=$bin GATEWAY_EXIT_FILE=$dir/exit-now
export TRACE_DB_PATH=$dir/trace.db TRACE_LISTEN_ADDR=127.0.0.1:0 TRACE_OTLP_LISTEN_ADDR=off

# The address of the sidecar's Nth start, from its "listening" lines.
addr_of() {
    local n=$1
    until [ "$(grep -c '"msg":"listening"' "$dir/log" || true)" -ge "$n" ]; do sleep 0.01; done
    grep '"msg":"listening"' "$dir/log" | sed -n "${n}p" | jq -r .addr
}

OPENCLAW_TRACE_STABLE_AFTER=2 scripts/start-with-openclaw.sh tests/fixtures/stand-in-gateway.sh >"$dir/log" 2>&1 &
script_pid=$!
addr_of 1 >/dev/null
times=()
for i in $(seq 1 "${KILLS:-7}"); do
    sleep 3 # past OPENCLAW_TRACE_STABLE_AFTER: the delay is back at its first value
    sidecar=$(pgrep -P "$script_pid" -f "$bin" | head -1)
    start=$(now)
    kill -KILL "$sidecar"
    addr=$(addr_of $((i + 1)))
    until curl -fsS -o /dev/null "http://$addr/health" 2>/dev/null; do sleep 0.01; done
    times+=("$(echo "$(now) - $start" | bc)")
done
printf 'kill -9 to /health 200 (s): %s\n' "${times[*]}"
printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "median %.3f s, min %.3f s, max %.3f s over %d kills\n", a[int((NR+1)/2)], a[1], a[NR], NR}'
kill -TERM "$script_pid"
wait "$script_pid" || echo "script exit status after SIGTERM: $? (the stand-in gateway's 42)"
script_pid=""

: >"$dir/log"
TRACE_LOG_LEVEL=loud scripts/start-with-openclaw.sh tests/fixtures/stand-in-gateway.sh >"$dir/log" 2>&1 &
script_pid=$!
sleep "${DYING_SECONDS:-70}"
kill -TERM "$script_pid"
wait "$script_pid" || true
script_pid=""
echo "a sidecar that keeps dying, over ${DYING_SECONDS:-70} s:"
grep '"service":"start-with-openclaw"' "$dir/log" | grep -E 'restarting it|restarted' |
    jq -r '[.ts[11:23], .msg, (.restart_in_s // "" | tostring)] | join("  ")'
