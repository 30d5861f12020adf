#!/usr/bin/env python3
"""Writes the benchmark datasets as CSV (full float precision via repr).

    .venv-bench/bin/python scripts/bench/make_datasets.py --out DIR

  DIR/diabetes.csv   sklearn load_diabetes(as_frame=True): 442 rows, 10 features + `target`
  DIR/friedman1.csv  make_friedman1(n_samples=20000, n_features=10, noise=1.0,
                     random_state=0): columns x0..x9,target

repr() writes tiny values in exponent form (e.g. 4.2e-05): diabetes.csv has 3 such
values, friedman1.csv 20, so CSV readers must accept that notation.
"""

import argparse
import csv
import os
import sys

import numpy as np
from sklearn.datasets import load_diabetes, make_friedman1


def write_csv(path, header, matrix):
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for row in matrix:
            w.writerow([repr(float(v)) for v in row])
    print(f"wrote {path} ({len(matrix)} rows, {len(header)} columns)", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output directory (created if missing)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    diabetes = load_diabetes(as_frame=True)
    df = diabetes.frame                      # feature columns + "target"
    assert list(df.columns)[-1] == "target"
    write_csv(os.path.join(args.out, "diabetes.csv"), list(df.columns),
              df.to_numpy(dtype=np.float64))

    X, y = make_friedman1(n_samples=20000, n_features=10, noise=1.0, random_state=0)
    write_csv(os.path.join(args.out, "friedman1.csv"),
              [f"x{i}" for i in range(10)] + ["target"], np.column_stack([X, y]))


if __name__ == "__main__":
    main()
