#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time, one after another, and reports per target the
# executions and whether it found anything. Not run in CI. See fuzz/README.md.
#
#   scripts/fuzz.sh                      # every target, 600 s each
#   FUZZ_SECONDS=30 scripts/fuzz.sh      # a smoke run
#   FUZZ_TARGETS="loki_json wal_records" scripts/fuzz.sh
#
# Environment:
#   FUZZ_SECONDS      seconds per target (default 600)
#   FUZZ_TARGETS      space-separated targets (default: all, from `cargo fuzz list`)
#   FUZZ_RSS_MB       libFuzzer -rss_limit_mb (default 2048)
#   FUZZ_MALLOC_MB    libFuzzer -malloc_limit_mb: a single allocation above it is a finding (default 1024)
#   FUZZ_TIMEOUT      libFuzzer -timeout, seconds for one input before it counts as a hang (default 25)
#   FUZZ_CORPUS_DIR   where each target's growing corpus is kept (default ~/.cache/vigil-fuzz-corpus);
#                     the committed seeds in fuzz/corpus/<target>/ are read, never written
#   CARGO_TARGET_DIR  build directory (default ~/.cache/vigil-fuzz-target)
#
# Crash, timeout and out-of-memory inputs land in fuzz/artifacts/<target>/; logs in fuzz/logs/. Exits 1 if
# any target found something, 2 if a build or a run failed for another reason.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"

seconds="${FUZZ_SECONDS:-600}"
rss_mb="${FUZZ_RSS_MB:-2048}"
malloc_mb="${FUZZ_MALLOC_MB:-1024}"
timeout="${FUZZ_TIMEOUT:-25}"
corpus_root="${FUZZ_CORPUS_DIR:-$HOME/.cache/vigil-fuzz-corpus}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigil-fuzz-target}"
# cargo-fuzz passes nightly-only flags (-Zsanitizer); this lets a stable toolchain take them.
export RUSTC_BOOTSTRAP=1
build_flags=(-O --debug-assertions)

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
if ! command -v c++ >/dev/null 2>&1 && ! command -v clang++ >/dev/null 2>&1; then
    echo "libfuzzer-sys needs a C++ compiler (apt-get install -y g++ or clang)" >&2
    exit 2
fi

if [[ -n "${FUZZ_TARGETS:-}" ]]; then
    read -r -a targets <<<"$FUZZ_TARGETS"
else
    mapfile -t targets < <(cargo fuzz list)
fi

echo "== building ${#targets[@]} targets"
cargo fuzz build "${build_flags[@]}"

mkdir -p logs
summary="logs/summary.md"
{
    echo "| target | seconds | execs | findings |"
    echo "| --- | ---: | ---: | --- |"
} >"$summary"

found=0
failed=0
for t in "${targets[@]}"; do
    work="$corpus_root/$t"
    artifacts="artifacts/$t"
    mkdir -p "$work" "$artifacts" "corpus/$t"
    before="$(ls "$artifacts" | sort)"
    log="logs/$t.log"
    echo "== $t: ${seconds}s"
    cargo fuzz build "${build_flags[@]}" "$t" >"$log" 2>&1 || true
    start=$(date +%s)
    status=0
    # One in-process job (libFuzzer's default; -jobs=1 would only move the output to fuzz-0.log).
    cargo fuzz run "${build_flags[@]}" "$t" "$work" "corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb="$rss_mb" -malloc_limit_mb="$malloc_mb" \
        -timeout="$timeout" -report_slow_units=1000000 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" >>"$log" 2>&1 || status=$?
    elapsed=$(($(date +%s) - start))
    execs="$(grep -oE 'Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' | tail -1 || true)"
    [[ -n "$execs" ]] || execs="$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1 || true)"
    [[ -n "$execs" ]] || execs="$(grep -oE '^#[0-9]+' "$log" | tr -d '#' | tail -1 || true)"
    new="$(comm -13 <(echo "$before") <(ls "$artifacts" | sort) | grep -E '^(crash|timeout|oom|leak)-' || true)"
    if [[ -n "$new" ]]; then
        found=1
        findings="$(echo "$new" | sed "s|^|$artifacts/|" | paste -sd ' ' -)"
        echo "   FOUND after ${elapsed}s, ${execs:-?} execs: $findings (log: fuzz/$log)"
        grep -m1 -E 'panicked at|ERROR: (libFuzzer|AddressSanitizer)' "$log" | sed 's/^/   /' || true
    elif [[ $status -ne 0 ]]; then
        failed=1
        findings="run failed (exit $status), see fuzz/$log"
        echo "   $findings"
        tail -5 "$log" | sed 's/^/   /'
    else
        findings="none"
        echo "   ok: ${execs:-?} execs in ${elapsed}s, no findings"
    fi
    echo "| $t | $elapsed | ${execs:-?} | $findings |" >>"$summary"
done

echo
cat "$summary"
if [[ $found -ne 0 ]]; then
    exit 1
fi
if [[ $failed -ne 0 ]]; then
    exit 2
fi
