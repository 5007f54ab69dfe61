#!/usr/bin/env bash
# Compares Vigil and vmagent as Prometheus remote-write relays in front of the same VictoriaMetrics.
#
# Everything runs on this machine and talks over 127.0.0.1 only. The script starts a fresh
# victoria-metrics, then, one agent after the other: starts the agent forwarding to it, drives it with
# `loadgen` for DURATION seconds, waits until VictoriaMetrics has stopped receiving, and measures the agent
# process (CPU seconds from /proc/PID/stat, peak RSS from VmHWM) and what reached VictoriaMetrics (delta of
# vm_rows_inserted_total{type="promremotewrite"}). It prints a markdown table and the exact command.
#
# Usage: benches/compare_vmagent.sh            (from the repository root or anywhere)
# Knobs (environment):
#   DURATION=60         seconds of load per agent
#   SERIES=100000       active series (one sample each per INTERVAL)
#   INTERVAL=1          loadgen --interval; 0 = unpaced (as fast as the agent accepts)
#   CONCURRENCY=4       loadgen --concurrency
#   SERIES_PER_REQUEST=2000
#   WARMUP=0            seconds of unmeasured load before the measured run (same settings)
#   SETTLE_TIMEOUT=120  longest wait for delivery to VictoriaMetrics to stop after the load ends
#   READY_TIMEOUT=60    longest wait for a process to become ready
#   VIGIL_BIN           default: $CARGO_TARGET_DIR/release/vigil, else <repo>/target/release/vigil
#   VIGIL_CONFIG        optional file passed as `vigil serve --config`
#   LOADGEN_BIN         default: built with cargo into the same target directory
#   SKIP_VIGIL=1 / SKIP_VMAGENT=1   run only the other agent
#   KEEP_TMP=1          keep the temporary directory (logs, data) for inspection
set -euo pipefail

# Remember which knobs the caller set, to print the exact command at the end.
knobs=(DURATION SERIES INTERVAL CONCURRENCY SERIES_PER_REQUEST WARMUP SETTLE_TIMEOUT READY_TIMEOUT
  VIGIL_BIN VIGIL_CONFIG LOADGEN_BIN SKIP_VIGIL SKIP_VMAGENT KEEP_TMP CARGO_TARGET_DIR)
given=()
for k in "${knobs[@]}"; do
  if [[ -n "${!k+x}" ]]; then given+=("$k=$(printf '%q' "${!k}")"); fi
done
invocation="$(printf '%q ' "$0" "$@")"
invocation=${invocation% }

DURATION=${DURATION:-60}
SERIES=${SERIES:-100000}
INTERVAL=${INTERVAL:-1}
CONCURRENCY=${CONCURRENCY:-4}
SERIES_PER_REQUEST=${SERIES_PER_REQUEST:-2000}
WARMUP=${WARMUP:-0}
SETTLE_TIMEOUT=${SETTLE_TIMEOUT:-120}
READY_TIMEOUT=${READY_TIMEOUT:-60}
SKIP_VIGIL=${SKIP_VIGIL:-0}
SKIP_VMAGENT=${SKIP_VMAGENT:-0}
KEEP_TMP=${KEEP_TMP:-0}

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo_root/target}
VIGIL_BIN=${VIGIL_BIN:-$target_dir/release/vigil}

log() { printf '[compare] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------------------
# Preconditions: fail before starting anything.
for tool in victoria-metrics curl awk getconf; do
  command -v "$tool" >/dev/null || die "'$tool' not found in PATH"
done
if [[ "$SKIP_VMAGENT" != 1 ]]; then
  command -v vmagent >/dev/null || die "'vmagent' not found in PATH (Debian package victoria-metrics), or set SKIP_VMAGENT=1"
fi
if [[ "$SKIP_VIGIL" != 1 && ! -x "$VIGIL_BIN" ]]; then
  die "Vigil binary not found at $VIGIL_BIN. Build it with 'cargo build --release -p vigil' (same CARGO_TARGET_DIR), set VIGIL_BIN, or run with SKIP_VIGIL=1."
fi
if [[ -z "${LOADGEN_BIN:-}" ]]; then
  log "building loadgen (cargo build --release -p vigil-benches --bin loadgen)"
  (cd "$repo_root" && CARGO_TARGET_DIR="$target_dir" cargo build --quiet --release -p vigil-benches --bin loadgen) \
    || die "building loadgen failed"
  LOADGEN_BIN=$target_dir/release/loadgen
fi
[[ -x "$LOADGEN_BIN" ]] || die "loadgen not found at $LOADGEN_BIN"
if [[ -n "${VIGIL_CONFIG:-}" && ! -r "$VIGIL_CONFIG" ]]; then die "VIGIL_CONFIG=$VIGIL_CONFIG is not readable"; fi

clk_tck=$(getconf CLK_TCK)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vigil-compare.XXXXXX")

# Process bookkeeping (stop everything on exit) and free loopback ports: shared with the other bench scripts.
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# start NAME LOGFILE CMD... : starts CMD in the background and sets $started_pid.
start() {
  local name=$1 logfile=$2
  shift 2
  log "starting $name: $*"
  "$@" >"$logfile" 2>&1 &
  started_pid=$!
  pids+=("$started_pid")
}


vm_rows() {
  curl -fsS --max-time 5 "http://127.0.0.1:$vm_port/metrics" |
    awk '/^vm_rows_inserted_total\{type="promremotewrite"\} / {v = $2} END {printf "%.0f\n", v + 0}'
}

# settle BASE TARGET: waits until VictoriaMetrics has received TARGET rows since BASE, or its count has not
# moved for 5 s, or SETTLE_TIMEOUT passes. Prints the final count.
settle() {
  local base=$1 want=$2 deadline=$((SECONDS + SETTLE_TIMEOUT)) last still=0 now
  # Without a usable target count, wait for the count to stop moving.
  [[ "$want" =~ ^[0-9]+$ ]] || want=999999999999999
  last=$(vm_rows)
  while ((SECONDS < deadline)); do
    if (($(awk -v a="$last" -v b="$base" -v w="$want" 'BEGIN {print (a - b >= w) ? 1 : 0}'))); then break; fi
    sleep 1
    now=$(vm_rows)
    if [[ "$now" == "$last" ]]; then still=$((still + 1)); else still=0; fi
    last=$now
    ((still < 5)) || break
  done
  echo "$last"
}

json_field() { # json_field FILE NAME: a top-level number from loadgen's one-line JSON report
  awk -v k="\"$2\":" '{ i = index($0, k); if (i == 0) { print "nan"; exit } s = substr($0, i + length(k));
    sub(/[,}].*/, "", s); print s }' "$1"
}

# loadgen_args PORT DURATION: sets the array $lg to the loadgen command line.
loadgen_args() {
  lg=("$LOADGEN_BIN" --url "http://127.0.0.1:$1/api/v1/write" --series "$SERIES"
    --series-per-request "$SERIES_PER_REQUEST" --concurrency "$CONCURRENCY" --interval "$INTERVAL"
    --duration "$2" --json)
}

# run_loadgen PORT DURATION OUT ERRLOG: one bounded loadgen run; its JSON report goes to OUT.
run_loadgen() {
  loadgen_args "$1" "$2"
  # loadgen stops by itself after DURATION; the timeout only guards against a hung target. It runs in the
  # background because bash runs traps only between commands, and `wait` lets Ctrl-C or SIGTERM stop the
  # script at once instead of after the load.
  timeout --kill-after=10 $(($2 + 120)) "${lg[@]}" >"$3" 2>>"$4" &
  local pid=$! status=0
  pids+=("$pid")
  wait "$pid" || status=$?
  forget_pid "$pid"
  return "$status"
}

rows=()
commands=()

# measure NAME PID PORT: drives one ready agent and appends a table row.
measure() {
  local name=$1 pid=$2 port=$3 out="$tmp/$1-loadgen.json"
  if ((WARMUP > 0)); then
    log "$name: warm-up, $WARMUP s"
    local vm_warm
    vm_warm=$(vm_rows)
    run_loadgen "$port" "$WARMUP" "$tmp/$name-warmup.json" "$tmp/$name-loadgen.log" || true
    settle "$vm_warm" "$(json_field "$tmp/$name-warmup.json" samples_accepted)" >/dev/null
  fi
  local vm_before cpu_before cpu_after vm_after
  vm_before=$(vm_rows)
  cpu_before=$(cpu_ticks "$pid")
  loadgen_args "$port" "$DURATION"
  log "$name: load for $DURATION s: ${lg[*]}"
  if ! run_loadgen "$port" "$DURATION" "$out" "$tmp/$name-loadgen.log"; then
    log "$name: loadgen reported failure: $(cat "$out" "$tmp/$name-loadgen.log" 2>/dev/null | tail -n 3)"
  fi
  [[ -s "$out" ]] || die "$name: loadgen printed no report"
  local accepted
  accepted=$(json_field "$out" samples_accepted)
  log "$name: load done ($accepted samples accepted); waiting for delivery to settle"
  vm_after=$(settle "$vm_before" "$accepted")
  kill -0 "$pid" 2>/dev/null || die "$name exited during the run"
  cpu_after=$(cpu_ticks "$pid")
  local rss_kib
  rss_kib=$(peak_rss_kib "$pid")
  local rate p99 errors retries
  rate=$(json_field "$out" accepted_samples_per_s)
  p99=$(json_field "$out" latency_p99_ms)
  errors=$(json_field "$out" errors)
  retries=$(json_field "$out" retries)
  rows+=("$(awk -v name="$name" -v rate="$rate" -v acc="$accepted" -v t0="$cpu_before" -v t1="$cpu_after" \
    -v hz="$clk_tck" -v p99="$p99" -v rss="$rss_kib" -v v0="$vm_before" -v v1="$vm_after" \
    -v err="$errors" -v rt="$retries" 'BEGIN {
      cpu = (t1 - t0) / hz; per = (cpu > 0) ? acc / cpu : 0; got = v1 - v0;
      printf "%s|%.0f|%.2f|%.0f|%.2f|%.1f|%.0f|%.1f|%d|%d|%.0f", name, rate, cpu, per, p99, rss / 1024, got,
        (acc > 0) ? 100 * got / acc : 0, err, rt, acc }')")
  log "$name: $(tail -n 1 <<<"${rows[-1]}")"
}

# ---------------------------------------------------------------------------------------------------------
vm_port=$(free_port)
start victoria-metrics "$tmp/victoria-metrics.log" victoria-metrics \
  -storageDataPath "$tmp/vm-data" -httpListenAddr "127.0.0.1:$vm_port" -retentionPeriod 1d
vm_pid=$started_pid
wait_ready victoria-metrics "$vm_pid" "http://127.0.0.1:$vm_port/health" "$tmp/victoria-metrics.log"
commands+=("victoria-metrics -storageDataPath TMP/vm-data -httpListenAddr 127.0.0.1:$vm_port -retentionPeriod 1d")
vm_write="http://127.0.0.1:$vm_port/api/v1/write"

if [[ "$SKIP_VIGIL" != 1 ]]; then
  http_port=$(free_port)
  grpc_port=$(free_port)
  mkdir -p "$tmp/vigil-data"
  vigil_args=(serve --http-listen "127.0.0.1:$http_port" --grpc-listen "127.0.0.1:$grpc_port"
    --data-dir "$tmp/vigil-data" --forward-victoriametrics "$vm_write")
  if [[ -n "${VIGIL_CONFIG:-}" ]]; then vigil_args+=(--config "$VIGIL_CONFIG"); fi
  start vigil "$tmp/vigil.log" "$VIGIL_BIN" "${vigil_args[@]}"
  vigil_pid=$started_pid
  wait_ready vigil "$vigil_pid" "http://127.0.0.1:$http_port/health/ready" "$tmp/vigil.log"
  commands+=("$VIGIL_BIN ${vigil_args[*]/#$tmp/TMP}")
  measure vigil "$vigil_pid" "$http_port"
  stop_pid "$vigil_pid"
  forget_pid "$vigil_pid"
fi

if [[ "$SKIP_VMAGENT" != 1 ]]; then
  agent_port=$(free_port)
  # Defaults otherwise: no scraping, no relabelling, -remoteWrite.queues = 2 x CPUs, 1 s flush, in-memory
  # queue spilling to tmpDataPath only when the remote falls behind.
  vmagent_args=(-httpListenAddr "127.0.0.1:$agent_port" -remoteWrite.url "$vm_write"
    -remoteWrite.tmpDataPath "$tmp/vmagent-data")
  start vmagent "$tmp/vmagent.log" vmagent "${vmagent_args[@]}"
  vmagent_pid=$started_pid
  wait_ready vmagent "$vmagent_pid" "http://127.0.0.1:$agent_port/health" "$tmp/vmagent.log"
  commands+=("vmagent ${vmagent_args[*]/#$tmp/TMP}")
  measure vmagent "$vmagent_pid" "$agent_port"
  stop_pid "$vmagent_pid"
  forget_pid "$vmagent_pid"
fi

# ---------------------------------------------------------------------------------------------------------
pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo unknown; }
echo
echo "## Vigil vs vmagent, remote write relay to VictoriaMetrics"
echo
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)),"\
  "$(awk '/^MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); victoria-metrics/vmagent $(pkg_version victoria-metrics)."
echo "Load: $SERIES series, one sample each every ${INTERVAL}s, $SERIES_PER_REQUEST per request, concurrency $CONCURRENCY,"\
  "${DURATION}s measured after ${WARMUP}s warm-up. Agent, loadgen and VictoriaMetrics share the machine."
echo
echo "| agent | accepted samples/s | agent CPU s | samples per CPU-s | loadgen p99 ms | peak RSS MiB | delivered to VM | delivered % | errors | retries |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
vigil_per="" vmagent_per=""
for r in "${rows[@]}"; do
  IFS='|' read -r name rate cpu per p99 rss got pct err rt _acc <<<"$r"
  echo "| $name | $rate | $cpu | $per | $p99 | $rss | $got | $pct | $err | $rt |"
  case $name in vigil) vigil_per=$per ;; vmagent) vmagent_per=$per ;; esac
done
if [[ -n "$vigil_per" && -n "$vmagent_per" ]]; then
  echo "| Vigil / vmagent | | | $(awk -v a="$vigil_per" -v b="$vmagent_per" 'BEGIN {if (b > 0) printf "%.2fx", a / b; else print "n/a"}') | | | | | | |"
fi
echo
echo "Samples per CPU-s = samples the agent accepted (2xx) / CPU seconds of the agent process (utime+stime) from"
echo "just before the load until delivery to VictoriaMetrics settled. Delivered = increase of"
echo "vm_rows_inserted_total{type=\"promremotewrite\"} over the same span."
echo
echo "Processes (TMP = a fresh temporary directory):"
echo
for c in "${commands[@]}"; do echo "    $c"; done
loadgen_args PORT "$DURATION"
echo "    ${lg[*]}"
echo
echo "Command:"
echo
echo "    ${given[*]:+${given[*]} }$invocation"
