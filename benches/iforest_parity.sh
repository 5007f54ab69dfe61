#!/usr/bin/env bash
# Isolation-forest parity and speed against scikit-learn on the ODDS sets (issue 5).
#
# Runs Vigil's forest (the release `iforest_odds` binary) and scikit-learn's IsolationForest
# (benches/iforest_sklearn.py) on the same CSVs with the same protocol: 100 trees, ψ = 256, fit on all
# rows and score all rows, once per seed 0..SEEDS-1, AUROC against the labels, fit + score timed (CSV
# parsing excluded, one untimed warm-up run first). Both run on one thread. Then Vigil's scoring alone is
# timed for THROUGHPUT_SECS. Prints a markdown table and the exact command.
#
# Times are CPU seconds of the process (the scheduler's count), with wall seconds beside them: on a shared
# machine wall time also charges whatever else held the core.
#
# Usage: benches/iforest_parity.sh
# Knobs (environment):
#   SEEDS=10                  seeds per set
#   THROUGHPUT_SECS=5         how long to time Vigil's scoring alone
#   ODDS_DIR                  directory with shuttle.csv and mammography.csv (default ../shared/datasets/odds
#                             beside the repository)
#   PYTHON=python3            interpreter; scikit-learn is installed with pip if missing (system pip, else
#                             --break-system-packages, else a venv under ~/.cache/vigil-sklearn-venv)
#   CARGO_TARGET_DIR          where the release binary is built
set -euo pipefail

knobs=(SEEDS THROUGHPUT_SECS ODDS_DIR PYTHON CARGO_TARGET_DIR)
given=()
for k in "${knobs[@]}"; do
  if [[ -n "${!k+x}" ]]; then given+=("$k=$(printf '%q' "${!k}")"); fi
done

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SEEDS=${SEEDS:-10}
THROUGHPUT_SECS=${THROUGHPUT_SECS:-5}
ODDS_DIR=${ODDS_DIR:-$repo_root/../shared/datasets/odds}
PYTHON=${PYTHON:-python3}
target_dir=${CARGO_TARGET_DIR:-$repo_root/target}

log() { printf '[iforest_parity] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

sets=(shuttle mammography)
for s in "${sets[@]}"; do [[ -f "$ODDS_DIR/$s.csv" ]] || die "$ODDS_DIR/$s.csv not found (set ODDS_DIR)"; done
command -v "$PYTHON" >/dev/null || die "$PYTHON not found"

if ! "$PYTHON" -c 'import sklearn' 2>/dev/null; then
  log "installing scikit-learn"
  if ! "$PYTHON" -m pip install --quiet scikit-learn 2>/dev/null &&
    ! "$PYTHON" -m pip install --quiet --break-system-packages scikit-learn 2>/dev/null; then
    venv=$HOME/.cache/vigil-sklearn-venv
    "$PYTHON" -m venv "$venv" || die "cannot create a venv at $venv"
    "$venv/bin/python" -m pip install --quiet scikit-learn || die "pip install scikit-learn failed"
    PYTHON=$venv/bin/python
  fi
  "$PYTHON" -c 'import sklearn' || die "scikit-learn still not importable"
fi

log "building iforest_odds (release)"
(cd "$repo_root" && cargo build --quiet --release --locked -p vigil-benches --bin iforest_odds)
bin=$target_dir/release/iforest_odds

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
csvs=()
for s in "${sets[@]}"; do csvs+=("$ODDS_DIR/$s.csv"); done

log "Vigil: ${sets[*]}, $SEEDS seeds"
"$bin" --seeds "$SEEDS" --throughput-secs "$THROUGHPUT_SECS" "${csvs[@]}" >"$tmp/vigil.jsonl"
log "scikit-learn: ${sets[*]}, $SEEDS seeds"
# One thread, as Vigil: IsolationForest's default n_jobs=None already is; pin the BLAS/OpenMP pools too.
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
  "$PYTHON" "$repo_root/benches/iforest_sklearn.py" --seeds "$SEEDS" "${csvs[@]}" >"$tmp/sklearn.jsonl"

command_line="benches/iforest_parity.sh"
if ((${#given[@]})); then command_line="${given[*]} $command_line"; fi

"$PYTHON" - "$tmp/vigil.jsonl" "$tmp/sklearn.jsonl" "$command_line" <<'PY'
import json, math, sys
vigil = {r["set"]: r for r in map(json.loads, open(sys.argv[1]))}
skl = {r["set"]: r for r in map(json.loads, open(sys.argv[2]))}
# Issue 5's bounds on |Vigil − scikit-learn| AUROC, and its speed-up floor.
tolerance = {"shuttle": 0.005, "mammography": 0.01}
print("| set | rows × features | Vigil AUROC | sklearn AUROC | difference | target | Vigil s (CPU / wall) "
      "| sklearn s (CPU / wall) | speed-up (CPU / wall) | Vigil scoring, rows per CPU-s |")
print("|---|---|---:|---:|---:|---|---:|---:|---:|---:|")
for name, v in vigil.items():
    s = skl[name]
    n = v["seeds"]
    diff = v["auroc_mean"] - s["auroc_mean"]
    tol = tolerance.get(name)
    target = "—" if tol is None else f"±{tol} {'met' if abs(diff) <= tol else 'MISSED'}"
    speed_cpu = s["cpu_seconds_mean"] / v["cpu_seconds_mean"]
    speed_wall = s["wall_seconds_mean"] / v["wall_seconds_mean"]
    print(f"| {name} | {v['rows']} × {v['features']} "
          f"| {v['auroc_mean']:.4f} ± {v['auroc_sd'] / math.sqrt(n):.4f} "
          f"| {s['auroc_mean']:.4f} ± {s['auroc_sd'] / math.sqrt(n):.4f} | {diff:+.4f} | {target} "
          f"| {v['cpu_seconds_mean']:.4f} / {v['wall_seconds_mean']:.4f} "
          f"| {s['cpu_seconds_mean']:.3f} / {s['wall_seconds_mean']:.3f} "
          f"| {speed_cpu:.1f}× / {speed_wall:.1f}× {'(≥ 10× met)' if speed_cpu >= 10 else '(≥ 10× MISSED)'} "
          f"| {v['score_rows_per_cpu_sec']:,.0f} {'(≥ 500 k met)' if v['score_rows_per_cpu_sec'] >= 5e5 else '(≥ 500 k MISSED)'} |")
first = next(iter(skl.values()))
print()
print(f"AUROC: mean over {first['seeds']} seeds ± its standard error (seed-to-seed sd / √{first['seeds']}); "
      f"scikit-learn {first['sklearn']}, 100 trees, ψ = 256. Vigil fit alone: "
      + ", ".join(f"{k} {v['fit_cpu_seconds'] * 1e3:.2f} ms" for k, v in vigil.items()) + " CPU.")
print()
print(f"Command: `{sys.argv[3]}`")
PY
log "done"
