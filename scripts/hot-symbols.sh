#!/usr/bin/env bash
# Writes scripts/hot-symbols.txt: the functions of the release daemon that run
# while it starts, sits idle for 135 s (five host samples, the OpenClaw
# followers' looks, /health asked every 15 s as Fly's check does) and shuts
# down, hottest first. build.rs
# has the linker put them at the start of the code (see there for why).
#
# Usage: scripts/hot-symbols.sh   (in CARGO_TARGET_DIR when set)
# Run it again after updating dependencies or the Rust toolchain, or after
# large changes: it prints how many of the listed names the binary still has.
# Needs valgrind (installed from Debian's packages when missing), curl and
# python3. Takes about 3 minutes beside the build and a relink.
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
trap 'rm -rf "$dir"' EXIT
nm --defined-only "$bin" | awk '{print $3}' | sort -u >"$dir/names"
if [ -s "$list" ]; then
  have=$(sort -u "$list" | comm -12 - "$dir/names" | wc -l)
  echo "before: the binary has $have of the $(wc -l <"$list") names listed"
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
TRACE_LISTEN_ADDR=127.0.0.1:$port TRACE_OTLP_LISTEN_ADDR=127.0.0.1:0 \
  TRACE_DB_PATH="$dir/trace.db" \
  valgrind --tool=callgrind --demangle=no --compress-strings=no --compress-pos=no \
  --callgrind-out-file="$dir/callgrind.out" "$bin" >"$dir/daemon.log" 2>&1 &
pid=$!
# Past the 120 s at which benches/idle_cpu.sh reads the RSS.
for _ in 1 2 3 4 5 6 7 8 9; do
  sleep 15
  curl -fsS "http://127.0.0.1:$port/health" >/dev/null || echo "warning: /health did not answer" >&2
done
kill -TERM "$pid"
wait "$pid" || { tail -20 "$dir/daemon.log" >&2; exit 1; }

python3 - "$dir/callgrind.out" "$bin" "$dir/names" >"$list" <<'EOF'
import re, sys
out, binary, names_file = sys.argv[1:]
names = set(open(names_file).read().split())
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
for name in sorted(cost, key=lambda n: (-cost[n], n)):
    print(name)
EOF
echo "$list: $(wc -l <"$list") functions run"

# Link target/release/openclaw-trace stripped again, with the new list.
cargo build --release --locked --quiet --bin openclaw-trace
