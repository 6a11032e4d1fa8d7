//! One target per decoder fed by the outside world.
//!
//! | target | decoder | fed by |
//! |---|---|---|
//! | `framing` | `net::MessageDecoder` (gRPC length-prefixed messages, receive limit) | clients, peers |
//! | `http1` | `net::serve_stream` on HTTP/1.1 (request heads, bodies, pipelining) | clients, `/metrics` scrapers |
//! | `requests` | prost decoding of every etcd request + `server::validate` | clients |
//! | `raft` | `raft::Message::decode` + `RawNode::step` (MessageInvalid) | peers |
//! | `wal` | `engine::Wal::open` on mutated segment files | the disk |
//! | `store` | `engine::Mvcc::open` on mutated checkpoints and value segments | the disk |
//! | `snapshot` | `engine::SnapshotReceiver` + `Mvcc::install` on mutated archives | the leader |

mod framing;
mod http1;
mod raft;
mod requests;
mod reseal;
mod snapshot;
pub(crate) mod store;
mod wal;

use crate::Target;

/// Every target's name, in the order `cairn-fuzz all` runs them.
pub const TARGETS: &[&str] = &[
    "framing", "http1", "requests", "raft", "wal", "store", "snapshot",
];

/// The target called `name`; `None` for an unknown name. Targets that need a directory
/// or an executor create them here.
pub fn target(name: &str) -> Option<Box<dyn Target>> {
    Some(match name {
        "framing" => Box::new(framing::Framing),
        "http1" => Box::new(http1::Http1::new()),
        "requests" => Box::new(requests::Requests),
        "raft" => Box::new(raft::RaftMessages),
        "wal" => Box::new(wal::WalFiles::new()),
        "store" => Box::new(store::StoreFiles::new()),
        "snapshot" => Box::new(snapshot::Snapshot::new()),
        _ => return None,
    })
}

pub(crate) use reseal::take_marker;

/// A fresh scratch directory for one execution of a file target: under `/dev/shm` when
/// it is writable (no disk I/O), else the system's temporary directory.
pub(crate) fn scratch_dir() -> std::io::Result<tempfile::TempDir> {
    let shm = std::path::Path::new("/dev/shm");
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix("cairn-fuzz-");
        b
    };
    match builder.tempdir_in(shm) {
        Ok(dir) => Ok(dir),
        Err(_) => builder.tempdir(),
    }
}

/// Mutates a [`crate::Bundle`] input: most often one file's bytes (with the byte
/// mutator), else a truncation, an extension with zeros, a deletion, a duplicate under the
/// next sequence number, or two files' contents swapped. Half of the children (and every
/// child of a resealed parent) get their checksums recomputed ([`reseal`]). A non-bundle
/// input is mutated as bytes.
pub(crate) fn mutate_bundle(input: &mut Vec<u8>, corpus: &[Vec<u8>], mutator: &mut crate::Mutator) {
    use rand::Rng;
    let Some(mut bundle) = crate::Bundle::decode(input) else {
        mutator.mutate(input, corpus);
        return;
    };
    let marker = reseal::take_marker(&mut bundle);
    if bundle.files.is_empty() {
        return;
    }
    if marker {
        bundle.files.push((reseal::MARKER.to_string(), Vec::new()));
    }
    let n = bundle.files.len() - usize::from(marker);
    let i = mutator.rng().gen_range(0..n);
    match mutator.rng().gen_range(0..20) {
        0 => {
            let len = bundle.files[i].1.len();
            let cut = mutator.rng().gen_range(0..=len);
            bundle.files[i].1.truncate(cut);
        }
        1 => {
            let more = mutator.rng().gen_range(1..=8192);
            bundle.files[i].1.extend(std::iter::repeat_n(0u8, more));
        }
        2 if n > 1 => {
            bundle.files.remove(i);
        }
        3 if n < crate::Bundle::FILES_MAX => {
            let (name, bytes) = bundle.files[i].clone();
            bundle.files.push((next_seq_name(&name), bytes));
        }
        4 if n > 1 => {
            let j = mutator.rng().gen_range(0..n);
            let (a, b) = (bundle.files[i].1.clone(), bundle.files[j].1.clone());
            bundle.files[i].1 = b;
            bundle.files[j].1 = a;
        }
        _ => {
            // Splice donors: the same file in other inputs.
            let name = bundle.files[i].0.clone();
            // Never from a resealed input: its checksums were made by the harness, and
            // this child may be checked as one whose files were not tampered with.
            let donors: Vec<Vec<u8>> = corpus
                .iter()
                .filter_map(|c| crate::Bundle::decode(c))
                .filter(|b| !b.files.iter().any(|(n, _)| n == reseal::MARKER))
                .filter_map(|b| b.files.into_iter().find(|(n, _)| *n == name))
                .map(|(_, bytes)| bytes)
                .take(4)
                .collect();
            mutator.mutate(&mut bundle.files[i].1, &donors);
        }
    }
    let resealed = bundle.files.iter().any(|(n, _)| n == reseal::MARKER);
    if resealed || mutator.rng().gen::<bool>() {
        reseal::reseal(&mut bundle);
    }
    *input = bundle.encode();
}

/// `dir/0000000000000003.wal` → `dir/0000000000000004.wal` (the 16-digit sequence of a
/// segment or checkpoint name plus one); other names get a `1` appended.
fn next_seq_name(name: &str) -> String {
    let (dir, file) = name.rsplit_once('/').map_or(("", name), |(d, f)| (d, f));
    let (stem, ext) = file.split_once('.').unwrap_or((file, ""));
    let next = match stem.parse::<u64>() {
        Ok(seq) if stem.len() == 16 => format!("{:016}.{ext}", seq + 1),
        _ => format!("{file}1"),
    };
    if dir.is_empty() {
        next
    } else {
        format!("{dir}/{next}")
    }
}
