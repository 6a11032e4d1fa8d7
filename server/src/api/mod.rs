//! The gRPC services and HTTP endpoints, one file per etcd service (DESIGN.md §8). They
//! reach the raft core only through its request channel and read through read views.
//!
//! Services moved here so far: Cluster (`cluster.rs`), Maintenance.Snapshot
//! (`maintenance.rs`). KV, Maintenance, Lease, Watch,
//! Election and Lock still live in `service.rs`, `lease.rs`, `watch/`, `election.rs` and
//! `lock.rs`.

pub mod auth;
pub mod cluster;
pub mod maintenance;
