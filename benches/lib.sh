# Shared by the benchmark scripts (sourced, not run): building the release
# daemon and the baselines once, starting them, driving wrk, cleaning up.
#
# Every process started through `bench_spawn` and every directory made
# through `bench_tmpdir` is stopped or removed on exit, whatever the exit.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
# Where results go: run.sh sets one for the whole run; a part run alone
# gets its own.
BENCH_OUT=${BENCH_OUT:-$TARGET/bench-results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$BENCH_OUT"
export BENCH_OUT

_bench_pids=()
_bench_dirs=()

# Whether $1 is still a child of this shell (not exited and reused).
_bench_ours() { [[ $(ps -o ppid= -p "$1" 2>/dev/null | tr -d ' ') == "$BASHPID" ]]; }

bench_cleanup() {
  local pid live=()
  for pid in "${_bench_pids[@]}"; do
    _bench_ours "$pid" && live+=("$pid") && kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${live[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    _bench_ours "$pid" && kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  _bench_pids=()
  local d
  for d in "${_bench_dirs[@]}"; do rm -rf "$d"; done
  _bench_dirs=()
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "benches: $*" >&2; exit 1; }
note() { echo "== $*" >&2; }

# A temporary directory removed on exit.
bench_tmpdir() {
  local d
  d=$(mktemp -d "${TMPDIR:-/tmp}/openclaw-bench.XXXXXX")
  _bench_dirs+=("$d")
  BENCH_TMP=$d
}

# Starts "$@" in the background, tracked for cleanup; its pid in SPAWNED.
bench_spawn() {
  "$@" &
  SPAWNED=$!
  _bench_pids+=("$SPAWNED")
}

# Waits for a tracked process to end by itself; fails as it failed.
bench_wait() {
  local pid=$1 status=0 keep=() p
  wait "$pid" || status=$?
  for p in "${_bench_pids[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
  _bench_pids=("${keep[@]+"${keep[@]}"}")
  return "$status"
}

# Runs "$@" as a tracked child and waits for it: unlike a foreground
# command, a signal to this script is handled at once (and the child
# stopped by the cleanup), not after the command ends.
bench_run() {
  bench_spawn "$@"
  bench_wait "$SPAWNED"
}

# Stops a tracked process with SIGTERM and waits for it (10 s, then KILL);
# its exit status in STOPPED_STATUS.
bench_stop() {
  local pid=$1
  _bench_ours "$pid" && kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  _bench_ours "$pid" && kill -KILL "$pid" 2>/dev/null || true
  STOPPED_STATUS=0
  wait "$pid" 2>/dev/null || STOPPED_STATUS=$?
  local keep=() p
  for p in "${_bench_pids[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
  _bench_pids=("${keep[@]+"${keep[@]}"}")
}

# bench_need COMMAND PACKAGE: installs Debian's PACKAGE when COMMAND is
# missing (as root; otherwise says what to install and stops).
bench_need() {
  command -v "$1" >/dev/null && return
  [[ $(id -u) == 0 ]] || die "$1 is needed: apt-get install -y $2"
  note "installing $2 (apt-get install -y $2)"
  local log=$BENCH_OUT/apt-$2.log
  mkdir -p "$BENCH_OUT"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >"$log" 2>&1 ||
    { DEBIAN_FRONTEND=noninteractive apt-get update -qq >>"$log" 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >>"$log" 2>&1; } ||
    { tail -20 "$log" >&2; die "could not install $2 (apt's output: $log)"; }
}

# Builds, once per run, the release daemon and the baselines
# (benches/baseline.rs) with the same release profile; sets DAEMON_BIN and
# BASELINE_BIN (copies in $BENCH_OUT/bin, so a later build cannot change
# them under a run).
#
# The baseline target is built first: building it turns on the
# dev-dependencies' features (fault injection in the actors crate) and
# cargo then also links a daemon with them. The daemon is then built on its
# own, without them, and checked.
bench_build() {
  if [[ ${BENCH_BUILT:-} == 1 ]]; then return; fi
  bench_need jq jq
  mkdir -p "$BENCH_OUT/bin"
  note "building the baselines (cargo build --release --bench baseline)"
  local exe
  exe=$(cd "$ROOT" && cargo build --release --bench baseline --message-format=json -q |
    jq -r 'select(.reason == "compiler-artifact" and .target.name == "baseline") | .executable // empty' | tail -n1)
  [[ -x $exe ]] || die "no baseline executable from cargo"
  cp "$exe" "$BENCH_OUT/bin/baseline"
  note "building the release daemon (cargo build --release --bin openclaw-trace)"
  (cd "$ROOT" && cargo build --release --bin openclaw-trace -q)
  cp "$TARGET/release/openclaw-trace" "$BENCH_OUT/bin/openclaw-trace"
  # The injected panic's message is compiled in only with the feature.
  if grep -qa 'fault injected by a test' "$BENCH_OUT/bin/openclaw-trace"; then
    die "the release daemon was built with fault injection (dev-dependency features)"
  fi
  DAEMON_BIN=$BENCH_OUT/bin/openclaw-trace
  BASELINE_BIN=$BENCH_OUT/bin/baseline
  BENCH_BUILT=1
  export DAEMON_BIN BASELINE_BIN BENCH_BUILT
}

# Waits until the daemon logging to $1 says it listens; its address in ADDR.
bench_wait_listening() {
  local log=$1 pid=$2
  ADDR=
  for _ in $(seq 600); do
    ADDR=$(jq -r 'select(.msg == "listening") | .addr' "$log" 2>/dev/null | head -n1 || true)
    [[ -n $ADDR ]] && return
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "the daemon exited at start"; }
    sleep 0.05
  done
  die "the daemon did not listen within 30 s"
}

# Starts the release daemon on an empty database in directory $1 on a free
# port, with extra VAR=value arguments; sets DAEMON_PID and ADDR.
bench_start_daemon() {
  local dir=$1; shift
  bench_spawn env TRACE_LISTEN_ADDR=127.0.0.1:0 TRACE_DB_PATH="$dir/trace.db" \
    TRACE_LOG_LEVEL=info "$@" "$DAEMON_BIN" >"$dir/daemon.log" 2>&1
  DAEMON_PID=$SPAWNED
  bench_wait_listening "$dir/daemon.log" "$DAEMON_PID"
}

# One field of /proc/PID/status in kB (VmRSS, VmHWM).
proc_kib() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }

# Runs wrk with "$@" (a script from benches/wrk, which prints a WRKJSON
# line), saving its output to $1.txt and the numbers to $1.json; fails on
# any socket error (connect, read, write, timeout). Non-2xx answers are
# kept in the JSON ("non_2xx") for the report, never counted as throughput.
bench_wrk() {
  local out=$1; shift
  bench_need wrk wrk
  bench_run wrk "$@" >"$out.txt" 2>&1 || { cat "$out.txt" >&2; die "wrk failed: wrk $*"; }
  grep '^WRKJSON ' "$out.txt" | sed 's/^WRKJSON //' >"$out.json"
  [[ -s $out.json ]] || { cat "$out.txt" >&2; die "wrk printed no WRKJSON line"; }
  local errors
  errors=$(jq '.connect_errors + .read_errors + .write_errors + .timeouts' "$out.json")
  if [[ $errors != 0 ]]; then
    cat "$out.txt" >&2
    die "wrk reported $errors socket errors (wrk $*)"
  fi
  local non2xx
  non2xx=$(jq .non_2xx "$out.json")
  [[ $non2xx == 0 ]] || note "wrk: $non2xx non-2xx answers (reported, not counted as throughput)"
}

# The machine and build, for the report.
bench_meta() {
  jq -n --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --arg commit "$(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- . ':!BENCHMARKS.md' || echo '+changes')" \
    --arg nproc "$(nproc)" \
    --arg mem_kib "$(awk '/MemTotal/ {print $2}' /proc/meminfo)" \
    --arg cpu "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)" \
    --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
    --arg kernel "$(uname -r)" \
    --arg command "${BENCH_COMMAND:-}" \
    '{date: $date, commit: $commit, nproc: ($nproc | tonumber), mem_kib: ($mem_kib | tonumber), cpu: $cpu, load_at_start: $load, kernel: $kernel, command: $command}'
}
