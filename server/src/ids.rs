//! Member and cluster IDs, derived exactly as etcd derives them so that a Cairn member
//! started with etcd's flags reports etcd's IDs.
//!
//! Source: etcd `etcdserver/api/membership/member.go` (`newMember`) and `cluster.go` (`genID`).

use sha1::{Digest, Sha1};

/// Member ID of an initial member: the first 8 bytes (big-endian) of SHA-1 over the
/// member's peer URLs sorted and concatenated, followed by the cluster token.
pub fn member_id(peer_urls: &[String], cluster_token: &str) -> u64 {
    member_id_at(peer_urls, cluster_token, None)
}

/// Member ID as etcd's `newMember` derives it: SHA-1 over the sorted peer URLs, the
/// cluster token and, for members added at runtime (MemberAdd, with an empty token), the
/// Unix time in decimal seconds.
pub fn member_id_at(peer_urls: &[String], cluster_token: &str, unix_seconds: Option<u64>) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut hasher = Sha1::new();
    for url in &urls {
        hasher.update(url.as_bytes());
    }
    hasher.update(cluster_token.as_bytes());
    if let Some(seconds) = unix_seconds {
        hasher.update(seconds.to_string().as_bytes());
    }
    first_u64(&hasher.finalize())
}

/// Cluster ID: the first 8 bytes of SHA-1 over every member ID (sorted ascending, each as
/// 8 big-endian bytes).
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut hasher = Sha1::new();
    for id in ids {
        hasher.update(id.to_be_bytes());
    }
    first_u64(&hasher.finalize())
}

fn first_u64(digest: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// etcd 3.4 started with no flags reports member 8e9e05c52164694d in cluster cdf818194e3a8c32.
    #[test]
    fn matches_etcd_defaults() {
        let m = member_id(&["http://localhost:2380".to_string()], "etcd-cluster");
        assert_eq!(m, 0x8e9e05c52164694d);
        assert_eq!(cluster_id(&[m]), 0xcdf818194e3a8c32);
    }

    /// A runtime member's ID hashes the time too (etcd `newMember` with `now`).
    #[test]
    fn runtime_member_id_includes_the_time() {
        let urls = vec!["http://127.0.0.1:12380".to_string()];
        let mut h = Sha1::new();
        h.update(b"http://127.0.0.1:12380");
        h.update(b"1700000000");
        assert_eq!(
            member_id_at(&urls, "", Some(1_700_000_000)),
            first_u64(&h.finalize())
        );
        assert_ne!(
            member_id_at(&urls, "", Some(1_700_000_000)),
            member_id_at(&urls, "", Some(1_700_000_001))
        );
    }

    #[test]
    fn url_order_does_not_matter() {
        let a = member_id(&["http://b:2380".into(), "http://a:2380".into()], "t");
        let b = member_id(&["http://a:2380".into(), "http://b:2380".into()], "t");
        assert_eq!(a, b);
        assert_ne!(
            a,
            member_id(&["http://a:2380".into(), "http://b:2380".into()], "u")
        );
    }
}
