//! `watch` (etcdctl 3.4 `watch_command.go` on clientv3 `watch.go`):
//!
//! - `watch [options] [key or prefix] [range_end] [--] [exec-command arg1 ...]`: prints
//!   each response; with an exec command, runs it once per event with
//!   `ETCD_WATCH_REVISION`, `ETCD_WATCH_EVENT_TYPE`, `ETCD_WATCH_KEY`, `ETCD_WATCH_VALUE`
//!   (Go `%q` quoted, as etcdctl sets them) and this process's stdout and stderr; a
//!   failing command ends everything with `command [...] error (...)`, exit 1.
//! - `watch -i`: reads `watch ...` and `progress` lines from stdin; every watch shares
//!   one gRPC Watch stream (clientv3 groups the watches of one context), responses go
//!   to their watch by `watch_id`, progress notifications (`watch_id` -1) to all. End of
//!   stdin: `Error: Error reading watch request line: EOF`, exit 3.
//!
//! The stream carries `hasleader: true` (clientv3 `WithRequireLeader`). When it ends,
//! its status decides as clientv3's `watchGrpcStream.run`: UNAVAILABLE or INTERNAL
//! (except `etcdserver: no leader`) reopen it and re-create every watch from the
//! revision after the last one it delivered (on a new connection if the old one is
//! gone, as grpc-go redials); any other end (a clean end is Go's `EOF`)
//! cancels every watch: `watch was canceled (<error>)`. With no watch left, the
//! command line form ends with `Error: watch is canceled by the server`, exit 5.
//! Argument rules: [`super::watch_args`].

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use futures::channel::mpsc;
use futures::future::{select, Either};
use futures::StreamExt;
use net::pb::etcdserverpb::{
    watch_request, WatchCancelRequest, WatchCreateRequest, WatchProgressRequest, WatchRequest,
    WatchResponse,
};
use net::pb::mvccpb::{event::EventType, Event};
use net::{Call, Code, Status};
use prost::Message;

use super::go::{self, JsonObject};
use super::kv::{fields_header, fields_kv, json_header, json_kv, simple_kv, write_out};
use super::watch_args::{self, ArgifyError, ParsedWatch, WatchFlags};
use super::{exit, status_text, CtlError, CtlResult, Format, Session};

/// The Watch method.
const WATCH_METHOD: &str = "/etcdserverpb.Watch/Watch";
/// etcd's require-leader metadata (`rpctypes.MetadataRequireLeaderKey`,
/// `MetadataHasLeader`), sent by etcdctl's `clientv3.WithRequireLeader`.
const REQUIRE_LEADER: (&str, &str) = ("hasleader", "true");
/// clientv3's `InvalidWatchID`: a progress notification for every watch of the stream.
const INVALID_WATCH_ID: i64 = -1;
/// First pause before reopening a stream that ended UNAVAILABLE, in milliseconds;
/// each further one is 25% longer (clientv3 `backoffIfUnavailable`).
const REOPEN_BACKOFF_FIRST_MS: f64 = 1.0;
/// Longest such pause (clientv3 `maxBackoff`), in milliseconds.
const REOPEN_BACKOFF_MAX_MS: f64 = 100.0;
/// The exit code of a Go program that panics.
const GO_PANIC_EXIT: i32 = 2;
/// Interactive lines read ahead of the watches (the reader thread waits beyond that).
const STDIN_LINES_MAX: usize = 16;

/// `watch` flags and arguments.
#[derive(Clone, Debug, clap::Args)]
pub struct WatchArgs {
    /// `[key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]`.
    pub args: Vec<String>,
    /// Interactive mode
    #[arg(short, long)]
    pub interactive: bool,
    /// Watch on a prefix if prefix is set
    #[arg(long)]
    pub prefix: bool,
    /// Revision to start watching
    #[arg(long, default_value_t = 0)]
    pub rev: i64,
    /// get the previous key-value pair before the event happens
    #[arg(long)]
    pub prev_kv: bool,
}

/// `watch`: the command line form or (`-i`) the interactive one; see the module doc.
/// `os_args` are the process's arguments (etcdctl looks for `--` in them).
pub async fn watch(s: &Session, a: &WatchArgs, os_args: &[String]) -> CtlResult {
    let env_key = std::env::var("ETCDCTL_WATCH_KEY").unwrap_or_default();
    let env_range = std::env::var("ETCDCTL_WATCH_RANGE_END").unwrap_or_default();
    if env_key.is_empty() && !env_range.is_empty() {
        return Err(CtlError::new(
            exit::BAD_ARGS,
            format!(
                "ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END={}",
                go::quote(env_range.as_bytes())
            ),
        ));
    }
    if s.format == Format::Table {
        return Err(CtlError::unsupported(s.format));
    }
    let mut stream = WatchStream::new(s);
    if a.interactive {
        return interactive(&mut stream, &env_key, &env_range).await;
    }
    let flags = WatchFlags {
        prefix: a.prefix,
        rev: a.rev,
        prev_kv: a.prev_kv,
    };
    let bad_args = |m: String| CtlError::new(exit::BAD_ARGS, m);
    let parsed = watch_args::parse_command_line(os_args, &a.args, flags, &env_key, &env_range)
        .map_err(bad_args)?;
    let create = create_request(&parsed).map_err(bad_args)?;
    stream.add(create, parsed.exec_args).await?;
    while !stream.is_idle() {
        stream.step(None).await?;
    }
    Err(CtlError::new(
        exit::INTERRUPTED,
        "watch is canceled by the server",
    ))
}

/// The create request of a parsed watch (`getWatchChan`).
fn create_request(parsed: &ParsedWatch) -> Result<WatchCreateRequest, String> {
    let (key, range_end) = watch_args::key_range(&parsed.watch_args, parsed.flags)?;
    Ok(WatchCreateRequest {
        key: Bytes::from(key),
        range_end: Bytes::from(range_end),
        start_revision: parsed.flags.rev,
        prev_kv: parsed.flags.prev_kv,
        ..Default::default()
    })
}

/// A line of stdin, or why there is none (Go's `ReadString` error text).
type StdinLine = Result<String, String>;

/// Reads stdin on a thread of its own: lines without their `\n`; a last line without
/// one is dropped, as `bufio.Reader.ReadString` gives it with `EOF`.
fn stdin_lines() -> mpsc::Receiver<StdinLine> {
    let (mut sender, receiver) = mpsc::channel(STDIN_LINES_MAX);
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut input = std::io::stdin().lock();
        loop {
            let mut line = Vec::new();
            let item = match input.read_until(b'\n', &mut line) {
                Ok(_) if line.last() == Some(&b'\n') => {
                    line.pop();
                    Ok(String::from_utf8_lossy(&line).into_owned())
                }
                Ok(_) => Err("EOF".to_string()),
                Err(e) => Err(e.to_string()),
            };
            let last = item.is_err();
            if futures::executor::block_on(futures::SinkExt::send(&mut sender, item)).is_err()
                || last
            {
                return;
            }
        }
    });
    receiver
}

/// `watchInteractiveFunc`: one line at a time while the watches print.
async fn interactive(stream: &mut WatchStream<'_>, env_key: &str, env_range: &str) -> CtlResult {
    let mut lines = stdin_lines();
    loop {
        let line = match stream.step(Some(&mut lines)).await? {
            Some(Ok(line)) => line,
            Some(Err(why)) => {
                return Err(CtlError::new(
                    exit::INVALID_INPUT,
                    format!("Error reading watch request line: {why}"),
                ))
            }
            None => continue,
        };
        let args = match watch_args::argify(&line) {
            Ok(args) => args,
            Err(ArgifyError::Syntax) => {
                return Err(CtlError::new(exit::INVALID_INPUT, "invalid syntax"))
            }
            Err(ArgifyError::Panic(text)) => {
                // Go's runtime panic: its first line, exit 2.
                eprintln!("panic: runtime error: {text}");
                return Err(CtlError::new(GO_PANIC_EXIT, ""));
            }
        };
        match args.first().map(String::as_str) {
            None => eprintln!("Invalid command: {line} (watch and progress supported)"),
            Some("watch") if args.len() < 2 && env_key.is_empty() => {
                eprintln!("Invalid command {line} (command type or key is not provided)")
            }
            Some("watch") => {
                let parsed = watch_args::parse_interactive(&args, env_key, env_range)
                    .map_err(|m| CtlError::new(exit::BAD_ARGS, m))?;
                match create_request(&parsed) {
                    Ok(create) => {
                        stream.add(create, parsed.exec_args).await?;
                        // clientv3's Watch returns once the watch is created: the next
                        // line waits for it.
                        while stream.is_creating() {
                            stream.step(None).await?;
                        }
                    }
                    Err(why) => eprintln!("Invalid command {line} ({why})"),
                }
            }
            Some("progress") => stream.request_progress().await?,
            Some(_) => eprintln!("Invalid command {line} (only support watch)"),
        }
    }
}

/// One watch of the stream (clientv3 `watcherStream`).
struct Watcher {
    /// Its create request; `start_revision` follows the delivered responses, so that a
    /// reopened stream resumes after them (`serveSubstream`'s `nextRev`).
    create: WatchCreateRequest,
    /// The command run per event (empty: none).
    exec: Vec<String>,
    /// The server's `watch_id` while created on the current stream.
    id: Option<i64>,
    /// Whether its first `created` answer came (later ones are re-creations).
    created_once: bool,
}

/// The watches of one gRPC Watch stream (clientv3 `watchGrpcStream`), each printed as
/// etcdctl's `printWatchCh` prints its channel.
struct WatchStream<'a> {
    s: &'a Session,
    /// A connection of its own once the session's was lost (see [`WatchStream::on_end`]).
    redialed: Option<net::Client>,
    /// The open call, `None` before the first watch and after the last one ended.
    call: Option<Call>,
    /// Indexed by local number; `None` once ended.
    watchers: Vec<Option<Watcher>>,
    /// Watches waiting for `created`, in order; the head's request is sent.
    resuming: VecDeque<usize>,
    /// Watch IDs a cancel was sent for (responses for unknown IDs, once each).
    cancel_sent: HashSet<i64>,
    /// The reason of a failed creation, given to every watch that ends after it on this
    /// stream (clientv3 keeps it in `closeErr`).
    close_err: Option<String>,
}

impl<'a> WatchStream<'a> {
    fn new(s: &'a Session) -> WatchStream<'a> {
        WatchStream {
            s,
            redialed: None,
            call: None,
            watchers: Vec::new(),
            resuming: VecDeque::new(),
            cancel_sent: HashSet::new(),
            close_err: None,
        }
    }

    /// Whether no watch is left.
    fn is_idle(&self) -> bool {
        self.watchers.iter().all(Option::is_none)
    }

    /// Whether a create request is waiting for its answer.
    fn is_creating(&self) -> bool {
        self.call.is_some() && !self.resuming.is_empty()
    }

    fn failed(status: Status) -> CtlError {
        CtlError::new(exit::BAD_CONNECTION, status_text(&status))
    }

    /// The call, opened with `hasleader: true` if none is open.
    async fn call(&mut self) -> CtlResult<&mut Call> {
        if self.call.is_none() {
            let client = match self.redialed.as_ref() {
                Some(client) => client,
                None => self.s.client().await?,
            };
            let call = client
                .open_with_metadata(WATCH_METHOD, None, &[REQUIRE_LEADER])
                .await
                .map_err(Self::failed)?;
            self.call = Some(call);
            self.cancel_sent.clear();
        }
        Ok(self.call.as_mut().expect("opened above"))
    }

    async fn send(&mut self, request: watch_request::RequestUnion) -> CtlResult {
        let request = WatchRequest {
            request_union: Some(request),
        };
        // A send on a broken stream fails; its reading side reports how it ended.
        let _ = self.call().await?.send(&request);
        Ok(())
    }

    /// Adds a watch; its create request goes out once those before it are created.
    async fn add(&mut self, create: WatchCreateRequest, exec: Vec<String>) -> CtlResult {
        self.watchers.push(Some(Watcher {
            create,
            exec,
            id: None,
            created_once: false,
        }));
        self.resuming.push_back(self.watchers.len() - 1);
        if self.resuming.len() == 1 {
            self.send_next_create().await?;
        }
        Ok(())
    }

    async fn send_next_create(&mut self) -> CtlResult {
        while let Some(&head) = self.resuming.front() {
            if let Some(w) = &self.watchers[head] {
                let create = w.create.clone();
                return self
                    .send(watch_request::RequestUnion::CreateRequest(create))
                    .await;
            }
            self.resuming.pop_front();
        }
        Ok(())
    }

    /// `progress`: a progress request on the stream (opened if need be).
    async fn request_progress(&mut self) -> CtlResult {
        self.send(watch_request::RequestUnion::ProgressRequest(
            WatchProgressRequest {},
        ))
        .await
    }

    /// Handles the next response or stream end; with `lines`, returns the next stdin
    /// line instead if it comes first.
    async fn step(
        &mut self,
        lines: Option<&mut mpsc::Receiver<StdinLine>>,
    ) -> CtlResult<Option<StdinLine>> {
        let next = match (self.call.as_mut(), lines) {
            (Some(call), Some(lines)) => {
                let message = std::pin::pin!(call.message::<WatchResponse>());
                match select(lines.next(), message).await {
                    Either::Left((line, _)) => {
                        return Ok(Some(line.unwrap_or_else(|| Err("EOF".into()))))
                    }
                    Either::Right((message, _)) => message,
                }
            }
            (Some(call), None) => call.message::<WatchResponse>().await,
            (None, Some(lines)) => {
                return Ok(Some(
                    lines.next().await.unwrap_or_else(|| Err("EOF".into())),
                ))
            }
            (None, None) => unreachable!("a step without a stream nor stdin"),
        };
        match next {
            Ok(Some(r)) => self.on_response(r).await?,
            Ok(None) => {
                let call = self.call.as_mut().expect("a message came from it");
                let status = call.finish().await;
                self.on_end(status.err()).await?;
            }
            Err(status) => self.on_end(Some(status)).await?,
        }
        Ok(None)
    }

    /// One response (clientv3 `run`'s `respc` case).
    async fn on_response(&mut self, r: WatchResponse) -> CtlResult {
        if r.created {
            let Some(head) = self.resuming.pop_front() else {
                return Ok(());
            };
            if r.watch_id == INVALID_WATCH_ID || (r.canceled && !r.cancel_reason.is_empty()) {
                self.close_err = Some(r.cancel_reason.clone());
                self.end(head);
            } else if let Some(w) = self.watchers[head].as_mut() {
                w.id = Some(r.watch_id);
                if !w.created_once {
                    w.created_once = true;
                    if w.create.start_revision == 0 {
                        w.create.start_revision = r.header.as_ref().map_or(0, |h| h.revision);
                    }
                }
            }
            return self.send_next_create().await;
        }
        if r.canceled && r.compact_revision == 0 {
            if let Some(index) = self.index_of(r.watch_id) {
                self.end(index);
            }
            return Ok(());
        }
        if is_progress_notify(&r) && r.watch_id == INVALID_WATCH_ID {
            let created: Vec<usize> = (0..self.watchers.len())
                .filter(|&i| self.watchers[i].as_ref().is_some_and(|w| w.id.is_some()))
                .collect();
            for index in created {
                self.deliver(index, &r).await?;
            }
            return Ok(());
        }
        match self.index_of(r.watch_id) {
            Some(index) => self.deliver(index, &r).await,
            None if self.cancel_sent.insert(r.watch_id) => {
                let cancel = WatchCancelRequest {
                    watch_id: r.watch_id,
                };
                self.send(watch_request::RequestUnion::CancelRequest(cancel))
                    .await
            }
            None => Ok(()),
        }
    }

    fn index_of(&self, watch_id: i64) -> Option<usize> {
        self.watchers
            .iter()
            .position(|w| w.as_ref().is_some_and(|w| w.id == Some(watch_id)))
    }

    /// A watch's response: its resume revision (`serveSubstream`), then what
    /// `printWatchCh` prints and runs; a compaction ends the watch.
    async fn deliver(&mut self, index: usize, r: &WatchResponse) -> CtlResult {
        let Some(w) = self.watchers[index].as_mut() else {
            return Ok(());
        };
        let mut next = r.header.as_ref().map_or(0, |h| h.revision);
        if let Some(last) = r.events.last() {
            next = last.kv.as_ref().map_or(0, |kv| kv.mod_revision) + 1;
        }
        w.create.start_revision = next;
        let exec = w.exec.clone();
        // Only a compaction cancels a watch through here (`WatchResponse.Err`).
        let compacted = r.compact_revision != 0;
        if compacted {
            eprintln!(
                "watch was canceled (etcdserver: mvcc: required revision has been compacted)"
            );
        }
        if is_progress_notify(r) {
            println!(
                "progress notify: {}",
                r.header.as_ref().map_or(0, |h| h.revision)
            );
        }
        write_out(&render(self.s.format, self.s.hex, r, false));
        if !exec.is_empty() {
            run_per_event(&exec, r).await?;
        }
        if compacted {
            self.end(index);
        }
        Ok(())
    }

    /// A watch ends; with a creation failure on record, it prints that first
    /// (`closeSubstream`). The last one closes the stream.
    fn end(&mut self, index: usize) {
        if self.watchers[index].take().is_none() {
            return;
        }
        if let Some(why) = &self.close_err {
            eprintln!("watch was canceled ({why})");
            write_out(&render(
                self.s.format,
                self.s.hex,
                &WatchResponse::default(),
                true,
            ));
        }
        if self.is_idle() {
            self.call = None;
            self.resuming.clear();
            self.close_err = None;
        }
    }

    /// The stream ended with `status` (`None`: OK, Go's `io.EOF`).
    async fn on_end(&mut self, status: Option<Status>) -> CtlResult {
        self.call = None;
        let retry = status.as_ref().is_some_and(|st| {
            matches!(st.code, Code::Unavailable | Code::Internal)
                && status_text(st) != "etcdserver: no leader"
        });
        if !retry {
            let why = status.as_ref().map_or("EOF".to_string(), status_text);
            self.close_err = Some(why);
            for index in 0..self.watchers.len() {
                self.end(index);
            }
            self.close_err = None;
            return Ok(());
        }
        let mut backoff_ms = REOPEN_BACKOFF_FIRST_MS;
        let mut last = status;
        loop {
            if last.as_ref().is_some_and(|st| st.code == Code::Unavailable) {
                backoff_ms = (backoff_ms * 1.25).min(REOPEN_BACKOFF_MAX_MS);
                glommio::timer::sleep(Duration::from_secs_f64(backoff_ms / 1000.0)).await;
            }
            match self.call().await {
                Ok(_) => break,
                Err(_) => {
                    // The connection is gone: grpc-go dials it again, so do we.
                    if let Ok(client) = self.s.redial().await {
                        self.redialed = Some(client);
                    }
                    last = Some(Status::new(Code::Unavailable, "reopening the watch stream"))
                }
            }
        }
        // Every live watch is created again, from the revision after its last one.
        self.resuming = (0..self.watchers.len())
            .filter(|&i| self.watchers[i].is_some())
            .collect();
        for w in self.watchers.iter_mut().flatten() {
            w.id = None;
        }
        self.send_next_create().await
    }
}

/// clientv3 `IsProgressNotify`.
fn is_progress_notify(r: &WatchResponse) -> bool {
    r.events.is_empty()
        && !r.canceled
        && !r.created
        && r.compact_revision == 0
        && r.header.as_ref().is_some_and(|h| h.revision != 0)
}

/// Runs `exec` once per event of `r` as `printWatchCh` does; a failure prints
/// `command [...] error (...)` and ends the process with exit 1.
async fn run_per_event(exec: &[String], r: &WatchResponse) -> CtlResult {
    let revision = r.header.as_ref().map_or(0, |h| h.revision);
    for e in &r.events {
        let kv = e.kv.clone().unwrap_or_default();
        let mut child = std::process::Command::new(&exec[0]);
        child
            .args(&exec[1..])
            .env("ETCD_WATCH_REVISION", revision.to_string())
            .env("ETCD_WATCH_EVENT_TYPE", go::quote(event_type(e).as_bytes()))
            .env("ETCD_WATCH_KEY", go::quote(&kv.key))
            .env("ETCD_WATCH_VALUE", go::quote(&kv.value));
        let outcome = glommio::executor()
            .spawn_blocking(move || child.status())
            .await;
        if let Some(why) = go::exec_error(&exec[0], &outcome) {
            let quoted: Vec<String> = exec.iter().map(|a| go::quote(a.as_bytes())).collect();
            eprintln!("command [{}] error ({why})", quoted.join(" "));
            return Err(CtlError::new(exit::ERROR, ""));
        }
    }
    Ok(())
}

fn event_type(e: &Event) -> &'static str {
    if e.r#type == EventType::Delete as i32 {
        "DELETE"
    } else {
        "PUT"
    }
}

/// Output of one watch response (printers' `Watch`); `closing`: the response clientv3
/// makes when a watch ends on an error, whose events are nil (JSON `null`).
fn render(format: Format, hex: bool, r: &WatchResponse, closing: bool) -> Vec<u8> {
    match format {
        Format::Simple => {
            let mut out = Vec::new();
            for e in &r.events {
                out.extend(format!("{}\n", event_type(e)).into_bytes());
                if let Some(prev) = &e.prev_kv {
                    out.extend(simple_kv(hex, false, prev));
                }
                out.extend(simple_kv(hex, false, &e.kv.clone().unwrap_or_default()));
            }
            out
        }
        Format::Fields => {
            let mut out = fields_header(r.header.as_ref());
            for e in &r.events {
                out.push_str(&format!("\"Type\" : {}\n", event_type(e)));
                if let Some(prev) = &e.prev_kv {
                    out.push_str(&fields_kv("Prev", prev));
                }
                out.push_str(&fields_kv("", &e.kv.clone().unwrap_or_default()));
            }
            out.into_bytes()
        }
        Format::Json => {
            // clientv3's WatchResponse struct: Go field names, no omitempty.
            let events = if closing {
                "null".to_string()
            } else {
                let items: Vec<String> = r
                    .events
                    .iter()
                    .map(|e| {
                        JsonObject::new()
                            .num("type", e.r#type)
                            .object("kv", e.kv.as_ref().map(json_kv))
                            .object("prev_kv", e.prev_kv.as_ref().map(json_kv))
                            .encode()
                    })
                    .collect();
                format!("[{}]", items.join(","))
            };
            let header = json_header(r.header.as_ref()).unwrap_or_default();
            JsonObject::new()
                .raw("Header", header.encode())
                .raw("Events", events)
                .raw("CompactRevision", r.compact_revision.to_string())
                .raw("Canceled", (r.canceled || closing).to_string())
                .raw("Created", r.created.to_string())
                .line()
        }
        _ => WatchResponse {
            header: r.header,
            events: r.events.clone(),
            compact_revision: r.compact_revision,
            canceled: r.canceled || closing,
            created: r.created,
            ..Default::default()
        }
        .encode_to_vec(),
    }
}
