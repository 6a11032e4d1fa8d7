//! `txn [--interactive]`: etcdctl 3.4's `txn_command.go`. Standard input holds three
//! blocks, each ended by an empty line: compares (`<target>("<key>") <op> "<value>"`,
//! targets `ver|version`, `c|create`, `m|mod`, `val|value`, `lease`; ops `=`, `!=`,
//! `<`, `>`), then the success requests, then the failure requests (`put`, `get`, `del`
//! command lines with their flags, split as etcdctl's `argify`).

use std::io::BufRead;

use bytes::Bytes;
use clap::Parser;
use net::pb::etcdserverpb::{
    compare, request_op, response_op, Compare, RequestOp, TxnRequest, TxnResponse,
};
use prost::Message;

use super::go::JsonObject;
use super::kv::{self, DelArgs, GetArgs, PutArgs};
use super::{exit, CtlError, CtlResult, Format, Session};

/// One request line of a txn, parsed with the flags of the command of the same name.
#[derive(Parser)]
#[command(no_binary_name = true)]
enum TxnOp {
    Put(PutArgs),
    Get(GetArgs),
    Del(DelArgs),
}

/// Splits a line as etcdctl's `argify`: `"double quoted"` (Go escapes), `'single
/// quoted'`, or a run of non-space characters.
pub fn argify(line: &str) -> CtlResult<Vec<String>> {
    let mut args = Vec::new();
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        if let Some(body) = rest.strip_prefix('"') {
            let (value, used) = go_unquote(body)
                .ok_or_else(|| CtlError::new(exit::INVALID_INPUT, "unexpected EOF".to_string()))?;
            args.push(value);
            rest = &body[used..];
        } else if let Some(body) = rest.strip_prefix('\'') {
            let end = body.find('\'').unwrap_or(body.len());
            args.push(body[..end].to_string());
            rest = body.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            args.push(rest[..end].to_string());
            rest = &rest[end..];
        }
        rest = rest.trim_start();
    }
    Ok(args)
}

/// Reads a Go double-quoted string's body (after the opening quote): the value and the
/// bytes used including the closing quote; `None` when unterminated or badly escaped.
fn go_unquote(body: &str) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, i + 1)),
            '\\' => {
                let (_, e) = chars.next()?;
                out.push(match e {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    'a' => '\u{7}',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    'v' => '\u{b}',
                    '\\' => '\\',
                    '"' => '"',
                    '\'' => '\'',
                    'x' => {
                        let hex: String = (0..2)
                            .filter_map(|_| chars.next().map(|(_, h)| h))
                            .collect();
                        char::from(u8::from_str_radix(&hex, 16).ok()?)
                    }
                    _ => return None,
                });
            }
            c => out.push(c),
        }
    }
    None
}

/// Parses one compare line (etcdctl `parseCompare`).
pub fn parse_compare(line: &str) -> CtlResult<Compare> {
    let invalid = |m: String| CtlError::new(exit::INVALID_INPUT, m);
    let Some((target, rest)) = line.split_once('(') else {
        return Err(invalid(format!("malformed comparison: {line}")));
    };
    // Go's Sscanf(rest, "%q) %s %q"): key, `)`, op, value, stopping at the first miss.
    let (mut key, mut op, mut value) = (String::new(), String::new(), String::new());
    let mut scanned = 0;
    let mut input = rest;
    if let Some((k, used)) = input.strip_prefix('"').and_then(go_unquote) {
        key = k;
        scanned = 1;
        input = &input[used + 1..];
        if let Some(after) = input.strip_prefix(')') {
            let after = after.trim_start();
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            op = after[..end].to_string();
            if !op.is_empty() {
                scanned = 2;
            }
            let after = after[end..].trim_start();
            if let Some((v, _)) = after.strip_prefix('"').and_then(go_unquote) {
                value = v;
                scanned = 3;
            }
        }
    }
    if scanned != 3 {
        return Err(invalid(format!(
            "malformed comparison: {line}; got {target}({}) {op} {}",
            super::go::quote(key.as_bytes()),
            super::go::quote(value.as_bytes())
        )));
    }
    let result = match op.as_str() {
        "=" => compare::CompareResult::Equal,
        "!=" => compare::CompareResult::NotEqual,
        "<" => compare::CompareResult::Less,
        ">" => compare::CompareResult::Greater,
        // etcdctl panics here ("Unknown result op"); cairnctl reports it.
        _ => return Err(CtlError::new(exit::BAD_CONNECTION, "Unknown result op")),
    };
    let number = || {
        value
            .parse::<i64>()
            .map_err(|_| invalid(format!("invalid txn compare request: {line}")))
    };
    let (target, target_union) = match target {
        "ver" | "version" => (
            compare::CompareTarget::Version,
            compare::TargetUnion::Version(number()?),
        ),
        "c" | "create" => (
            compare::CompareTarget::Create,
            compare::TargetUnion::CreateRevision(number()?),
        ),
        "m" | "mod" => (
            compare::CompareTarget::Mod,
            compare::TargetUnion::ModRevision(number()?),
        ),
        "val" | "value" => (
            compare::CompareTarget::Value,
            compare::TargetUnion::Value(Bytes::from(value.clone())),
        ),
        other => {
            return Err(invalid(format!(
                "malformed comparison: {line} (unknown target {other})"
            )))
        }
    };
    Ok(Compare {
        result: result as i32,
        target: target as i32,
        key: Bytes::from(key),
        target_union: Some(target_union),
        ..Default::default()
    })
}

/// Parses one request line (etcdctl `parseRequestUnion`).
pub fn parse_request(line: &str) -> CtlResult<RequestOp> {
    let args = argify(line)?;
    if args.len() < 2 {
        return Err(CtlError::new(
            exit::INVALID_INPUT,
            format!("invalid txn compare request: {line}"),
        ));
    }
    let invalid = || CtlError::new(exit::INVALID_INPUT, format!("invalid txn request: {line}"));
    let op = TxnOp::try_parse_from(&args).map_err(|_| invalid())?;
    let request = match op {
        TxnOp::Put(a) => request_op::Request::RequestPut(kv::put_request(&a)?),
        TxnOp::Get(a) => request_op::Request::RequestRange(kv::range_request(&a)?),
        TxnOp::Del(a) => request_op::Request::RequestDeleteRange(kv::delete_request(&a)?),
    };
    Ok(RequestOp {
        request: Some(request),
    })
}

/// Reads lines up to an empty one; end of input before it is etcdctl's `EOF` error.
fn block(input: &mut impl BufRead) -> CtlResult<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let read = input
            .read_line(&mut line)
            .map_err(|e| CtlError::new(exit::INVALID_INPUT, e.to_string()))?;
        if read == 0 || !line.ends_with('\n') {
            return Err(CtlError::new(exit::INVALID_INPUT, "EOF"));
        }
        let line = line.trim();
        if line.is_empty() {
            return Ok(lines);
        }
        lines.push(line.to_string());
    }
}

/// `txn`: reads the three blocks from stdin, sends one Txn, prints its response.
pub async fn txn(s: &Session, args: &[String], interactive: bool) -> CtlResult {
    if !args.is_empty() {
        return Err(CtlError::new(
            exit::BAD_ARGS,
            "txn command does not accept argument",
        ));
    }
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let prompt = |text: &str| {
        if interactive {
            println!("{text}");
        }
    };
    prompt("compares:");
    let compares = block(&mut input)?
        .iter()
        .map(|l| parse_compare(l))
        .collect::<CtlResult<Vec<_>>>()?;
    prompt("success requests (get, put, del):");
    let success = block(&mut input)?
        .iter()
        .map(|l| parse_request(l))
        .collect::<CtlResult<Vec<_>>>()?;
    prompt("failure requests (get, put, del):");
    let failure = block(&mut input)?
        .iter()
        .map(|l| parse_request(l))
        .collect::<CtlResult<Vec<_>>>()?;
    if s.format == Format::Table {
        return Err(CtlError::unsupported(s.format));
    }
    let request = TxnRequest {
        compare: compares,
        success,
        failure,
    };
    let r: TxnResponse = s.call("/etcdserverpb.KV/Txn", &request).await?;
    kv::write_out(&render_txn(s.format, s.hex, &r));
    Ok(())
}

/// Output of `txn` (printers' `Txn`).
pub fn render_txn(format: Format, hex: bool, r: &TxnResponse) -> Vec<u8> {
    let responses = r.responses.iter().filter_map(|op| op.response.as_ref());
    match format {
        Format::Simple => {
            let mut out = if r.succeeded {
                b"SUCCESS\n".to_vec()
            } else {
                b"FAILURE\n".to_vec()
            };
            for response in responses {
                out.push(b'\n');
                out.extend(match response {
                    response_op::Response::ResponsePut(p) => kv::render_put(format, hex, p),
                    response_op::Response::ResponseRange(g) => {
                        kv::render_get(format, hex, false, g)
                    }
                    response_op::Response::ResponseDeleteRange(d) => kv::render_del(format, hex, d),
                    response_op::Response::ResponseTxn(_) => b"unexpected response\n".to_vec(),
                });
            }
            out
        }
        Format::Fields => {
            let mut out = kv::fields_header(r.header.as_ref()).into_bytes();
            out.extend(format!("\"Succeeded\" : {}\n", r.succeeded).into_bytes());
            for response in responses {
                out.extend(match response {
                    response_op::Response::ResponsePut(p) => kv::render_put(format, hex, p),
                    response_op::Response::ResponseRange(g) => {
                        kv::render_get(format, hex, false, g)
                    }
                    response_op::Response::ResponseDeleteRange(d) => kv::render_del(format, hex, d),
                    response_op::Response::ResponseTxn(_) => b"\"Unknown\" : \"\"\n".to_vec(),
                });
            }
            out
        }
        Format::Json => {
            let items: Vec<String> = responses
                .map(|response| {
                    let (name, inner) = match response {
                        response_op::Response::ResponsePut(p) => ("ResponsePut", kv::json_put(p)),
                        response_op::Response::ResponseRange(g) => {
                            ("ResponseRange", kv::json_range(g))
                        }
                        response_op::Response::ResponseDeleteRange(d) => {
                            ("ResponseDeleteRange", kv::json_delete(d))
                        }
                        response_op::Response::ResponseTxn(t) => (
                            "ResponseTxn",
                            JsonObject::new().object("header", kv::json_header(t.header.as_ref())),
                        ),
                    };
                    let union = JsonObject::new().raw(name, inner.encode());
                    JsonObject::new().raw("Response", union.encode()).encode()
                })
                .collect();
            JsonObject::new()
                .object("header", kv::json_header(r.header.as_ref()))
                .flag("succeeded", r.succeeded)
                .array("responses", items)
                .line()
        }
        Format::Protobuf | Format::Table => r.encode_to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argify_as_etcdctl() {
        assert_eq!(
            argify(r#"put "a b" 'c d' e\"f  --prev-kv"#).unwrap(),
            vec!["put", "a b", "c d", "e\\\"f", "--prev-kv"]
        );
        assert_eq!(argify(r#"put k "x\ty""#).unwrap(), vec!["put", "k", "x\ty"]);
    }

    #[test]
    fn compares() {
        let c = parse_compare(r#"mod("a") > "3""#).unwrap();
        assert_eq!(c.key, Bytes::from_static(b"a"));
        assert_eq!(c.result, compare::CompareResult::Greater as i32);
        assert_eq!(c.target_union, Some(compare::TargetUnion::ModRevision(3)));
        assert_eq!(
            parse_compare("bogus").unwrap_err().message,
            "malformed comparison: bogus"
        );
        assert_eq!(
            parse_compare(r#"ver("a" = "x""#).unwrap_err().message,
            r#"malformed comparison: ver("a" = "x"; got ver("a")  """#
        );
        assert_eq!(
            parse_compare(r#"ver("a") = "x""#).unwrap_err().message,
            r#"invalid txn compare request: ver("a") = "x""#
        );
    }

    #[test]
    fn requests() {
        let op = parse_request("put k v --prev-kv").unwrap();
        let Some(request_op::Request::RequestPut(put)) = op.request else {
            panic!("not a put: {op:?}");
        };
        assert!(put.prev_kv);
        assert_eq!(
            parse_request("bogus x").unwrap_err().message,
            "invalid txn request: bogus x"
        );
        assert_eq!(
            parse_request("put").unwrap_err().message,
            "invalid txn compare request: put"
        );
    }
}
