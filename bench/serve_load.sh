#!/bin/sh
# Load test of `elm serve` on loopback: 64 streaming clients for 60 s against the bundled model, once
# with continuous batching (--parallel 64) and once one request at a time (--parallel 1). Reports
# failed requests, aggregate tokens/s, and the server's memory (RSS, and malloc's bytes in use, which
# only a leak grows) after a 15 s warm-up (which touches every connection thread's stack and the
# allocator's arenas), after the timed load, and after one more 15 s round.
#   bench/serve_load.sh [build-dir] [seconds] [clients]
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$ROOT" && cd "${1:-build}" && pwd)
SECONDS_=${2:-60}
CLIENTS=${3:-64}
ELM="$BUILD/bin/elm"
[ -x "$ELM" ] || { echo "build elm first: ninja -C $BUILD elm_cli"; exit 1; }
MODELS=$(mktemp -d)
ln -s "$ROOT/models/stories260k" "$MODELS/stories260k"
SERVER=""
cleanup() { [ -n "$SERVER" ] && kill $SERVER 2>/dev/null; rm -rf "$MODELS"; }
trap cleanup EXIT INT TERM

# RSS and malloc's bytes in use, in KiB, from the server's /health.
memory() {
  node -e 'fetch(process.argv[1] + "/health").then((r) => r.json()).then((h) =>
    console.log(`rss=${h.memory.rss_bytes >> 10} heap_in_use=${h.memory.heap_in_use_bytes >> 10}`))' "$1"
}

for PARALLEL in $CLIENTS 1; do
  LOG=$(mktemp)
  "$ELM" serve --models "$MODELS" --host 127.0.0.1 --port 0 --parallel $PARALLEL --load stories260k >"$LOG" 2>&1 &
  SERVER=$!
  URL=""
  for _ in $(seq 1 100); do
    URL=$(sed -n 's|.*\(http://127\.0\.0\.1:[0-9]*\)/.*|\1|p' "$LOG" | head -n 1)
    [ -n "$URL" ] && break
    sleep 0.1
  done
  [ -n "$URL" ] || { cat "$LOG"; exit 1; }
  node "$ROOT/bench/serve_load.mjs" --url "$URL" --clients "$CLIENTS" --seconds 15 >/dev/null  # warm-up
  MEM0=$(memory "$URL")
  RESULT=$(node "$ROOT/bench/serve_load.mjs" --url "$URL" --clients "$CLIENTS" --seconds "$SECONDS_")
  MEM1=$(memory "$URL")
  AGAIN=$(node "$ROOT/bench/serve_load.mjs" --url "$URL" --clients "$CLIENTS" --seconds 15)
  MEM2=$(memory "$URL")
  echo "parallel=$PARALLEL $RESULT"
  echo "  memory KiB: after warm-up $MEM0 | after the load $MEM1 | after another 15 s $MEM2"
  echo "  that round: $AGAIN"
  kill $SERVER
  wait $SERVER 2>/dev/null || true
  SERVER=""
  rm -f "$LOG"
done
