#!/usr/bin/env python3
"""Regenerates the ML-experiment test fixtures next to this file.

    scripts/bench-venv.sh            # once: creates .venv-bench with scikit-learn
    .venv-bench/bin/python Tests/ExperimentTests/Fixtures/make_fixtures.py

Writes:
  linear.csv          200 rows, a,b,c,target with target = 3a - 2b + 0.5c + 7 (noiseless)
  friedman_small.csv  make_friedman1(n_samples=300, n_features=5, noise=1.0, random_state=0)
  reference.json      scikit-learn reference values for fixed train/test splits

Everything is deterministic (fixed seeds). Floats are written with repr(), which
round-trips float64 exactly, both in the CSVs and in the JSON.

The reference values are computed from the CSVs *as read back from disk*, with the
features min-max normalised over ALL rows of the file (MinMaxScaler fit on the whole
file, a constant column becomes 0) -- the same preprocessing the Swift dispatcher
applies -- and the target left untouched.
"""

import csv
import json
import math
import os
import platform
import sys

import numpy as np
import sklearn
from sklearn.datasets import make_friedman1
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_squared_error
from sklearn.preprocessing import MinMaxScaler
from sklearn.svm import SVR

HERE = os.path.dirname(os.path.abspath(__file__))

LINEAR_SEED = 20240601
LINEAR_ROWS = 200
LINEAR_TRAIN = 160           # rows 0..159 train, 160..199 test
FRIEDMAN_ROWS = 300
FRIEDMAN_FEATURES = 5
FRIEDMAN_TRAIN = 240         # rows 0..239 train, 240..299 test
RF_SEEDS = list(range(10))


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for row in rows:
            w.writerow([repr(float(v)) for v in row])


def read_csv(path):
    with open(path, newline="") as f:
        r = csv.reader(f)
        header = next(r)
        data = np.array([[float(v) for v in row] for row in r], dtype=np.float64)
    return header, data


def fl(x):
    """numpy scalar / array -> plain Python float(s) for json (repr precision)."""
    if isinstance(x, np.ndarray):
        return [fl(v) for v in x.tolist()]
    if isinstance(x, (list, tuple)):
        return [fl(v) for v in x]
    return float(x)


def make_linear():
    rng = np.random.default_rng(LINEAR_SEED)
    a = rng.uniform(0.0, 10.0, LINEAR_ROWS)
    b = rng.uniform(-5.0, 5.0, LINEAR_ROWS)
    c = rng.uniform(100.0, 200.0, LINEAR_ROWS)
    target = 3.0 * a - 2.0 * b + 0.5 * c + 7.0
    path = os.path.join(HERE, "linear.csv")
    write_csv(path, ["a", "b", "c", "target"], np.column_stack([a, b, c, target]))
    return path


def make_friedman():
    X, y = make_friedman1(n_samples=FRIEDMAN_ROWS, n_features=FRIEDMAN_FEATURES,
                          noise=1.0, random_state=0)
    path = os.path.join(HERE, "friedman_small.csv")
    header = [f"x{i}" for i in range(FRIEDMAN_FEATURES)] + ["target"]
    write_csv(path, header, np.column_stack([X, y]))
    return path


def load_normalised(path):
    header, data = read_csv(path)
    X_raw, y = data[:, :-1], data[:, -1]
    scaler = MinMaxScaler().fit(X_raw)          # fit on ALL rows, as the dispatcher does
    X = scaler.transform(X_raw)
    return header, X, y, scaler


def lr_reference(path):
    header, X, y, scaler = load_normalised(path)
    tr, te = slice(0, LINEAR_TRAIN), slice(LINEAR_TRAIN, LINEAR_ROWS)
    model = LinearRegression().fit(X[tr], y[tr])
    pred = model.predict(X[te])
    # Closed form for the noiseless data: in normalised space coef_j = w_j * (max_j - min_j),
    # intercept = 7 + sum_j w_j * min_j. Recorded as a cross-check of the fitted values.
    w = np.array([3.0, -2.0, 0.5])
    analytic_coef = w * scaler.data_range_
    analytic_intercept = 7.0 + float(np.dot(w, scaler.data_min_))
    return {
        "dataset": "linear.csv",
        "target": "target",
        "features": header[:-1],
        "train_rows": [0, LINEAR_TRAIN - 1],
        "test_rows": [LINEAR_TRAIN, LINEAR_ROWS - 1],
        "feature_min": fl(scaler.data_min_),
        "feature_max": fl(scaler.data_max_),
        "coef": fl(model.coef_),
        "intercept": fl(model.intercept_),
        "analytic_coef": fl(analytic_coef),
        "analytic_intercept": analytic_intercept,
        "test_predictions": fl(pred),
        "test_targets": fl(y[te]),
        "test_mse": fl(mean_squared_error(y[te], pred)),
    }


def friedman_references(path):
    header, X, y, scaler = load_normalised(path)
    tr, te = slice(0, FRIEDMAN_TRAIN), slice(FRIEDMAN_TRAIN, FRIEDMAN_ROWS)
    Xtr, ytr, Xte, yte = X[tr], y[tr], X[te], y[te]
    common = {
        "dataset": "friedman_small.csv",
        "target": "target",
        "features": header[:-1],
        "train_rows": [0, FRIEDMAN_TRAIN - 1],
        "test_rows": [FRIEDMAN_TRAIN, FRIEDMAN_ROWS - 1],
        "feature_min": fl(scaler.data_min_),
        "feature_max": fl(scaler.data_max_),
    }

    # --- SVR, all defaults ---------------------------------------------------
    gamma = 1.0 / (Xtr.shape[1] * Xtr.var())
    svr = SVR().fit(Xtr, ytr)
    assert math.isclose(svr._gamma, gamma, rel_tol=1e-12), (svr._gamma, gamma)
    svr_pred = svr.predict(Xte)
    # The same model solved to a much tighter tolerance: shows how far the libsvm
    # default stopping tolerance (1e-3) leaves the predictions from the exact optimum.
    svr_tight = SVR(tol=1e-9).fit(Xtr, ytr)
    tight_pred = svr_tight.predict(Xte)
    svr_ref = dict(common)
    svr_ref.update({
        "params": {"kernel": "rbf", "C": 1.0, "epsilon": 0.1, "gamma": "scale", "tol": 1e-3},
        "gamma": fl(gamma),
        "n_support_vectors": int(svr.support_.shape[0]),
        "support_indices": [int(i) for i in svr.support_],   # indices into the training rows
        "intercept": fl(svr.intercept_[0]),
        "test_predictions": fl(svr_pred),
        "test_targets": fl(yte),
        "test_mse": fl(mean_squared_error(yte, svr_pred)),
        "train_mse": fl(mean_squared_error(ytr, svr.predict(Xtr))),
        "tight_tol": {
            "tol": 1e-9,
            "n_support_vectors": int(svr_tight.support_.shape[0]),
            "intercept": fl(svr_tight.intercept_[0]),
            "test_predictions": fl(tight_pred),
            "test_mse": fl(mean_squared_error(yte, tight_pred)),
            "max_abs_prediction_diff_vs_default": fl(np.max(np.abs(tight_pred - svr_pred))),
        },
    })

    # --- Random forest over 10 seeds ------------------------------------------
    mses = []
    for s in RF_SEEDS:
        rf = RandomForestRegressor(n_estimators=100, random_state=s).fit(Xtr, ytr)
        mses.append(float(mean_squared_error(yte, rf.predict(Xte))))
    mses_arr = np.array(mses)
    rf_ref = dict(common)
    rf_ref.update({
        "params": {"n_estimators": 100, "max_features": 1.0, "bootstrap": True,
                   "min_samples_split": 2, "min_samples_leaf": 1, "max_depth": None},
        "seeds": RF_SEEDS,
        "test_mse": mses,
        "test_mse_mean": fl(mses_arr.mean()),
        "test_mse_std": fl(mses_arr.std(ddof=1)),      # sample std (ddof=1)
        "test_mse_std_ddof0": fl(mses_arr.std(ddof=0)),
        "test_mse_min": fl(mses_arr.min()),
        "test_mse_max": fl(mses_arr.max()),
    })

    # --- Context: linear regression and the constant predictor on friedman ----
    lr = LinearRegression().fit(Xtr, ytr)
    context = dict(common)
    context.update({
        "lr_test_mse": fl(mean_squared_error(yte, lr.predict(Xte))),
        "lr_coef": fl(lr.coef_),
        "lr_intercept": fl(lr.intercept_),
        "mean_predictor_test_mse": fl(mean_squared_error(yte, np.full_like(yte, ytr.mean()))),
        "test_target_variance": fl(yte.var()),
    })
    return svr_ref, rf_ref, context


def main():
    linear_path = make_linear()
    friedman_path = make_friedman()
    svr_ref, rf_ref, context = friedman_references(friedman_path)
    reference = {
        "normalisation": "MinMaxScaler fit on all rows of the file (features only; "
                         "constant column -> 0); target not scaled",
        "lr": lr_reference(linear_path),
        "svr": svr_ref,
        "rf": rf_ref,
        "friedman_context": context,
        "versions": {
            "sklearn": sklearn.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    }
    out = os.path.join(HERE, "reference.json")
    with open(out, "w") as f:
        json.dump(reference, f, indent=2, allow_nan=False)
        f.write("\n")
    for p in (linear_path, friedman_path, out):
        print(f"wrote {os.path.relpath(p)}", file=sys.stderr)


if __name__ == "__main__":
    main()
