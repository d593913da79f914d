#!/usr/bin/env bash
# Idle cost of host sampling: CPU (share of one core) and RSS of the release
# daemon at its default 30 s interval over DURATION seconds (default 300),
# side by side in the same run with prometheus-node-exporter (default
# collectors, scraped every 30 s, as a Prometheus server would) and collectd
# (cpu, memory, swap, df, disk, interface, load, processes, tcpconns, written
# to CSV every 30 s). The daemon also stores every sample in SQLite.
#
# Needs Debian's prometheus-node-exporter and collectd-core:
#   apt-get install -y prometheus-node-exporter collectd-core
# The daemon is built in CARGO_TARGET_DIR when set; BASELINE_BIN=path runs
# that binary too, in the same run, and reports it as "baseline".
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${DURATION:-300}
cargo build --release --quiet
dir=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

TRACE_LISTEN_ADDR=127.0.0.1:19510 TRACE_DB_PATH="$dir/trace.db" "${CARGO_TARGET_DIR:-target}/release/openclaw-trace" >"$dir/trace.log" &
pids+=($!); trace=$!
rows="openclaw-trace:$trace"
if [ -n "${BASELINE_BIN:-}" ]; then
  TRACE_LISTEN_ADDR=127.0.0.1:19512 TRACE_DB_PATH="$dir/baseline.db" "$BASELINE_BIN" >"$dir/baseline.log" &
  pids+=($!); rows="$rows baseline:$!"
fi
prometheus-node-exporter --web.listen-address=127.0.0.1:19511 >"$dir/node.log" 2>&1 &
pids+=($!); node=$!
cat >"$dir/collectd.conf" <<CONF
Interval 30
FQDNLookup false
BaseDir "$dir"
PIDFile "$dir/collectd.pid"
PluginDir "/usr/lib/collectd"
LoadPlugin cpu
LoadPlugin memory
LoadPlugin swap
LoadPlugin df
LoadPlugin disk
LoadPlugin interface
LoadPlugin load
LoadPlugin processes
LoadPlugin tcpconns
LoadPlugin csv
<Plugin processes>
  Process "node"
</Plugin>
<Plugin tcpconns>
  ListeningPorts false
  AllPortsSummary true
</Plugin>
<Plugin csv>
  DataDir "$dir/csv"
</Plugin>
CONF
collectd -f -C "$dir/collectd.conf" >"$dir/collectd.log" 2>&1 &
pids+=($!); collectd=$!
( while sleep 30; do curl -s -o /dev/null http://127.0.0.1:19511/metrics; done ) &
pids+=($!)

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
sleep 10 # start-up is not idle
declare -A before
for name in $rows node:$node collectd:$collectd; do p=${name##*:}; before[$p]=$(ticks "$p"); done
sleep "$duration"
hz=$(getconf CLK_TCK)
echo "idle over ${duration}s, same run; CPU as % of one core"
echo "| process | CPU | RSS at end | peak RSS |"
echo "| --- | --- | --- | --- |"
for name in $rows prometheus-node-exporter:$node collectd:$collectd; do
  p=${name##*:}
  used=$(( $(ticks "$p") - before[$p] ))
  cpu=$(awk -v t="$used" -v hz="$hz" -v d="$duration" 'BEGIN { printf "%.3f%%", 100 * t / hz / d }')
  rss=$(awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' "/proc/$p/status")
  hwm=$(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' "/proc/$p/status")
  echo "| ${name%%:*} | $cpu | $rss | $hwm |"
done
echo "samples stored by openclaw-trace: $(curl -s http://127.0.0.1:19510/metrics | grep -c '^openclaw_trace_host' || true) host series exposed"
