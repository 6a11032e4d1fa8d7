//! Recomputing the checksums of mutated engine files, so that mutations reach the
//! decoders behind the CRCs (record bodies, the checkpoint's key index) instead of
//! stopping at a CRC mismatch.
//!
//! The layouts are the engine's documented formats: segment headers (`engine/src/codec.rs`
//! `encode_segment_header`: CRC of bytes 0..12 and 16..32 at 12), WAL and value records
//! (`length u32 | crc u32` over bytes 0..4 and 8..8+length, 8-byte aligned, from offset
//! 32), checkpoints (`body_len u64` at 16, CRC of everything before the 4-byte trailer).
//! A resealed bundle carries a file named [`MARKER`] (not written to disk): corruption
//! behind a valid checksum cannot be detected, so properties that rely on the checksums
//! (nothing never written is read back) are not checked for it.

use crate::Bundle;

/// Name of the marker file of a resealed bundle.
pub(crate) const MARKER: &str = "resealed";

fn put_u32(data: &mut [u8], at: usize, v: u32) {
    data[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn reseal_header(data: &mut [u8]) {
    if data.len() >= 32 {
        let mut c = crc32fast::Hasher::new();
        c.update(&data[0..12]);
        c.update(&data[16..32]);
        put_u32(data, 12, c.finalize());
    }
}

pub(crate) fn reseal_records(data: &mut [u8]) {
    let mut off = 32usize;
    while off + 8 <= data.len() {
        let length = u32::from_le_bytes(data[off..off + 4].try_into().expect("4 bytes")) as usize;
        let Some(body_end) = (off + 8).checked_add(length) else {
            return;
        };
        if length == 0 || body_end > data.len() {
            return;
        }
        let mut c = crc32fast::Hasher::new();
        c.update(&data[off..off + 4]);
        c.update(&data[off + 8..body_end]);
        put_u32(data, off + 4, c.finalize());
        off = body_end.div_ceil(8) * 8;
    }
}

pub(crate) fn reseal_checkpoint(data: &mut [u8]) {
    let len = data.len();
    if len >= 28 {
        data[16..24].copy_from_slice(&((len - 28) as u64).to_le_bytes());
        let crc = crc32fast::hash(&data[..len - 4]);
        put_u32(data, len - 4, crc);
    }
}

/// Recomputes every checksum in `bundle` and adds the [`MARKER`].
pub(crate) fn reseal(bundle: &mut Bundle) {
    for (name, data) in &mut bundle.files {
        if name.ends_with(".ckpt") {
            reseal_checkpoint(data);
        } else if name.ends_with(".wal") || name.ends_with(".val") {
            reseal_header(data);
            reseal_records(data);
        }
    }
    if !bundle.files.iter().any(|(n, _)| n == MARKER) {
        bundle.files.push((MARKER.to_string(), Vec::new()));
    }
}

/// Removes the [`MARKER`]; true if it was there.
pub(crate) fn take_marker(bundle: &mut Bundle) -> bool {
    let before = bundle.files.len();
    bundle.files.retain(|(n, _)| n != MARKER);
    bundle.files.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Target;

    /// A mutated checkpoint is refused for its CRC; resealed, the same mutation reaches
    /// the body decoder, which refuses it for what it is.
    #[test]
    fn resealing_gets_past_the_checkpoint_crc() {
        let mut store = super::super::store::StoreFiles::new();
        let seed = store.seeds().remove(0);
        let mut bundle = Bundle::decode(&seed).unwrap();
        let (_, ckpt) = bundle
            .files
            .iter_mut()
            .find(|(n, _)| n.ends_with(".ckpt"))
            .expect("a checkpoint");
        // The 4 bytes before the CRC are the last revision's record size: make it huge.
        let len = ckpt.len();
        ckpt[len - 5] ^= 0x40;
        let open = |b: &Bundle| {
            let dir = super::super::scratch_dir().unwrap();
            b.write_dir(dir.path()).unwrap();
            engine::Mvcc::open(dir.path(), engine::MvccOptions::default())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(open(&bundle).contains("crc mismatch"), "{}", open(&bundle));
        reseal(&mut bundle);
        assert!(take_marker(&mut bundle));
        let err = open(&bundle);
        assert!(!err.is_empty() && !err.contains("crc mismatch"), "{err}");
    }
}
