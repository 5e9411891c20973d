"""DBSCAN: Strata against scikit-learn on the same data and parameters.

Usage: PY=$(../shared/bench/setup.sh | tail -1)
       CARGO_TARGET_DIR=... OMP_NUM_THREADS=2 RAYON_NUM_THREADS=2 $PY bench/dbscan_vs_sklearn.py [n] [eps] [min_samples] [repeats]
Blobs n × 8 with 8 centres (seed 0, std 1); scikit-learn's DBSCAN(n_jobs=2) and
`cluster_bench dbscan` run on the same file. Prints both times (median), cluster and noise counts, the
ARI between the two labellings and of each against the true blobs, and peak memory.
"""
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
from sklearn.cluster import DBSCAN
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
eps = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
min_samples = int(sys.argv[3]) if len(sys.argv) > 3 else 10
repeats = int(sys.argv[4]) if len(sys.argv) > 4 else 3
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
example = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target")),
                       "release/examples/cluster_bench")
X, truth = make_blobs(n_samples=n, n_features=8, centers=8, cluster_std=1.0, random_state=0)
path = os.path.join(tempfile.mkdtemp(prefix="strata-dbscan-"), "blobs.csv")
with open(path, "w") as f:
    for row, l in zip(X, truth):
        f.write(",".join(repr(float(v)) for v in row) + f",{l}\n")
times = []
for _ in range(repeats):
    t = time.perf_counter()
    sk = DBSCAN(eps=eps, min_samples=min_samples, n_jobs=2).fit(X)
    times.append(time.perf_counter() - t)
sk_time = float(np.median(times))
run = subprocess.run(["/usr/bin/time", "-f", "%M", example, "dbscan", path, str(eps), str(min_samples),
                      str(repeats)], check=True, capture_output=True, text=True)
ours = json.loads(run.stdout)
labels = np.array(ours["labels"])
print(json.dumps({
    "n": n, "eps": eps, "min_samples": min_samples,
    "sklearn_seconds": sk_time, "strata_seconds": ours["seconds"], "ratio": sk_time / ours["seconds"],
    "sklearn_clusters": int(sk.labels_.max() + 1), "strata_clusters": ours["clusters"],
    "sklearn_noise": int((sk.labels_ < 0).sum()), "strata_noise": ours["noise"],
    "sklearn_core_rows": int(len(sk.core_sample_indices_)), "strata_core_rows": ours["core"],
    "ari_strata_vs_sklearn": adjusted_rand_score(sk.labels_, labels),
    "ari_strata_vs_truth": adjusted_rand_score(truth, labels),
    "ari_sklearn_vs_truth": adjusted_rand_score(truth, sk.labels_),
    "python_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "strata_peak_mib": int(run.stderr.strip().splitlines()[-1]) / 1024}, indent=1))
