//! The cluster layer (DESIGN.md §8): the raft driver (Ready loop, WAL log storage,
//! recovery), the member table, requests waiting for Raft, and the glue to the peer
//! transport. It may use `engine`, `raft`, `net` and the state machine; it never imports
//! the gRPC services.

mod corrupt;
mod driver;
mod import;
mod membership;
mod peers;
mod pending;
mod reconfig;
mod replies;
mod storage;

pub use corrupt::monitor_kv_hash;
pub(crate) use driver::check_txn_auth;
pub use driver::{
    encode_entry_data, open, Applied, CoreIdentity, CorePeers, Proposal, RaftRequest, RaftSettings,
    Shared, SnapshotCut, ENTRY_DATA_HEADER_BYTES,
};
pub use membership::{MemberInfo, Membership};
pub use peers::{hash_answer, hash_kv_answer, RaftPeerHandler, TransportPeers, METHOD_HASH_KV};
pub use pending::request_timeout;
pub use reconfig::{MemberChange, MemberChangeResult, LEARNERS_MAX};
pub use replies::{deliver, Delivery, ProposalReply, ReadWaiter};
pub use storage::recover;
