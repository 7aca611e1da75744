#!/bin/sh
# End-to-end tests of `elm serve`: starts the server on loopback with a models directory holding the
# bundled model twice, then runs the openai-client and browser (Playwright + Debian's chromium) tests.
#   tests/e2e/run.sh [build-dir]      (default: build; the elm binary is built there when missing)
# Screenshots and the server log go to <build-dir>/e2e-artifacts/.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "$ROOT" && mkdir -p "${1:-build}" && cd "${1:-build}" && pwd)
E2E="$ROOT/tests/e2e"
ELM="$BUILD/bin/elm"
ART="$BUILD/e2e-artifacts"
MODELS="$BUILD/e2e-models"

command -v node >/dev/null || { echo "e2e: node is missing (scripts/install-deps.sh installs it)"; exit 1; }
[ -x /usr/bin/chromium ] || { echo "e2e: /usr/bin/chromium is missing (scripts/install-deps.sh installs it)"; exit 1; }
if [ ! -x "$ELM" ]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja >/dev/null
  cmake --build "$BUILD" --target elm_cli
fi

# npm ci only when the lockfile changed since the last install.
if ! cmp -s "$E2E/package-lock.json" "$E2E/node_modules/.package-lock.json.installed" 2>/dev/null; then
  (cd "$E2E" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$E2E/package-lock.json" "$E2E/node_modules/.package-lock.json.installed"
fi

rm -rf "$MODELS" "$ART"
mkdir -p "$MODELS" "$ART"
ln -s "$ROOT/models/stories260k" "$MODELS/stories260k"
cp -r "$ROOT/models/stories260k" "$MODELS/stories260k-copy"  # a second, independent model

LOG="$ART/server.log"
"$ELM" serve --models "$MODELS" --host 127.0.0.1 --port 0 --parallel 4 --log >"$LOG" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT INT TERM

# The server prints its address once it listens (port 0: the kernel picked a free one).
URL=""
for _ in $(seq 1 100); do
  URL=$(sed -n 's|.*\(http://127\.0\.0\.1:[0-9]*\)/.*|\1|p' "$LOG" | head -n 1)
  [ -n "$URL" ] && break
  kill -0 $SERVER 2>/dev/null || { cat "$LOG"; echo "e2e: the server did not start"; exit 1; }
  sleep 0.1
done
[ -n "$URL" ] || { cat "$LOG"; echo "e2e: the server did not report its address"; exit 1; }
echo "e2e: elm serve at $URL"

# A build whose tokenizer cannot read the bundled model's tokenizer.json cannot chat at all: report the
# test as skipped (ctest: SKIP_RETURN_CODE 77) rather than as a server failure.
if ! ELM_URL="$URL" node --input-type=module -e '
  const u = process.env.ELM_URL;
  const r = await fetch(u + "/api/models/load", { method: "POST", body: JSON.stringify({ model: "stories260k" }) });
  const m = (await (await fetch(u + "/api/models")).json()).models.find((x) => x.id === "stories260k");
  process.exit(r.ok && m && m.tokenizer ? 0 : 1);'; then
  echo "e2e: SKIPPED: the bundled model loads without a tokenizer in this build"
  exit 77
fi

cd "$E2E"
ELM_URL="$URL" ELM_ARTIFACTS="$ART" node --test --test-concurrency=1 api.test.mjs gui.test.mjs
