#!/usr/bin/env bash
# The quickstart's path from a source commit to 100 % in production, stage by stage, and what
# Slipway itself adds beyond the user's own steps (cargo build and test) and the configured
# waits (the canary's pauses). Goal: under 3 s of Slipway in total. The peer figure is the
# blueprint's: the same pipeline on GitHub Actions + a registry + Argo CD + Argo Rollouts takes
# about 12 minutes from push to production.
#
# usage: bench/quickstart.sh [RUNS]   (default 3; each run is a fresh quickstart --exit)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUNS="${1:-3}"
cargo build --quiet --release -p slipway-cli -p slipway-hello --manifest-path "$ROOT/Cargo.toml"
SLIPWAY="${CARGO_TARGET_DIR:-$ROOT/target}/release/slipway"
OUT="${KEEP:-$(mktemp -d)}"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$OUT"' EXIT
mkdir -p "$OUT"
for i in $(seq "$RUNS"); do
  "$SLIPWAY" -q quickstart "$OUT/run$i" --exit -o json --listen 127.0.0.1:0 \
    --registry 127.0.0.1:0 --ports 0 0 > "$OUT/run$i.json"
done
python3 - "$OUT" "$RUNS" <<'PY'
import json, re, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
reports = [json.load(open(f"{out}/run{i}.json")) for i in range(1, runs + 1)]
def med(xs): return statistics.median(xs) if xs else 0
# A stage is known by its name and what it ends with, without commit ids and run numbers
# (runs can differ by a moment, e.g. when staging turned Healthy before its sync ended).
def key(s): return (s["stage"], re.sub(r"run \d+", "run N", re.sub(r"\b[0-9a-f]{12}\b", "<sha>", s["to"])))
for ci, title in ((0, "good release: commit -> 100 % in production"),
                  (1, "faulty release: commit -> canary abort -> revert synced")):
    print(f"\n{title} (median of {runs} runs)")
    print(f"  {'stage':<14} {'until':<46} {'took':>8} {'yours':>8} {'waits':>8} {'slipway':>8}")
    order, rows = [], {}
    for r in reports:
        for s in r["changes"][ci]["stages"]:
            k = key(s)
            if k not in rows:
                order.append(k)
                rows[k] = []
            rows[k].append(s)
    for k in order:
        xs = rows[k]
        f = lambda name: med([x[name] for x in xs]) / 1000
        seen = "" if len(xs) == runs else f"  (in {len(xs)} of {runs} runs)"
        print(f"  {k[0]:<14} {k[1][:46]:<46} {f('total_ms'):>7.2f}s {f('user_ms'):>7.2f}s {f('pause_ms'):>7.2f}s {f('slipway_ms'):>7.2f}s{seen}")
    tot = med([r["changes"][ci]["total_ms"] for r in reports]) / 1000
    sw = med([r["changes"][ci]["slipway_ms"] for r in reports]) / 1000
    print(f"  {'total':<14} {'':<46} {tot:>7.2f}s {'':>8} {'':>8} {sw:>7.2f}s")
good = [r["changes"][0] for r in reports]
print("\nside by side, commit -> 100 % in production:")
print(f"  slipway quickstart:   {med([c['total_ms'] for c in good])/1000:7.2f} s total, "
      f"{med([c['slipway_ms'] for c in good])/1000:5.2f} s of it Slipway's own (goal < 3 s; "
      f"each run: {', '.join(str(round(c['slipway_ms']/1000, 2)) for c in good)} s)")
print(f"  blueprint pipeline:   {12*60:7.2f} s (GitHub Actions + registry + Argo CD + Argo Rollouts, as documented)")
PY
