#!/usr/bin/env bash
# Recovery time: how long Vigil takes from SIGKILL to ready with a large write-ahead log.
#
# Starts the release `vigil` forwarding to a VictoriaMetrics URL where nothing listens (so the metrics log
# only grows), drives it with `loadgen` until the log holds WAL_BYTES, SIGKILLs it, starts it again on the
# same data directory and times /health/live and /health/ready (ready waits for start-up: scanning and
# repairing every segment, then replaying the newest `buffer.max_bytes` into the buffer). Loopback only;
# bounded by FILL_TIMEOUT and READY_TIMEOUT. Prints a markdown table and the exact command.
#
# Usage: cargo build --release -p vigil -p vigil-benches && benches/recovery.sh
# Knobs (environment):
#   WAL_BYTES=1073741824   log size to reach before the kill
#   FILL_TIMEOUT=600       longest time to fill the log
#   READY_TIMEOUT=120      longest wait for ready after the restart
#   VIGIL_CONFIG           optional extra config (YAML) merged as `vigil serve --config`
#   COLD=1                 drop the page cache before the restart (needs root), as after a machine crash
#   KEEP_TMP=1             keep the temporary directory
set -euo pipefail

knobs=(WAL_BYTES FILL_TIMEOUT READY_TIMEOUT VIGIL_CONFIG COLD KEEP_TMP CARGO_TARGET_DIR)
given=()
for k in "${knobs[@]}"; do
  if [[ -n "${!k+x}" ]]; then given+=("$k=$(printf '%q' "${!k}")"); fi
done

WAL_BYTES=${WAL_BYTES:-1073741824}
FILL_TIMEOUT=${FILL_TIMEOUT:-600}
READY_TIMEOUT=${READY_TIMEOUT:-120}
KEEP_TMP=${KEEP_TMP:-0}
COLD=${COLD:-0}

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo_root/target}
VIGIL_BIN=${VIGIL_BIN:-$target_dir/release/vigil}
LOADGEN_BIN=${LOADGEN_BIN:-$target_dir/release/loadgen}

log() { printf '[recovery] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
[[ -x "$VIGIL_BIN" && -x "$LOADGEN_BIN" ]] || die "build first: cargo build --release -p vigil -p vigil-benches"
command -v curl >/dev/null || die "curl not found"

tmp=$(mktemp -d /tmp/vigil-recovery.XXXXXX)
# shellcheck source=benches/lib.sh
source "$repo_root/benches/lib.sh"

http_port=$(free_port)
grpc_port=$(free_port)
dead_port=$(free_port)
config=$tmp/vigil.yaml
cat >"$config" <<YAML
wal:
  max_bytes: $((WAL_BYTES * 2))
queue:
  max_bytes: $((WAL_BYTES * 2))
forward:
  victoriametrics:
    - url: http://127.0.0.1:$dead_port/api/v1/write
YAML
if [[ -n "${VIGIL_CONFIG:-}" ]]; then cat "$VIGIL_CONFIG" >>"$config"; fi

start_vigil() {
  "$VIGIL_BIN" serve --config "$config" --http-listen "127.0.0.1:$http_port" --grpc-listen "127.0.0.1:$grpc_port" \
    --data-dir "$tmp/data" >>"$tmp/vigil.log" 2>&1 &
  vigil_pid=$!
  pids+=("$vigil_pid")
}

wal_bytes() { du -sb "$tmp/data/wal/metrics" 2>/dev/null | awk '{print $1}'; }

start_vigil
wait_ready vigil "$vigil_pid" "http://127.0.0.1:$http_port/health/ready" "$tmp/vigil.log"
log "filling the metrics log to $WAL_BYTES bytes (nothing listens on the destination)"
"$LOADGEN_BIN" --url "http://127.0.0.1:$http_port/api/v1/write" --series 200000 --interval 0 --concurrency 4 \
  --duration "$FILL_TIMEOUT" >"$tmp/loadgen.log" 2>&1 &
loadgen_pid=$!
pids+=("$loadgen_pid")
deadline=$((SECONDS + FILL_TIMEOUT))
while (($(wal_bytes) < WAL_BYTES)); do
  ((SECONDS < deadline)) || die "the log reached only $(wal_bytes) bytes in $FILL_TIMEOUT s"
  kill -0 "$loadgen_pid" 2>/dev/null || die "loadgen stopped early: $(tail -n 5 "$tmp/loadgen.log")"
  sleep 1
done
kill -KILL "$vigil_pid"
wait "$vigil_pid" 2>/dev/null || true
forget_pid "$vigil_pid"
stop_pid "$loadgen_pid"
forget_pid "$loadgen_pid"
size=$(wal_bytes)
log "SIGKILLed with $size bytes of log; restarting"

# A killed process leaves the page cache warm; COLD=1 drops it (where allowed), as after a machine crash.
cache="warm"
if [[ "$COLD" == 1 ]] && sync && echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then cache="cold (page cache dropped)"; fi
start=$(date +%s.%N)
start_vigil
live="" ready=""
while [[ -z "$ready" ]]; do
  now=$(date +%s.%N)
  (($(awk -v n="$now" -v s="$start" -v t="$READY_TIMEOUT" 'BEGIN{print (n - s > t)}'))) && die "not ready in $READY_TIMEOUT s"
  kill -0 "$vigil_pid" 2>/dev/null || die "vigil exited: $(tail -n 20 "$tmp/vigil.log")"
  if [[ -z "$live" && "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$http_port/health/live" || true)" == 200 ]]; then
    live=$(awk -v n="$(date +%s.%N)" -v s="$start" 'BEGIN{printf "%.2f", n - s}')
  fi
  body=$(curl -s --max-time 1 "http://127.0.0.1:$http_port/health/ready" || true)
  if [[ "$body" == *'"status":"ready"'* ]]; then
    ready=$(awk -v n="$(date +%s.%N)" -v s="$start" 'BEGIN{printf "%.2f", n - s}')
  else
    sleep 0.02
  fi
done
replay=$(printf '%s' "$body" | grep -o '"replay":{[^}]*}[^}]*}[^}]*}[^}]*}' || true)
printf '\n| log on disk | page cache | SIGKILL → /health/live | SIGKILL → /health/ready |\n|---|---|---|---|\n'
printf '| %s MiB | %s | %s s | %s s |\n\n' "$((size >> 20))" "$cache" "${live:-?}" "$ready"
printf 'readiness replay report: %s\n' "$replay"
printf 'command: %s %s\n' "${given[*]:-}" "benches/recovery.sh"
