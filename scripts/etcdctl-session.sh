#!/usr/bin/env bash
# etcdctl-session.sh — one scripted etcdctl (v3 API) session, normalized so that two
# servers can be compared byte for byte.
#
# Usage:
#   scripts/etcdctl-session.sh run ENDPOINT   run the session against a FRESH server at
#                                             ENDPOINT (e.g. http://127.0.0.1:2379) and
#                                             print the normalized transcript
#   scripts/etcdctl-session.sh compare        start upstream etcd (on PATH) and Cairn
#                                             ($CAIRN_BIN, default target/release/cairn)
#                                             on free loopback ports with temp data dirs,
#                                             run the session against both and diff the
#                                             transcripts; exit 1 on any difference
#
# The session mirrors server/tests/etcdctl_kv.rs (plus leases, watches, lock and elect): put/get (prefix, limit, sort, rev,
# from-key, keys-only, print-value-only, serializable, json, fields), del, txn,
# compaction and its errors, endpoint status/health/hashkv. The server must be fresh:
# revisions in the transcript start at 1.
#
# Normalized: the endpoint, member and cluster ids, raft term and indexes, server
# version, db sizes, timings, and the timestamps and client ids of clientv3's
# warning lines. Everything else must match exactly.
#
# Requires: etcdctl 3.4 (Debian etcd-client), curl, python3 (free ports); for compare
# also etcd (Debian etcd-server). Exit status: 0 same, 1 different, 2 usage/setup error.
set -euo pipefail

ETCDCTL=${ETCDCTL:-etcdctl}
STARTUP_TIMEOUT_S=${STARTUP_TIMEOUT_S:-30}

die() {
  echo "etcdctl-session.sh: $*" >&2
  exit 2
}

# ctl ARGS... — run etcdctl against $ENDPOINT and print the raw transcript entry.
ctl() {
  local out err code
  out=$(mktemp) err=$(mktemp)
  code=0
  ETCDCTL_API=3 "$ETCDCTL" --endpoints="$ENDPOINT" --command-timeout=15s \
    --dial-timeout=5s "$@" <"${CTL_STDIN:-/dev/null}" >"$out" 2>"$err" || code=$?
  printf '$ etcdctl'
  printf ' %q' "$@"
  printf '\n'
  if [ -n "${CTL_STDIN:-}" ]; then
    sed 's/^/stdin> /' "$CTL_STDIN"
  fi
  sed 's/^/out> /' "$out"
  [ -z "$(tail -c1 "$out")" ] || printf '\n(no newline at end of stdout)\n'
  sed 's/^/err> /' "$err"
  printf 'exit: %s\n' "$code"
  rm -f "$out" "$err"
}

# tctl SECONDS ARGS... — a command that runs until stopped (watch, elect): run it for
# SECONDS, then stop it (exit 124), and print its transcript entry like ctl.
tctl() {
  local seconds=$1
  shift
  local saved=$ETCDCTL
  ETCDCTL_TIMEOUT=$seconds
  ETCDCTL_REAL=$saved
  ETCDCTL="timeout_etcdctl"
  ctl "$@"
  ETCDCTL=$saved
}

timeout_etcdctl() {
  timeout "$ETCDCTL_TIMEOUT" "${ETCDCTL_REAL:-etcdctl}" "$@"
}

# bgwatch ARGS... — `etcdctl watch ARGS...` running while a few writes happen.
bgwatch() {
  local out
  out=$(mktemp)
  ETCDCTL_API=3 timeout 4 "$ETCDCTL" --endpoints="$ENDPOINT" watch "$@" >"$out" 2>&1 &
  local pid=$!
  sleep 1
  ETCDCTL_API=3 "$ETCDCTL" --endpoints="$ENDPOINT" put w/a 1 >/dev/null
  ETCDCTL_API=3 "$ETCDCTL" --endpoints="$ENDPOINT" put w/b 2 >/dev/null
  ETCDCTL_API=3 "$ETCDCTL" --endpoints="$ENDPOINT" del w/a >/dev/null
  ETCDCTL_API=3 "$ETCDCTL" --endpoints="$ENDPOINT" put other 3 >/dev/null
  wait "$pid" || true
  printf '$ etcdctl watch'
  printf ' %q' "$@"
  printf ' (while: put w/a 1; put w/b 2; del w/a; put other 3)\n'
  sed 's/^/out> /' "$out"
  rm -f "$out"
}

# txn STDIN-TEXT ARGS... — etcdctl txn with the given stdin.
txn() {
  local input=$1
  shift
  CTL_STDIN=$(mktemp)
  printf '%b' "$input" >"$CTL_STDIN"
  ctl txn "$@"
  rm -f "$CTL_STDIN"
  CTL_STDIN=
}

# The session itself (raw, not yet normalized).
session() {
  # Fixture: k1=b (c5 m5 v1), k2=a (c2 m7 v3), k3=c (c3 m4 v2), x=y (c8); revision 8.
  ctl put k2 x2
  ctl put k3 x3
  ctl put k3 c
  ctl put k1 b
  ctl put k2 y2
  ctl put k2 a
  ctl put x y
  ctl get k1
  ctl get nothere
  ctl get k --prefix
  ctl get "" --prefix
  ctl get k --prefix --limit 2
  ctl get k1 k3
  ctl get k2 --from-key
  ctl get k --prefix --keys-only
  ctl get k --prefix --print-value-only
  ctl get k1 --consistency=s
  local target order
  for target in KEY CREATE MODIFY VERSION VALUE; do
    for order in ASCEND DESCEND; do
      ctl get k --prefix --sort-by=$target --order=$order
    done
  done
  ctl get k --prefix --sort-by=VALUE
  ctl get k --prefix --sort-by=VALUE --keys-only
  ctl get k --prefix --order=DESCEND
  ctl get k --prefix --sort-by=VALUE --order=DESCEND --limit=1
  ctl get k2 --rev=6
  ctl get k1 --rev=4
  ctl get k --prefix --rev=3
  ctl get k2 -w json
  ctl get k --prefix --limit=2 -w json
  ctl get nothere -w json
  ctl get k2 -w fields
  # put
  ctl put k1 b2 --prev-kv
  ctl put new v --prev-kv
  ctl put k1 --ignore-value
  ctl put k1 v --lease=1234
  ctl put "" v
  ctl put missing --ignore-value
  ctl put k1 b3 -w json
  # txn
  txn 'value("k1") = "b3"\n\nput t1 "yes"\nget k1\n\nput t1 "no"\n\n'
  txn 'value("k1") = "zz"\n\nput t1 "yes"\n\nput t1 "no"\ndel new\n\n'
  txn 'version("t1") = "2"\nmod("t1") > "1"\ncreate("t1") < "1000"\n\nget t1\ndel t1 --prev-kv\n\n\n'
  txn 'version("t1") > "0"\n\nput t3 v\n\n\n'
  txn 'version("nothere") = "1"\n\n\n\n' -w json
  txn 'value("x") = "y"\n\nput x z\n\n\n' -w json
  # del
  ctl put d1 v-d1
  ctl put d2 v-d2
  ctl put e v-e
  ctl del d1
  ctl del d1
  ctl del d --prefix --prev-kv
  ctl del e --prev-kv
  ctl del x --from-key --prev-kv
  ctl get "" --prefix
  # compaction
  ctl put c v1
  ctl put c v2
  ctl put c v3
  ctl get c -w json
  # c holds v1, v2, v3 at revisions 24, 25, 26.
  ctl compaction 25
  ctl get c --rev=24
  ctl get c --rev=25
  ctl get c --rev=1000
  ctl compaction 25
  ctl compaction 1000
  ctl compaction 26 --physical
  ctl get c
  # endpoint
  ctl endpoint status
  ctl endpoint status -w json
  ctl endpoint health
  ctl endpoint hashkv
  ctl endpoint hashkv -w json
  # leases
  ctl lease grant 60
  local id
  id=$(ETCDCTL_API=3 "$ETCDCTL" --endpoints="$ENDPOINT" lease grant 120 | awk '{print $2}')
  ctl put leased v --lease="$id"
  ctl lease timetolive "$id" --keys
  ctl lease keep-alive --once "$id"
  ctl lease list
  ctl lease grant 0
  ctl lease revoke "$id"
  ctl get leased
  ctl lease timetolive "$id"
  ctl lease revoke "$id"
  ctl lease keep-alive --once "$id"
  # watches
  bgwatch w/a
  bgwatch w/ --prefix
  bgwatch w/ --prefix --prev-kv
  tctl 2 watch w/ --prefix --rev=29
  tctl 2 watch w/ --prefix --rev=29 --prev-kv -w json
  tctl 2 watch c --rev=2
  # lock and election (clientv3 concurrency: Txn, leases and watches)
  ctl lock mylock -- echo held
  tctl 3 elect myelection proposal-1
  tctl 2 elect -l myelection
}

# normalize ENDPOINT — filter a raw transcript on stdin.
normalize() {
  local endpoint=$1 host=${1#http://}
  sed -E \
    -e "s#${endpoint//./\\.}#<ENDPOINT>#g" \
    -e "s#${host//./\\.}#<HOST>#g" \
    -e 's/"ts":"[^"]*"/"ts":"<TS>"/g' \
    -e 's#endpoint://client-[0-9a-f-]+/#endpoint://client-<ID>/#g' \
    -e 's/"(cluster_id|member_id|leader|raft_term|raftTerm|raftIndex|raftAppliedIndex|dbSize|dbSizeInUse)":[0-9]+/"\1":<N>/g' \
    -e 's/"version":"[0-9.]+"/"version":"<VERSION>"/g' \
    -e 's/"(ClusterID|MemberID|RaftTerm)" : [0-9]+/"\1" : <N>/g' \
    -e 's/took = [0-9.]+[a-zµ]*s/took = <TIME>/' \
    -e 's/^(out> <ENDPOINT>), [0-9a-f]+, [0-9.]+, [0-9.]+ [kMG]?B, (true|false), (true|false), [0-9]+, [0-9]+, [0-9]+, (.*)$/\1, <ID>, <VERSION>, <SIZE>, \2, \3, <TERM>, <INDEX>, <INDEX>, \4/' \
    -e 's/remaining\([0-9]+s\)/remaining(<TTL>s)/g' \
    -e 's/"(ID|lease)":[0-9]+/"\1":<N>/g' \
    -e 's/\b[0-9a-f]{14,16}\b/<HEXID>/g'
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

PIDS=()
TMPDIRS=()
cleanup() {
  local pid dir
  for pid in "${PIDS[@]+"${PIDS[@]}"}"; do
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  for dir in "${TMPDIRS[@]+"${TMPDIRS[@]}"}"; do
    rm -rf "$dir"
  done
}

# start_server BINARY NAME — start BINARY on free ports in a temp dir; sets STARTED_ENDPOINT.
start_server() {
  local bin=$1 name=$2 dir client peer i
  dir=$(mktemp -d "/tmp/etcdctl-session-$name.XXXXXX")
  TMPDIRS+=("$dir")
  client="http://127.0.0.1:$(free_port)"
  peer="http://127.0.0.1:$(free_port)"
  (cd "$dir" && exec "$bin" --name "$name" --data-dir "$dir/data" \
    --listen-client-urls "$client" --advertise-client-urls "$client" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
    --initial-cluster "$name=$peer" >"$dir/server.log" 2>&1) &
  PIDS+=("$!")
  for ((i = 0; i < STARTUP_TIMEOUT_S * 10; i++)); do
    if curl -fsS "$client/health" 2>/dev/null | grep -q '"health":"true"'; then
      STARTED_ENDPOINT=$client
      return 0
    fi
    sleep 0.1
  done
  cat "$dir/server.log" >&2
  die "$bin did not become healthy at $client within ${STARTUP_TIMEOUT_S}s"
}

run_mode() {
  ENDPOINT=$1
  CTL_STDIN=
  session | normalize "$ENDPOINT"
}

compare_mode() {
  local root cairn_bin out_etcd out_cairn
  root=$(cd "$(dirname "$0")/.." && pwd)
  cairn_bin=${CAIRN_BIN:-$root/target/release/cairn}
  command -v etcd >/dev/null || die "etcd not on PATH (Debian package etcd-server)"
  command -v "$ETCDCTL" >/dev/null || die "etcdctl not on PATH (Debian package etcd-client)"
  [ -x "$cairn_bin" ] || die "no Cairn binary at $cairn_bin (cargo build --release, or set CAIRN_BIN)"
  trap cleanup EXIT
  out_etcd=$(mktemp /tmp/etcdctl-session-etcd.XXXXXX.txt)
  out_cairn=$(mktemp /tmp/etcdctl-session-cairn.XXXXXX.txt)
  start_server "$(command -v etcd)" etcd
  run_mode "$STARTED_ENDPOINT" >"$out_etcd"
  start_server "$cairn_bin" cairn
  run_mode "$STARTED_ENDPOINT" >"$out_cairn"
  if diff -u --label "etcd" --label "cairn" "$out_etcd" "$out_cairn"; then
    echo "etcdctl-session: identical ($(grep -c '^\$ etcdctl' "$out_etcd") commands)"
    rm -f "$out_etcd" "$out_cairn"
    return 0
  fi
  echo "etcdctl-session: DIFFERENT (transcripts kept: $out_etcd $out_cairn)" >&2
  return 1
}

case "${1:-}" in
  run)
    [ $# -eq 2 ] || die "usage: $0 run ENDPOINT"
    run_mode "$2"
    ;;
  compare)
    [ $# -eq 1 ] || die "usage: $0 compare"
    compare_mode
    ;;
  *)
    die "usage: $0 run ENDPOINT | $0 compare"
    ;;
esac
