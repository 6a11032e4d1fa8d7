//! A directory's files as one fuzz input, for the targets that recover from disk.

/// Files of a directory (relative names, contents) as one byte string:
///
/// ```text
/// "CFB1" | count u16 LE | (name_len u8 | name | len u32 LE | bytes)*
/// ```
///
/// Names are relative paths of `[A-Za-z0-9._-]` parts joined by `/`, none `..`, at most
/// [`Bundle::NAME_BYTES_MAX`] bytes; at most [`Bundle::FILES_MAX`] files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bundle {
    /// `(relative name, contents)`, in the order written.
    pub files: Vec<(String, Vec<u8>)>,
}

const MAGIC: &[u8; 4] = b"CFB1";

impl Bundle {
    /// Most files in a bundle.
    pub const FILES_MAX: usize = 64;
    /// Longest file name, in bytes.
    pub const NAME_BYTES_MAX: usize = 128;

    /// Reads every regular file under `dir` (recursively), names relative to `dir`,
    /// sorted. Errors: the file system's.
    pub fn read_dir(dir: &std::path::Path) -> std::io::Result<Bundle> {
        let mut files = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d)? {
                let path = entry?.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let name = path.strip_prefix(dir).expect("under dir");
                    files.push((name.to_string_lossy().into_owned(), std::fs::read(&path)?));
                }
            }
        }
        files.sort();
        Ok(Bundle { files })
    }

    /// Writes every file under `dir` (parents created). Errors: the file system's.
    pub fn write_dir(&self, dir: &std::path::Path) -> std::io::Result<()> {
        for (name, bytes) in &self.files {
            let path = dir.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, bytes)?;
        }
        Ok(())
    }

    /// The encoding above.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&(self.files.len() as u16).to_le_bytes());
        for (name, bytes) in &self.files {
            out.push(name.len() as u8);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(bytes);
        }
        out
    }

    /// Decodes [`Bundle::encode`]'s output; `None` for anything else (wrong magic, a
    /// truncated field, a name that is not a safe relative path, too many files).
    pub fn decode(mut data: &[u8]) -> Option<Bundle> {
        fn take<'a>(data: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            let (head, rest) = (data.get(..n)?, data.get(n..)?);
            *data = rest;
            Some(head)
        }
        if take(&mut data, 4)? != MAGIC {
            return None;
        }
        let count = u16::from_le_bytes(take(&mut data, 2)?.try_into().ok()?) as usize;
        if count > Self::FILES_MAX {
            return None;
        }
        let mut files = Vec::with_capacity(count);
        for _ in 0..count {
            let name_len = take(&mut data, 1)?[0] as usize;
            let name = std::str::from_utf8(take(&mut data, name_len)?).ok()?;
            if !safe_name(name) {
                return None;
            }
            let len = u32::from_le_bytes(take(&mut data, 4)?.try_into().ok()?) as usize;
            files.push((name.to_string(), take(&mut data, len)?.to_vec()));
        }
        data.is_empty().then_some(Bundle { files })
    }
}

fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= Bundle::NAME_BYTES_MAX
        && name.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let b = Bundle {
            files: vec![
                ("a.wal".into(), vec![1, 2, 3]),
                ("values/0001.val".into(), vec![]),
            ],
        };
        assert_eq!(Bundle::decode(&b.encode()), Some(b.clone()));
        let mut bad = b.clone();
        bad.files[0].0 = "../x".into();
        assert_eq!(Bundle::decode(&bad.encode()), None);
        let enc = b.encode();
        assert_eq!(Bundle::decode(&enc[..enc.len() - 1]), None);
    }
}
