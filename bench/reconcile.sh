#!/usr/bin/env bash
# Reconciliation benchmarks (drift correction, webhook to synced, 1,000 applications) against
# a real `slipway up`, release build. Builds slipway and the hello demo service, starts
# Slipway's registry, pushes the hello image to it, then runs bench/reconcile.py.
#
# usage: bench/reconcile.sh [--runs N] [--apps N] [--only drift,webhook,scale]
# needs: cargo, git, python3
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
for tool in cargo git python3; do
  command -v "$tool" >/dev/null || { echo "error: $tool is required" >&2; exit 2; }
done

echo "building slipway and hello (release)..." >&2
cargo build --quiet --release -p slipway-cli -p slipway-hello --manifest-path "$ROOT/Cargo.toml"
SLIPWAY="${CARGO_TARGET_DIR:-$ROOT/target}/release/slipway"

WORK="$(mktemp -d)"
REG_PID=""
cleanup() {
  if [ -n "$REG_PID" ]; then kill "$REG_PID" 2>/dev/null || true; wait "$REG_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$SLIPWAY" -q registry serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/registry" &
REG_PID=$!
for _ in $(seq 200); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/v2/')" 2>/dev/null && break
  sleep 0.05
done

# The same image as examples/hello/image.yaml, from wherever cargo put the binary.
"$SLIPWAY" -q image build --context "$(dirname "$SLIPWAY")" --copy hello:/app/hello:0755 \
  --entrypoint /app/hello --env PORT=8080 --output "oci:$WORK/hello-oci" --tag hello:bench
DIGEST=$("$SLIPWAY" -q image push "oci:$WORK/hello-oci" "127.0.0.1:$PORT/hello:bench")
IMAGE="127.0.0.1:$PORT/hello@$DIGEST"
echo "image: $IMAGE" >&2

python3 "$HERE/reconcile.py" "$SLIPWAY" "$IMAGE" "$@"
