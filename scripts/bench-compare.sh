#!/usr/bin/env bash
# Compare Cairn with upstream etcd on this machine, loopback only.
#
# Builds the release binaries (cairn, cairn-bench), then runs `cairn-bench compare`:
# each server in turn in a temporary data dir on free 127.0.0.1 ports, single-client and
# 100-client put phases, server CPU µs per put and RSS. The markdown table goes to
# stdout; build output and progress go to stderr. With WATCH=1 a second markdown table
# (watchers, put→event p50/p99 ms, server RSS per 1,000 idle watchers) follows after a
# blank line.
#
# Environment (all optional):
#   ETCD_BIN   upstream etcd binary            (default: etcd on PATH; Debian etcd-server)
#   CLIENTS    client counts, comma separated  (default: 1,100)
#   TOTAL      puts per phase                  (default: 20000; ~20 s per target against etcd 3.4 on 2 cores)
#   VAL_SIZE   value size in bytes             (default: 256)
#   CARGO_TARGET_DIR  cargo's target dir       (default: target)
#   WATCH      1 to add a second step, `cairn-bench compare-watch`: idle-watcher RSS
#              and put→event latency, each server in turn (default: 0, skipped)
#   WATCHERS   watchers for the watch step     (default: 1000; the RSS figure is only
#              stable from ~10000, where PUTS=200 keeps the fan-out at 2M events)
#   STREAMS    watch streams holding them      (default: 10)
#   PUTS       sequential puts of the watch latency run; every put fans out to all
#              watchers (default: 2000)
#   CLUSTER    1 to add a step after the others, `cairn-bench compare-cluster`: the
#              same put phases against a 3-member cluster of each server, clients spread
#              over all members; server CPU summed over the members, RSS per member
#              (default: 0, skipped)
# Extra arguments are passed to `cairn-bench compare` (e.g. --json, --conns 10), not to
# compare-watch.
set -euo pipefail

cd "$(dirname "$0")/.."

etcd_bin="${ETCD_BIN:-etcd}"
if ! command -v "$etcd_bin" >/dev/null 2>&1; then
    echo "bench-compare: etcd binary '$etcd_bin' not found (apt-get install etcd-server, or set ETCD_BIN)" >&2
    exit 1
fi

cargo build --release -p server -p tools >&2

target_dir="${CARGO_TARGET_DIR:-target}"
"$target_dir/release/cairn-bench" compare \
    --cairn-bin "$target_dir/release/cairn" \
    --etcd-bin "$etcd_bin" \
    --clients "${CLIENTS:-1,100}" \
    --total "${TOTAL:-20000}" \
    --val-size "${VAL_SIZE:-256}" \
    "$@"

if [ "${WATCH:-0}" = "1" ]; then
    echo >&2
    echo "bench-compare: watch step (compare-watch)" >&2
    echo
    "$target_dir/release/cairn-bench" compare-watch \
        --cairn-bin "$target_dir/release/cairn" \
        --etcd-bin "$etcd_bin" \
        --watchers "${WATCHERS:-1000}" \
        --streams "${STREAMS:-10}" \
        --puts "${PUTS:-2000}"
fi

if [ "${CLUSTER:-0}" = "1" ]; then
    echo >&2
    echo "bench-compare: cluster step (compare-cluster)" >&2
    echo
    "$target_dir/release/cairn-bench" compare-cluster \
        --cairn-bin "$target_dir/release/cairn" \
        --etcd-bin "$etcd_bin" \
        --clients "${CLIENTS:-1,100}" \
        --total "${TOTAL:-20000}" \
        --val-size "${VAL_SIZE:-256}"
fi
