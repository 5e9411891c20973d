"""Exact silhouette: Strata against scikit-learn's silhouette_score on the same data and labels.

Usage: PY=$(../shared/bench/setup.sh | tail -1)
       CARGO_TARGET_DIR=... OMP_NUM_THREADS=2 RAYON_NUM_THREADS=2 $PY bench/silhouette_vs_sklearn.py [n] [repeats]
Blobs n × 8 with 8 centres (seed 0), labelled by k-means; prints both times (median), both
scores, the ratio and peak memory.
"""
import json
import sys

from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import silhouette_score

from cluster_common import median_seconds, python_peak_mib, run_strata, write_csv

n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
X, _ = make_blobs(n_samples=n, n_features=8, centers=8, cluster_std=2.0, random_state=0)
labels = KMeans(n_clusters=8, n_init=1, random_state=0).fit(X).labels_
path = write_csv(X, labels, "strata-sil-")
sk, score = median_seconds(lambda: silhouette_score(X, labels), repeats)
ours, peak = run_strata("silhouette", path, repeats)
print(json.dumps({"n": n, "sklearn_seconds": sk, "sklearn_silhouette": float(score),
                  "strata_seconds": ours["seconds"], "strata_silhouette": ours["silhouette"],
                  "ratio": sk / ours["seconds"],
                  "python_peak_mib": python_peak_mib(), "strata_peak_mib": peak}, indent=1))
