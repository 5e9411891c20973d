"""Gaussian mixture EM per iteration: Strata against scikit-learn, same data, same start.

Usage: PY=$(../shared/bench/setup.sh | tail -1)
       OMP_NUM_THREADS=2 RAYON_NUM_THREADS=2 $PY bench/gmm_vs_sklearn.py [n] [iterations] [repeats]
Writes blobs (n × 8, 8 centres, seed 0) and a k-means labelling to a temporary CSV; both sides
start EM from the responsibilities of those labels (scikit-learn through weights_init,
means_init and precisions_init computed from them), run exactly `iterations` EM steps with
full covariances (tol = 0) and report seconds per iteration and the final mean log-likelihood.
"""
import json
import sys
import time
import warnings

import numpy as np
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from cluster_common import python_peak_mib, run_strata, write_csv

n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
iters = int(sys.argv[2]) if len(sys.argv) > 2 else 20
repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 3
k, d = 8, 8

X, _ = make_blobs(n_samples=n, n_features=d, centers=k, cluster_std=1.5, random_state=0)
labels = KMeans(n_clusters=k, n_init=1, random_state=0).fit(X).labels_
path = write_csv(X, labels, "strata-gmm-")

# The M-step from one-hot responsibilities, as both sides start.
resp = np.zeros((n, k)); resp[np.arange(n), labels] = 1
nk = resp.sum(0) + 10 * np.finfo(float).eps
means = resp.T @ X / nk[:, None]
covs = np.empty((k, d, d))
for c in range(k):
    diff = X - means[c]
    covs[c] = (resp[:, c] * diff.T) @ diff / nk[c] + 1e-6 * np.eye(d)
precisions = np.linalg.inv(covs)

times, ll = [], None
for _ in range(repeats):
    gm = GaussianMixture(n_components=k, covariance_type="full", tol=0.0, max_iter=iters,
                         reg_covar=1e-6, weights_init=nk / n, means_init=means,
                         precisions_init=precisions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t = time.perf_counter()
        gm.fit(X)
        times.append((time.perf_counter() - t) / iters)
    ll = gm.score(X)
sk = float(np.median(times))
ours, peak = run_strata("gmm", path, iters, repeats)
print(json.dumps({"n": n, "d": d, "k": k, "iterations": iters,
                  "sklearn_seconds_per_iteration": sk, "sklearn_log_likelihood": ll,
                  "strata_seconds_per_iteration": ours["seconds_per_iteration"],
                  "strata_log_likelihood": ours["log_likelihood"],
                  "ratio": sk / ours["seconds_per_iteration"],
                  # Peak RSS: the whole Python process (data, k-means, the mixture) and the
                  # Rust example (CSV text, data, the mixture) under GNU time.
                  "python_peak_mib": python_peak_mib(), "strata_peak_mib": peak},
                 indent=1))
