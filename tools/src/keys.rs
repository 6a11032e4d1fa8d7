//! Keys and values the load generator writes and reads.
//!
//! A key is the key index (0 ..< key space) as a big-endian integer, left-padded with
//! zero bytes to `key_size` bytes when `key_size` > 8 — the same shape as etcd's
//! `tools/benchmark` keys (fixed size, binary). Random picks come from a per-client
//! SplitMix64 generator seeded by the client number, so runs are reproducible.

use crate::error::{invalid, Result};

/// Largest key size accepted, bytes (etcd's own limit is the 1.5 MiB request size;
/// a benchmark key this large measures nothing useful).
pub const KEY_SIZE_MAX: u32 = 4096;

/// Checks that `key_space` distinct keys fit in `key_size` bytes.
///
/// Errors: `--key-size` outside 1..=[`KEY_SIZE_MAX`]; `--key-space` 0 or larger than
/// 256^key_size.
pub fn validate_key_shape(key_size: u32, key_space: u64) -> Result<()> {
    if key_size == 0 || key_size > KEY_SIZE_MAX {
        return Err(invalid(
            "key-size",
            format!("{key_size} is outside 1..={KEY_SIZE_MAX}"),
        ));
    }
    if key_space == 0 {
        return Err(invalid("key-space", "must be at least 1"));
    }
    if key_size < 8 {
        let distinct = 1u64 << (8 * key_size);
        if key_space > distinct {
            return Err(invalid(
                "key-space",
                format!("{key_space} keys do not fit in {key_size} bytes (at most {distinct})"),
            ));
        }
    }
    Ok(())
}

/// The key for `index`, exactly `key_size` bytes. `index` must be below 256^key_size
/// (guaranteed after [`validate_key_shape`] for indexes below the key space).
pub fn key_for(index: u64, key_size: u32) -> Vec<u8> {
    let size = key_size as usize;
    let be = index.to_be_bytes();
    let mut key = vec![0u8; size];
    if size >= 8 {
        key[size - 8..].copy_from_slice(&be);
    } else {
        assert!(
            be[..8 - size].iter().all(|b| *b == 0),
            "index too large for key size"
        );
        key.copy_from_slice(&be[8 - size..]);
    }
    key
}

/// SplitMix64: a small, fast, seedable generator (Steele, Lea, Flood 2014).
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..bound`; `bound` must be positive. (Modulo bias is below
    /// bound / 2^64, irrelevant for key picking.)
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0);
        self.next_u64() % bound
    }
}

/// Picks the key index of each request.
#[derive(Debug, Clone)]
pub struct KeyPicker {
    key_space: u64,
    seq: bool,
    rng: SplitMix64,
}

impl KeyPicker {
    /// A picker for client number `client`: sequential (`seq`) takes the global request
    /// number modulo the key space; otherwise uniform random from a generator seeded
    /// with the client number.
    pub fn new(client: u32, key_space: u64, seq: bool) -> KeyPicker {
        assert!(key_space > 0);
        KeyPicker {
            key_space,
            seq,
            rng: SplitMix64::new(u64::from(client)),
        }
    }

    /// The key index for global request number `request`.
    pub fn pick(&mut self, request: u64) -> u64 {
        if self.seq {
            request % self.key_space
        } else {
            self.rng.below(self.key_space)
        }
    }
}

/// A value of `val_size` bytes of printable pseudo-random characters (fixed seed), so
/// that values do not compress to nothing on servers that compress.
pub fn make_value(val_size: u32) -> Vec<u8> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = SplitMix64::new(0x5EED);
    (0..val_size)
        .map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_fixed_size_big_endian() {
        assert_eq!(key_for(0, 8), vec![0; 8]);
        assert_eq!(key_for(0x0102, 8), vec![0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(key_for(0x0102, 2), vec![1, 2]);
        assert_eq!(key_for(0x0102, 10), vec![0, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(key_for(255, 1), vec![255]);
    }

    #[test]
    fn key_shape_validation() {
        assert!(validate_key_shape(8, 1_000_000).is_ok());
        assert!(validate_key_shape(1, 256).is_ok());
        assert_eq!(
            validate_key_shape(1, 257).unwrap_err().to_string(),
            "invalid --key-space: 257 keys do not fit in 1 bytes (at most 256)"
        );
        assert_eq!(
            validate_key_shape(0, 1).unwrap_err().to_string(),
            "invalid --key-size: 0 is outside 1..=4096"
        );
        assert_eq!(
            validate_key_shape(8, 0).unwrap_err().to_string(),
            "invalid --key-space: must be at least 1"
        );
        assert!(validate_key_shape(4097, 1).is_err());
    }

    #[test]
    fn splitmix_reference_values() {
        // Reference outputs of SplitMix64 seeded with 0 (from the published algorithm).
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn sequential_picker_wraps() {
        let mut picker = KeyPicker::new(3, 4, true);
        let picks: Vec<u64> = (0..6).map(|n| picker.pick(n)).collect();
        assert_eq!(picks, vec![0, 1, 2, 3, 0, 1]);
    }

    #[test]
    fn random_picker_is_seeded_and_bounded() {
        let mut a = KeyPicker::new(7, 10, false);
        let mut b = KeyPicker::new(7, 10, false);
        let pa: Vec<u64> = (0..100).map(|n| a.pick(n)).collect();
        let pb: Vec<u64> = (0..100).map(|n| b.pick(n)).collect();
        assert_eq!(pa, pb);
        assert!(pa.iter().all(|k| *k < 10));
        let mut c = KeyPicker::new(8, 10, false);
        let pc: Vec<u64> = (0..100).map(|n| c.pick(n)).collect();
        assert_ne!(pa, pc);
    }

    #[test]
    fn values_have_the_requested_size() {
        assert_eq!(make_value(0), Vec::<u8>::new());
        let v = make_value(256);
        assert_eq!(v.len(), 256);
        assert!(v.iter().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(v, make_value(256));
    }
}
