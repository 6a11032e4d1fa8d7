//! Cairn's storage engine: a write-ahead log with group commit ([`Wal`]) and an MVCC
//! key-value store with etcd's exact semantics ([`Mvcc`]) whose values live in
//! log-structured, memory-mapped value segments, made durable by checkpoints.
//!
//! Everything here is synchronous `std::fs` code. The server keeps long work off its
//! executors: WAL fdatasyncs go through io_uring (`Wal::sync_handle`), checkpoints are
//! written by a [`CheckpointJob`] on a helper thread, compaction's physical part runs in
//! bounded [`Mvcc::maintain`] steps, and reads scan [`ReadView`]s in chunks that never
//! hold the index lock for long. The engine knows nothing of gRPC or Raft beyond the
//! bytes it stores.
#![deny(missing_docs)]

mod codec;
mod error;
pub mod etcd_backend;
mod fsutil;
mod mvcc;
mod wal;

pub use error::{Error, Result};
pub use mvcc::{
    received_applied_index, CheckpointDone, CheckpointJob, CountChunk, Event, EventType,
    HashKvScan, ImportedRevision, KeyBucketScan, KeyValue, KvRef, Mvcc, MvccOptions, MvccReader,
    RangeOptions, RangeResult, ReadView, SnapshotReceiver, SnapshotSource, WriteTxn,
    COMPACTION_STEP_REVISIONS, GC_STEP_RECORDS, SCAN_CHUNK_ENTRIES, SNAPSHOT_CHUNK_BYTES,
};
pub use wal::{SyncHandle, Wal, WalOptions, WalRecord};

#[cfg(test)]
mod tests {
    fn send<T: Send>() {}
    fn send_sync_clone<T: Send + Sync + Clone>() {}

    #[test]
    fn thread_safety_contract() {
        send::<crate::Wal>();
        send::<crate::SyncHandle>();
        send::<crate::Mvcc>();
        send::<crate::CheckpointJob>();
        send::<crate::CheckpointDone>();
        send::<crate::ReadView>();
        send_sync_clone::<crate::MvccReader>();
    }
}
