//! The peer protocol's names: paths, identity headers, peer URLs, and the helpers that
//! build requests and read gRPC statuses on the client side.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use h2::RecvStream;
use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE, TE};
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri};

use crate::framing::MessageDecoder;
use crate::status::{decode_grpc_message, Code, Status};
use crate::stream::{next_message, status_from_h2};
use crate::timeout::format_grpc_timeout;

/// Path of the long-lived Raft message stream (client streaming).
pub const RAFT_PATH: &str = "/cairn.peer.Peer/Raft";
/// Path of a snapshot stream (client streaming: meta, then chunks).
pub const SNAPSHOT_PATH: &str = "/cairn.peer.Peer/Snapshot";
/// Prefix of unary calls; the method name follows: `/cairn.peer.Call/<method>`.
pub const CALL_PATH_PREFIX: &str = "/cairn.peer.Call/";
/// Longest unary method name, in bytes.
pub const METHOD_NAME_BYTES_MAX: usize = 128;

/// Header: the sender's cluster ID, lower-case hex without leading zeros (etcd's
/// `types.ID.String()`, as its `X-Etcd-Cluster-ID`).
pub const HEADER_CLUSTER_ID: &str = "cairn-cluster-id";
/// Header: the sender's member ID, hex (etcd's `X-Server-From`).
pub const HEADER_MEMBER_ID: &str = "cairn-member-id";
/// Header: the member ID the sender means to reach, hex (etcd's `X-Raft-To`).
pub const HEADER_TO_MEMBER_ID: &str = "cairn-to-member-id";

/// One member's identity within its cluster (etcd's member ID and cluster ID).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerIdentity {
    /// This member's ID (etcd derives it from the peer URLs and cluster token).
    pub member_id: u64,
    /// The cluster's ID (etcd derives it from the member IDs).
    pub cluster_id: u64,
}

/// The identity a request carries: who sent it, from which cluster, to whom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SenderHeaders {
    pub(crate) cluster_id: u64,
    pub(crate) member_id: u64,
    pub(crate) to_member_id: u64,
}

impl SenderHeaders {
    /// Reads the three identity headers. Errors: INVALID_ARGUMENT naming the header that is
    /// missing or not 1–16 hex digits.
    pub(crate) fn parse(headers: &HeaderMap) -> Result<SenderHeaders, Status> {
        Ok(SenderHeaders {
            cluster_id: parse_id_header(headers, HEADER_CLUSTER_ID)?,
            member_id: parse_id_header(headers, HEADER_MEMBER_ID)?,
            to_member_id: parse_id_header(headers, HEADER_TO_MEMBER_ID)?,
        })
    }
}

fn parse_id_header(headers: &HeaderMap, name: &str) -> Result<u64, Status> {
    let malformed = || {
        Status::new(
            Code::InvalidArgument,
            format!("cairn: peer header {name} is missing or not a hex member/cluster ID"),
        )
    };
    let value = headers.get(name).ok_or_else(malformed)?;
    let text = value.to_str().map_err(|_| malformed())?;
    if text.is_empty() || text.len() > 16 {
        return Err(malformed());
    }
    u64::from_str_radix(text, 16).map_err(|_| malformed())
}

/// A member's ID as etcd prints it: lower-case hex, no leading zeros.
pub(crate) fn id_hex(id: u64) -> String {
    format!("{id:x}")
}

/// A parsed peer URL, `http://host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PeerUrl {
    /// The URL as given (for logs).
    pub(crate) text: String,
    /// `host:port`, sent as `:authority`.
    pub(crate) authority: Authority,
    /// The host (an IP literal without brackets, or a name to resolve).
    pub(crate) host: String,
    /// The TCP port.
    pub(crate) port: u16,
    /// `https://`: the connection runs TLS.
    pub(crate) tls: bool,
}

impl PeerUrl {
    /// Parses `http://host:port` or `https://host:port` (an optional trailing `/`). Errors
    /// name the URL and the problem: another scheme, a missing port, a path.
    pub(crate) fn parse(text: &str) -> Result<PeerUrl, String> {
        let uri: Uri = text
            .parse()
            .map_err(|error| format!("invalid peer URL {text:?}: {error}"))?;
        let tls = if uri.scheme() == Some(&Scheme::HTTP) {
            false
        } else if uri.scheme() == Some(&Scheme::HTTPS) {
            true
        } else {
            return Err(format!(
                "invalid peer URL {text:?}: the scheme must be http or https"
            ));
        };
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("invalid peer URL {text:?}: no host"))?;
        let port = authority
            .port_u16()
            .ok_or_else(|| format!("invalid peer URL {text:?}: no port"))?;
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(format!("invalid peer URL {text:?}: a path is not allowed"));
        }
        if authority.as_str().contains('@') {
            return Err(format!(
                "invalid peer URL {text:?}: user info is not allowed"
            ));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if host.is_empty() {
            return Err(format!("invalid peer URL {text:?}: no host"));
        }
        Ok(PeerUrl {
            text: text.to_string(),
            authority,
            host,
            port,
            tls,
        })
    }

    /// The socket address when the host is an IP literal (no name resolution needed).
    pub(crate) fn socket_addr(&self) -> Option<SocketAddr> {
        let ip: IpAddr = self.host.parse().ok()?;
        Some(SocketAddr::new(ip, self.port))
    }
}

/// Checks a unary method name: 1..=`METHOD_NAME_BYTES_MAX` bytes of `[A-Za-z0-9._-]`.
pub(crate) fn check_method_name(method: &str) -> Result<(), Status> {
    let valid = !method.is_empty()
        && method.len() <= METHOD_NAME_BYTES_MAX
        && method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(Status::new(
            Code::InvalidArgument,
            format!(
                "cairn: invalid peer method name {method:?} (1 to {METHOD_NAME_BYTES_MAX} characters of A-Z a-z 0-9 . _ -)"
            ),
        ))
    }
}

/// A gRPC request on `path` to `url` carrying the sender's identity; `timeout` becomes
/// `grpc-timeout`, so the receiver ends the call at the same deadline.
pub(crate) fn build_request(
    url: &PeerUrl,
    path: &str,
    identity: PeerIdentity,
    to: u64,
    timeout: Option<std::time::Duration>,
) -> Result<Request<()>, String> {
    let uri = Uri::builder()
        .scheme(if url.tls { Scheme::HTTPS } else { Scheme::HTTP })
        .authority(url.authority.clone())
        .path_and_query(path)
        .build()
        .map_err(|error| format!("cannot build a request to {}{path}: {error}", url.text))?;
    let mut request = Request::post(uri)
        .body(())
        .map_err(|error| format!("cannot build a request to {}{path}: {error}", url.text))?;
    let headers = request.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(TE, HeaderValue::from_static("trailers"));
    headers.insert(HEADER_CLUSTER_ID, hex_header(identity.cluster_id));
    headers.insert(HEADER_MEMBER_ID, hex_header(identity.member_id));
    headers.insert(HEADER_TO_MEMBER_ID, hex_header(to));
    if let Some(timeout) = timeout {
        // Digits and a unit letter: always a valid header value.
        if let Ok(value) = HeaderValue::from_str(&format_grpc_timeout(timeout)) {
            headers.insert("grpc-timeout", value);
        }
    }
    Ok(request)
}

fn hex_header(id: u64) -> HeaderValue {
    HeaderValue::from_str(&id_hex(id)).expect("hex digits are a valid header value")
}

/// The status in `headers` (`grpc-status`, `grpc-message`), if any.
pub(crate) fn status_in(headers: &HeaderMap) -> Option<Status> {
    let code = headers.get("grpc-status")?;
    let code = code
        .to_str()
        .ok()
        .and_then(|text| text.parse::<u32>().ok())
        .map(Code::from_u32)
        .unwrap_or(Code::Unknown);
    let message = headers
        .get("grpc-message")
        .and_then(|value| value.to_str().ok())
        .map(decode_grpc_message)
        .unwrap_or_default();
    Some(Status::new(code, message))
}

/// Checks response headers: a Trailers-Only status (an error before any message), or an
/// HTTP status other than 200, is an error.
pub(crate) fn check_response_head(response: &Response<RecvStream>) -> Result<(), Status> {
    if let Some(status) = status_in(response.headers()) {
        return Err(if status.code == Code::Ok {
            Status::new(Code::Internal, "cairn: peer answered with no message")
        } else {
            status
        });
    }
    if response.status() != http::StatusCode::OK {
        return Err(Status::new(
            Code::Unavailable,
            format!("cairn: peer answered HTTP status {}", response.status()),
        ));
    }
    Ok(())
}

/// Reads the one response message of a call, then its trailers: `Ok(message)` when the
/// status is OK. A response that ends without a message or trailers is an error.
pub(crate) async fn read_single_response(
    response: Response<RecvStream>,
    message_bytes_max: usize,
) -> Result<Bytes, Status> {
    check_response_head(&response)?;
    let mut body = response.into_body();
    let mut decoder = MessageDecoder::new(message_bytes_max);
    let message = next_message(&mut body, &mut decoder).await;
    let status = read_trailer_status(&mut body).await;
    match (message, status) {
        (_, Err(status)) => Err(status),
        (Some(Err(status)), _) => Err(status),
        (Some(Ok(message)), Ok(())) => Ok(message),
        (None, Ok(())) => Err(Status::new(
            Code::Internal,
            "cairn: peer answered OK with no message",
        )),
    }
}

/// Reads a response's trailers: `Ok` for grpc-status 0, the status otherwise; a stream
/// that ends without trailers is UNAVAILABLE.
pub(crate) async fn read_trailer_status(body: &mut RecvStream) -> Result<(), Status> {
    // Drain anything left (nothing is expected) so that trailers become readable.
    while let Some(data) = body.data().await {
        match data {
            Ok(chunk) => {
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            Err(error) => return Err(status_from_h2(&error)),
        }
    }
    match body.trailers().await {
        Ok(Some(trailers)) => match status_in(&trailers) {
            Some(status) if status.code == Code::Ok => Ok(()),
            Some(status) => Err(status),
            None => Err(Status::new(
                Code::Internal,
                "cairn: peer response trailers lack grpc-status",
            )),
        },
        Ok(None) => Err(Status::new(
            Code::Unavailable,
            "cairn: peer ended the stream without a status",
        )),
        Err(error) => Err(status_from_h2(&error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls() {
        let url = PeerUrl::parse("http://127.0.0.1:2380").unwrap();
        assert_eq!(url.authority.as_str(), "127.0.0.1:2380");
        assert_eq!(url.socket_addr(), Some("127.0.0.1:2380".parse().unwrap()));
        let v6 = PeerUrl::parse("http://[::1]:2380/").unwrap();
        assert_eq!(v6.socket_addr(), Some("[::1]:2380".parse().unwrap()));
        let named = PeerUrl::parse("http://etcd-0.etcd:2380").unwrap();
        assert_eq!(named.host, "etcd-0.etcd");
        assert_eq!(named.socket_addr(), None);
        assert!(!url.tls);
        assert!(PeerUrl::parse("https://10.0.0.1:2380").unwrap().tls);
        assert!(PeerUrl::parse("ftp://10.0.0.1:2380")
            .unwrap_err()
            .contains("scheme must be http or https"));
        assert!(PeerUrl::parse("http://10.0.0.1")
            .unwrap_err()
            .contains("no port"));
        assert!(PeerUrl::parse("http://10.0.0.1:2380/raft")
            .unwrap_err()
            .contains("path"));
        assert!(PeerUrl::parse("10.0.0.1:2380").is_err());
        assert!(PeerUrl::parse("").is_err());
    }

    #[test]
    fn identity_headers_round_trip_and_reject_garbage() {
        let url = PeerUrl::parse("http://127.0.0.1:2380").unwrap();
        let identity = PeerIdentity {
            member_id: 0x8e9e05c52164694d,
            cluster_id: 0xcdf818194e3a8c32,
        };
        let request = build_request(&url, RAFT_PATH, identity, 7, None).unwrap();
        assert_eq!(request.uri(), "http://127.0.0.1:2380/cairn.peer.Peer/Raft");
        let headers = request.headers();
        assert_eq!(headers.get(HEADER_MEMBER_ID).unwrap(), "8e9e05c52164694d");
        assert_eq!(
            SenderHeaders::parse(headers).unwrap(),
            SenderHeaders {
                cluster_id: 0xcdf818194e3a8c32,
                member_id: 0x8e9e05c52164694d,
                to_member_id: 7,
            }
        );
        for bad in ["", "x1", "12345678901234567", "-1"] {
            let mut headers = headers.clone();
            headers.insert(HEADER_CLUSTER_ID, HeaderValue::from_str(bad).unwrap());
            let error = SenderHeaders::parse(&headers).unwrap_err();
            assert_eq!(error.code, Code::InvalidArgument);
            assert!(error.message.contains(HEADER_CLUSTER_ID), "{bad}");
        }
        let mut missing = headers.clone();
        missing.remove(HEADER_TO_MEMBER_ID);
        assert!(SenderHeaders::parse(&missing)
            .unwrap_err()
            .message
            .contains(HEADER_TO_MEMBER_ID));
    }

    #[test]
    fn method_names() {
        assert!(check_method_name("LeaseKeepAlive").is_ok());
        assert!(check_method_name("lease.time-to_live").is_ok());
        assert!(check_method_name("").is_err());
        assert!(check_method_name("a/b").is_err());
        assert!(check_method_name(&"a".repeat(METHOD_NAME_BYTES_MAX + 1)).is_err());
    }

    #[test]
    fn statuses_in_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(status_in(&headers), None);
        headers.insert("grpc-status", HeaderValue::from_static("9"));
        headers.insert("grpc-message", HeaderValue::from_static("cluster%20ID"));
        assert_eq!(
            status_in(&headers),
            Some(Status::new(Code::FailedPrecondition, "cluster ID"))
        );
    }
}
