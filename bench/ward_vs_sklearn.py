"""Agglomerative Ward clustering: Strata against scikit-learn on the same data.

Usage: PY=$(../shared/bench/setup.sh | tail -1)
       CARGO_TARGET_DIR=... OMP_NUM_THREADS=2 RAYON_NUM_THREADS=2 $PY bench/ward_vs_sklearn.py [n] [repeats]
Blobs n × 8 with 8 centres (seed 0, std 1.5); scikit-learn's
AgglomerativeClustering(n_clusters=8, linkage="ward") and `cluster_bench ward` (the whole
dendrogram, then the cut into 8). Prints both times (median), the ARI between the two cuts and
against the blobs, and peak memory (the Python process's includes scikit-learn's distance
matrix; Strata's is the example's whole run).
"""
import json
import sys

import numpy as np
from sklearn.cluster import AgglomerativeClustering
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from cluster_common import median_seconds, python_peak_mib, run_strata, write_csv

n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 1
X, truth = make_blobs(n_samples=n, n_features=8, centers=8, cluster_std=1.5, random_state=0)
path = write_csv(X, truth, "strata-ward-")
ours, peak = run_strata("ward", path, 8, repeats)
sk_time, sk = median_seconds(lambda: AgglomerativeClustering(n_clusters=8, linkage="ward").fit(X),
                             repeats)
labels = np.array(ours["labels"])
print(json.dumps({
    "n": n, "sklearn_seconds": sk_time, "strata_seconds": ours["seconds"],
    "ratio": sk_time / ours["seconds"],
    "ari_strata_vs_sklearn": adjusted_rand_score(sk.labels_, labels),
    "ari_strata_vs_truth": adjusted_rand_score(truth, labels),
    "ari_sklearn_vs_truth": adjusted_rand_score(truth, sk.labels_),
    "python_peak_mib": python_peak_mib(), "strata_peak_mib": peak}, indent=1))
