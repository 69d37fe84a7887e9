#!/usr/bin/env bash
# Time to rollback with the real parts (issue 5): a canary of examples/hello at 5 % failing
# exactly 5 % of its requests, caught by the sequential judge (Slipway's default) and by a
# threshold analysis with a 1 s interval, at 1,000 and 200 requests/s, side by side with the
# peers' documented settings and the simulated false-rollback count.
#
#   bench/rollout.sh [--repeats N] [--fresh] [--only abcd]
#   defaults: 5 repeats per configuration, keep-alive connections, all four configurations
#
# Everything (registry, runtime, hello processes, proxy, controller, load generator) runs in
# one process on this machine, so figures include its scheduling noise. About 2-3 minutes on
# 2 cores with the defaults. See crates/rollout/examples/rollback_bench.rs for what is measured.
set -euo pipefail
cd "$(dirname "$0")/.."

# The examples' hello images are built from target/debug/hello (slipway_testkit).
[ -x target/debug/hello ] || cargo build -q -p slipway-hello
cargo build --release -q -p slipway-rollout --example rollback_bench
exec target/release/examples/rollback_bench "$@"
