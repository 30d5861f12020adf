#!/usr/bin/env bash
# Benchmarks the grid-search worker pool (release build), in one script, same machine, same
# minute, on a private redis-server:
#   1. a 60-task grid (12 parameter sets × 5 folds: rf and svr) on friedman1 (2,000 rows × 10,
#      make_friedman1(noise=1.0, random_state=0)) with 1 worker process, then 2 worker processes,
#      each on one thread; prints both wall times and the ratio (goal ≥ 1.8× on 2 cores);
#   2. the pool's overhead per task: 1,000 nearly empty tasks (svr on 20 rows) through one
#      worker; overhead = wall time per task − the task's own fit time (goal ≤ 2 ms).
# Usage: scripts/bench/pool.sh [ROUNDS]   (ROUNDS repetitions of part 1, default 3)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/opt/swift/usr/bin:$PATH"
ROUNDS=${1:-3}
PY=$(scripts/bench-venv.sh)/bin/python
swift build -c release --product traffic-experiment >/dev/null
TOOL=$PWD/.build/release/traffic-experiment
WORK=$(mktemp -d /tmp/pool-bench.XXXXXX)
PORT=$((20000 + RANDOM % 30000))
redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes --dir "$WORK" --logfile "$WORK/redis.log" --pidfile "$WORK/redis.pid"
cleanup() {
  pkill -TERM -f "traffic-experiment worker --pool.*--redis-url redis://127.0.0.1:$PORT" 2>/dev/null || true
  redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
URL=redis://127.0.0.1:$PORT
for _ in $(seq 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
now() { date +%s.%N; }

"$PY" - "$WORK" <<'PYEOF'
import csv, sys
from sklearn.datasets import make_friedman1
x, y = make_friedman1(n_samples=2000, n_features=10, noise=1.0, random_state=0)
with open(f"{sys.argv[1]}/friedman2k.csv", "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow([f"x{i}" for i in range(10)] + ["target"])
    for row, t in zip(x, y):
        w.writerow([repr(float(v)) for v in row] + [repr(float(t))])
with open(f"{sys.argv[1]}/tiny.csv", "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["x0", "x1", "target"])
    for i in range(20):
        w.writerow([i, (i * 7) % 5, 2 * i + 1])
PYEOF
cat >"$WORK/grid.json" <<'EOF'
{
  "rf":  {"n_estimators": [100, 200], "max_depth": [null, 8], "n_jobs": [1]},
  "svr": {"C": [0.5, 1, 2, 4], "epsilon": [0.1, 0.2]}
}
EOF
"$PY" -c 'import json; print(json.dumps({"svr": {"C": [round(0.5 + i / 100, 2) for i in range(200)]}}))' >"$WORK/empty.json"

# Runs JOB's tasks with N worker processes (one thread each); prints the seconds from the
# workers' start to the job's end, and the job's own wall time (first task start → last finish).
run_job() {
  local job=$1 workers=$2 start elapsed
  start=$(now)
  for i in $(seq "$workers"); do
    "$TOOL" worker --pool --redis-url "$URL" --name "bench-$workers-$i" --threads 1 >"$WORK/worker-$job-$i.log" 2>&1 &
  done
  "$TOOL" results "$job" --redis-url "$URL" --wait 3600 --output "$WORK/out" >"$WORK/results-$job.log"
  elapsed=$(echo "$(now) - $start" | bc)
  pkill -TERM -f "traffic-experiment worker --pool --redis-url $URL" || true
  for _ in $(seq 100); do pgrep -f "traffic-experiment worker --pool --redis-url $URL" >/dev/null || break; sleep 0.05; done
  local wall
  wall=$(sed -n 's/.*; \([0-9.]*\) s from first start to last finish/\1/p' "$WORK/results-$job.log")
  echo "$elapsed $wall"
}

echo "== 60-task grid on friedman1 (2000 × 10), 1 vs 2 worker processes, one thread each ($(nproc) cores)"
for round in $(seq "$ROUNDS"); do
  one=$("$TOOL" grid --redis-url "$URL" --csv "$WORK/friedman2k.csv" --grid "$WORK/grid.json" --folds 5 --quiet)
  read -r e1 w1 < <(run_job "$one" 1)
  two=$("$TOOL" grid --redis-url "$URL" --csv "$WORK/friedman2k.csv" --grid "$WORK/grid.json" --folds 5 --quiet)
  read -r e2 w2 < <(run_job "$two" 2)
  printf 'round %s: 1 worker %.2f s (job %.2f s), 2 workers %.2f s (job %.2f s), speed-up %.2f× (job %.2f×)\n' \
    "$round" "$e1" "$w1" "$e2" "$w2" "$(echo "$e1 / $e2" | bc -l)" "$(echo "$w1 / $w2" | bc -l)"
done
grep -E "^\[results\] +1 " "$WORK/results-$two.log" || true

echo
echo "== overhead per task: 1000 nearly empty tasks (svr on 20 rows, 200 sets × 5 folds), one worker"
job=$("$TOOL" grid --redis-url "$URL" --csv "$WORK/tiny.csv" --grid "$WORK/empty.json" --folds 5 --quiet)
read -r elapsed wall < <(run_job "$job" 1)
"$PY" - "$WORK/out/grid_${job}_results.json" "$wall" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
wall = float(sys.argv[2])
fits = sum(e["meanFitSeconds"] * (r["folds"] - e["foldsFailed"]) for e in r["ranking"])
n = r["done"]
print(f"{n} tasks in {wall:.3f} s: {wall / n * 1000:.3f} ms per task, of which fit {fits / n * 1000:.3f} ms;"
      f" pool overhead {(wall - fits) / n * 1000:.3f} ms per task")
PYEOF
