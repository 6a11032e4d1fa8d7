//! WAL recovery (`engine::Wal::open`) on segment files that were corrupted: the record
//! codec, the segment header, torn tails, missing and extra segments.
//!
//! Input: a [`crate::Bundle`] of a WAL directory (4 KiB segments) holding a prefix or a
//! window of one known record history. Properties: `open` returns an error or records
//! that are a contiguous run of the history (never a record that was not written, never
//! one out of order); after a successful open, a record appended and synced is there,
//! last, when the directory is opened again.

use engine::{Wal, WalOptions, WalRecord};

use crate::{Bundle, Target, Verdict};

/// Segment size of the target: the smallest allowed, so that a history spans segments.
const SEGMENT_BYTES: u64 = WalOptions::SEGMENT_BYTES_MIN;
/// Records in the history.
const HISTORY_RECORDS: u64 = 40;

pub(crate) struct WalFiles {
    history: Vec<WalRecord>,
}

fn options() -> WalOptions {
    WalOptions {
        segment_bytes: SEGMENT_BYTES,
    }
}

/// Raft entries with a hard state every 10 and a snapshot marker at 25, each distinct.
fn history() -> Vec<WalRecord> {
    let mut records = Vec::new();
    for i in 1..=HISTORY_RECORDS {
        let mut payload = i.to_le_bytes().to_vec();
        payload.resize(8 + (i as usize * 37) % 700, i as u8);
        records.push(WalRecord {
            record_type: 1,
            index: i,
            payload: payload.into(),
        });
        if i % 10 == 0 {
            let hs: Vec<u8> = [i, i, i].iter().flat_map(|v| v.to_le_bytes()).collect();
            records.push(WalRecord {
                record_type: 2,
                index: 0,
                payload: hs.into(),
            });
        }
        if i == 25 {
            let marker: Vec<u8> = [25u64, 1].iter().flat_map(|v| v.to_le_bytes()).collect();
            records.push(WalRecord {
                record_type: 3,
                index: 25,
                payload: marker.into(),
            });
        }
    }
    records
}

impl WalFiles {
    pub(crate) fn new() -> WalFiles {
        WalFiles { history: history() }
    }

    /// A directory holding the first `n` records of the history, purged below `purge`.
    fn seed(&self, n: usize, purge: u64) -> std::io::Result<Vec<u8>> {
        let dir = super::scratch_dir()?;
        let (mut wal, _) = Wal::open(dir.path(), options()).map_err(std::io::Error::other)?;
        for r in &self.history[..n] {
            wal.append(r.record_type, r.index, &r.payload)
                .map_err(std::io::Error::other)?;
        }
        wal.sync().map_err(std::io::Error::other)?;
        if purge > 0 {
            wal.purge(purge).map_err(std::io::Error::other)?;
        }
        drop(wal);
        Ok(Bundle::read_dir(dir.path())?.encode())
    }

    /// `Ok` if `records` are `history[i..i + records.len()]` for some `i`.
    fn check_window(&self, records: &[WalRecord]) -> Result<(), String> {
        let Some(first) = records.first() else {
            return Ok(());
        };
        let start = self
            .history
            .iter()
            .position(|r| r == first)
            .ok_or("recovered a record that was never written")?;
        let window = self.history.get(start..start + records.len());
        if window != Some(records) {
            return Err(format!(
                "recovered {} records that are not a contiguous run of the history",
                records.len()
            ));
        }
        Ok(())
    }
}

impl Target for WalFiles {
    fn name(&self) -> &'static str {
        "wal"
    }

    fn seeds(&mut self) -> Vec<Vec<u8>> {
        let n = self.history.len();
        [(n, 0), (n / 2, 0), (n, 20), (0, 0)]
            .iter()
            .map(|&(n, purge)| self.seed(n, purge).expect("a WAL seed directory"))
            .collect()
    }

    fn mutate(&mut self, input: &mut Vec<u8>, corpus: &[Vec<u8>], mutator: &mut crate::Mutator) {
        super::mutate_bundle(input, corpus, mutator);
    }

    fn execute(&mut self, input: &[u8]) -> Result<Verdict, String> {
        let Some(mut bundle) = Bundle::decode(input) else {
            return Ok(Verdict::Rejected);
        };
        let resealed = super::take_marker(&mut bundle);
        let dir = super::scratch_dir().map_err(|e| format!("scratch dir: {e}"))?;
        bundle
            .write_dir(dir.path())
            .map_err(|e| format!("writing the bundle: {e}"))?;
        let Ok((mut wal, records)) = Wal::open(dir.path(), options()) else {
            return Ok(Verdict::Rejected);
        };
        if !resealed {
            self.check_window(&records)?;
        }
        let appended = WalRecord {
            record_type: 9,
            index: HISTORY_RECORDS + 1,
            payload: bytes::Bytes::from_static(b"appended after recovery"),
        };
        wal.append(appended.record_type, appended.index, &appended.payload)
            .map_err(|e| format!("append after a successful open failed: {e}"))?;
        wal.sync()
            .map_err(|e| format!("sync after a successful open failed: {e}"))?;
        drop(wal);
        let (_, again) = Wal::open(dir.path(), options())
            .map_err(|e| format!("reopen after an append failed: {e}"))?;
        let mut want = records;
        want.push(appended);
        if again != want {
            return Err(format!(
                "reopen after an append gave {} records, expected {}",
                again.len(),
                want.len()
            ));
        }
        Ok(Verdict::Accepted)
    }
}
