#!/usr/bin/env bash
# How soon is an anomaly queryable after its sample arrives (issue 5: ≤ 2 s)?
#
# Builds the release `vigil` and `anomaly_latency` (benches/src/bin/anomaly_latency.rs), starts
# `vigil serve` on free 127.0.0.1 ports with a temporary data directory and no forwarder (default config:
# buffer.seal_interval 200ms, wal.fsync always, detection on), optionally puts background load on it with
# `loadgen`, then runs `anomaly_latency`: per repetition a fresh series' history by remote write, then one
# spike, then `GET /api/v1/anomalies?match[]=<series>` polled until the spike is listed. Prints p50/p95/max
# of the delay from the spike's 2xx answer to its listing (and of the answer itself), the machine and the
# exact command. Everything it starts is stopped on exit (SIGTERM, SIGKILL after 15 s); each run is
# bounded by `timeout`.
#
# Usage: benches/anomaly_latency.sh
# Knobs (environment):
#   REPETITIONS=20        spikes timed, each on a fresh series
#   HISTORY=300           samples of history per series before its spike (15 s apart)
#   POLL_MS=5             pause between two polls of the anomaly API
#   BACKGROUND_SERIES=0   if > 0, `loadgen` sends this many other series at one sample per second each
#                         during the measurement (their samples are scored too)
#   BACKGROUND_WARMUP=90  seconds of background load before measuring: loadgen's series are counters, which
#                         warm up twice (min_history samples on values, then as many on rates)
#   READY_TIMEOUT=60      longest wait for Vigil to become ready
#   KEEP_TMP=1            keep the temporary directory (Vigil's log, the data directory)
#   VIGIL_FEATURES=--no-default-features
#                         cargo feature flags of the `vigil` build: by default without `sql` (polars, a slow
#                         release build, not used here); VIGIL_FEATURES=--features=sql for the default binary
#   BIN_DIR=              take vigil, anomaly_latency and loadgen from this directory instead of building
#                         them (e.g. copies built from another commit, for a before/after comparison)
#   CARGO_TARGET_DIR      where the release binaries are built
set -euo pipefail

knobs=(REPETITIONS HISTORY POLL_MS BACKGROUND_SERIES BACKGROUND_WARMUP READY_TIMEOUT KEEP_TMP VIGIL_FEATURES
  BIN_DIR CARGO_TARGET_DIR)
given=()
for k in "${knobs[@]}"; do
  if [[ -n "${!k+x}" ]]; then given+=("$k=$(printf '%q' "${!k}")"); fi
done

REPETITIONS=${REPETITIONS:-20}
HISTORY=${HISTORY:-300}
POLL_MS=${POLL_MS:-5}
BACKGROUND_SERIES=${BACKGROUND_SERIES:-0}
BACKGROUND_WARMUP=${BACKGROUND_WARMUP:-90}
READY_TIMEOUT=${READY_TIMEOUT:-60}
KEEP_TMP=${KEEP_TMP:-0}
VIGIL_FEATURES=${VIGIL_FEATURES:---no-default-features}
BIN_DIR=${BIN_DIR:-}

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo_root/target}

log() { printf '[anomaly_latency] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in curl timeout; do
  command -v "$tool" >/dev/null || die "'$tool' not found in PATH"
done
for n in REPETITIONS HISTORY POLL_MS BACKGROUND_SERIES BACKGROUND_WARMUP READY_TIMEOUT; do
  [[ "${!n}" =~ ^[0-9]+$ ]] || die "$n must be a whole number"
done
((REPETITIONS > 0)) || die "REPETITIONS must be > 0"

if [[ -n "$BIN_DIR" ]]; then
  for b in vigil anomaly_latency loadgen; do [[ -x "$BIN_DIR/$b" ]] || die "$BIN_DIR/$b not found"; done
  bin_src=$BIN_DIR
  built="taken from $BIN_DIR"
else
  log "building vigil ($VIGIL_FEATURES), anomaly_latency and loadgen (release)"
  # shellcheck disable=SC2086 # VIGIL_FEATURES is a list of flags
  (cd "$repo_root" && CARGO_TARGET_DIR="$target_dir" cargo build --quiet --release --locked -p vigil --bin vigil \
    $VIGIL_FEATURES) || die "build failed"
  (cd "$repo_root" && CARGO_TARGET_DIR="$target_dir" cargo build --quiet --release --locked -p vigil-benches \
    --bin anomaly_latency --bin loadgen) || die "build failed"
  bin_src=$target_dir/release
  built="built with \`cargo build --release -p vigil $VIGIL_FEATURES\`"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vigil-latency.XXXXXX")
# Process bookkeeping (stop everything on exit) and free loopback ports: shared with the other bench scripts.
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Run copies: another build into a shared target directory must not swap a binary during the run.
mkdir -p "$tmp/bin"
cp "$bin_src/vigil" "$bin_src/anomaly_latency" "$bin_src/loadgen" "$tmp/bin/"
vigil_bin=$tmp/bin/vigil
latency_bin=$tmp/bin/anomaly_latency
loadgen_bin=$tmp/bin/loadgen

http_port=$(free_port)
grpc_port=$(free_port)
mkdir -p "$tmp/data"
vigil_args=(serve --http-listen "127.0.0.1:$http_port" --grpc-listen "127.0.0.1:$grpc_port" --data-dir "$tmp/data")
log "starting $vigil_bin ${vigil_args[*]}"
"$vigil_bin" "${vigil_args[@]}" >"$tmp/vigil.log" 2>&1 &
vigil_pid=$!
pids+=("$vigil_pid")
wait_ready vigil "$vigil_pid" "http://127.0.0.1:$http_port/health/ready" "$tmp/vigil.log"

# Each repetition waits at most 30 s for its history and 30 s for its spike; the whole run is bounded.
run_limit=$((REPETITIONS * 70 + BACKGROUND_WARMUP + 60))
background=""
if ((BACKGROUND_SERIES > 0)); then
  lg=("$loadgen_bin" --url "http://127.0.0.1:$http_port/api/v1/write" --series "$BACKGROUND_SERIES"
    --interval 1 --duration "$run_limit" --json)
  log "background load: ${lg[*]}"
  timeout --kill-after=10 $((run_limit + 30)) "${lg[@]}" >"$tmp/loadgen.json" 2>"$tmp/loadgen.log" &
  loadgen_pid=$!
  pids+=("$loadgen_pid")
  log "background warm-up, $BACKGROUND_WARMUP s"
  sleep "$BACKGROUND_WARMUP"
  kill -0 "$loadgen_pid" 2>/dev/null || die "loadgen exited early: $(tail -n 3 "$tmp/loadgen.log")"
  background=", while loadgen sends $BACKGROUND_SERIES other series at 1 sample/s each ($BACKGROUND_SERIES samples/s)"
fi

cmd=("$latency_bin" --url "http://127.0.0.1:$http_port" --repetitions "$REPETITIONS" --history "$HISTORY"
  --poll-ms "$POLL_MS")
log "running ${cmd[*]}"
# scored PORT: vigil_detect_samples_scored_total (0 before anything was scored).
scored() {
  curl -fsS --max-time 5 "http://127.0.0.1:$1/metrics" |
    awk '$1 == "vigil_detect_samples_scored_total" {v = $2} END {printf "%.0f\n", v + 0}'
}
scored_before=$(scored "$http_port")
run_start=$SECONDS
cpu_before=$(cpu_ticks "$vigil_pid")
timeout --kill-after=10 "$run_limit" "${cmd[@]}" >"$tmp/report.txt" 2>"$tmp/repetitions.log" &
run_pid=$!
pids+=("$run_pid")
status=0
wait "$run_pid" || status=$?
forget_pid "$run_pid"
cpu_after=$(cpu_ticks "$vigil_pid")
run_secs=$((SECONDS - run_start))
cat "$tmp/repetitions.log" >&2
((status == 0)) || die "anomaly_latency failed (status $status)"
kill -0 "$vigil_pid" 2>/dev/null || die "vigil exited during the run"
scored_after=$(scored "$http_port")

if [[ -n "$BIN_DIR" ]]; then
  version="from $BIN_DIR"
else
  version=$(git -C "$repo_root" describe --always --dirty 2>/dev/null || echo unknown)
fi
command_line="benches/anomaly_latency.sh"
if ((${#given[@]})); then command_line="${given[*]} $command_line"; fi
echo
echo "## Anomaly latency: spike sample → listed by /api/v1/anomalies"
echo
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)),"\
  "load average $(cut -d' ' -f1-3 /proc/loadavg); vigil $version"\
  "with its default config, no forwarder$background. Poll every $POLL_MS ms."
echo
cat "$tmp/report.txt"
echo "Vigil CPU during the run: $(awk -v a="$cpu_before" -v b="$cpu_after" -v hz="$(getconf CLK_TCK)" \
  'BEGIN { printf "%.2f", (b - a) / hz }') s over ${run_secs} s; samples scored meanwhile"\
  "(vigil_detect_samples_scored_total): $((scored_after - scored_before)), of which the spikes' series'"\
  "$((REPETITIONS * (HISTORY - 29)))"
echo
echo "Command: \`$command_line\`"
echo "Binaries $built."
echo "Processes (P, G = free loopback ports, TMP = a fresh temporary directory):"
echo "    $bin_src/vigil serve --http-listen 127.0.0.1:P --grpc-listen 127.0.0.1:G --data-dir TMP/data"
echo "    $bin_src/anomaly_latency --url http://127.0.0.1:P --repetitions $REPETITIONS --history $HISTORY --poll-ms $POLL_MS"
if ((BACKGROUND_SERIES > 0)); then
  echo "    $bin_src/loadgen --url http://127.0.0.1:P/api/v1/write --series $BACKGROUND_SERIES --interval 1 --duration $run_limit"
fi
log "done"
