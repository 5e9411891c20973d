"""Exact silhouette: Strata against scikit-learn's silhouette_score on the same data and labels.

Usage: PY=$(../shared/bench/setup.sh | tail -1)
       CARGO_TARGET_DIR=... OMP_NUM_THREADS=2 RAYON_NUM_THREADS=2 $PY bench/silhouette_vs_sklearn.py [n] [repeats]
Blobs n × 8 with 8 centres (seed 0), labelled by k-means; prints both times (median), both
scores, the ratio and peak memory.
"""
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import silhouette_score

n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
example = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target")),
                       "release/examples/cluster_bench")
X, _ = make_blobs(n_samples=n, n_features=8, centers=8, cluster_std=2.0, random_state=0)
labels = KMeans(n_clusters=8, n_init=1, random_state=0).fit(X).labels_
path = os.path.join(tempfile.mkdtemp(prefix="strata-sil-"), "blobs.csv")
with open(path, "w") as f:
    for row, l in zip(X, labels):
        f.write(",".join(repr(float(v)) for v in row) + f",{l}\n")
times = []
for _ in range(repeats):
    t = time.perf_counter()
    score = silhouette_score(X, labels)
    times.append(time.perf_counter() - t)
sk = float(np.median(times))
run = subprocess.run(["/usr/bin/time", "-f", "%M", example, "silhouette", path, str(repeats)], check=True,
                     capture_output=True, text=True)
ours = json.loads(run.stdout)
print(json.dumps({"n": n, "sklearn_seconds": sk, "sklearn_silhouette": float(score),
                  "strata_seconds": ours["seconds"], "strata_silhouette": ours["silhouette"],
                  "ratio": sk / ours["seconds"],
                  "python_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "strata_peak_mib": int(run.stderr.strip().splitlines()[-1]) / 1024}, indent=1))
