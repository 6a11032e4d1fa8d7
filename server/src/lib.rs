//! The server's library target: what is a pure function of a client's request bytes —
//! etcd's error texts ([`errors`]) and request validation ([`validate`]). The `cairn`
//! binary uses both from here, and `cairn-fuzz` (the `fuzz` crate) runs exactly the same
//! code on arbitrary bytes. Everything else of the server stays private to the binary.
#![deny(missing_docs)]

pub mod errors;
pub mod validate;
