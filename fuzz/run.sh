#!/usr/bin/env bash
# Runs every fuzz target for SECONDS_PER_TARGET seconds, starting from the
# seeds in fuzz/corpus/<target> (inputs found along the way go to
# fuzz/work/<target>, not committed). Exits non-zero if any target crashes,
# panics, leaks or runs out of memory; the input is kept in
# fuzz/artifacts/<target>/ and can be replayed with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>
# Usage: fuzz/run.sh SECONDS_PER_TARGET
set -uo pipefail

seconds="${1:?usage: fuzz/run.sh SECONDS_PER_TARGET}"
fuzz_dir="$(cd "$(dirname "$0")" && pwd)"
cd "$fuzz_dir/.."

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked || exit 1
fi

targets=(native_json otlp_protobuf otlp_json gzip)
# No sanitizer: the targets assert their own invariants, and libFuzzer still
# catches panics, timeouts and memory past -rss_limit_mb; an AddressSanitizer
# build of the whole daemon takes several times longer to compile.
sanitizer="${FUZZ_SANITIZER:-none}"
cargo +nightly fuzz build --sanitizer "$sanitizer" || exit 1

mkdir -p "$fuzz_dir/logs"
failed=()
for target in "${targets[@]}"; do
    mkdir -p "$fuzz_dir/work/$target"
    log="$fuzz_dir/logs/$target.log"
    # -rss_limit_mb: a decoding that amplifies past the limits is a crash.
    cargo +nightly fuzz run --sanitizer "$sanitizer" "$target" "$fuzz_dir/work/$target" "$fuzz_dir/corpus/$target" -- \
        -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=512 -print_final_stats=1 \
        >"$log" 2>&1
    status=$?
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
    if [ "$status" -eq 0 ]; then
        echo "$target: ok, ${runs:-?} executions in ${seconds}s"
    else
        echo "$target: FAILED (exit $status) after ${runs:-?} executions; see $log"
        grep -E '^(==[0-9]+==|thread .* panicked|SUMMARY)' "$log" | head -5
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "crashed: ${failed[*]}"
    exit 1
fi
