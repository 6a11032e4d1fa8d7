//! Byte-level mutations of an input (AFL's "havoc" stage, without coverage feedback).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::runner::INPUT_BYTES_MAX;

/// Most mutations stacked on one child input (a power of two up to this is drawn).
const STACKED_MUTATIONS_MAX: u32 = 16;
/// Longest run of bytes one insert adds.
const INSERT_BYTES_MAX: usize = 64;

/// Values worth writing into a length or count field.
const INTERESTING: [u64; 14] = [
    0,
    1,
    2,
    7,
    8,
    9,
    16,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff_ffff,
    0xffff_ffff,
    u64::MAX,
];

/// A seeded source of mutations; the same seed and inputs give the same mutations.
pub struct Mutator {
    rng: StdRng,
}

impl Mutator {
    /// A mutator drawing from `seed`.
    pub fn new(seed: u64) -> Mutator {
        Mutator {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// The random source, for targets with their own structured mutations.
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// Applies 1 to [`STACKED_MUTATIONS_MAX`] random mutations to `data`: bit flips,
    /// interesting bytes, small additions, inserts, deletes, copies within the input,
    /// splices from `corpus`, length-field tweaks (1/2/4/8 bytes, either endianness, and
    /// varints), truncations and appends. The result stays within
    /// [`INPUT_BYTES_MAX`].
    pub fn mutate(&mut self, data: &mut Vec<u8>, corpus: &[Vec<u8>]) {
        let stacked = 1
            << self
                .rng
                .gen_range(0..=STACKED_MUTATIONS_MAX.trailing_zeros());
        for _ in 0..stacked {
            self.mutate_once(data, corpus);
        }
        data.truncate(INPUT_BYTES_MAX);
    }

    fn pos(&mut self, data: &[u8]) -> usize {
        self.rng.gen_range(0..data.len().max(1))
    }

    fn range(&mut self, data: &[u8]) -> (usize, usize) {
        let start = self.pos(data);
        let left = data.len() - start.min(data.len());
        let len = self.rng.gen_range(0..=left.min(1 + left / 2));
        (start, len)
    }

    fn mutate_once(&mut self, data: &mut Vec<u8>, corpus: &[Vec<u8>]) {
        if data.is_empty() {
            let n = self.rng.gen_range(1..=INSERT_BYTES_MAX);
            data.extend((0..n).map(|_| self.rng.gen::<u8>()));
            return;
        }
        match self.rng.gen_range(0..13) {
            0 => {
                let p = self.pos(data);
                data[p] ^= 1 << self.rng.gen_range(0..8);
            }
            1 => {
                let p = self.pos(data);
                data[p] = INTERESTING[self.rng.gen_range(0..10)] as u8;
            }
            2 => {
                let p = self.pos(data);
                let delta = self.rng.gen_range(1..=16u8);
                data[p] = if self.rng.gen() {
                    data[p].wrapping_add(delta)
                } else {
                    data[p].wrapping_sub(delta)
                };
            }
            3 => {
                let p = self.rng.gen_range(0..=data.len());
                let n = self.rng.gen_range(1..=INSERT_BYTES_MAX);
                let bytes: Vec<u8> = if self.rng.gen() {
                    vec![self.rng.gen(); n]
                } else {
                    (0..n).map(|_| self.rng.gen()).collect()
                };
                data.splice(p..p, bytes);
            }
            4 => {
                let (start, len) = self.range(data);
                data.drain(start..start + len);
            }
            5 => {
                let (start, len) = self.range(data);
                let chunk = data[start..start + len].to_vec();
                let p = self.rng.gen_range(0..=data.len());
                data.splice(p..p, chunk);
            }
            6 => {
                let (start, len) = self.range(data);
                let chunk = data[start..start + len].to_vec();
                let p = self.rng.gen_range(0..=data.len() - len);
                data[p..p + len].copy_from_slice(&chunk);
            }
            7 if !corpus.is_empty() => {
                let other = &corpus[self.rng.gen_range(0..corpus.len())];
                if other.is_empty() {
                    return;
                }
                let (start, len) = self.range(other);
                let chunk = other[start..start + len].to_vec();
                let p = self.rng.gen_range(0..=data.len());
                if self.rng.gen() {
                    data.truncate(p);
                    data.extend_from_slice(&chunk);
                } else {
                    data.splice(p..p, chunk);
                }
            }
            8 => self.tweak_int(data),
            9 => self.tweak_varint(data),
            10 => {
                let p = self.pos(data);
                data.truncate(p);
            }
            11 => {
                let n = self.rng.gen_range(1..=INSERT_BYTES_MAX);
                data.extend((0..n).map(|_| self.rng.gen::<u8>()));
            }
            _ => {
                let p = self.pos(data);
                data[p] = self.rng.gen();
            }
        }
    }

    /// Rewrites a 1/2/4/8-byte integer at a random offset (either endianness) to a
    /// value near it, an interesting value, or the input length.
    fn tweak_int(&mut self, data: &mut [u8]) {
        let width = [1usize, 2, 4, 8][self.rng.gen_range(0..4)];
        if data.len() < width {
            return;
        }
        let p = self.rng.gen_range(0..=data.len() - width);
        let big_endian: bool = self.rng.gen();
        let mut raw = [0u8; 8];
        raw[..width].copy_from_slice(&data[p..p + width]);
        if big_endian {
            raw[..width].reverse();
        }
        let v = u64::from_le_bytes(raw);
        let new = match self.rng.gen_range(0..6) {
            0 => v.wrapping_add(self.rng.gen_range(1..=32)),
            1 => v.wrapping_sub(self.rng.gen_range(1..=32)),
            2 => INTERESTING[self.rng.gen_range(0..INTERESTING.len())],
            3 => (data.len() - p) as u64,
            4 => v.wrapping_mul(2),
            _ => v / 2,
        };
        let mut out = new.to_le_bytes();
        if big_endian {
            out[..width].reverse();
        }
        data[p..p + width].copy_from_slice(&out[..width]);
    }

    /// Replaces the varint at a random offset with another value, sometimes encoded
    /// overlong (up to 10 bytes, as protobuf and the Raft codec allow at most).
    fn tweak_varint(&mut self, data: &mut Vec<u8>) {
        let p = self.pos(data);
        let end = (p..data.len().min(p + 10))
            .find(|&i| data[i] & 0x80 == 0)
            .map_or(data.len().min(p + 1), |i| i + 1);
        let v = match self.rng.gen_range(0..3) {
            0 => INTERESTING[self.rng.gen_range(0..INTERESTING.len())],
            1 => (data.len() - p) as u64 + self.rng.gen_range(0..4),
            _ => self.rng.gen_range(0..1 << 20),
        };
        let mut enc = Vec::with_capacity(10);
        let mut x = v;
        while x >= 0x80 {
            enc.push(x as u8 | 0x80);
            x >>= 7;
        }
        enc.push(x as u8);
        if self.rng.gen_range(0..4) == 0 {
            // An overlong encoding of the same value.
            let last = enc.len() - 1;
            enc[last] |= 0x80;
            let pad = self
                .rng
                .gen_range(1..=10usize.saturating_sub(enc.len()).max(1));
            enc.extend(std::iter::repeat_n(0x80, pad - 1));
            enc.push(0);
        }
        data.splice(p..end, enc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_seeded_and_bounded() {
        let seed_input = b"hello, world: a seed input".to_vec();
        let mut a = Mutator::new(7);
        let mut b = Mutator::new(7);
        let mut changed = 0;
        for _ in 0..1000 {
            let (mut x, mut y) = (seed_input.clone(), seed_input.clone());
            a.mutate(&mut x, std::slice::from_ref(&seed_input));
            b.mutate(&mut y, std::slice::from_ref(&seed_input));
            assert_eq!(x, y);
            assert!(x.len() <= INPUT_BYTES_MAX);
            changed += usize::from(x != seed_input);
        }
        assert!(
            changed > 900,
            "only {changed} of 1000 mutations changed the input"
        );
    }
}
