"""k-means Lloyd iterations: Strata against scikit-learn, same data, same initial centres,
same iteration count.

Usage: PY=$(../shared/bench/setup.sh | tail -1)
       CARGO_TARGET_DIR=... OMP_NUM_THREADS=2 RAYON_NUM_THREADS=2 $PY bench/kmeans_vs_sklearn.py [n] [d] [k] [iterations] [repeats]
Blobs n × d with k centres (seed 0, std 2, overlapping enough that 20 iterations do not
converge), saved as .npy; both sides start from the first k rows as centres, run Lloyd with
tol = 0 for `iterations` steps (scikit-learn: algorithm="lloyd", n_init=1) and report seconds
per iteration (median), iterations run, inertia, the ratio and peak memory, for Strata's
Lloyd and Hamerly iterations.
"""
import json
import sys
import time

import numpy as np
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

from cluster_common import python_peak_mib, run_strata, write_npy

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
d = int(sys.argv[2]) if len(sys.argv) > 2 else 8
k = int(sys.argv[3]) if len(sys.argv) > 3 else 8
iters = int(sys.argv[4]) if len(sys.argv) > 4 else 20
repeats = int(sys.argv[5]) if len(sys.argv) > 5 else 3
X, _ = make_blobs(n_samples=n, n_features=d, centers=k, cluster_std=2.0, center_box=(-6, 6),
                  random_state=0)
path = write_npy(X, "strata-kmeans-")
ours, peaks = {}, {}
for algorithm in ("lloyd", "hamerly"):
    ours[algorithm], peaks[algorithm] = run_strata("kmeans", path, k, iters, repeats, algorithm)
times, model = [], None
for _ in range(repeats):
    t = time.perf_counter()
    model = KMeans(n_clusters=k, init=X[:k], n_init=1, max_iter=iters, tol=0.0,
                   algorithm="lloyd").fit(X)
    times.append((time.perf_counter() - t) / model.n_iter_)
sk = float(np.median(times))
report = {"n": n, "d": d, "k": k,
          "sklearn_seconds_per_iteration": sk, "sklearn_iterations": int(model.n_iter_),
          "sklearn_inertia": float(model.inertia_),
          "python_peak_mib": python_peak_mib()}
for algorithm, r in ours.items():
    report[algorithm] = {
        "seconds_per_iteration": r["seconds_per_iteration"], "iterations": r["iterations"],
        "inertia_relative_difference": abs(r["inertia"] - model.inertia_) / model.inertia_,
        "ratio": sk / r["seconds_per_iteration"], "peak_mib": peaks[algorithm]}
print(json.dumps(report, indent=1))
