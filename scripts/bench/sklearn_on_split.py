#!/usr/bin/env python3
"""Re-runs our experiment's train/test split with scikit-learn and compares.

    .venv-bench/bin/python scripts/bench/sklearn_on_split.py \
        --csv data.csv --target target --results training_results.json [--json out.json]

`training_results.json` is the traffic-experiment output. Per algorithm under
"algorithms": {"rf": {...}, "svr": {...}, "lr": {...}} it is expected to hold
  "test_indices": [0-based CSV data-row indices of the test set, header excluded],
  "metrics": {"mse": ...},
  "fit_seconds": ...
Missing algorithms are skipped; missing fields are reported as "n/a". If an algorithm has
no "test_indices", a top-level "test_indices" is used when present.

Features (every column except the target) are min-max normalised over ALL rows
(MinMaxScaler, as the Swift dispatcher does); the target is not scaled. Train = all rows
not in the test set. Models: LinearRegression(), SVR(), RandomForestRegressor(
n_estimators=100, random_state=42); RF is fitted with n_jobs=1 and with n_jobs=-1
(LinearRegression with n_jobs=1; SVR has no n_jobs). Fits are timed with
time.perf_counter; with --repeat N the minimum of N fits is reported.
"""

import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np
import pandas as pd
import sklearn
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_squared_error
from sklearn.preprocessing import MinMaxScaler
from sklearn.svm import SVR

ALGORITHMS = ("rf", "svr", "lr")


def make_model(algo, n_jobs):
    if algo == "lr":
        return LinearRegression(n_jobs=n_jobs)
    if algo == "svr":
        return SVR()
    if algo == "rf":
        return RandomForestRegressor(n_estimators=100, random_state=42, n_jobs=n_jobs)
    raise ValueError(algo)


def timed_fit(algo, n_jobs, Xtr, ytr, Xte, yte, repeat):
    best, mse = math.inf, None
    for _ in range(repeat):
        model = make_model(algo, n_jobs)
        t0 = time.perf_counter()
        model.fit(Xtr, ytr)
        best = min(best, time.perf_counter() - t0)
        mse = float(mean_squared_error(yte, model.predict(Xte)))
    return best, mse


def num(x):
    """A finite float, or None."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def fmt(x, digits=6):
    return "n/a" if x is None else f"{x:.{digits}g}"


def load_features(csv_path, target):
    df = pd.read_csv(csv_path)
    if target not in df.columns:
        sys.exit(f"error: target column {target!r} not in {csv_path} (columns: {list(df.columns)})")
    features = df.drop(columns=[target])
    non_numeric = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if non_numeric:
        print(f"warning: ignoring non-numeric columns {non_numeric}", file=sys.stderr)
        features = features.drop(columns=non_numeric)
    X = MinMaxScaler().fit_transform(features.to_numpy(dtype=np.float64))
    y = df[target].to_numpy(dtype=np.float64)
    return X, y, list(features.columns)


def test_mask(indices, n_rows, algo):
    idx = np.asarray([int(i) for i in indices], dtype=np.int64)
    if idx.size == 0:
        raise ValueError(f"{algo}: empty test_indices")
    if idx.min() < 0 or idx.max() >= n_rows:
        raise ValueError(f"{algo}: test_indices out of range [0, {n_rows})")
    if np.unique(idx).size != idx.size:
        print(f"warning: {algo}: test_indices contains duplicates; using the unique set",
              file=sys.stderr)
    mask = np.zeros(n_rows, dtype=bool)
    mask[idx] = True
    if mask.all():
        raise ValueError(f"{algo}: test set covers every row, nothing to train on")
    return mask


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--csv", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--results", required=True, help="training_results.json from traffic-experiment")
    ap.add_argument("--json", dest="json_out", help="also write the figures as JSON here")
    ap.add_argument("--repeat", type=int, default=1, help="fits per timing, minimum reported")
    ap.add_argument("--algorithms", default=",".join(ALGORITHMS),
                    help="comma-separated subset of rf,svr,lr (default all present)")
    args = ap.parse_args()

    with open(args.results) as f:
        results = json.load(f)
    ours_all = results.get("algorithms") or {}
    if not isinstance(ours_all, dict):
        sys.exit("error: 'algorithms' in the results file is not an object")

    X, y, feature_names = load_features(args.csv, args.target)
    n_rows = X.shape[0]
    wanted = [a.strip() for a in args.algorithms.split(",") if a.strip()]

    rows = {}
    for algo in wanted:
        if algo not in ALGORITHMS:
            print(f"warning: unknown algorithm {algo!r}, skipped", file=sys.stderr)
            continue
        ours = ours_all.get(algo)
        if not isinstance(ours, dict):
            print(f"note: {algo} not in results, skipped", file=sys.stderr)
            continue
        indices = ours.get("test_indices", results.get("test_indices"))
        if not indices:
            print(f"warning: {algo}: no test_indices, skipped", file=sys.stderr)
            continue
        try:
            mask = test_mask(indices, n_rows, algo)
        except (ValueError, TypeError) as e:
            print(f"warning: {e}; skipped", file=sys.stderr)
            continue
        Xtr, ytr, Xte, yte = X[~mask], y[~mask], X[mask], y[mask]

        fit1, sk_mse = timed_fit(algo, 1, Xtr, ytr, Xte, yte, args.repeat)
        fit_all = None
        if algo == "rf":
            fit_all, _ = timed_fit(algo, -1, Xtr, ytr, Xte, yte, args.repeat)

        our_mse = num((ours.get("metrics") or {}).get("mse"))
        our_fit = num(ours.get("fit_seconds"))
        ratio = our_mse / sk_mse if our_mse is not None and sk_mse else None
        rows[algo] = {
            "n_train": int(Xtr.shape[0]),
            "n_test": int(Xte.shape[0]),
            "our_mse": our_mse,
            "sklearn_mse": sk_mse,
            "mse_ratio": ratio,
            "our_fit_seconds": our_fit,
            "sklearn_fit_seconds_n_jobs_1": fit1,
            "sklearn_fit_seconds_n_jobs_all": fit_all,
        }

    if not rows:
        sys.exit("error: no algorithm could be compared")

    print(f"Dataset `{os.path.basename(args.csv)}`: {n_rows} rows, {len(feature_names)} features, "
          f"target `{args.target}`; sklearn {sklearn.__version__}, {os.cpu_count()} CPUs"
          + (f", timings = min of {args.repeat}" if args.repeat > 1 else ""))
    print()
    print("| algorithm | n test | our MSE | sklearn MSE | MSE ratio | our fit s "
          "| sklearn fit s (n_jobs=1) | sklearn fit s (n_jobs=-1, rf only) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for algo, r in rows.items():
        print(f"| {algo} | {r['n_test']} | {fmt(r['our_mse'])} | {fmt(r['sklearn_mse'])} "
              f"| {fmt(r['mse_ratio'], 4)} | {fmt(r['our_fit_seconds'], 4)} "
              f"| {fmt(r['sklearn_fit_seconds_n_jobs_1'], 4)} "
              f"| {fmt(r['sklearn_fit_seconds_n_jobs_all'], 4) if algo == 'rf' else '–'} |")

    if args.json_out:
        out = {
            "csv": os.path.abspath(args.csv),
            "target": args.target,
            "results": os.path.abspath(args.results),
            "n_rows": n_rows,
            "features": feature_names,
            "normalisation": "MinMaxScaler over all rows",
            "repeat": args.repeat,
            "cpu_count": os.cpu_count(),
            "versions": {"sklearn": sklearn.__version__, "numpy": np.__version__,
                         "python": platform.python_version()},
            "algorithms": rows,
        }
        with open(args.json_out, "w") as f:
            json.dump(out, f, indent=2, allow_nan=False)
            f.write("\n")


if __name__ == "__main__":
    main()
