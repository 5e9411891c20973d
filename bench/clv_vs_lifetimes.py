#!/usr/bin/env python3
"""BG/NBD on the full CDNOW_master, Strata against the Python `lifetimes` package, in one run
on the same summary (calibration to 1997-09-30, time in weeks = days / 7, repeat purchases
counted per distinct day). Prints both fits (parameters, log-likelihood) and the ratio of
median fit times. Usage: $(../shared/bench/setup.sh | tail -1) bench/clv_vs_lifetimes.py
"""
import json, os, statistics, subprocess, sys, time
from pathlib import Path

import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter
from lifetimes.utils import summary_data_from_transaction_data

root = Path(__file__).resolve().parent.parent
data = root / "data/cdnow/CDNOW_master.txt"
env = dict(os.environ)
env.setdefault("CARGO_TARGET_DIR", str(Path.home() / ".cache/strata-target"))
subprocess.run(["cargo", "build", "--release", "-q", "-p", "strata-ml", "--example", "bgnbd_cdnow"],
               cwd=root, env=env, check=True)
strata = json.loads(subprocess.run(
    [str(Path(env["CARGO_TARGET_DIR"]) / "release/examples/bgnbd_cdnow"), str(data), "7"],
    capture_output=True, text=True, check=True).stdout)

df = pd.read_csv(data, sep=r"\s+")
df["date"] = pd.to_datetime(df["date"].astype(str), format="%Y%m%d")
cal = df[df["date"] <= "1997-09-30"]
s = summary_data_from_transaction_data(cal, "customer_id", "date",
                                       observation_period_end="1997-09-30", freq="D")
s["recency"] /= 7
s["T"] /= 7
times = []
for _ in range(3):
    started = time.perf_counter()
    bg = BetaGeoFitter().fit(s["frequency"], s["recency"], s["T"])
    times.append(time.perf_counter() - started)
p = bg.params_
x, tx, T = s["frequency"].values, s["recency"].values, s["T"].values
ll = float(np.sum(-BetaGeoFitter._negative_log_likelihood(
    np.log(p[["r", "alpha", "a", "b"]].values), x, tx, T, np.ones(len(x)), 0.0) * len(x)))
ref = {"customers": len(s), "seconds": statistics.median(times), "r": p["r"], "alpha": p["alpha"],
       "a": p["a"], "b": p["b"]}
print("machine:", os.cpu_count(), "cores")
print("strata   ", json.dumps(strata))
print("lifetimes", json.dumps(ref), "log_likelihood(approx, lifetimes' objective)", ll)
print(f"ratio (lifetimes / strata, median fit time): {ref['seconds'] / strata['seconds']:.1f}x")
