//! Little-endian helpers shared by the on-disk formats.

/// Rounds `n` up to the next multiple of 8 (every record starts 8-byte aligned).
pub(crate) fn align8(n: u64) -> u64 {
    (n + 7) & !7
}

/// Reads a little-endian u32 at `at`; `None` when out of bounds.
pub(crate) fn get_u32(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

/// Reads a little-endian u64 at `at`; `None` when out of bounds.
pub(crate) fn get_u64(data: &[u8], at: usize) -> Option<u64> {
    let bytes = data.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// Reads a little-endian i64 at `at`; `None` when out of bounds.
pub(crate) fn get_i64(data: &[u8], at: usize) -> Option<i64> {
    get_u64(data, at).map(|v| v as i64)
}

/// Size of the header every segment file starts with (WAL and value segments).
pub(crate) const SEGMENT_HEADER_BYTES: usize = 32;

/// Encodes a segment file header: `magic (8) | version u32 | crc u32 | seq u64 | extra u64`,
/// the CRC (IEEE) covering bytes 0..12 and 16..32. `extra` is the format's own field
/// (0 in WAL segments, the capacity in value segments).
pub(crate) fn encode_segment_header(
    magic: &[u8; 8],
    version: u32,
    seq: u64,
    extra: u64,
) -> [u8; 32] {
    let mut h = [0u8; SEGMENT_HEADER_BYTES];
    h[0..8].copy_from_slice(magic);
    h[8..12].copy_from_slice(&version.to_le_bytes());
    h[16..24].copy_from_slice(&seq.to_le_bytes());
    h[24..32].copy_from_slice(&extra.to_le_bytes());
    let crc = segment_header_crc(&h);
    h[12..16].copy_from_slice(&crc.to_le_bytes());
    h
}

fn segment_header_crc(h: &[u8]) -> u32 {
    let mut c = crc32fast::Hasher::new();
    c.update(&h[0..12]);
    c.update(&h[16..32]);
    c.finalize()
}

/// Checks a segment header written by [`encode_segment_header`] for the file named `seq`;
/// returns its `extra` field, or the reason it is not valid.
pub(crate) fn check_segment_header(
    data: &[u8],
    magic: &[u8; 8],
    version: u32,
    seq: u64,
) -> Result<u64, String> {
    if data.len() < SEGMENT_HEADER_BYTES {
        return Err(format!(
            "segment shorter than its {SEGMENT_HEADER_BYTES}-byte header"
        ));
    }
    if data[0..8] != magic[..] {
        return Err("bad magic".into());
    }
    let got_version = get_u32(data, 8).unwrap_or(0);
    if got_version != version {
        return Err(format!("unsupported version {got_version}"));
    }
    if get_u32(data, 12) != Some(segment_header_crc(&data[..SEGMENT_HEADER_BYTES])) {
        return Err("header crc mismatch".into());
    }
    let got_seq = get_u64(data, 16).unwrap_or(0);
    if got_seq != seq {
        return Err(format!(
            "header seq {got_seq} does not match file name seq {seq}"
        ));
    }
    Ok(get_u64(data, 24).unwrap_or(0))
}

/// A bounds-checked forward reader over a byte slice (checkpoint decoding).
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data, pos: 0 }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Total bytes of the underlying slice.
    pub(crate) fn total(&self) -> usize {
        self.data.len()
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        let v = get_u32(self.data, self.pos)?;
        self.pos += 4;
        Some(v)
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        let v = get_u64(self.data, self.pos)?;
        self.pos += 8;
        Some(v)
    }

    pub(crate) fn i64(&mut self) -> Option<i64> {
        self.u64().map(|v| v as i64)
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let v = self.data.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(v)
    }
}

/// Appends little-endian integers to a buffer (checkpoint encoding).
pub(crate) trait PutLe {
    fn put_u32_le(&mut self, v: u32);
    fn put_u64_le(&mut self, v: u64);
    fn put_i64_le(&mut self, v: i64);
}

impl PutLe for Vec<u8> {
    fn put_u32_le(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u64_le(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_i64_le(&mut self, v: i64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn align8_rounds_up() {
        assert_eq!(align8(0), 0);
        assert_eq!(align8(1), 8);
        assert_eq!(align8(8), 8);
        assert_eq!(align8(17), 24);
    }

    #[test]
    fn reader_is_bounds_checked() {
        let mut r = Reader::new(&[1, 0, 0, 0, 9]);
        assert_eq!(r.u32(), Some(1));
        assert_eq!(r.u32(), None);
        assert_eq!(r.bytes(1), Some(&[9u8][..]));
        assert_eq!(r.bytes(1), None);
        assert_eq!(get_u64(&[0; 7], 0), None);
        assert_eq!(get_u32(&[0; 7], usize::MAX - 1), None);
    }
}
