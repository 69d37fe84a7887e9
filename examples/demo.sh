#!/usr/bin/env bash
# Slipway on this machine, from nothing: build the hello demo service into an image, push it
# to Slipway's own registry, lay out a GitOps repository from examples/gitops with the image
# pinned by digest (what the delivery step does), and run `slipway up` on it: staging (1
# replica) and production (3 replicas) are synced, served through the embedded proxy, and
# kept as Git says. Ctrl-C stops everything.
#
# usage: examples/demo.sh [DIR]     (default /tmp/slipway-demo; reused when it exists)
# env:   REGISTRY_PORT (default 5000), API (default 127.0.0.1:7070)
# Then, in another terminal:
#   slipway app list                  # Synced / Healthy, revision
#   curl http://127.0.0.1:18080/      # production through the proxy: 3 pods answer in turn
#   pkill -9 -f 'hello-production'    # ... or kill a replica: it is back in well under a second
#   cd DIR/gitops && edit apps/hello/overlays/production/kustomization.yaml && git commit -am ...
#   slipway app rollback hello-production   # a revert commit; the controller follows it
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="$(realpath -m "${1:-/tmp/slipway-demo}")"
REGISTRY_PORT="${REGISTRY_PORT:-5000}"
API="${API:-127.0.0.1:7070}"

echo "building slipway and hello (release)..." >&2
cargo build --quiet --release -p slipway-cli -p slipway-hello --manifest-path "$ROOT/Cargo.toml"
SLIPWAY="${CARGO_TARGET_DIR:-$ROOT/target}/release/slipway"
mkdir -p "$DIR"

"$SLIPWAY" -q registry serve --listen "127.0.0.1:$REGISTRY_PORT" --data-dir "$DIR/registry" &
REG_PID=$!
trap 'kill $REG_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$REGISTRY_PORT") 2>/dev/null && break
  sleep 0.05
done

# The same image as examples/hello/image.yaml, from wherever cargo put the binary.
"$SLIPWAY" -q image build --context "$(dirname "$SLIPWAY")" --copy hello:/app/hello:0755 \
  --entrypoint /app/hello --env PORT=8080 --output "oci:$DIR/hello-oci" --tag hello:0.1.0
DIGEST=$("$SLIPWAY" -q image push "oci:$DIR/hello-oci" "127.0.0.1:$REGISTRY_PORT/hello:0.1.0" 2>/dev/null \
  || "$SLIPWAY" -q image resolve "127.0.0.1:$REGISTRY_PORT/hello:0.1.0")
echo "image: 127.0.0.1:$REGISTRY_PORT/hello@$DIGEST" >&2

if [ ! -d "$DIR/gitops/.git" ]; then
  cp -r "$ROOT/examples/gitops" "$DIR/gitops"
  sed -i "s#repoURL: .*#repoURL: $DIR/gitops#" \
    "$DIR"/gitops/applications/*.yaml
  for env in staging production; do
    "$SLIPWAY" -q kustomize set-image "$DIR/gitops/apps/hello/overlays/$env" \
      "hello=127.0.0.1:$REGISTRY_PORT/hello:0.1.0@$DIGEST"
  done
  git -C "$DIR/gitops" init -q -b main
  git -C "$DIR/gitops" add -A
  git -C "$DIR/gitops" -c user.name=demo -c user.email=demo@example.com commit -q -m "hello 0.1.0 in staging and production"
fi

echo "GitOps repository: $DIR/gitops" >&2
"$SLIPWAY" up --repo "$DIR/gitops" --data-dir "$DIR/data" --listen "$API"
