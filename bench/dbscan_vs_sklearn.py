"""DBSCAN: Strata against scikit-learn on the same data and parameters.

Usage: PY=$(../shared/bench/setup.sh | tail -1)
       CARGO_TARGET_DIR=... OMP_NUM_THREADS=2 RAYON_NUM_THREADS=2 $PY bench/dbscan_vs_sklearn.py [n] [eps] [min_samples] [repeats]
Blobs n × 8 with 8 centres (seed 0, std 1); scikit-learn's DBSCAN(n_jobs=2) and
`cluster_bench dbscan` run on the same file. Prints both times (median), cluster and noise counts, the
ARI between the two labellings and of each against the true blobs, and peak memory.
"""
import json
import sys

import numpy as np
from sklearn.cluster import DBSCAN
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from cluster_common import median_seconds, python_peak_mib, run_strata, write_csv

n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
eps = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
min_samples = int(sys.argv[3]) if len(sys.argv) > 3 else 10
repeats = int(sys.argv[4]) if len(sys.argv) > 4 else 3
X, truth = make_blobs(n_samples=n, n_features=8, centers=8, cluster_std=1.0, random_state=0)
path = write_csv(X, truth, "strata-dbscan-")
sk_time, sk = median_seconds(lambda: DBSCAN(eps=eps, min_samples=min_samples, n_jobs=2).fit(X),
                             repeats)
ours, peak = run_strata("dbscan", path, eps, min_samples, repeats)
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
    "python_peak_mib": python_peak_mib(), "strata_peak_mib": peak}, indent=1))
