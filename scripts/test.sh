#!/usr/bin/env bash
# Runs Cairn's default test suite on a fresh machine: installs what the tests need
# (the real etcdctl and etcd 3.4 from Debian for compatibility tests, protoc for the
# etcd-client crate's build, promtool for the metrics tests), then runs every crate's tests.
#
# Longer runs sit behind environment variables (see README.md, "Tests").
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
# promtool checks /metrics (server/tests/metrics.rs).
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# openssl s_client and curl talk TLS to the client and peer ports (server/tests/tls.rs).
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}"
fi

# cairn-bench's smoke runs (tools/tests/*_smoke.rs, ~25 s) use the debug server that
# `cargo test` builds before running any test.
export CAIRN_BENCH_SMOKE_BIN="${CAIRN_BENCH_SMOKE_BIN:-$PWD/target/debug/cairn}"
cargo test --workspace "$@"
# Contained failures: the same server built with fail points (server/tests/containment.rs).
cargo test -p server --features failpoints --test containment "$@"
