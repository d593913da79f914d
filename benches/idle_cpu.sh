#!/usr/bin/env bash
# Idle footprint, side by side in one run: the release daemon (empty
# database, default 30 s host-sampling interval; it also stores every
# sample in SQLite), prometheus-node-exporter (default collectors, scraped
# every 30 s, as a Prometheus server would) and collectd (cpu, memory,
# swap, df, disk, interface, load, processes, tcpconns, written to CSV
# every 30 s), all three started at once and left idle.
#
# CPU (share of one core) from 10 s after start over DURATION seconds
# (default 120: four sampling intervals), as the process's time on CPU in
# nanoseconds (its CPU-time clock, threads that exited included; the clock
# ticks of `/proc/PID/stat` are 10 ms, too coarse for a few tens of ms, and
# are shown beside it); RSS read RSS_AT seconds after start (default 120).
# Takes 10 + DURATION seconds.
#
#   benches/idle_cpu.sh            # or: benches/run.sh idle
#
# Needs Debian's prometheus-node-exporter and collectd-core (installed here
# when missing and running as root):
#   apt-get install -y prometheus-node-exporter collectd-core
set -euo pipefail
source "$(dirname "$0")/lib.sh"

duration=${DURATION:-120}
rss_at=${RSS_AT:-120}
(( rss_at >= 10 && rss_at <= 10 + duration )) || die "RSS_AT must be within 10 .. 10 + DURATION"
out=$BENCH_OUT/idle
mkdir -p "$out"

bench_need prometheus-node-exporter prometheus-node-exporter
bench_need collectd collectd-core
bench_build
bench_tmpdir; dir=$BENCH_TMP

# A port nothing listens on, for node-exporter.
free_port() {
  local port
  for _ in $(seq 100); do
    port=$(( 20000 + RANDOM % 40000 ))
    ss -Htln "sport = :$port" | grep -q . || { echo "$port"; return; }
  done
  die "no free port"
}
node_port=$(free_port)

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

note "idle: daemon, prometheus-node-exporter and collectd together for $(( 10 + duration )) s"
start=$(date +%s.%N)
bench_start_daemon "$dir"
trace=$DAEMON_PID
bench_spawn prometheus-node-exporter --web.listen-address="127.0.0.1:$node_port" >"$dir/node.log" 2>&1
node=$SPAWNED
bench_spawn collectd -f -C "$dir/collectd.conf" >"$dir/collectd.log" 2>&1
collectd=$SPAWNED
scrape() {
  local nap=
  trap '[[ -n $nap ]] && kill "$nap" 2>/dev/null; exit 0' TERM
  while :; do
    sleep 30 & nap=$!
    wait "$nap" || true
    curl -s -o /dev/null --max-time 10 "http://127.0.0.1:$node_port/metrics" || true
  done
}
bench_spawn scrape
scraper=$SPAWNED

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# Nanoseconds on CPU of the whole process, threads that have exited
# included: its CPU-time clock (clock id ((~pid) << 3) | 2, CPUCLOCK_SCHED).
cpu_ns() { python3 -c 'import sys, time; print(time.clock_gettime_ns(((~int(sys.argv[1])) << 3) | 2))' "$1"; }
# Sleeps until `at` seconds after start.
until_s() { local left; left=$(awk -v s="$start" -v at="$1" -v now="$(date +%s.%N)" 'BEGIN { d = s + at - now; print (d > 0 ? d : 0) }'); bench_run sleep "$left"; }

until_s 10 # start-up is not idle
declare -A before before_ns rss hwm threads
for p in $trace $node $collectd; do before[$p]=$(ticks "$p"); before_ns[$p]=$(cpu_ns "$p"); done
t0=$(date +%s.%N)
read_mem() {
  for p in $trace $node $collectd; do
    rss[$p]=$(proc_kib "$p" VmRSS); hwm[$p]=$(proc_kib "$p" VmHWM)
    threads[$p]=$(awk '/^Threads:/ { print $2 }' "/proc/$p/status")
  done
}
if (( rss_at < 10 + duration )); then until_s "$rss_at"; read_mem; fi
until_s $(( 10 + duration ))
declare -A after after_ns
for p in $trace $node $collectd; do after[$p]=$(ticks "$p"); after_ns[$p]=$(cpu_ns "$p"); done
t1=$(date +%s.%N)
(( rss_at < 10 + duration )) || read_mem
hz=$(getconf CLK_TCK)
for p in $trace $node $collectd; do kill -0 "$p" 2>/dev/null || die "process $p exited while idle"; done
host_series=$(curl -s "http://$ADDR/metrics" | grep -c '^openclaw_trace_host' || true)
bench_stop "$scraper"

{
  for name in openclaw-trace:$trace prometheus-node-exporter:$node collectd:$collectd; do
    p=${name##*:}
    jq -n --arg name "${name%%:*}" --argjson ticks $(( after[$p] - before[$p] )) --argjson hz "$hz" \
      --argjson ns $(( after_ns[$p] - before_ns[$p] )) \
      --argjson t0 "$t0" --argjson t1 "$t1" --argjson rss "${rss[$p]}" --argjson hwm "${hwm[$p]}" \
      --argjson threads "${threads[$p]}" \
      '{name: $name, cpu_ticks: $ticks, cpu_ns: $ns, cpu_pct: (100 * $ns / 1e9 / ($t1 - $t0)), rss_kib: $rss, hwm_kib: $hwm, threads: $threads}'
  done
} | jq -s --argjson d "$duration" --argjson r "$rss_at" --argjson hz "$hz" --argjson s "$host_series" \
  '{cpu_from_s: 10, cpu_seconds: $d, rss_at_s: $r, hz: $hz, daemon_host_series: $s, processes: .}' >"$out/result.json"

bench_stop "$trace"
[[ $STOPPED_STATUS == 0 ]] || die "the daemon exited $STOPPED_STATUS after SIGTERM"
python3 "$ROOT/benches/report.py" section idle "$BENCH_OUT"
