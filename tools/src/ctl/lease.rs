//! `lease grant|revoke|timetolive|list|keep-alive`: etcdctl 3.4's `lease_command.go` and
//! the lease printers. JSON of clientv3's lease responses: the header's fields inline
//! (an embedded `*pb.ResponseHeader`), then the struct's own.

use std::time::Duration;

use net::pb::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, ResponseHeader,
};
use prost::Message;

use super::go::{self, JsonObject};
use super::kv::{fields_header, json_header, write_out};
use super::{exit, status_text, CtlError, CtlResult, Format, Session};

/// A lease ID argument in hexadecimal (`strconv.ParseInt(arg, 16, 64)`).
fn lease_id(arg: &str) -> CtlResult<i64> {
    i64::from_str_radix(arg, 16).map_err(|e| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        CtlError::new(
            exit::BAD_ARGS,
            format!(
                "bad lease ID arg (strconv.ParseInt: parsing {}: {why}), expecting ID in Hex",
                go::string(arg)
            ),
        )
    })
}

/// The header fields inline, as Go's JSON of a struct embedding `*pb.ResponseHeader`.
fn inline_header(h: Option<&ResponseHeader>) -> JsonObject {
    let h = h.cloned().unwrap_or_default();
    JsonObject::new()
        .num("cluster_id", h.cluster_id)
        .num("member_id", h.member_id)
        .num("revision", h.revision)
        .num("raft_term", h.raft_term)
}

fn no_table(format: Format) -> CtlResult {
    if format == Format::Table {
        return Err(CtlError::unsupported(format));
    }
    Ok(())
}

/// `lease grant <ttl>`.
pub async fn grant(s: &Session, args: &[String]) -> CtlResult {
    if args.len() != 1 {
        return Err(CtlError::new(
            exit::BAD_ARGS,
            "lease grant command needs TTL argument",
        ));
    }
    let ttl: i64 = args[0].parse().map_err(|_| {
        CtlError::new(
            exit::BAD_ARGS,
            format!(
                "bad TTL (strconv.ParseInt: parsing {}: invalid syntax)",
                go::string(&args[0])
            ),
        )
    })?;
    no_table(s.format)?;
    let r: LeaseGrantResponse = s
        .client()
        .await?
        .unary(
            "/etcdserverpb.Lease/LeaseGrant",
            &LeaseGrantRequest { ttl, id: 0 },
            s.timeout,
        )
        .await
        .map_err(|st| {
            CtlError::new(
                exit::ERROR,
                format!("failed to grant lease ({})", status_text(&st)),
            )
        })?;
    let out = match s.format {
        Format::Simple => {
            format!("lease {:016x} granted with TTL({}s)\n", r.id, r.ttl).into_bytes()
        }
        Format::Fields => id_ttl_fields(r.header.as_ref(), r.id, r.ttl),
        Format::Json => id_ttl_json(r.header.as_ref(), r.id, r.ttl)
            .raw("Error", go::string(&r.error))
            .line(),
        _ => r.encode_to_vec(),
    };
    write_out(&out);
    Ok(())
}

/// `lease revoke <id>`.
pub async fn revoke(s: &Session, args: &[String]) -> CtlResult {
    if args.len() != 1 {
        return Err(CtlError::new(
            exit::BAD_ARGS,
            "lease revoke command needs 1 argument",
        ));
    }
    let id = lease_id(&args[0])?;
    no_table(s.format)?;
    let r: LeaseRevokeResponse = s
        .client()
        .await?
        .unary(
            "/etcdserverpb.Lease/LeaseRevoke",
            &LeaseRevokeRequest { id },
            s.timeout,
        )
        .await
        .map_err(|st| {
            CtlError::new(
                exit::ERROR,
                format!("failed to revoke lease ({})", status_text(&st)),
            )
        })?;
    let out = match s.format {
        Format::Simple => format!("lease {id:016x} revoked\n").into_bytes(),
        Format::Fields => fields_header(r.header.as_ref()).into_bytes(),
        Format::Json => JsonObject::new()
            .object("header", json_header(r.header.as_ref()))
            .line(),
        _ => r.encode_to_vec(),
    };
    write_out(&out);
    Ok(())
}

/// `lease timetolive <id> [--keys]`.
pub async fn timetolive(s: &Session, args: &[String], keys: bool) -> CtlResult {
    if args.len() != 1 {
        return Err(CtlError::new(
            exit::BAD_ARGS,
            "lease timetolive command needs lease ID as argument",
        ));
    }
    let id = lease_id(&args[0])?;
    no_table(s.format)?;
    let r: LeaseTimeToLiveResponse = s
        .client()
        .await?
        .unary(
            "/etcdserverpb.Lease/LeaseTimeToLive",
            &LeaseTimeToLiveRequest { id, keys },
            s.timeout,
        )
        .await
        .map_err(|st| CtlError::new(exit::BAD_CONNECTION, status_text(&st)))?;
    let out = match s.format {
        Format::Simple if r.granted_ttl == 0 && r.ttl == -1 => {
            format!("lease {:016x} already expired\n", r.id).into_bytes()
        }
        Format::Simple => {
            let mut text = format!(
                "lease {:016x} granted with TTL({}s), remaining({}s)",
                r.id, r.granted_ttl, r.ttl
            );
            if keys {
                let names: Vec<String> = r
                    .keys
                    .iter()
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .collect();
                text.push_str(&format!(", attached keys([{}])", names.join(" ")));
            }
            (text + "\n").into_bytes()
        }
        Format::Fields => {
            let mut out = format!(
                "{}\"ID\" : {}\n\"TTL\" : {}\n\"GrantedTTL\" : {}\n",
                fields_header(r.header.as_ref()),
                r.id,
                r.ttl,
                r.granted_ttl
            );
            for k in &r.keys {
                out.push_str(&format!("\"Key\" : {}\n", go::quote(k)));
            }
            out.into_bytes()
        }
        Format::Json => {
            // `Keys [][]byte` without omitempty: null when the server sent none.
            let keys = if r.keys.is_empty() {
                "null".to_string()
            } else {
                let items: Vec<String> = r
                    .keys
                    .iter()
                    .map(|k| {
                        use base64::Engine;
                        go::string(&base64::engine::general_purpose::STANDARD.encode(k))
                    })
                    .collect();
                format!("[{}]", items.join(","))
            };
            inline_header(r.header.as_ref())
                .raw("id", r.id.to_string())
                .raw("ttl", r.ttl.to_string())
                .raw("granted-ttl", r.granted_ttl.to_string())
                .raw("keys", keys)
                .line()
        }
        _ => r.encode_to_vec(),
    };
    write_out(&out);
    Ok(())
}

/// `lease list`.
pub async fn list(s: &Session) -> CtlResult {
    no_table(s.format)?;
    let r: LeaseLeasesResponse = s
        .client()
        .await?
        .unary(
            "/etcdserverpb.Lease/LeaseLeases",
            &LeaseLeasesRequest {},
            s.timeout,
        )
        .await
        .map_err(|st| {
            CtlError::new(
                exit::ERROR,
                format!("failed to list leases ({})", status_text(&st)),
            )
        })?;
    let out = match s.format {
        Format::Simple => {
            let mut out = format!("found {} leases\n", r.leases.len());
            for l in &r.leases {
                out.push_str(&format!("{:016x}\n", l.id));
            }
            out.into_bytes()
        }
        Format::Fields => {
            let mut out = fields_header(r.header.as_ref());
            for l in &r.leases {
                out.push_str(&format!("\"ID\" : {}\n", l.id));
            }
            out.into_bytes()
        }
        Format::Json => {
            let items: Vec<String> = r
                .leases
                .iter()
                .map(|l| JsonObject::new().raw("id", l.id.to_string()).encode())
                .collect();
            inline_header(r.header.as_ref())
                .raw("leases", format!("[{}]", items.join(",")))
                .line()
        }
        _ => r.encode_to_vec(),
    };
    write_out(&out);
    Ok(())
}

/// etcdctl's `-w fields` of a lease grant or keep-alive: the header, `"ID"`, `"TTL"`.
fn id_ttl_fields(header: Option<&ResponseHeader>, id: i64, ttl: i64) -> Vec<u8> {
    format!("{}\"ID\" : {id}\n\"TTL\" : {ttl}\n", fields_header(header)).into_bytes()
}

/// etcdctl's `-w json` of a lease grant or keep-alive, before any further field.
fn id_ttl_json(header: Option<&ResponseHeader>, id: i64, ttl: i64) -> JsonObject {
    inline_header(header)
        .raw("ID", id.to_string())
        .raw("TTL", ttl.to_string())
}

fn render_keepalive(format: Format, r: &LeaseKeepAliveResponse) -> Vec<u8> {
    match format {
        Format::Simple => {
            format!("lease {:016x} keepalived with TTL({})\n", r.id, r.ttl).into_bytes()
        }
        Format::Fields => id_ttl_fields(r.header.as_ref(), r.id, r.ttl),
        Format::Json => id_ttl_json(r.header.as_ref(), r.id, r.ttl).line(),
        _ => r.encode_to_vec(),
    }
}

/// `lease keep-alive [--once] <id>`: one keep-alive, or one every TTL/3 until the lease
/// is gone ("lease <id> expired or revoked.").
pub async fn keep_alive(s: &Session, args: &[String], once: bool) -> CtlResult {
    if args.len() != 1 {
        return Err(CtlError::new(
            exit::BAD_ARGS,
            "lease keep-alive command needs lease ID as argument",
        ));
    }
    let id = lease_id(&args[0])?;
    no_table(s.format)?;
    let failed = |st: net::Status| CtlError::new(exit::BAD_CONNECTION, status_text(&st));
    let mut call = s
        .client()
        .await?
        .open("/etcdserverpb.Lease/LeaseKeepAlive", None)
        .await
        .map_err(failed)?;
    loop {
        call.send(&LeaseKeepAliveRequest { id }).map_err(failed)?;
        let answer = net::with_deadline(s.timeout, call.message::<LeaseKeepAliveResponse>())
            .await
            .unwrap_or_else(|| Err(net::Status::deadline_exceeded()))
            .map_err(failed)?;
        let Some(r) = answer else {
            let status = call.finish().await.err().unwrap_or_else(|| {
                net::Status::new(
                    net::Code::Unavailable,
                    "the server ended the keep-alive stream",
                )
            });
            return Err(failed(status));
        };
        if r.ttl <= 0 {
            if once {
                return Err(CtlError::new(
                    exit::BAD_CONNECTION,
                    "etcdserver: requested lease not found",
                ));
            }
            println!("lease {id:016x} expired or revoked.");
            return Ok(());
        }
        write_out(&render_keepalive(s.format, &r));
        if once {
            return Ok(());
        }
        glommio::timer::sleep(Duration::from_secs((r.ttl as u64 / 3).max(1))).await;
    }
}
