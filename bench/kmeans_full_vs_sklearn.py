"""Whole k-means fits, 10 restarts: Strata's default (k-means++, Hamerly) against
scikit-learn's KMeans(n_init=10, algorithm="lloyd"), and how the time grows with n.

Usage: PY=$(../shared/bench/setup.sh | tail -1)
       CARGO_TARGET_DIR=... OMP_NUM_THREADS=2 RAYON_NUM_THREADS=2 $PY bench/kmeans_full_vs_sklearn.py [d] [k] [n ...]
Blobs n × d with k centres (seed 0, std 2 in a ±6 box). Both sides draw their own k-means++
starts (different random streams), so the inertia is printed as the quality figure: a faster
fit is only a win when its inertia is no worse. Default sizes 100,000 and 1,000,000;
scikit-learn is skipped above 1,000,000 rows (pass "sk" as the last argument to force it).
"""
import json
import os
import sys
import time

from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

from cluster_common import run_strata, write_npy

args = sys.argv[1:]
force_sk = bool(args) and args[-1] == "sk"
if force_sk:
    args = args[:-1]
d = int(args[0]) if len(args) > 0 else 8
k = int(args[1]) if len(args) > 1 else 8
sizes = [int(a) for a in args[2:]] or [100_000, 1_000_000]
rows = []
for n in sizes:
    X, _ = make_blobs(n_samples=n, n_features=d, centers=k, cluster_std=2.0,
                      center_box=(-6, 6), random_state=0)
    path = write_npy(X, "strata-kmfull-")
    ours, peak = run_strata("kmeans-full", path, k, 10)
    row = {"n": n, "strata_seconds": ours["seconds"], "strata_inertia": ours["inertia"],
           "strata_peak_mib": peak}
    if n <= 1_000_000 or force_sk:
        t = time.perf_counter()
        model = KMeans(n_clusters=k, n_init=10, algorithm="lloyd", random_state=0).fit(X)
        sk = time.perf_counter() - t
        row.update({"sklearn_seconds": sk, "sklearn_inertia": float(model.inertia_),
                    "ratio": sk / ours["seconds"],
                    "inertia_strata_over_sklearn": ours["inertia"] / model.inertia_})
    os.remove(path)
    rows.append(row)
    print(json.dumps(row), flush=True)
