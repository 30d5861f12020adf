#!/usr/bin/env bash
# Benchmarks the experiment pipeline (release build) against scikit-learn and the Python
# original, in one script, same machine, same minute:
#   1. accuracy and fit time per algorithm on scikit-learn's diabetes data and on
#      make_friedman1(20000, 10, noise=1.0, random_state=0), with scikit-learn fitted on the
#      exact split our workers used (their test indices from training_results.json);
#   2. our rf fit on one thread (n_jobs=1) against scikit-learn's n_jobs=1;
#   3. the whole `traffic-experiment run` on friedman1 end to end against the Python baseline
#      (../shared/peers/experiment_py: dispatcher, three workers in parallel, collector).
# Usage: scripts/bench/experiment.sh [ROUNDS]   (ROUNDS end-to-end repetitions, default 3)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/opt/swift/usr/bin:$PATH"
ROUNDS=${1:-3}
PY=$(scripts/bench-venv.sh)/bin/python
swift build -c release --product traffic-experiment >/dev/null
TOOL=$PWD/.build/release/traffic-experiment
PEERS=$(cd ../shared/peers/experiment_py && pwd)
WORK=$(mktemp -d /tmp/experiment-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
"$PY" scripts/bench/make_datasets.py --out "$WORK" >/dev/null
port() { echo $((20000 + RANDOM % 30000)); }
now() { date +%s.%N; }

echo "== accuracy and fit time on the workers' own split (release build; $(nproc) cores)"
for data in diabetes friedman1; do
  P=$(port)
  (cd "$WORK" && "$TOOL" run --csv "$WORK/$data.csv" --start-redis --port "$P" --shutdown-redis --output "$WORK/$data" >"$WORK/$data.log" 2>&1)
  echo "-- $data"
  "$PY" scripts/bench/sklearn_on_split.py --csv "$WORK/$data.csv" --target target --results "$WORK/$data/training_results.json" --repeat 1
done

echo
echo "== rf fit on one thread (friedman1, n_jobs=1 both)"
P=$(port)
"$TOOL" run --csv "$WORK/friedman1.csv" --algorithms rf --param n_jobs=1 --start-redis --port "$P" --shutdown-redis --output "$WORK/rf1" >"$WORK/rf1.log" 2>&1
grep -E "\[rf\] done" "$WORK/rf1.log"
"$PY" - "$WORK/rf1/training_results.json" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))["algorithms"]["rf"]
print(f"ours rf fit, 1 thread: {r['fit_seconds']:.2f} s (MSE {r['metrics']['mse']:.4f})")
PYEOF

echo
echo "== end to end on friedman1: traffic-experiment run vs the Python original ($ROUNDS rounds, alternating)"
for round in $(seq "$ROUNDS"); do
  P=$(port)
  start=$(now)
  (cd "$WORK" && "$TOOL" run --csv "$WORK/friedman1.csv" --start-redis --port "$P" --shutdown-redis --output "$WORK/e2e" >"$WORK/e2e.log" 2>&1)
  ours=$(echo "$(now) - $start" | bc)
  P=$(port)
  start=$(now)
  (cd "$WORK" && "$PY" "$PEERS/dispatcher.py" --csv "$WORK/friedman1.csv" --port "$P" >"$WORK/py.log" 2>&1 \
    && "$PY" "$PEERS/run_all.py" --port "$P" >>"$WORK/py.log" 2>&1 \
    && "$PY" "$PEERS/collector.py" --port "$P" --expect 3 --output "$WORK/py_results.json" >>"$WORK/py.log" 2>&1)
  theirs=$(echo "$(now) - $start" | bc)
  printf 'round %s: traffic-experiment %.2f s, Python original %.2f s, ratio %.2f\n' "$round" "$ours" "$theirs" "$(echo "$ours / $theirs" | bc -l)"
done
echo "-- ours, last round:"; grep -E "done:|finished in|\[run\]" "$WORK/e2e.log"
echo "-- Python original, last round:"; grep -E "done:|finished in|timings" "$WORK/py.log"
