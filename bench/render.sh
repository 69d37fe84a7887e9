#!/usr/bin/env bash
# Render benchmark: Slipway vs `kubectl kustomize` on a generated GitOps tree
# (200 applications x base + 2 overlays, about 20 objects per overlay).
#
# Prints, from one run: time per overlay for
#   kubectl kustomize, one process per overlay
#   slipway render,    one process per overlay
#   slipway render,    every overlay in one process
# and the ratios. Before timing, it checks that Slipway's output equals kubectl's for a
# sample of overlays (semantically, with `slipway diff`).
#
# usage: bench/render.sh [--apps N] [--runs N]
# needs: kubectl (with kustomize), hyperfine, python3, cargo
set -euo pipefail

APPS=200
RUNS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --apps) APPS="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    *) echo "usage: $0 [--apps N] [--runs N]" >&2; exit 2 ;;
  esac
done

for tool in kubectl hyperfine python3 cargo; do
  command -v "$tool" >/dev/null || { echo "error: $tool is required (apt-get install hyperfine; kubectl ships kustomize)" >&2; exit 2; }
done

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
echo "building slipway (release)..." >&2
cargo build --quiet --release -p slipway-cli --manifest-path "$ROOT/Cargo.toml"
SLIPWAY="$ROOT/target/release/slipway"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
echo "generating $APPS applications in $WORK..." >&2
python3 "$HERE/gen_render_tree.py" "$WORK/tree" --apps "$APPS"
find "$WORK/tree/apps" -path '*/overlays/*' -name kustomization.yaml -printf '%h\n' | sort > "$WORK/overlays.txt"
N=$(wc -l < "$WORK/overlays.txt")
OBJS=$("$SLIPWAY" render "$(head -1 "$WORK/overlays.txt")" | grep -c '^kind:')
echo "$N overlays, $OBJS objects in the first one" >&2

echo "checking Slipway's output against kubectl on a sample..." >&2
i=0
while read -r dir; do
  i=$((i + 1))
  [ $((i % 20)) -eq 1 ] || continue
  kubectl kustomize "$dir" > "$WORK/kubectl.yaml" 2>/dev/null
  "$SLIPWAY" render "$dir" > "$WORK/slipway.yaml"
  if ! "$SLIPWAY" -q diff "$WORK/kubectl.yaml" "$WORK/slipway.yaml" > "$WORK/diff.txt"; then
    echo "error: slipway and kubectl disagree on $dir:" >&2
    cat "$WORK/diff.txt" >&2
    exit 1
  fi
done < "$WORK/overlays.txt"

cat > "$WORK/kubectl-each.sh" <<SH
while read -r d; do kubectl kustomize "\$d" >/dev/null 2>&1; done < "$WORK/overlays.txt"
SH
cat > "$WORK/slipway-each.sh" <<SH
while read -r d; do "$SLIPWAY" render "\$d" >/dev/null; done < "$WORK/overlays.txt"
SH
cat > "$WORK/slipway-all.sh" <<SH
xargs "$SLIPWAY" render < "$WORK/overlays.txt" >/dev/null
SH

hyperfine --runs "$RUNS" --style basic --export-json "$WORK/times.json" \
  -n "kubectl kustomize, process per overlay" "bash $WORK/kubectl-each.sh" \
  -n "slipway render, process per overlay" "bash $WORK/slipway-each.sh" \
  -n "slipway render, all overlays in one process" "bash $WORK/slipway-all.sh" >&2

python3 - "$WORK/times.json" "$N" <<'PY'
import json, sys
res = json.load(open(sys.argv[1]))["results"]
n = int(sys.argv[2])
per = {r["command"]: r["mean"] / n * 1000 for r in res}
k = per["kubectl kustomize, process per overlay"]
print(f"\nrender benchmark: {n} overlays")
print(f"{'':46} {'ms/overlay':>10} {'vs kubectl':>11}")
for name, ms in per.items():
    print(f"{name:46} {ms:10.2f} {k / ms:10.1f}x")
PY
