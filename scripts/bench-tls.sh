#!/usr/bin/env bash
# Put throughput and latency over mutual TLS vs plaintext, Cairn beside upstream etcd, on
# this machine (loopback, one member each, one server at a time).
#
# Builds the release binaries (cairn, cairn-bench), generates a CA, a server certificate
# (SAN 127.0.0.1) and a client certificate with openssl, then for each target (cairn,
# etcd) and mode (plain: http://; mtls: https:// with --client-cert-auth and the client
# certificate) starts the server in a temporary data dir, runs `cairn-bench put` for each
# client count, and stops it. Server CPU per put comes from /proc/<pid>/stat around each
# run. A markdown table goes to stdout; progress to stderr.
#
# Environment (all optional):
#   ETCD_BIN  upstream etcd binary           (default: etcd on PATH; Debian etcd-server)
#   CLIENTS   client counts, space separated (default: "1 100")
#   TOTAL     puts per run                   (default: 20000)
#   VAL_SIZE  value size in bytes            (default: 256)
#   CARGO_TARGET_DIR  cargo's target dir     (default: target)
set -euo pipefail
cd "$(dirname "$0")/.."

etcd_bin="${ETCD_BIN:-etcd}"
clients_list="${CLIENTS:-1 100}"
total="${TOTAL:-20000}"
val_size="${VAL_SIZE:-256}"
target_dir="${CARGO_TARGET_DIR:-target}"
command -v "$etcd_bin" >/dev/null || { echo "bench-tls: no etcd binary '$etcd_bin'" >&2; exit 1; }
command -v openssl >/dev/null || { echo "bench-tls: openssl is needed" >&2; exit 1; }

cargo build --release -p server -p tools >&2
cairn_bin="$target_dir/release/cairn"
bench_bin="$target_dir/release/cairn-bench"

work=$(mktemp -d)
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill -9 "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The PKI: one CA, a server certificate for 127.0.0.1, a client certificate.
pki="$work/pki"
mkdir -p "$pki"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bench-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
for who in server client; do
    openssl req -newkey rsa:2048 -nodes -subj "/CN=bench-$who" \
        -keyout "$pki/$who.key" -out "$pki/$who.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' \
        > "$pki/$who.ext"
    openssl x509 -req -in "$pki/$who.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
        -CAcreateserial -days 2 -extfile "$pki/$who.ext" -out "$pki/$who.crt" 2>/dev/null
done

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

cpu_ticks() {
    # utime + stime of the server, in clock ticks.
    awk '{print $14 + $15}' "/proc/$1/stat"
}

echo "| target | transport | clients | puts/s | p50 ms | p99 ms | server CPU µs/put |"
echo "|---|---|---:|---:|---:|---:|---:|"
ticks_per_s=$(getconf CLK_TCK)
for target in cairn etcd; do
    for mode in plain mtls; do
        client_port=$(free_port)
        peer_port=$(free_port)
        scheme=http
        tls_server=()
        tls_client=()
        if [ "$mode" = mtls ]; then
            scheme=https
            tls_server=(--cert-file "$pki/server.crt" --key-file "$pki/server.key"
                --trusted-ca-file "$pki/ca.crt" --client-cert-auth)
            tls_client=(--cacert "$pki/ca.crt" --cert "$pki/client.crt" --key "$pki/client.key")
        fi
        bin="$cairn_bin"
        [ "$target" = etcd ] && bin="$etcd_bin"
        data="$work/$target-$mode"
        endpoint="$scheme://127.0.0.1:$client_port"
        "$bin" --name bench --data-dir "$data" \
            --listen-client-urls "$endpoint" --advertise-client-urls "$endpoint" \
            --listen-peer-urls "http://127.0.0.1:$peer_port" \
            --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
            --initial-cluster "bench=http://127.0.0.1:$peer_port" \
            "${tls_server[@]}" > "$work/$target-$mode.log" 2>&1 &
        server_pid=$!
        ready=0
        for _ in $(seq 1 200); do
            if "$bench_bin" put --endpoints "$endpoint" "${tls_client[@]}" --total 1 \
                --request-timeout-ms 1000 --json > /dev/null 2>&1; then
                ready=1
                break
            fi
            sleep 0.1
        done
        if [ "$ready" != 1 ]; then
            echo "bench-tls: $target ($mode) did not serve; log:" >&2
            tail -20 "$work/$target-$mode.log" >&2
            exit 1
        fi
        for clients in $clients_list; do
            conns=1
            [ "$clients" -ge 10 ] && conns=10
            echo "bench-tls: $target $mode $clients clients" >&2
            before=$(cpu_ticks "$server_pid")
            json=$("$bench_bin" put --endpoints "$endpoint" "${tls_client[@]}" \
                --clients "$clients" --conns "$conns" --total "$total" \
                --val-size "$val_size" --json)
            after=$(cpu_ticks "$server_pid")
            python3 - "$json" "$target" "$mode" "$clients" "$before" "$after" "$ticks_per_s" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
target, mode, clients = sys.argv[2], sys.argv[3], sys.argv[4]
before, after, hz = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
cpu_us = (after - before) / hz * 1e6 / max(r["ops"], 1)
print(f"| {target} | {'mutual TLS' if mode == 'mtls' else 'plaintext'} | {clients} | "
      f"{r['throughput_ops_s']:.0f} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {cpu_us:.0f} |")
if r["errors"]:
    print(f"bench-tls: {r['errors']} errors, first: {r['first_error']}", file=sys.stderr)
PY
        done
        kill "$server_pid"
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    done
done
