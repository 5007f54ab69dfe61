# Shared by the bench scripts (sourced, not run). The sourcing script defines `log`, `die`, `tmp` (its
# temporary directory) and `KEEP_TMP` first; every process it starts is added to `pids` and stopped on exit.
# Process bookkeeping: every process started here is stopped on exit, within a bounded time.
pids=()

stop_pid() {
  local pid=$1 waited=0
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  # Graceful shutdown may flush queues; give it 15 s, then kill.
  while kill -0 "$pid" 2>/dev/null && ((waited < 150)); do sleep 0.1; waited=$((waited + 1)); done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid did not stop within 15 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

forget_pid() {
  local keep=() p
  for p in "${pids[@]}"; do [[ "$p" == "$1" ]] || keep+=("$p"); done
  pids=("${keep[@]}")
}

cleanup() {
  local status=$?
  local pid
  for pid in "${pids[@]}"; do stop_pid "$pid"; done
  if [[ "$KEEP_TMP" == 1 ]]; then log "kept $tmp"; else rm -rf "$tmp"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
chosen_ports=" "
free_port() {
  local p i
  for i in $(seq 1 500); do
    p=$((20000 + RANDOM % 40000))
    if [[ "$chosen_ports" != *" $p "* ]] && ! port_in_use "$p"; then
      chosen_ports+="$p "
      echo "$p"
      return 0
    fi
  done
  die "no free port found"
}

# wait_ready NAME PID URL LOGFILE: waits for URL to answer 200 while PID lives.
wait_ready() {
  local name=$1 pid=$2 url=$3 logfile=$4 deadline=$((SECONDS + READY_TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$name exited before becoming ready; last lines of $logfile:"
      tail -n 30 "$logfile" >&2 || true
      die "$name failed to start"
    fi
    if [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)" == 200 ]]; then return 0; fi
    sleep 0.2
  done
  tail -n 30 "$logfile" >&2 || true
  die "$name not ready at $url within ${READY_TIMEOUT}s"
}

# CPU ticks (utime + stime, all threads) of PID. The command name may contain spaces, so cut after ')'.
cpu_ticks() {
  local stat
  stat=$(<"/proc/$1/stat")
  stat=${stat##*) }
  # shellcheck disable=SC2086 # word splitting is the point
  set -- $stat
  # After the cut, field 1 is the state (field 3 of stat), so utime (14) and stime (15) are 12 and 13.
  echo $((${12} + ${13}))
}

peak_rss_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
