"""Churn propensity: Strata's boosted trees against scikit-learn's
HistGradientBoostingClassifier (and LogisticRegression) on the same split of
../shared/data/churn/mlc_churn.csv, in one run.

Usage: PY=$(../shared/bench/setup.sh | tail -1)
       $PY bench/propensity_vs_sklearn.py [path/to/strata] [repeats]
Runs `strata propensity` on examples/churn/strata.toml (timed), reads its split and test
probabilities from propensity.csv, fits the scikit-learn models on the same rows with the same
one-hot encoding (timed), and prints test ROC-AUC, PR-AUC and log-loss of each plus the times.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
strata = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "target/release/strata")
repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
config = os.path.join(root, "examples/churn/strata.toml")
data = pd.read_csv(os.path.join(root, "../shared/data/churn/mlc_churn.csv"))

out = tempfile.mkdtemp(prefix="strata-churn-")
strata_times = []
for _ in range(repeats):
    t = time.perf_counter()
    subprocess.run([strata, "propensity", "--config", config, "--out", out], check=True,
                   stdout=subprocess.DEVNULL)
    strata_times.append(time.perf_counter() - t)
ours = pd.read_csv(os.path.join(out, "propensity.csv"))
summary = json.load(open(os.path.join(out, "propensity.json")))

ours = ours.set_index("customer_id").loc[data["rownames"]]
split = ours["split"].to_numpy()
y = (data["churn"] == "yes").astype(int).to_numpy()
X = pd.get_dummies(data.drop(columns=["rownames", "churn"]),
                   columns=["state", "area_code", "international_plan", "voice_mail_plan"],
                   dtype=float).to_numpy()
test = split == "test"
fit_rows = {"train": split == "train", "train+validation": split != "test"}


def scores(p):
    return {"roc_auc": roc_auc_score(y[test], p), "pr_auc": average_precision_score(y[test], p),
            "log_loss": log_loss(y[test], p)}


report = {"sklearn": sklearn.__version__, "test_rows": int(test.sum()),
          "strata_gbm": scores(ours["probability"].to_numpy()[test]),
          "strata_logistic": scores(ours["logistic_probability"].to_numpy()[test]),
          "strata_cv_roc_auc": summary["cross_validation"]["gbm_mean"],
          "strata_cv_roc_auc_sd": summary["cross_validation"]["gbm_sd"],
          "strata_seconds_whole_command": float(np.median(strata_times))}
for name, rows in fit_rows.items():
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        hgb = HistGradientBoostingClassifier(random_state=0).fit(X[rows], y[rows])
        times.append(time.perf_counter() - t)
    report[f"sklearn_hgb_fit_on_{name}"] = scores(hgb.predict_proba(X[test])[:, 1])
    report[f"sklearn_hgb_seconds_{name}"] = float(np.median(times))
    lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X[rows], y[rows])
    report[f"sklearn_logistic_fit_on_{name}"] = scores(lr.predict_proba(X[test])[:, 1])
print(json.dumps(report, indent=1))
