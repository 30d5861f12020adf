#!/usr/bin/env bash
# The main job on the embedded default: installs what is missing, builds in release mode,
# starts a private redis-server, the aggregator (which hosts the embedded Kafka broker), the
# simulator and the WebSocket gateway with its live dashboard, and tails the live results.
# Ctrl-C stops everything.
#   DEMO_SECONDS=N  stop by itself after N seconds (default: run until interrupted)
#   DEMO_RATE=R     simulated results per second (default 20)
#   DEMO_FRAME_EVERY=N  every n-th detection carries a painted frame image (default 5; 0: none)
#   GATEWAY_PORT=P  dashboard and WebSocket port (default 8080, or a free one if taken)
#   DEMO_REDIS=cluster  a private 6-node Redis Cluster (3 primaries, 3 replicas) instead of
#                   one redis-server: every component on redis-cluster://
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

scripts/install-deps.sh
swift build -c release --product traffic-aggregator
swift build -c release --product traffic-sim
swift build -c release --product traffic-gateway
BIN=.build/release

DEMO_DIR="$PWD/.demo"
rm -rf "$DEMO_DIR" && mkdir -p "$DEMO_DIR"
free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "no free port found" >&2; exit 1
}
PORT=$(free_port)
METRICS_PORT=$(free_port)
GATEWAY_PORT=${GATEWAY_PORT:-8080}
if (exec 3<>"/dev/tcp/127.0.0.1/$GATEWAY_PORT") 2>/dev/null; then GATEWAY_PORT=$(free_port); fi
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "demo stopped; logs in $DEMO_DIR"
}
trap cleanup EXIT INT TERM

wait_ping() { for _ in $(seq 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && return; sleep 0.1; done; echo "redis-server on $1 did not start" >&2; exit 1; }
case "${DEMO_REDIS:-single}" in
  cluster)
    nodes=()
    for n in 1 2 3 4 5 6; do
      p=$(free_port)
      mkdir -p "$DEMO_DIR/node$n"
      redis-server --port "$p" --bind 127.0.0.1 --dir "$DEMO_DIR/node$n" --save "" --appendonly yes \
        --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
        --logfile "$DEMO_DIR/node$n/redis.log" --daemonize no &
      pids+=($!)
      nodes+=("127.0.0.1:$p")
    done
    for node in "${nodes[@]}"; do wait_ping "${node##*:}"; done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes > "$DEMO_DIR/cluster-create.log" 2>&1
    for _ in $(seq 100); do redis-cli -p "${nodes[0]##*:}" cluster info | grep -q cluster_state:ok && break; sleep 0.1; done
    REDIS_URL="redis-cluster://$(IFS=,; echo "${nodes[*]}")"
    export REDIS_URL
    echo "==> private Redis Cluster (3 primaries, 3 replicas) at $REDIS_URL"
    ;;
  single)
    redis-server --port "$PORT" --bind 127.0.0.1 --dir "$DEMO_DIR" --save "" --appendonly no \
      --logfile "$DEMO_DIR/redis.log" --daemonize no &
    pids+=($!)
    wait_ping "$PORT"
    export REDIS_URL="redis://127.0.0.1:$PORT"
    echo "==> private redis-server at $REDIS_URL"
    ;;
  *)
    echo "DEMO_REDIS must be 'single' (default) or 'cluster', got '$DEMO_REDIS'" >&2; exit 2
    ;;
esac

"$BIN/traffic-aggregator" run --bootstrap-file "$DEMO_DIR/bootstrap" --metrics-port "$METRICS_PORT" > "$DEMO_DIR/aggregator.log" 2>&1 &
pids+=($!)
"$BIN/traffic-sim" --bootstrap-file "$DEMO_DIR/bootstrap" --rate "${DEMO_RATE:-20}" --frame-every "${DEMO_FRAME_EVERY:-5}" > "$DEMO_DIR/sim.log" 2>&1 &
pids+=($!)
"$BIN/traffic-gateway" run --port "$GATEWAY_PORT" --host "${GATEWAY_HOST:-127.0.0.1}" > "$DEMO_DIR/gateway.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$DEMO_DIR/bootstrap" ] && break; sleep 0.1; done
echo "==> embedded Kafka at $(cat "$DEMO_DIR/bootstrap"); aggregator log: $DEMO_DIR/aggregator.log"
echo "==> metrics: http://127.0.0.1:$METRICS_PORT/metrics  health: http://127.0.0.1:$METRICS_PORT/healthz"
echo "==> live dashboard: http://127.0.0.1:$GATEWAY_PORT/  (WebSocket ws://127.0.0.1:$GATEWAY_PORT/ws, API /api/cameras)"
echo "==> live results (alerts in red); try: $BIN/traffic-aggregator alerts 7 --redis-url $REDIS_URL"

if [ -n "${DEMO_SECONDS:-}" ]; then
  timeout "$DEMO_SECONDS" "$BIN/traffic-aggregator" watch || true
else
  "$BIN/traffic-aggregator" watch
fi
