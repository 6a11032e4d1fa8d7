//! `version`, `endpoint health|status|hashkv`, `member list|add|remove|update|promote`,
//! `compaction`, `defrag`, `alarm list|disarm`: etcdctl 3.4's `version_command.go`,
//! `ep_command.go`, `member_command.go`, `compaction_command.go`, `defrag_command.go`,
//! `alarm_command.go` and their printers.

use std::time::{Duration, Instant};

use net::pb::etcdserverpb::{
    alarm_request, AlarmRequest, AlarmResponse, CompactionRequest, CompactionResponse,
    DefragmentRequest, DefragmentResponse, HashKvRequest, HashKvResponse, Member, MemberAddRequest,
    MemberAddResponse, MemberListRequest, MemberListResponse, MemberPromoteRequest,
    MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse, MemberUpdateRequest,
    MemberUpdateResponse, MoveLeaderRequest, MoveLeaderResponse, RangeRequest, RangeResponse,
    ResponseHeader, StatusRequest, StatusResponse,
};
use prost::Message;

use super::go::{self, JsonObject};
use super::kv::{fields_header, json_header, write_out};
use super::{exit, status_text, CtlError, CtlResult, Format, GlobalFlags, Session};

/// What `version` prints: the etcdctl release whose commands, flags and output cairnctl
/// reproduces, and its API version (etcdctl `version_command.go`).
pub fn version() -> &'static str {
    "etcdctl version: 3.4.23\nAPI version: 3.4\n"
}

/// Go's `time.Duration.String()`: `0s`, `850ns`, `1.5µs`, `2.211889ms`, `1.5s`, `2m3s`.
pub fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    let frac = |value: u128, unit: u128, suffix: &str| {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            format!("{whole}{suffix}")
        } else {
            let digits = unit.to_string().len() - 1;
            let text = format!("{rest:0digits$}");
            format!("{whole}.{}{suffix}", text.trim_end_matches('0'))
        }
    };
    match nanos {
        0 => "0s".into(),
        n if n < 1_000 => format!("{n}ns"),
        n if n < 1_000_000 => frac(n, 1_000, "µs"),
        n if n < 1_000_000_000 => frac(n, 1_000_000, "ms"),
        n => {
            let secs = n / 1_000_000_000;
            let (h, m) = (secs / 3600, (secs % 3600) / 60);
            let s = frac(n % 60_000_000_000, 1_000_000_000, "s");
            match (h, m) {
                (0, 0) => s,
                (0, m) => format!("{m}m{s}"),
                (h, m) => format!("{h}h{m}m{s}"),
            }
        }
    }
}

/// The endpoints an endpoint command visits: `--endpoints`, or with `--cluster` every
/// member's client URLs from the member list.
async fn endpoints(flags: &GlobalFlags, s: &Session, cluster: bool) -> CtlResult<Vec<String>> {
    if !cluster {
        return Ok(flags
            .endpoints
            .iter()
            .map(|e| e.trim().to_string())
            .collect());
    }
    let r: MemberListResponse = s
        .client()
        .await?
        .unary(
            "/etcdserverpb.Cluster/MemberList",
            &MemberListRequest::default(),
            s.timeout,
        )
        .await
        .map_err(|st| {
            CtlError::new(
                exit::ERROR,
                format!(
                    "failed to fetch endpoints from etcd cluster member list: {}",
                    status_text(&st)
                ),
            )
        })?;
    Ok(r.members.into_iter().flat_map(|m| m.client_ur_ls).collect())
}

/// [`endpoints`] without a connection unless `--cluster` needs one (etcdctl dials
/// lazily: an unreachable endpoint fails only its own call).
async fn endpoint_list(flags: &GlobalFlags, cluster: bool) -> CtlResult<Vec<String>> {
    if cluster {
        let s = Session::connect(flags).await?;
        endpoints(flags, &s, true).await
    } else {
        Ok(flags
            .endpoints
            .iter()
            .map(|e| e.trim().to_string())
            .collect())
    }
}

/// A session to one endpoint with the global flags otherwise.
async fn session_to(flags: &GlobalFlags, endpoint: &str) -> CtlResult<Session> {
    let mut one = flags.clone();
    one.endpoints = vec![endpoint.to_string()];
    Session::connect(&one).await
}

struct Health {
    endpoint: String,
    health: bool,
    took: String,
    error: String,
}

/// `endpoint health [--cluster]`: a linearizable get of key "health" per endpoint
/// (permission denied counts as healthy); "unhealthy cluster" (exit 1) if any failed.
/// Endpoints are visited in order (etcdctl visits them concurrently and prints in
/// completion order).
pub async fn health(flags: &GlobalFlags, cluster: bool) -> CtlResult {
    if flags.write_out == Format::Fields || flags.write_out == Format::Protobuf {
        // etcdctl's fields printer has EndpointHealth; protobuf has not.
        if flags.write_out == Format::Protobuf {
            return Err(CtlError::unsupported(flags.write_out));
        }
    }
    let list = if cluster {
        let s = Session::connect(flags).await?;
        endpoints(flags, &s, true).await?
    } else {
        flags
            .endpoints
            .iter()
            .map(|e| e.trim().to_string())
            .collect()
    };
    let mut results = Vec::new();
    for endpoint in list {
        let s = match session_to(flags, &endpoint).await {
            Ok(s) => s,
            Err(e) => {
                results.push(Health {
                    endpoint,
                    health: false,
                    took: String::new(),
                    error: e.message,
                });
                continue;
            }
        };
        let started = Instant::now();
        let request = RangeRequest {
            key: bytes::Bytes::from_static(b"health"),
            ..Default::default()
        };
        let r: Result<RangeResponse, _> = s.call("/etcdserverpb.KV/Range", &request).await;
        let took = go_duration(started.elapsed());
        let error = match r {
            Ok(_) => String::new(),
            Err(e) if e.message == "etcdserver: permission denied" => String::new(),
            Err(e) => e.message,
        };
        results.push(Health {
            endpoint,
            health: error.is_empty(),
            took,
            error,
        });
    }
    let out = match flags.write_out {
        Format::Simple => {
            for h in &results {
                if h.error.is_empty() {
                    eprintln!(
                        "{} is healthy: successfully committed proposal: took = {}",
                        h.endpoint, h.took
                    );
                } else {
                    eprintln!(
                        "{} is unhealthy: failed to commit proposal: {}",
                        h.endpoint, h.error
                    );
                }
            }
            String::new()
        }
        Format::Json => {
            let items: Vec<String> = results
                .iter()
                .map(|h| {
                    JsonObject::new()
                        .raw("endpoint", go::string(&h.endpoint))
                        .raw("health", h.health.to_string())
                        .raw("took", go::string(&h.took))
                        .str("error", &h.error)
                        .encode()
                })
                .collect();
            format!("[{}]\n", items.join(","))
        }
        Format::Fields => results
            .iter()
            .map(|h| {
                format!(
                    "\"Endpoint\" : {}\n\"Health\" : {}\n\"Took\" : {}\n\"Error\" : {}\n\n",
                    go::quote(h.endpoint.as_bytes()),
                    h.health,
                    h.took,
                    h.error
                )
            })
            .collect(),
        Format::Table => {
            let rows: Vec<Vec<String>> = results
                .iter()
                .map(|h| {
                    vec![
                        h.endpoint.clone(),
                        h.health.to_string(),
                        h.took.clone(),
                        h.error.clone(),
                    ]
                })
                .collect();
            go::table(&["endpoint", "health", "took", "error"], &rows)
        }
        Format::Protobuf => unreachable!("refused above"),
    };
    write_out(out.as_bytes());
    if results.iter().any(|h| !h.error.is_empty()) {
        return Err(CtlError::new(exit::ERROR, "unhealthy cluster"));
    }
    Ok(())
}

/// `endpoint status [--cluster]`: Maintenance.Status of each endpoint.
pub async fn status(flags: &GlobalFlags, cluster: bool) -> CtlResult {
    if flags.write_out == Format::Protobuf {
        return Err(CtlError::unsupported(flags.write_out));
    }
    let mut results = Vec::new();
    let mut failed = false;
    for endpoint in endpoint_list(flags, cluster).await? {
        let r = match session_to(flags, &endpoint).await {
            Ok(one) => {
                one.call::<_, StatusResponse>("/etcdserverpb.Maintenance/Status", &StatusRequest {})
                    .await
            }
            Err(e) => Err(e),
        };
        match r {
            Ok(r) => results.push((endpoint, r)),
            Err(e) => {
                failed = true;
                eprintln!(
                    "Failed to get the status of endpoint {endpoint} ({})",
                    e.message
                );
            }
        }
    }
    let out = render_status(flags.write_out, &results);
    write_out(out.as_bytes());
    if failed {
        return Err(CtlError::new(exit::ERROR, String::new()));
    }
    Ok(())
}

fn status_row(endpoint: &str, r: &StatusResponse) -> Vec<String> {
    let member_id = r.header.as_ref().map_or(0, |h| h.member_id);
    vec![
        endpoint.to_string(),
        format!("{member_id:x}"),
        r.version.clone(),
        go::humanize_bytes(r.db_size.max(0) as u64),
        (r.leader == member_id).to_string(),
        r.is_learner.to_string(),
        r.raft_term.to_string(),
        r.raft_index.to_string(),
        r.raft_applied_index.to_string(),
        r.errors.join(", "),
    ]
}

fn render_status(format: Format, results: &[(String, StatusResponse)]) -> String {
    match format {
        Format::Simple => results
            .iter()
            .map(|(e, r)| status_row(e, r).join(", ") + "\n")
            .collect(),
        Format::Table => {
            let rows: Vec<Vec<String>> = results.iter().map(|(e, r)| status_row(e, r)).collect();
            go::table(
                &[
                    "endpoint",
                    "ID",
                    "version",
                    "db size",
                    "is leader",
                    "is learner",
                    "raft term",
                    "raft index",
                    "raft applied index",
                    "errors",
                ],
                &rows,
            )
        }
        Format::Json => {
            let items: Vec<String> = results
                .iter()
                .map(|(e, r)| {
                    let status = JsonObject::new()
                        .object("header", json_header(r.header.as_ref()))
                        .str("version", &r.version)
                        .num("dbSize", r.db_size)
                        .num("leader", r.leader)
                        .num("raftIndex", r.raft_index)
                        .num("raftTerm", r.raft_term)
                        .num("raftAppliedIndex", r.raft_applied_index)
                        .array("errors", r.errors.iter().map(|e| go::string(e)).collect())
                        .num("dbSizeInUse", r.db_size_in_use)
                        .flag("isLearner", r.is_learner);
                    JsonObject::new()
                        .raw("Endpoint", go::string(e))
                        .raw("Status", status.encode())
                        .encode()
                })
                .collect();
            format!("[{}]\n", items.join(","))
        }
        Format::Fields => results
            .iter()
            .map(|(e, r)| {
                format!(
                    "{}\"Version\" : {}\n\"DBSize\" : {}\n\"Leader\" : {}\n\"IsLearner\" : {}\n\"RaftIndex\" : {}\n\"RaftTerm\" : {}\n\"RaftAppliedIndex\" : {}\n\"Errors\" : [{}]\n\"Endpoint\" : {}\n\n",
                    fields_header(r.header.as_ref()),
                    go::quote(r.version.as_bytes()),
                    r.db_size,
                    r.leader,
                    r.is_learner,
                    r.raft_index,
                    r.raft_term,
                    r.raft_applied_index,
                    r.errors.join(" "),
                    go::quote(e.as_bytes())
                )
            })
            .collect(),
        Format::Protobuf => String::new(),
    }
}

/// `endpoint hashkv [--cluster] [--rev N]`: Maintenance.HashKV of each endpoint.
pub async fn hashkv(flags: &GlobalFlags, cluster: bool, revision: i64) -> CtlResult {
    if flags.write_out == Format::Protobuf {
        return Err(CtlError::unsupported(flags.write_out));
    }
    let mut results = Vec::new();
    let mut error = None;
    for endpoint in endpoint_list(flags, cluster).await? {
        let r = match session_to(flags, &endpoint).await {
            Ok(one) => {
                one.call::<_, HashKvResponse>(
                    "/etcdserverpb.Maintenance/HashKV",
                    &HashKvRequest { revision },
                )
                .await
            }
            Err(e) => Err(e),
        };
        match r {
            Ok(r) => results.push((endpoint, r)),
            Err(e) => {
                eprintln!(
                    "Failed to get the hash of endpoint {endpoint} ({})",
                    e.message
                );
                error = Some(e);
            }
        }
    }
    let out: String = match flags.write_out {
        Format::Simple => results
            .iter()
            .map(|(e, r)| format!("{e}, {}\n", r.hash))
            .collect(),
        Format::Table => {
            let rows: Vec<Vec<String>> = results
                .iter()
                .map(|(e, r)| vec![e.clone(), r.hash.to_string()])
                .collect();
            go::table(&["endpoint", "hash"], &rows)
        }
        Format::Json => {
            let items: Vec<String> = results
                .iter()
                .map(|(e, r)| {
                    let hash = JsonObject::new()
                        .object("header", json_header(r.header.as_ref()))
                        .num("hash", r.hash)
                        .num("compact_revision", r.compact_revision);
                    JsonObject::new()
                        .raw("Endpoint", go::string(e))
                        .raw("HashKV", hash.encode())
                        .encode()
                })
                .collect();
            format!("[{}]\n", items.join(","))
        }
        Format::Fields => results
            .iter()
            .map(|(e, r)| {
                format!(
                    "{}\"Endpoint\" : {}\n\"Hash\" : {}\n\n",
                    fields_header(r.header.as_ref()),
                    go::quote(e.as_bytes()),
                    r.hash
                )
            })
            .collect(),
        Format::Protobuf => String::new(),
    };
    write_out(out.as_bytes());
    match error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn member_json(m: &Member) -> String {
    JsonObject::new()
        .num("ID", m.id)
        .str("name", &m.name)
        .array(
            "peerURLs",
            m.peer_ur_ls.iter().map(|u| go::string(u)).collect(),
        )
        .array(
            "clientURLs",
            m.client_ur_ls.iter().map(|u| go::string(u)).collect(),
        )
        .flag("isLearner", m.is_learner)
        .encode()
}

fn members_json(
    header: Option<&ResponseHeader>,
    member: Option<&Member>,
    members: &[Member],
) -> Vec<u8> {
    let mut o = JsonObject::new().object("header", json_header(header));
    if let Some(m) = member {
        o = o.raw("member", member_json(m));
    }
    o.array("members", members.iter().map(member_json).collect())
        .line()
}

fn member_rows(members: &[Member]) -> Vec<Vec<String>> {
    members
        .iter()
        .map(|m| {
            vec![
                format!("{:x}", m.id),
                if m.name.is_empty() {
                    "unstarted"
                } else {
                    "started"
                }
                .to_string(),
                m.name.clone(),
                m.peer_ur_ls.join(","),
                m.client_ur_ls.join(","),
                m.is_learner.to_string(),
            ]
        })
        .collect()
}

/// `member list`.
pub async fn member_list(s: &Session) -> CtlResult {
    let r: MemberListResponse = s
        .call(
            "/etcdserverpb.Cluster/MemberList",
            &MemberListRequest::default(),
        )
        .await?;
    let out = match s.format {
        Format::Simple => member_rows(&r.members)
            .iter()
            .map(|row| row.join(", ") + "\n")
            .collect::<String>()
            .into_bytes(),
        Format::Table => go::table(
            &[
                "ID",
                "Status",
                "Name",
                "Peer Addrs",
                "Client Addrs",
                "Is Learner",
            ],
            &member_rows(&r.members),
        )
        .into_bytes(),
        Format::Json => members_json(r.header.as_ref(), None, &r.members),
        Format::Protobuf => r.encode_to_vec(),
        Format::Fields => {
            let mut out = fields_header(r.header.as_ref());
            for m in &r.members {
                out.push_str(&format!(
                    "\"ID\" : {}\n\"Name\" : {}\n",
                    m.id,
                    go::quote(m.name.as_bytes())
                ));
                for u in &m.peer_ur_ls {
                    out.push_str(&format!("\"PeerURL\" : {}\n", go::quote(u.as_bytes())));
                }
                for u in &m.client_ur_ls {
                    out.push_str(&format!("\"ClientURL\" : {}\n", go::quote(u.as_bytes())));
                }
                out.push_str(&format!("\"IsLearner\" : {}\n\n", m.is_learner));
            }
            out.into_bytes()
        }
    };
    write_out(&out);
    Ok(())
}

/// Parses a hexadecimal member ID as etcdctl (`strconv.ParseUint(arg, 16, 64)`).
fn member_id(args: &[String]) -> CtlResult<u64> {
    if args.len() != 1 {
        return Err(CtlError::new(exit::BAD_ARGS, "member ID is not provided"));
    }
    u64::from_str_radix(&args[0], 16).map_err(|e| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow => "value out of range",
            _ => "invalid syntax",
        };
        CtlError::new(
            exit::BAD_ARGS,
            format!(
                "bad member ID arg (strconv.ParseUint: parsing {}: {why}), expecting ID in Hex",
                go::string(&args[0])
            ),
        )
    })
}

/// Formats only `simple`, `json` and `protobuf` have for member add/remove/update/promote
/// (the fields and table printers fall back to "not supported").
fn check_member_change_format(format: Format) -> CtlResult {
    match format {
        Format::Fields | Format::Table => Err(CtlError::unsupported(format)),
        _ => Ok(()),
    }
}

/// `member add <name> --peer-urls URLs [--learner]`.
pub async fn member_add(s: &Session, args: &[String], peer_urls: &str, learner: bool) -> CtlResult {
    if args.is_empty() {
        return Err(CtlError::new(exit::BAD_ARGS, "member name not provided"));
    }
    if args.len() > 1 {
        let mut text = String::from("too many arguments");
        for a in args {
            if a.to_lowercase().starts_with("http") {
                text.push_str(&format!(", did you mean --peer-urls={a}"));
            }
        }
        return Err(CtlError::new(exit::BAD_ARGS, text));
    }
    if peer_urls.is_empty() {
        return Err(CtlError::new(
            exit::BAD_ARGS,
            "member peer urls not provided",
        ));
    }
    check_member_change_format(s.format)?;
    let request = MemberAddRequest {
        peer_ur_ls: peer_urls.split(',').map(String::from).collect(),
        is_learner: learner,
    };
    let r: MemberAddResponse = s.call("/etcdserverpb.Cluster/MemberAdd", &request).await?;
    let new = r.member.clone().unwrap_or_default();
    let cluster_id = r.header.as_ref().map_or(0, |h| h.cluster_id);
    let out = match s.format {
        Format::Simple => {
            let mut conf = Vec::new();
            for m in &r.members {
                for u in &m.peer_ur_ls {
                    let name = if m.id == new.id { &args[0] } else { &m.name };
                    conf.push(format!("{name}={u}"));
                }
            }
            format!(
                "Member {:16x} added to cluster {:16x}\n\nETCD_NAME={}\nETCD_INITIAL_CLUSTER={}\nETCD_INITIAL_ADVERTISE_PEER_URLS={}\nETCD_INITIAL_CLUSTER_STATE=\"existing\"\n",
                new.id,
                cluster_id,
                go::quote(args[0].as_bytes()),
                go::quote(conf.join(",").as_bytes()),
                go::quote(peer_urls.as_bytes())
            )
            .into_bytes()
        }
        Format::Json => members_json(r.header.as_ref(), r.member.as_ref(), &r.members),
        _ => r.encode_to_vec(),
    };
    write_out(&out);
    Ok(())
}

/// `member remove <id>`, `member update <id> --peer-urls`, `member promote <id>`.
pub async fn member_change(
    s: &Session,
    action: &str,
    args: &[String],
    peer_urls: &str,
) -> CtlResult {
    let id = member_id(args)?;
    if action == "update" && peer_urls.is_empty() {
        return Err(CtlError::new(
            exit::BAD_ARGS,
            "member peer urls not provided",
        ));
    }
    check_member_change_format(s.format)?;
    let (header, members, encoded, verb) = match action {
        "remove" => {
            let r: MemberRemoveResponse = s
                .call(
                    "/etcdserverpb.Cluster/MemberRemove",
                    &MemberRemoveRequest { id },
                )
                .await?;
            (
                r.header,
                r.members.clone(),
                r.encode_to_vec(),
                "removed from",
            )
        }
        "update" => {
            let request = MemberUpdateRequest {
                id,
                peer_ur_ls: peer_urls.split(',').map(String::from).collect(),
            };
            let r: MemberUpdateResponse = s
                .call("/etcdserverpb.Cluster/MemberUpdate", &request)
                .await?;
            (r.header, r.members.clone(), r.encode_to_vec(), "updated in")
        }
        _ => {
            let r: MemberPromoteResponse = s
                .call(
                    "/etcdserverpb.Cluster/MemberPromote",
                    &MemberPromoteRequest { id },
                )
                .await?;
            (
                r.header,
                r.members.clone(),
                r.encode_to_vec(),
                "promoted in",
            )
        }
    };
    let out = match s.format {
        Format::Simple => format!(
            "Member {id:16x} {verb} cluster {:16x}\n",
            header.as_ref().map_or(0, |h| h.cluster_id)
        )
        .into_bytes(),
        Format::Json => members_json(header.as_ref(), None, &members),
        _ => encoded,
    };
    write_out(&out);
    Ok(())
}

/// `compaction [--physical] <revision>`.
pub async fn compaction(s: &Session, args: &[String], physical: bool) -> CtlResult {
    if args.len() != 1 {
        return Err(CtlError::new(
            exit::BAD_ARGS,
            "compaction command needs 1 argument",
        ));
    }
    let revision: i64 = args[0].parse().map_err(|e: std::num::ParseIntError| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        CtlError::new(
            exit::ERROR,
            format!("strconv.ParseInt: parsing {}: {why}", go::string(&args[0])),
        )
    })?;
    let _: CompactionResponse = s
        .call(
            "/etcdserverpb.KV/Compact",
            &CompactionRequest { revision, physical },
        )
        .await?;
    println!("compacted revision {revision}");
    Ok(())
}

/// `defrag [--cluster]`: Maintenance.Defragment of each endpoint; exit 1 if any failed.
pub async fn defrag(flags: &GlobalFlags, cluster: bool) -> CtlResult {
    let mut failed = false;
    for endpoint in endpoint_list(flags, cluster).await? {
        let r = match session_to(flags, &endpoint).await {
            Ok(one) => {
                one.call::<_, DefragmentResponse>(
                    "/etcdserverpb.Maintenance/Defragment",
                    &DefragmentRequest {},
                )
                .await
            }
            Err(e) => Err(e),
        };
        match r {
            Ok(_) => println!("Finished defragmenting etcd member[{endpoint}]"),
            Err(e) => {
                failed = true;
                eprintln!(
                    "Failed to defragment etcd member[{endpoint}] ({})",
                    e.message
                );
            }
        }
    }
    if failed {
        return Err(CtlError::new(exit::ERROR, String::new()));
    }
    Ok(())
}

/// `alarm list` / `alarm disarm`.
pub async fn alarm(s: &Session, disarm: bool, args: &[String]) -> CtlResult {
    if !args.is_empty() {
        let which = if disarm { "disarm" } else { "list" };
        return Err(CtlError::new(
            exit::BAD_ARGS,
            format!("alarm {which} command accepts no arguments"),
        ));
    }
    if s.format == Format::Table {
        return Err(CtlError::unsupported(s.format));
    }
    let mut r: AlarmResponse = s
        .call(
            "/etcdserverpb.Maintenance/Alarm",
            &AlarmRequest {
                action: alarm_request::AlarmAction::Get as i32,
                member_id: 0,
                alarm: 0,
            },
        )
        .await?;
    if disarm {
        // clientv3 `AlarmDisarm`: the current alarms, each deactivated; the answer of the
        // last one is printed (etcd's own alarm list if there was none).
        let current = std::mem::take(&mut r.alarms);
        let mut last = AlarmResponse {
            header: r.header,
            alarms: Vec::new(),
        };
        for a in current {
            last = s
                .call(
                    "/etcdserverpb.Maintenance/Alarm",
                    &AlarmRequest {
                        action: alarm_request::AlarmAction::Deactivate as i32,
                        member_id: a.member_id,
                        alarm: a.alarm,
                    },
                )
                .await?;
        }
        r = last;
    }
    let name = |alarm: i32| match alarm {
        1 => "NOSPACE",
        2 => "CORRUPT",
        _ => "NONE",
    };
    let out = match s.format {
        Format::Simple => r
            .alarms
            .iter()
            .map(|a| format!("memberID:{} alarm:{} \n", a.member_id, name(a.alarm)))
            .collect::<String>()
            .into_bytes(),
        Format::Fields => {
            let mut out = fields_header(r.header.as_ref());
            for a in &r.alarms {
                out.push_str(&format!(
                    "\"MemberID\" : {}\n\"AlarmType\" : {}\n\n",
                    a.member_id,
                    name(a.alarm)
                ));
            }
            out.into_bytes()
        }
        Format::Json => JsonObject::new()
            .object("header", json_header(r.header.as_ref()))
            .array(
                "alarms",
                r.alarms
                    .iter()
                    .map(|a| {
                        JsonObject::new()
                            .num("memberID", a.member_id)
                            .num("alarm", a.alarm)
                            .encode()
                    })
                    .collect(),
            )
            .line(),
        _ => r.encode_to_vec(),
    };
    write_out(&out);
    Ok(())
}

/// `move-leader <transferee-member-id>`: finds the leader among `--endpoints` (its
/// Status says it leads) and asks it to transfer leadership.
pub async fn move_leader(flags: &GlobalFlags, args: &[String]) -> CtlResult {
    if args.len() != 1 {
        return Err(CtlError::new(
            exit::BAD_ARGS,
            "move-leader command needs 1 argument",
        ));
    }
    let target = u64::from_str_radix(&args[0], 16).map_err(|e| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow => "value out of range",
            _ => "invalid syntax",
        };
        CtlError::new(
            exit::BAD_ARGS,
            format!("strconv.ParseUint: parsing {}: {why}", go::string(&args[0])),
        )
    })?;
    Session::connect(flags).await?;
    let mut leader = None;
    for endpoint in &flags.endpoints {
        let s = session_to(flags, endpoint.trim()).await?;
        let r: StatusResponse = s
            .call("/etcdserverpb.Maintenance/Status", &StatusRequest {})
            .await?;
        if r.header.as_ref().map_or(0, |h| h.member_id) == r.leader {
            leader = Some((s, r.leader));
            break;
        }
    }
    let Some((s, leader_id)) = leader else {
        return Err(CtlError::new(
            exit::BAD_ARGS,
            format!(
                "no leader endpoint given at [{}]",
                flags.endpoints.join(" ")
            ),
        ));
    };
    if matches!(s.format, Format::Fields | Format::Table) {
        return Err(CtlError::unsupported(s.format));
    }
    let r: MoveLeaderResponse = s
        .call(
            "/etcdserverpb.Maintenance/MoveLeader",
            &MoveLeaderRequest { target_id: target },
        )
        .await?;
    let out = match s.format {
        Format::Simple => {
            format!("Leadership transferred from {leader_id:x} to {target:x}\n").into_bytes()
        }
        Format::Json => JsonObject::new()
            .object("header", json_header(r.header.as_ref()))
            .line(),
        _ => r.encode_to_vec(),
    };
    write_out(&out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_as_strings() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_nanos(850)), "850ns");
        assert_eq!(go_duration(Duration::from_nanos(1_500)), "1.5µs");
        assert_eq!(go_duration(Duration::from_nanos(2_211_889)), "2.211889ms");
        assert_eq!(go_duration(Duration::from_millis(1_500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(123)), "2m3s");
    }

    #[test]
    fn member_ids_in_hex() {
        assert_eq!(
            member_id(&["2e1259d415f2a040".into()]).unwrap(),
            0x2e1259d415f2a040
        );
        let e = member_id(&["xyz".into()]).unwrap_err();
        assert_eq!(e.code, exit::BAD_ARGS);
        assert_eq!(
            e.message,
            "bad member ID arg (strconv.ParseUint: parsing \"xyz\": invalid syntax), expecting ID in Hex"
        );
    }
}
