#!/usr/bin/env bash
# `etcdctl snapshot save` of KEYS keys × VAL_SIZE bytes (default 1,000,000 × 1 KiB = 1 GiB
# of values), Cairn beside upstream etcd on this machine (loopback, one member each, one
# server at a time): the save's wall time, the file's size, what `etcdctl snapshot
# status` reads, and a 1-client put loop running during the save (its max latency is the
# longest write pause the save caused). Then the file is restored with `cairnctl
# snapshot restore` (Cairn's) and Cairn's start-up import is timed. Last, every key is
# written once more, the store compacted and `etcdctl defrag` timed, with the same
# 1-client put loop running (its max latency is the longest write pause of the defrag),
# and the reported dbSize before and after.
#
# Environment (all optional):
#   ETCD_BIN  upstream etcd binary      (default: etcd on PATH; Debian etcd-server)
#   KEYS      keys loaded               (default: 1000000)
#   VAL_SIZE  value size in bytes       (default: 1024)
#   LOOP_PUTS puts of the 1-client loop (default: 40000; it should outlast the save)
#   CARGO_TARGET_DIR  cargo's target dir (default: target)
# A markdown table goes to stdout; progress to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

etcd_bin="${ETCD_BIN:-etcd}"
keys="${KEYS:-1000000}"
val_size="${VAL_SIZE:-1024}"
target_dir="${CARGO_TARGET_DIR:-target}"
command -v "$etcd_bin" >/dev/null || { echo "bench-snapshot: no etcd binary '$etcd_bin'" >&2; exit 1; }
command -v etcdctl >/dev/null || { echo "bench-snapshot: etcdctl is needed" >&2; exit 1; }

cargo build --release -p server -p tools --bins >&2
cairn_bin="$target_dir/release/cairn"
bench_bin="$target_dir/release/cairn-bench"
ctl_bin="$target_dir/release/cairnctl"
export ETCDCTL_API=3

work=$(mktemp -d)
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill -9 "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

wait_healthy() {
    for _ in $(seq 1 600); do
        curl -sf "http://127.0.0.1:$1/health" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "bench-snapshot: server on $1 never became healthy" >&2
    return 1
}

now_ms() { date +%s%3N; }

rows=()
for target in cairn etcd; do
    bin="$cairn_bin"; [ "$target" = etcd ] && bin="$etcd_bin"
    port=$((42000 + RANDOM % 1000)); peer=$((port + 1000))
    url="http://127.0.0.1:$port"
    "$bin" --name s1 --data-dir "$work/$target" \
        --listen-client-urls "$url" --advertise-client-urls "$url" \
        --listen-peer-urls "http://127.0.0.1:$peer" \
        --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "s1=http://127.0.0.1:$peer" \
        --quota-backend-bytes 8589934592 >"$work/$target.log" 2>&1 &
    server_pid=$!
    wait_healthy "$port"
    echo "bench-snapshot: loading $keys keys into $target" >&2
    "$bench_bin" put --endpoints "$url" --clients 100 --conns 10 --total "$keys" \
        --key-size 16 --val-size "$val_size" --key-space "$keys" --seq >&2
    # A 1-client put loop started with the save and lasting longer (LOOP_PUTS puts): its
    # max latency bounds the longest pause of writes the save caused.
    "$bench_bin" put --endpoints "$url" --clients 1 --conns 1 --total "${LOOP_PUTS:-40000}" \
        --key-size 16 --val-size 64 --key-space 1000 --json >"$work/$target.during.json" 2>&1 &
    loop_pid=$!
    sleep 1
    start=$(now_ms)
    etcdctl --endpoints "$url" --command-timeout=600s snapshot save "$work/$target.snap" >/dev/null 2>"$work/$target.save.log"
    took_ms=$(( $(now_ms) - start ))
    wait "$loop_pid"
    size=$(stat -c %s "$work/$target.snap")
    status=$(etcdctl snapshot status "$work/$target.snap" -w simple)
    rss_kb=$(awk '/^VmHWM/ {print $2}' "/proc/$server_pid/status")

    # Defragmentation after every key was overwritten once and the store compacted.
    echo "bench-snapshot: overwriting $keys keys on $target for the defrag" >&2
    "$bench_bin" put --endpoints "$url" --clients 100 --conns 10 --total "$keys" \
        --key-size 16 --val-size "$val_size" --key-space "$keys" --seq >&2
    rev=$(etcdctl --endpoints "$url" endpoint status -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])')
    etcdctl --endpoints "$url" --command-timeout=600s compact "$rev" >&2
    db_before=$(etcdctl --endpoints "$url" endpoint status -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["dbSize"])')
    "$bench_bin" put --endpoints "$url" --clients 1 --conns 1 --total "${LOOP_PUTS:-40000}" \
        --key-size 16 --val-size 64 --key-space 1000 --json >"$work/$target.defrag.json" 2>&1 &
    loop_pid=$!
    sleep 1
    start=$(now_ms)
    etcdctl --endpoints "$url" --command-timeout=600s defrag >&2
    defrag_ms=$(( $(now_ms) - start ))
    wait "$loop_pid"
    db_after=$(etcdctl --endpoints "$url" endpoint status -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["dbSize"])')
    max_save=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["max_ms"])' "$work/$target.during.json")
    max_defrag=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["max_ms"])' "$work/$target.defrag.json")
    kill -TERM "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""

    # Restore with cairnctl and time Cairn's first start (the import).
    "$ctl_bin" snapshot restore "$work/$target.snap" --data-dir "$work/$target.restored" \
        --name r1 --initial-cluster "r1=http://127.0.0.1:$peer" \
        --initial-advertise-peer-urls "http://127.0.0.1:$peer" >&2
    start=$(now_ms)
    "$cairn_bin" --name r1 --data-dir "$work/$target.restored" \
        --listen-client-urls "$url" --advertise-client-urls "$url" \
        --listen-peer-urls "http://127.0.0.1:$peer" \
        --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "r1=http://127.0.0.1:$peer" >"$work/$target.import.log" 2>&1 &
    server_pid=$!
    wait_healthy "$port"
    import_ms=$(( $(now_ms) - start ))
    kill -TERM "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
    rm -rf "$work/$target" "$work/$target.restored"
    rows+=("| $target | $took_ms | $((size / 1048576)) | $status | $max_save | $((rss_kb / 1024)) | $import_ms | $defrag_ms | $((db_before / 1048576)) → $((db_after / 1048576)) | $max_defrag |")
    echo "bench-snapshot: $target done; the put loops during the save and the defrag:" >&2
    cat "$work/$target.during.json" "$work/$target.defrag.json" >&2 || true
done

echo "| server | snapshot save (ms) | file (MiB) | etcdctl snapshot status | max put latency during the save (ms) | server peak RSS (MiB) | Cairn import + start of the file (ms) | defrag (ms) | dbSize before → after (MiB) | max put latency during the defrag (ms) |"
echo "|---|---:|---:|---|---:|---:|---:|---:|---|---:|"
printf '%s\n' "${rows[@]}"
