#!/usr/bin/env bash
# The benchmarks of BENCHMARKS.md, in one run: builds the release daemon and
# the baselines (benches/baseline.rs) with the release profile, measures
# every figure next to a baseline measured in the same run, and rewrites
# BENCHMARKS.md's generated part (with the date, commit, machine and this
# command).
#
#   benches/run.sh                 # everything (~5.5 min on 2 cores), writes BENCHMARKS.md
#   benches/run.sh otlp            # one part, printed only: idle | size | ingest | otlp
#   benches/run.sh ingest otlp     # several parts, printed only
#   benches/run.sh extra           # the longer benches kept from earlier issues (not in "all")
#
# Parts (each also runs alone as its own script):
#   idle    benches/idle_cpu.sh       idle RSS and CPU beside node-exporter and collectd (130 s)
#   size    the stripped binary's size
#   ingest  benches/ingest_wrk.sh     1-record POST /v1/traces, wrk, beside a do-nothing handler,
#                                     and again with the database on tmpfs (~60 s)
#   otlp    benches/otlp_sustained.sh OTLP 100-span requests sustained 60 s at -c4 and -c16,
#                                     beside raw SQLite inserts of the same rows, and a
#                                     decode-only handler (~2.5 min)
#   extra   cargo bench --bench summary, --bench push; benches/rotation_latency.sh;
#           benches/size_bound.sh (figures in docs/benchmarks-history.md)
#
# Needs wrk, jq, curl, python3 and (idle) prometheus-node-exporter and
# collectd-core from Debian's packages. CARGO_TARGET_DIR is honoured; raw
# results are kept in $CARGO_TARGET_DIR/bench-results/<time>/ (or BENCH_OUT).
set -euo pipefail
export BENCH_COMMAND="benches/run.sh${*:+ $*}"
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

all=(size idle ingest otlp)
parts=("$@")
write=0
if (( ${#parts[@]} == 0 )) || [[ ${parts[*]} == all ]]; then
  parts=("${all[@]}")
  write=1
fi
for p in "${parts[@]}"; do
  case $p in idle | size | ingest | otlp | extra) ;; *) die "unknown part '$p' (idle, size, ingest, otlp, extra; none for all)" ;; esac
done

started=$(date +%s)
bench_meta >"$BENCH_OUT/meta.json"
note "results in $BENCH_OUT"
# Before the build, not at the first wrk minutes into a run.
for p in "${parts[@]}"; do
  case $p in ingest | otlp) bench_need wrk wrk ;; esac
done
bench_build

# The stripped size of a copy of $1.
stripped_size() {
  cp "$1" "$BENCH_TMP/stripped"
  strip "$BENCH_TMP/stripped"
  stat -c %s "$BENCH_TMP/stripped"
}

size() {
  local bin=$DAEMON_BIN node collectd p
  bench_tmpdir
  # The peers of the idle part, as installed (Debian's builds), stripped
  # the same way: node-exporter's one binary; collectd's daemon and the ten
  # plugins the idle part loads (it also links libltdl, not counted).
  bench_need prometheus-node-exporter prometheus-node-exporter
  bench_need collectd collectd-core
  node=$(stripped_size "$(command -v prometheus-node-exporter)")
  collectd=$(stripped_size "$(command -v collectd)")
  for p in cpu memory swap df disk interface load processes tcpconns csv; do
    collectd=$(( collectd + $(stripped_size "/usr/lib/collectd/$p.so") ))
  done
  jq -n --argjson bytes "$(stat -c %s "$bin")" --argjson stripped "$(stripped_size "$bin")" \
    --arg file "$(file -b "$bin" | cut -d, -f1-2), $(file -b "$bin" | grep -o 'not stripped\|stripped')" \
    --argjson node "$node" --argjson collectd "$collectd" \
    '{bytes: $bytes, stripped_bytes: $stripped, file: $file, node_exporter_bytes: $node, collectd_bytes: $collectd}' >"$BENCH_OUT/size.json"
  python3 benches/report.py section size "$BENCH_OUT"
}

extra() {
  note "extra: cargo bench --bench summary"
  cargo bench --bench summary
  note "extra: cargo bench --bench push"
  cargo bench --bench push
  note "extra: benches/rotation_latency.sh"
  benches/rotation_latency.sh
  note "extra: benches/size_bound.sh"
  benches/size_bound.sh
}

# A part's script as a tracked child: stopped with this run (and its own
# children and temp dirs with it) if the run is interrupted.
part() {
  bench_spawn "$@"
  bench_wait "$SPAWNED"
}

for p in "${parts[@]}"; do
  case $p in
    size) size ;;
    idle) part benches/idle_cpu.sh ;;
    ingest) part benches/ingest_wrk.sh ;;
    otlp) part benches/otlp_sustained.sh ;;
    extra) extra ;;
  esac
done

tmp=$(jq --argjson s $(( $(date +%s) - started )) '. + {run_seconds: $s}' "$BENCH_OUT/meta.json")
echo "$tmp" >"$BENCH_OUT/meta.json"
if (( write )); then
  python3 benches/report.py write "$BENCH_OUT" BENCHMARKS.md
  note "BENCHMARKS.md rewritten ($(( $(date +%s) - started )) s)"
else
  note "done in $(( $(date +%s) - started )) s; BENCHMARKS.md is rewritten only by a run of every part (benches/run.sh)"
fi
