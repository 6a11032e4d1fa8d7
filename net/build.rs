//! Compiles Cairn's own .proto files (net/proto/) with protox (pure Rust, no system
//! protoc) and prost-build; `bytes` fields become `bytes::Bytes`. Also writes
//! `grpc_methods.rs`: the table of every service method and its streaming kind, and
//! `descriptors.bin`: the encoded `FileDescriptorSet` (for the JSON gateway's mapping).

use std::fmt::Write as _;
use std::path::PathBuf;

const PROTO_DIR: &str = "proto";
const PROTO_FILES: [&str; 7] = [
    "kv.proto",
    "auth.proto",
    "membership.proto",
    "rpc.proto",
    "raft_internal.proto",
    "v3election.proto",
    "v3lock.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={PROTO_DIR}/{file}");
    }
    let fds = protox::compile(PROTO_FILES, [PROTO_DIR])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    let mut methods = Vec::new();
    let mut services = Vec::new();
    for file in &fds.file {
        let package = file.package();
        for service in &file.service {
            let service_name = format!("{package}.{}", service.name());
            for method in &service.method {
                let streaming = method.client_streaming() || method.server_streaming();
                let kind = if streaming { "Streaming" } else { "Unary" };
                methods.push((format!("/{service_name}/{}", method.name()), kind));
            }
            services.push(service_name);
        }
    }
    let mut table = String::new();
    writeln!(
        table,
        "/// Every gRPC service of etcd's API, fully qualified (e.g. `etcdserverpb.KV`)."
    )?;
    writeln!(table, "pub const SERVICES: &[&str] = &[")?;
    for service in &services {
        writeln!(table, "    {service:?},")?;
    }
    writeln!(table, "];\n")?;
    writeln!(
        table,
        "/// Every gRPC method path of etcd's API (e.g. `/etcdserverpb.KV/Range`) and its kind"
    )?;
    writeln!(table, "/// (`Streaming` when either side streams).")?;
    writeln!(
        table,
        "pub const METHODS: &[(&str, crate::MethodKind)] = &["
    )?;
    for (path, kind) in &methods {
        writeln!(table, "    ({path:?}, crate::MethodKind::{kind}),")?;
    }
    writeln!(table, "];\n")?;
    writeln!(
        table,
        "/// The kind of the etcd API method at `path`, or `None` if etcd has no such method."
    )?;
    writeln!(
        table,
        "pub fn method_kind(path: &str) -> Option<crate::MethodKind> {{"
    )?;
    writeln!(table, "    match path {{")?;
    for (path, kind) in &methods {
        writeln!(
            table,
            "        {path:?} => Some(crate::MethodKind::{kind}),"
        )?;
    }
    writeln!(table, "        _ => None,\n    }}\n}}")?;
    std::fs::write(out_dir.join("grpc_methods.rs"), table)?;

    std::fs::write(
        out_dir.join("descriptors.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    prost_build::Config::new()
        .bytes(["."])
        .out_dir(&out_dir)
        .compile_fds(fds)?;
    Ok(())
}
