//! The server's library target: what is a pure function of a client's request bytes —
//! etcd's error texts ([`errors`]) and request validation ([`validate`]) — and etcd's
//! member and cluster IDs ([`ids`]). The `cairn` binary uses them from here, `cairn-fuzz`
//! (the `fuzz` crate) runs exactly the same validation on arbitrary bytes, and `cairnctl
//! snapshot restore` (the `tools` crate) derives the IDs a restored member starts with.
//! Everything else of the server stays private to the binary.
#![deny(missing_docs)]

pub mod errors;
pub mod ids;
pub mod validate;
