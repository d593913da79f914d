#!/usr/bin/env bash
# Writes scripts/hot-symbols.txt: the functions of the release daemon that run
# while it starts, sits idle for 135 s beside an agent process (five host
# samples, the OpenClaw followers' looks, /health asked every 15 s as Fly's
# check does) and shuts down, by the instructions run in them and in what
# they call, most first. build.rs has the linker put them at the start of
# the code (see there for why). The list's first lines name the rustc and
# the Cargo.lock it was taken with; a build with others warns that it is
# stale.
#
# Usage: scripts/hot-symbols.sh   (in CARGO_TARGET_DIR when set)
# Run it again after updating dependencies or the Rust toolchain, or after
# large changes: it prints how many of the listed names the binary still has.
# Needs valgrind (installed from Debian's packages when missing), curl and
# python3. Takes about 5 minutes: a build, the 135 s run, a relink.
set -euo pipefail
cd "$(dirname "$0")/.."
list=scripts/hot-symbols.txt
target=${CARGO_TARGET_DIR:-target}
bin=$target/release/openclaw-trace

if ! command -v valgrind >/dev/null 2>&1; then
  as_root=""
  [ "$(id -u)" = 0 ] || as_root="sudo"
  $as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
fi

# The same build as `cargo build --release`, but not stripped: the symbols
# keep the names the stripped build gives them.
OPENCLAW_TRACE_KEEP_SYMBOLS=1 cargo build --release --locked --quiet --bin openclaw-trace
dir=$(mktemp -d)
pid=
trap 'kill $pid $agent_pid 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
nm --defined-only "$bin" | awk '{print $3}' | sort -u >"$dir/names"
if [ -s "$list" ]; then
  have=$(grep -v '^#' "$list" | sort -u | comm -12 - "$dir/names" | wc -l)
  echo "before: the binary has $have of the $(grep -cv '^#' "$list") names listed"
fi

# A clean environment: nothing of this machine's OpenClaw or push settings,
# and a stand-in agent (a sleeping process whose command line names
# OpenClaw, which the host sample watches as the agent), started again once
# so that the sample's agent restart is counted too.
agent() { python3 -c 'import time; time.sleep(600)' openclaw-agent-stand-in & agent_pid=$!; }
agent_pid=
agent
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
env -i PATH="$PATH" HOME="$dir" TRACE_LISTEN_ADDR="127.0.0.1:$port" \
  TRACE_OTLP_LISTEN_ADDR=127.0.0.1:0 TRACE_DB_PATH="$dir/trace.db" \
  valgrind --tool=callgrind --demangle=no --compress-strings=no --compress-pos=no \
  --callgrind-out-file="$dir/callgrind.out" "$bin" >"$dir/daemon.log" 2>&1 &
pid=$!
# Past the 120 s at which benches/idle_cpu.sh reads the RSS.
for i in 1 2 3 4 5 6 7 8 9; do
  sleep 15
  if [ "$i" = 4 ]; then kill "$agent_pid"; wait "$agent_pid" 2>/dev/null || true; agent; fi
  kill -0 "$pid" 2>/dev/null || { tail -20 "$dir/daemon.log" >&2; echo "the daemon exited" >&2; exit 1; }
  curl -fsS "http://127.0.0.1:$port/health" >/dev/null || echo "warning: /health did not answer" >&2
done
kill -TERM "$pid"
# Its shutdown may overrun its 4.5 s deadline under valgrind (exit 1): the
# functions it ran are counted all the same.
wait "$pid" || true
pid=
[ -s "$dir/callgrind.out" ] || { tail -20 "$dir/daemon.log" >&2; exit 1; }

python3 - "$dir/callgrind.out" "$bin" "$dir/names" Cargo.lock "$(rustc -V)" >"$dir/list" <<'EOF'
import re, sys
out, binary, names_file, lock, rustc = sys.argv[1:]
names = set(open(names_file).read().split())
fnv = 0xCBF29CE484222325
for b in open(lock, "rb").read():
    fnv = ((fnv ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
cost = {}
obj = None
current = None
for line in open(out):
    if line.startswith("ob="):
        obj = line[3:].strip()
    elif line.startswith("fn="):
        # callgrind marks recursion levels with 'N
        name = re.sub(r"'\d+$", "", line[3:].strip())
        current = name if obj and obj.endswith(binary.rsplit("/", 1)[-1]) and name in names else None
        if current:
            cost.setdefault(current, 0)
    elif current and line[:1].isdigit():
        fields = line.split()
        if len(fields) > 1:
            cost[current] += int(fields[1])
print("# Written by scripts/hot-symbols.sh for the build of:")
print(f"# {rustc}")
print(f"# Cargo.lock fnv1a64 {fnv:016x}")
for name in sorted(cost, key=lambda n: (-cost[n], n)):
    print(name)
EOF
mv "$dir/list" "$list"
echo "$list: $(grep -cv '^#' "$list") functions run"

# Link target/release/openclaw-trace stripped again, with the new list.
cargo build --release --locked --quiet --bin openclaw-trace
