#!/usr/bin/env python3
"""Side by side with scikit-learn: choosing k on the quickstart's own features.

Reads a Strata output directory (assignments.csv), rebuilds the exact matrix Strata clustered
(auto scaling: log1p for frequency, monetary, aov; z-score with population std for all), and
runs the same model selection with scikit-learn: KMeans(k-means++, n_init=10, lloyd) for k in
2..8 and silhouette_score(sample_size=4000). Prints one JSON line with the wall time of that
part only, the chosen k and the silhouette per k, beside Strata's own figures.

  python bench/quickstart_vs_sklearn.py strata-out
"""
import json, sys, time
import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score

out = sys.argv[1]
a = pd.read_csv(f"{out}/assignments.csv")
segments = json.load(open(f"{out}/segments.json"))
cols = ["recency_days", "frequency", "monetary", "tenure_days", "aov"]
X = []
for c in cols:
    v = a[c].to_numpy(dtype=float)
    if c in ("frequency", "monetary", "aov"):
        v = np.sign(v) * np.log1p(np.abs(v))
    sd = v.std()
    X.append((v - v.mean()) / (sd if sd > 1e-12 else 1.0))
X = np.ascontiguousarray(np.array(X).T)

t = time.perf_counter()
scores = {}
for k in range(2, 9):
    km = KMeans(k, init="k-means++", n_init=10, algorithm="lloyd", random_state=42).fit(X)
    scores[k] = (float(km.inertia_), float(silhouette_score(X, km.labels_, sample_size=4000, random_state=42)))
seconds = time.perf_counter() - t
chosen = max(scores, key=lambda k: scores[k][1])
ours = {c["k"]: (c["wcss"], c["silhouette"]) for c in segments["selection"]["candidates"]}
print(json.dumps({
    "lib": "scikit-learn", "part": "k-means n_init=10 + sampled silhouette for k=2..8",
    "seconds": seconds, "n": int(X.shape[0]), "chosen_k": chosen,
    "sklearn_wcss_silhouette": scores, "strata_chosen_k": segments["selection"]["chosen_k"],
    "strata_wcss_silhouette": ours,
}))
