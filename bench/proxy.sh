#!/usr/bin/env bash
# Requests/s and latency of a trivial HTTP/1.1 backend, measured with wrk directly, through
# Slipway's proxy as a plain pool, and through a 95/5 revision split over the same backends,
# side by side.
#
#   bench/proxy.sh [duration] [connections] [wrk-threads]
#   defaults: 10s 64 1
#
# Everything (wrk, backends, proxy) runs on this machine and shares its cores, so compare
# the two rows with each other, not with numbers from elsewhere.
set -euo pipefail
duration=${1:-10s}
connections=${2:-64}
threads=${3:-1}
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
  else
    echo "wrk is missing: apt-get install wrk" >&2
    exit 1
  fi
fi

cargo build --release -q -p slipway-traffic --example bench_stack
exe=target/release/examples/bench_stack

work=$(mktemp -d)
mkfifo "$work/stdin"
"$exe" <"$work/stdin" >"$work/addrs" &
stack=$!
exec 3>"$work/stdin" # holding the fifo open keeps the stack serving
cleanup() { exec 3>&-; wait "$stack" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

for _ in $(seq 100); do
  grep -q '^split ' "$work/addrs" 2>/dev/null && break
  sleep 0.1
done
backend=$(awk '/^backend /{print $2; exit}' "$work/addrs")
proxy=$(awk '/^proxy /{print $2}' "$work/addrs")
split=$(awk '/^split /{print $2}' "$work/addrs")
[ -n "$split" ] || { echo "bench stack did not start" >&2; exit 1; }

run() { # name url
  local out
  out=$(wrk -t "$threads" -c "$connections" -d "$duration" --latency "$2")
  local rps avg p50 p99 errors
  rps=$(awk '/^Requests\/sec:/{print $2}' <<<"$out")
  avg=$(awk '/^ +Latency /{print $2; exit}' <<<"$out")
  p50=$(awk '/^ +50%/{print $2}' <<<"$out")
  p99=$(awk '/^ +99%/{print $2}' <<<"$out")
  errors=$(awk '/Non-2xx|Socket errors/{sub(/^ +/, ""); printf "%s; ", $0}' <<<"$out")
  printf '%-22s %12s %10s %10s %10s  %s\n' "$1" "$rps" "$avg" "$p50" "$p99" "${errors:-none}"
}

echo "wrk -t $threads -c $connections -d $duration, $(nproc) cores"
printf '%-22s %12s %10s %10s %10s  %s\n' target 'requests/s' 'avg' 'p50' 'p99' 'errors'
run "backend (direct)" "http://$backend/"
run "proxy (2 backends)" "http://$proxy/"
run "proxy (95/5 split)" "http://$split/"
