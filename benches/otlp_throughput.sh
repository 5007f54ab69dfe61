#!/usr/bin/env bash
# Measures Vigil's OTLP traces and logs ingest: spans/s and log records/s per CPU-second of the Vigil
# process, over OTLP/HTTP protobuf and OTLP/gRPC.
#
# Everything runs on this machine and talks over 127.0.0.1 only. For each combination of signal (traces,
# logs) and transport (http, grpc) the script starts a fresh Vigil with no forwarder (writes go into its
# columnar spans/logs buffers, which evict their oldest batches when full), drives it with `otlp_loadgen`
# for DURATION seconds, and measures the Vigil process: CPU seconds (utime+stime from /proc/PID/stat),
# peak RSS (VmHWM), and the increase of vigil_ingest_samples_total{protocol="otlp_<transport>_<signal>"}
# (which counts spans / log records) as a cross-check of what otlp_loadgen saw accepted. It prints a
# markdown table and the exact command.
#
# Usage: benches/otlp_throughput.sh            (from the repository root or anywhere)
# Knobs (environment):
#   DURATION=20         seconds of load per combination
#   CONCURRENCY=4       otlp_loadgen --concurrency
#   TRACES_BATCH=512    spans per request
#   LOGS_BATCH=1000     log records per request
#   WARMUP=0            seconds of unmeasured load before each measured run (same settings)
#   COMBOS="traces/http traces/grpc logs/http logs/grpc"
#   READY_TIMEOUT=60    longest wait for Vigil to become ready
#   VIGIL_BIN           default: $CARGO_TARGET_DIR/release/vigil, else <repo>/target/release/vigil
#   OTLP_LOADGEN_BIN    default: built with cargo into the same target directory
#   KEEP_TMP=1          keep the temporary directory (logs, reports) for inspection
set -euo pipefail

knobs=(DURATION CONCURRENCY TRACES_BATCH LOGS_BATCH WARMUP COMBOS READY_TIMEOUT VIGIL_BIN OTLP_LOADGEN_BIN
  KEEP_TMP CARGO_TARGET_DIR)
given=()
for k in "${knobs[@]}"; do
  if [[ -n "${!k+x}" ]]; then given+=("$k=$(printf '%q' "${!k}")"); fi
done
invocation="$(printf '%q ' "$0" "$@")"
invocation=${invocation% }

DURATION=${DURATION:-20}
CONCURRENCY=${CONCURRENCY:-4}
TRACES_BATCH=${TRACES_BATCH:-512}
LOGS_BATCH=${LOGS_BATCH:-1000}
WARMUP=${WARMUP:-0}
COMBOS=${COMBOS:-traces/http traces/grpc logs/http logs/grpc}
READY_TIMEOUT=${READY_TIMEOUT:-60}
KEEP_TMP=${KEEP_TMP:-0}

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo_root/target}
VIGIL_BIN=${VIGIL_BIN:-$target_dir/release/vigil}

log() { printf '[otlp] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------------------
# Preconditions: fail before starting anything.
for tool in curl awk getconf timeout; do
  command -v "$tool" >/dev/null || die "'$tool' not found in PATH"
done
[[ "$DURATION" =~ ^[0-9]+$ && "$DURATION" -gt 0 ]] || die "DURATION must be a whole number of seconds > 0"
[[ "$WARMUP" =~ ^[0-9]+$ ]] || die "WARMUP must be a whole number of seconds"
[[ -x "$VIGIL_BIN" ]] || die "Vigil binary not found at $VIGIL_BIN. Build it with 'cargo build --release -p vigil' (same CARGO_TARGET_DIR) or set VIGIL_BIN."
if [[ -z "${OTLP_LOADGEN_BIN:-}" ]]; then
  log "building otlp_loadgen (cargo build --release -p vigil-benches --bin otlp_loadgen)"
  (cd "$repo_root" && CARGO_TARGET_DIR="$target_dir" cargo build --quiet --release -p vigil-benches --bin otlp_loadgen) \
    || die "building otlp_loadgen failed"
  OTLP_LOADGEN_BIN=$target_dir/release/otlp_loadgen
fi
[[ -x "$OTLP_LOADGEN_BIN" ]] || die "otlp_loadgen not found at $OTLP_LOADGEN_BIN"
for combo in $COMBOS; do
  case $combo in traces/http | traces/grpc | logs/http | logs/grpc) ;; *) die "unknown combination '$combo' in COMBOS" ;; esac
done

clk_tck=$(getconf CLK_TCK)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vigil-otlp.XXXXXX")

# Process bookkeeping (stop everything on exit) and free loopback ports: shared with the other bench scripts.
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"


# ingested PORT PROTOCOL: vigil_ingest_samples_total{protocol="PROTOCOL"} (0 before the first write).
ingested() {
  curl -fsS --max-time 5 "http://127.0.0.1:$1/metrics" |
    awk -v want="vigil_ingest_samples_total{protocol=\"$2\"}" '$1 == want {v = $2} END {printf "%.0f\n", v + 0}'
}

json_field() { # json_field FILE NAME: a top-level scalar from otlp_loadgen's one-line JSON report
  awk -v k="\"$2\":" '{ i = index($0, k); if (i == 0) { print "nan"; exit } s = substr($0, i + length(k));
    sub(/[,}].*/, "", s); gsub(/"/, "", s); print s }' "$1"
}

# loadgen_args SIGNAL TRANSPORT ENDPOINT DURATION: sets the array $lg to the otlp_loadgen command line.
loadgen_args() {
  local batch=$TRACES_BATCH
  [[ "$1" == logs ]] && batch=$LOGS_BATCH
  lg=("$OTLP_LOADGEN_BIN" --signal "$1" --transport "$2" --endpoint "$3" --batch "$batch"
    --concurrency "$CONCURRENCY" --duration "$4" --json)
}

# run_loadgen OUT ERRLOG: one bounded run of $lg; its JSON report goes to OUT.
run_loadgen() {
  # otlp_loadgen stops by itself; the timeout only guards against a hung target. Background + wait so
  # Ctrl-C or SIGTERM stops the script at once.
  timeout --kill-after=10 $((DURATION + WARMUP + 120)) "${lg[@]}" >"$1" 2>>"$2" &
  local pid=$! status=0
  pids+=("$pid")
  wait "$pid" || status=$?
  forget_pid "$pid"
  return "$status"
}

rows=()
vigil_command=""

# measure SIGNAL TRANSPORT: a fresh Vigil, one measured load, one table row.
measure() {
  local signal=$1 transport=$2 name="$1-$2"
  local http_port grpc_port endpoint protocol
  http_port=$(free_port)
  grpc_port=$(free_port)
  mkdir -p "$tmp/$name-data"
  local vigil_args=(serve --http-listen "127.0.0.1:$http_port" --grpc-listen "127.0.0.1:$grpc_port"
    --data-dir "$tmp/$name-data")
  log "$name: starting $VIGIL_BIN ${vigil_args[*]}"
  "$VIGIL_BIN" "${vigil_args[@]}" >"$tmp/$name-vigil.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  wait_ready vigil "$pid" "http://127.0.0.1:$http_port/health/ready" "$tmp/$name-vigil.log"
  vigil_command="$VIGIL_BIN serve --http-listen 127.0.0.1:P --grpc-listen 127.0.0.1:G --data-dir TMP"

  if [[ "$transport" == http ]]; then endpoint="http://127.0.0.1:$http_port"; else endpoint="127.0.0.1:$grpc_port"; fi
  protocol="otlp_${transport}_${signal}"
  if ((WARMUP > 0)); then
    loadgen_args "$signal" "$transport" "$endpoint" "$WARMUP"
    log "$name: warm-up, $WARMUP s"
    run_loadgen "$tmp/$name-warmup.json" "$tmp/$name-loadgen.log" || true
  fi

  local out="$tmp/$name.json" cpu_before cpu_after n_before n_after rss_kib
  n_before=$(ingested "$http_port" "$protocol")
  cpu_before=$(cpu_ticks "$pid")
  loadgen_args "$signal" "$transport" "$endpoint" "$DURATION"
  log "$name: load for $DURATION s: ${lg[*]}"
  if ! run_loadgen "$out" "$tmp/$name-loadgen.log"; then
    log "$name: otlp_loadgen reported failure: $(cat "$out" "$tmp/$name-loadgen.log" 2>/dev/null | tail -n 3)"
  fi
  kill -0 "$pid" 2>/dev/null || die "$name: vigil exited during the run"
  cpu_after=$(cpu_ticks "$pid")
  n_after=$(ingested "$http_port" "$protocol")
  rss_kib=$(peak_rss_kib "$pid")
  [[ -s "$out" ]] || die "$name: otlp_loadgen printed no report"
  stop_pid "$pid"
  forget_pid "$pid"

  local accepted rate p50 p99 errors requests bytes
  accepted=$(json_field "$out" items_accepted)
  rate=$(json_field "$out" items_per_s)
  p50=$(json_field "$out" latency_p50_ms)
  p99=$(json_field "$out" latency_p99_ms)
  errors=$(json_field "$out" errors)
  requests=$(json_field "$out" requests)
  bytes=$(json_field "$out" avg_body_bytes)
  if [[ "$errors" != 0 ]]; then log "$name: $errors errors; last: $(json_field "$out" last_error)"; fi
  rows+=("$(awk -v name="$name" -v sig="$signal" -v tr="$transport" -v rate="$rate" -v acc="$accepted" \
    -v t0="$cpu_before" -v t1="$cpu_after" -v hz="$clk_tck" -v p50="$p50" -v p99="$p99" -v rss="$rss_kib" \
    -v m0="$n_before" -v m1="$n_after" -v err="$errors" -v req="$requests" -v bytes="$bytes" 'BEGIN {
      cpu = (t1 - t0) / hz; per = (cpu > 0) ? acc / cpu : 0;
      printf "%s|%s|%d|%.0f|%.0f|%.0f|%.2f|%.0f|%.2f|%.2f|%.1f|%d|%d", sig, tr, req, bytes / 1024, acc, rate, cpu,
        per, p50, p99, rss / 1024, m1 - m0, err }')")
  log "$name: ${rows[-1]}"
}

for combo in $COMBOS; do
  measure "${combo%/*}" "${combo#*/}"
done

# ---------------------------------------------------------------------------------------------------------
echo
echo "## OTLP spans and log records into Vigil (no forwarder)"
echo
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)),"\
  "$(awk '/^MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo). $TRACES_BATCH spans or $LOGS_BATCH log records"\
  "per request, concurrency $CONCURRENCY, unpaced, ${DURATION}s per row after ${WARMUP}s warm-up, a fresh Vigil per row."
echo
echo "| signal | transport | requests | KiB/request | items accepted | items/s | Vigil CPU s | items per CPU-s | p50 ms | p99 ms | peak RSS MiB | vigil_ingest_samples_total Δ | errors |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for r in "${rows[@]}"; do
  IFS='|' read -r sig tr req kib acc rate cpu per p50 p99 rss delta err <<<"$r"
  echo "| $sig | $tr | $req | $kib | $acc | $rate | $cpu | $per | $p50 | $p99 | $rss | $delta | $err |"
done
echo
echo "Items = spans (traces) or log records (logs). Items per CPU-s = items accepted (per otlp_loadgen: answered"
echo "200 / grpc-status 0, minus partial_success rejections) / CPU seconds (utime+stime) of the Vigil process"
echo "during the load. The Δ column is the increase of Vigil's own counter over the same span."
echo
echo "Processes (P, G = free loopback ports, TMP = a fresh temporary directory):"
echo
echo "    $vigil_command"
loadgen_args SIGNAL TRANSPORT ENDPOINT "$DURATION"
lg[8]="$TRACES_BATCH|$LOGS_BATCH"
echo "    ${lg[*]}"
echo
echo "(--endpoint http://127.0.0.1:P for http, 127.0.0.1:G for grpc; --batch $TRACES_BATCH for traces, $LOGS_BATCH for logs.)"
echo
echo "Command:"
echo
echo "    ${given[*]:+${given[*]} }$invocation"
