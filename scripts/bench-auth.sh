#!/usr/bin/env bash
# Put and range throughput with authentication off, with simple tokens and with JWT
# tokens, Cairn beside upstream etcd, in one run (loopback, one member each, one server
# at a time). Prints one markdown table to stdout; progress to stderr.
#
# For each target (cairn, etcd) and auth mode:
#   off     no auth flags, auth disabled; cairn-bench runs anonymously
#   simple  --auth-token simple; auth enabled with etcdctl
#   jwt     --auth-token jwt,pub-key=…,priv-key=…,sign-method=RS256,ttl=10m (RSA keys
#           made with openssl); auth enabled with etcdctl
# the server is started in a temporary data dir; with auth, etcdctl adds the root user
# (and role), a user `bench` whose role `bench` may read and write every key (`""
# --prefix`, a real permission check on every request rather than root's short cut), and
# enables auth. Then `cairn-bench put` loads the key space and `cairn-bench range`
# (linearizable gets of the same keys) reads it, for each client count.
#
# Credentials: cairn-bench must authenticate as `bench` for the simple and jwt rows. The
# flag this script passes is
#     --user bench:benchpw        (etcdctl's syntax: NAME:PASSWORD)
# to `cairn-bench put` and `cairn-bench range`. When `cairn-bench put --help` does not
# list `--user`, those rows say so instead of measuring (the off rows still run).
#
# Does not build anything: give release binaries (cargo build --release -p server -p tools).
#
# Environment (all optional):
#   CAIRN_BIN  Cairn server binary            (default: target/release/cairn)
#   BENCH_BIN  cairn-bench binary             (default: target/release/cairn-bench)
#   ETCD_BIN   upstream etcd binary           (default: etcd on PATH; Debian etcd-server)
#   TARGETS    targets, space separated       (default: "cairn etcd")
#   MODES      auth modes, space separated    (default: "off simple jwt")
#   CLIENTS    client counts, space separated (default: "1 100")
#   TOTAL      requests per run               (default: 20000)
#   KEY_SPACE  distinct keys                  (default: 10000)
#   VAL_SIZE   value size in bytes            (default: 256)
set -euo pipefail
cd "$(dirname "$0")/.."

cairn_bin="${CAIRN_BIN:-target/release/cairn}"
bench_bin="${BENCH_BIN:-target/release/cairn-bench}"
etcd_bin="${ETCD_BIN:-etcd}"
targets="${TARGETS:-cairn etcd}"
modes="${MODES:-off simple jwt}"
clients_list="${CLIENTS:-1 100}"
total="${TOTAL:-20000}"
key_space="${KEY_SPACE:-10000}"
val_size="${VAL_SIZE:-256}"

die() {
    echo "bench-auth: $*" >&2
    exit 1
}
[ -x "$bench_bin" ] || die "no cairn-bench at $bench_bin (cargo build --release -p tools)"
case " $targets " in
*" cairn "*) [ -x "$cairn_bin" ] || die "no cairn at $cairn_bin (cargo build --release -p server)" ;;
esac
case " $targets " in
*" etcd "*) command -v "$etcd_bin" >/dev/null || die "no etcd binary '$etcd_bin'" ;;
esac
command -v etcdctl >/dev/null || die "etcdctl (Debian etcd-client) is needed"
command -v openssl >/dev/null || die "openssl is needed"
command -v python3 >/dev/null || die "python3 is needed"

# Whether cairn-bench can authenticate.
bench_user=(--user bench:benchpw)
bench_has_user=0
if "$bench_bin" put --help 2>/dev/null | grep -q -- '--user'; then
    bench_has_user=1
fi

work=$(mktemp -d)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill -9 "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/jwt.key" 2>/dev/null
openssl pkey -in "$work/jwt.key" -pubout -out "$work/jwt.pub" 2>/dev/null

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ctl ENDPOINT ARGS... — etcdctl (v3) against ENDPOINT; output to the log, failure fatal.
ctl() {
    local endpoint=$1
    shift
    ETCDCTL_API=3 etcdctl --endpoints="$endpoint" --command-timeout=15s "$@" \
        >>"$work/etcdctl.log" 2>&1 || {
        tail -5 "$work/etcdctl.log" >&2
        die "etcdctl $* failed"
    }
}

# row TARGET MODE WORKLOAD CLIENTS JSON — one table row from cairn-bench --json output.
row() {
    python3 - "$@" <<'PY'
import json, sys
target, mode, workload, clients, raw = sys.argv[1:6]
r = json.loads(raw)
print(f"| {target} | {mode} | {workload} | {clients} | {r['throughput_ops_s']:.0f} | "
      f"{r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['errors']} |")
if r["errors"]:
    print(f"bench-auth: {target} {mode} {workload}: {r['errors']} errors, first: "
          f"{r['first_error']}", file=sys.stderr)
PY
}

echo "| target | auth | workload | clients | ops/s | p50 ms | p99 ms | errors |"
echo "|---|---|---|---:|---:|---:|---:|---:|"
for target in $targets; do
    bin="$cairn_bin"
    [ "$target" = etcd ] && bin="$etcd_bin"
    for mode in $modes; do
        auth_flags=()
        case "$mode" in
        off) ;;
        simple) auth_flags=(--auth-token simple) ;;
        jwt) auth_flags=(--auth-token "jwt,pub-key=$work/jwt.pub,priv-key=$work/jwt.key,sign-method=RS256,ttl=10m") ;;
        *) die "unknown mode $mode (off, simple, jwt)" ;;
        esac
        if [ "$mode" != off ] && [ "$bench_has_user" != 1 ]; then
            for workload in put range; do
                for clients in $clients_list; do
                    echo "| $target | $mode | $workload | $clients | n/a: cairn-bench has no \`--user NAME:PASSWORD\` | | | |"
                done
            done
            continue
        fi
        client_port=$(free_port)
        peer_port=$(free_port)
        endpoint="http://127.0.0.1:$client_port"
        "$bin" --name bench --data-dir "$work/$target-$mode" \
            --listen-client-urls "$endpoint" --advertise-client-urls "$endpoint" \
            --listen-peer-urls "http://127.0.0.1:$peer_port" \
            --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
            --initial-cluster "bench=http://127.0.0.1:$peer_port" \
            "${auth_flags[@]}" >"$work/$target-$mode.log" 2>&1 &
        server_pid=$!
        ready=0
        for _ in $(seq 1 200); do
            if ETCDCTL_API=3 etcdctl --endpoints="$endpoint" --dial-timeout=1s \
                --command-timeout=2s endpoint health >/dev/null 2>&1; then
                ready=1
                break
            fi
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        if [ "$ready" != 1 ]; then
            echo "bench-auth: $target ($mode) did not become healthy; log:" >&2
            tail -20 "$work/$target-$mode.log" >&2
            exit 1
        fi
        creds=()
        if [ "$mode" != off ]; then
            ctl "$endpoint" user add root --new-user-password=rootpw
            ctl "$endpoint" role add root
            ctl "$endpoint" user grant-role root root
            ctl "$endpoint" user add bench --new-user-password=benchpw
            ctl "$endpoint" role add bench
            ctl "$endpoint" role grant-permission bench readwrite "" --prefix
            ctl "$endpoint" user grant-role bench bench
            ctl "$endpoint" auth enable
            creds=("${bench_user[@]}")
        fi
        for workload in put range; do
            for clients in $clients_list; do
                conns=1
                [ "$clients" -ge 10 ] && conns=10
                echo "bench-auth: $target $mode $workload, $clients clients" >&2
                json=$("$bench_bin" "$workload" --endpoints "$endpoint" "${creds[@]}" \
                    --clients "$clients" --conns "$conns" --total "$total" \
                    --key-space "$key_space" --val-size "$val_size" --json)
                row "$target" "$mode" "$workload" "$clients" "$json"
            done
        done
        kill "$server_pid"
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    done
done
if [ "$bench_has_user" != 1 ]; then
    echo "bench-auth: $bench_bin lacks --user NAME:PASSWORD; simple and jwt rows were not measured" >&2
fi
