#!/usr/bin/env bash
# Registry benchmark: skopeo pushes and pulls a ~200 MiB image (4 layers of 50 MiB of random
# data, an OCI layout made by bench/registry-image.py) against
#   (a) Slipway's registry (release build), and
#   (b) Debian's docker-registry (the reference distribution registry),
# side by side in one run, alternating between them.
#
# Every run starts each registry on a fresh, empty storage root, so a push uploads every
# blob (nothing is found or mounted), then pulls into a fresh OCI layout. Prints the median
# throughput of push and pull in MiB/s for both, the ratios, and each registry's peak RSS
# (VmHWM from /proc/<pid>/status, the largest over all runs). Request logging is off on
# both (slipway -q; docker-registry at level error without access log).
#
# usage: bench/registry.sh [--runs N] [--layers N] [--mib M]
# needs: skopeo, docker-registry (Debian package), python3, curl, cargo
set -euo pipefail

RUNS=5
LAYERS=4
MIB=50
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --layers) LAYERS="$2"; shift 2 ;;
    --mib) MIB="$2"; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--layers N] [--mib M]" >&2; exit 2 ;;
  esac
done

DOCKER_REGISTRY=/usr/bin/docker-registry
for tool in skopeo python3 curl cargo "$DOCKER_REGISTRY"; do
  command -v "$tool" >/dev/null || { echo "error: $tool is required (apt-get install skopeo docker-registry python3 curl)" >&2; exit 2; }
done

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
echo "building slipway (release)..." >&2
cargo build --quiet --release -p slipway-cli --manifest-path "$ROOT/Cargo.toml"
SLIPWAY="$ROOT/target/release/slipway"

WORK="$(mktemp -d)"
PID=""
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then kill "$PID"; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "generating the image ($LAYERS x $MIB MiB)..." >&2
BYTES=$(python3 "$HERE/registry-image.py" "$WORK/image" --layers "$LAYERS" --mib "$MIB" --tag bench)

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_ready() {
  for _ in $(seq 200); do
    curl -fs "http://$HOST/v2/" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "error: registry on $HOST did not come up" >&2
  exit 1
}

# start_slipway ROOT: sets PID and HOST
start_slipway() {
  "$SLIPWAY" -q --data-dir "$1" registry serve --listen 127.0.0.1:0 >"$1.url" 2>"$1.log" &
  PID=$!
  for _ in $(seq 200); do [ -s "$1.url" ] && break; sleep 0.05; done
  HOST="$(head -1 "$1.url")"
  HOST="${HOST#http://}"
  wait_ready
}

# start_docker ROOT: sets PID and HOST
start_docker() {
  local port
  port=$(free_port)
  mkdir -p "$1"
  cat >"$1.yml" <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $1
  cache:
    blobdescriptor: inmemory
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YAML
  "$DOCKER_REGISTRY" serve "$1.yml" >"$1.log" 2>&1 &
  PID=$!
  HOST="127.0.0.1:$port"
  wait_ready
}

# stop: prints the peak RSS in KiB, stops the registry
stop() {
  awk '/^VmHWM:/ { print $2 }' "/proc/$PID/status"
  kill "$PID"
  wait "$PID" 2>/dev/null || true
  PID=""
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

RESULTS="$WORK/results.txt"
: >"$RESULTS"
for run in $(seq "$RUNS"); do
  for reg in slipway docker-registry; do
    root="$WORK/$reg-$run"
    if [ "$reg" = slipway ]; then start_slipway "$root"; else start_docker "$root"; fi
    ref="docker://$HOST/bench/image:v1"

    t0=$(now)
    skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$WORK/image:bench" "$ref"
    t1=$(now)
    rm -rf "$WORK/pulled"
    skopeo --insecure-policy copy -q --src-tls-verify=false "$ref" "oci:$WORK/pulled:bench"
    t2=$(now)

    hwm=$(stop)
    echo "$reg push $(elapsed "$t0" "$t1")" >>"$RESULTS"
    echo "$reg pull $(elapsed "$t1" "$t2")" >>"$RESULTS"
    echo "$reg rss $hwm" >>"$RESULTS"
    echo "run $run/$RUNS $reg: push $(elapsed "$t0" "$t1") s, pull $(elapsed "$t1" "$t2") s, peak RSS $hwm KiB" >&2
    rm -rf "$root" "$WORK/pulled"
  done
done

python3 - "$RESULTS" "$BYTES" "$LAYERS" "$MIB" "$RUNS" <<'PY'
import statistics, sys
path, size, layers, mib, runs = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
data = {}
for line in open(path):
    reg, kind, value = line.split()
    data.setdefault((reg, kind), []).append(float(value))
mibs = size / (1 << 20)
def rate(reg, kind):
    return mibs / statistics.median(data[(reg, kind)])
def rss(reg):
    return max(data[(reg, "rss")]) / 1024
print(f"image: {mibs:.1f} MiB in {layers} layers of {mib} MiB; {runs} runs per registry, median")
print(f"{'':18}{'push MiB/s':>12}{'pull MiB/s':>12}{'peak RSS':>12}")
for reg in ("slipway", "docker-registry"):
    print(f"{reg:18}{rate(reg, 'push'):12.1f}{rate(reg, 'pull'):12.1f}{rss(reg):9.1f} MiB")
print(
    "slipway / docker-registry: "
    f"push {rate('slipway', 'push') / rate('docker-registry', 'push'):.2f}x, "
    f"pull {rate('slipway', 'pull') / rate('docker-registry', 'pull'):.2f}x, "
    f"peak RSS {rss('slipway') / rss('docker-registry'):.2f}x"
)
PY
