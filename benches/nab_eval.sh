#!/usr/bin/env bash
# NAB scores of the detector (issue 5): `vigil eval` on the NAB development subset and on the committed
# synthetic set, each replayed as a causal stream with the default settings and scored with NAB v1.1's
# method (standard, reward_low_FP_rate, reward_low_FN_rate; 0 = NAB's null detector, 100 = perfect).
#
# Builds the release `vigil`, runs `vigil eval` on each set into a temporary folder and prints its lines
# (profile scores, events at each profile's threshold, raw figures), the wall time, and the exact command.
#
# Usage: benches/nab_eval.sh
# Knobs (environment):
#   NAB_DIR           NAB layout folder (data/, labels/combined_windows.json) [default: ../shared/datasets/nab-dev
#                     beside the repository]
#   SYNTHETIC_DIR     the same for the synthetic set [default: datasets/synthetic]
#   VIGIL_CONFIG      detector settings (YAML), passed as `vigil eval --config`
#   KEEP_TMP=1        keep the temporary folder with the per-file score CSVs
#   CARGO_TARGET_DIR  where the release binary is built
set -euo pipefail

knobs=(NAB_DIR SYNTHETIC_DIR VIGIL_CONFIG KEEP_TMP CARGO_TARGET_DIR)
given=()
for k in "${knobs[@]}"; do
  if [[ -n "${!k+x}" ]]; then given+=("$k=$(printf '%q' "${!k}")"); fi
done

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NAB_DIR=${NAB_DIR:-$repo_root/../shared/datasets/nab-dev}
SYNTHETIC_DIR=${SYNTHETIC_DIR:-$repo_root/datasets/synthetic}
KEEP_TMP=${KEEP_TMP:-0}
target_dir=${CARGO_TARGET_DIR:-$repo_root/target}

log() { printf '[nab_eval] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

for d in "$NAB_DIR" "$SYNTHETIC_DIR"; do
  [[ -d "$d/data" && -f "$d/labels/combined_windows.json" ]] || die "$d: want data/ and labels/combined_windows.json"
done
config_args=()
if [[ -n "${VIGIL_CONFIG:-}" ]]; then
  [[ -f "$VIGIL_CONFIG" ]] || die "$VIGIL_CONFIG not found"
  config_args=(--config "$VIGIL_CONFIG")
fi

log "building vigil (release)"
(cd "$repo_root" && cargo build --quiet --release --locked -p vigil)
bin=$target_dir/release/vigil

tmp=$(mktemp -d)
cleanup() { if [[ "$KEEP_TMP" == 1 ]]; then log "kept $tmp"; else rm -rf "$tmp"; fi; }
trap cleanup EXIT

command_line="benches/nab_eval.sh"
if ((${#given[@]})); then command_line="${given[*]} $command_line"; fi

for set in nab-dev synthetic; do
  if [[ "$set" == nab-dev ]]; then dir=$NAB_DIR; else dir=$SYNTHETIC_DIR; fi
  files=$(find "$dir/data" -name '*.csv' | wc -l)
  log "$set: $files files"
  start=$(date +%s.%N)
  "$bin" eval --data "$dir/data" --labels "$dir/labels/combined_windows.json" --out "$tmp/$set" \
    "${config_args[@]}" >"$tmp/$set.txt"
  end=$(date +%s.%N)
  echo "## $set ($files files, $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }') s wall)"
  echo
  cat "$tmp/$set.txt"
  echo
done
echo "Command: \`$command_line\` (vigil $(git -C "$repo_root" describe --always --dirty 2>/dev/null || echo unknown))"
log "done"
