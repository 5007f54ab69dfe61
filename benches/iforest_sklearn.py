#!/usr/bin/env python3
"""scikit-learn's IsolationForest on labelled CSV sets: the reference side of benches/iforest_parity.sh.

Mirrors the Rust binary `iforest_odds`: for each CSV (lines starting with '#' skipped; feature
columns then a 0/1 label, 1 = outlier) it fits on all rows and scores all rows once per seed with
IsolationForest(n_estimators=100, max_samples=256, random_state=seed), AUROC of -score_samples, and
reports the mean AUROC and the mean fit + score time, CPU (process) and wall, CSV parsing excluded,
after one untimed warm-up run. One JSON object per set on stdout, a summary on stderr.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import sklearn
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score


def run(path: Path, seeds: int, trees: int, sample_size: int) -> dict:
    data = np.loadtxt(path, delimiter=",", comments="#")
    x, y = data[:, :-1], data[:, -1] != 0

    def fit_score(seed: int) -> np.ndarray:
        forest = IsolationForest(n_estimators=trees, max_samples=sample_size, random_state=seed).fit(x)
        return -forest.score_samples(x)

    fit_score(2**31 - 1)  # warm-up, as on the Rust side
    all_scores, walls = [], []
    cpu_start = time.process_time()
    for seed in range(seeds):
        start = time.perf_counter()
        all_scores.append(fit_score(seed))
        walls.append(time.perf_counter() - start)
    cpu = (time.process_time() - cpu_start) / seeds
    aucs = [float(roc_auc_score(y, scores)) for scores in all_scores]

    result = {
        "set": path.stem, "rows": int(x.shape[0]), "features": int(x.shape[1]), "seeds": seeds,
        "trees": trees, "sample_size": sample_size, "sklearn": sklearn.__version__,
        "auroc_mean": statistics.fmean(aucs), "auroc_sd": statistics.stdev(aucs) if seeds > 1 else 0.0,
        "aurocs": aucs, "wall_seconds_mean": statistics.fmean(walls),
        "wall_seconds_sd": statistics.stdev(walls) if seeds > 1 else 0.0, "cpu_seconds_mean": cpu,
    }
    print(
        f"{path.stem}: AUROC {result['auroc_mean']:.4f} ± {result['auroc_sd']:.4f} ({seeds} seeds); "
        f"fit + score {cpu * 1e3:.1f} ms CPU, {result['wall_seconds_mean'] * 1e3:.1f} ms wall",
        file=sys.stderr,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="+", type=Path)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--sample-size", type=int, default=256)
    args = parser.parse_args()
    for path in args.csv:
        print(json.dumps(run(path, args.seeds, args.trees, args.sample_size)), flush=True)


if __name__ == "__main__":
    main()
