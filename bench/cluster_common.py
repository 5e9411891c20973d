"""Shared by the *_vs_sklearn.py scripts: where the release `cluster_bench` example is, how
data are handed to it, how it is run under GNU time, and how a side is timed."""
import json
import os
import resource
import subprocess
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")),
                       "release/examples/cluster_bench")


def write_csv(X, labels, prefix):
    """Rows of X with their label as the last column, in a fresh temporary directory."""
    path = os.path.join(tempfile.mkdtemp(prefix=prefix), "blobs.csv")
    with open(path, "w") as f:
        for row, l in zip(X, labels):
            f.write(",".join(repr(float(v)) for v in row) + f",{l}\n")
    return path


def write_npy(X, prefix):
    """X as little-endian f64 .npy in a fresh temporary directory."""
    path = os.path.join(tempfile.mkdtemp(prefix=prefix), "blobs.npy")
    np.save(path, np.ascontiguousarray(X, dtype="<f8"))
    return path


def run_strata(*args):
    """Runs `cluster_bench args…` under GNU time: its JSON output and its peak RSS in MiB."""
    run = subprocess.run(["/usr/bin/time", "-f", "%M", EXAMPLE, *map(str, args)],
                         check=True, capture_output=True, text=True)
    return json.loads(run.stdout), int(run.stderr.strip().splitlines()[-1]) / 1024


def median_seconds(fit, repeats):
    """Median wall time of `repeats` calls of `fit()`, and the last call's result."""
    times, result = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fit()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), result


def python_peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
