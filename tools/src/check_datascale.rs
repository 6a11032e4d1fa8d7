//! `cairnctl check datascale`: etcdctl 3.4's memory check (`etcdctl/ctlv3/command/check.go`
//! `newCheckDatascaleCommand`) — reads the first endpoint's resident memory from its
//! `/metrics` (`process_resident_memory_bytes`, etcdctl's `endpointMemoryMetrics` of
//! `util.go`), puts the load's number of 512-byte random keys with 512-byte values under
//! a prefix from many clients as fast as they go, reads the memory again, deletes the
//! prefix and prints the difference: `PASS: Approximate system memory used : X MB.`
//!
//! Loads (etcd's `checkDatascaleCfgMap`): `s` 10,000 keys from 50 clients, `m` 100,000
//! from 200, `l` 1,000,000 from 500, `xl` 3,000,000 from 1,000. The shared pieces
//! (clients, prefix refusal, put workers, clean-up, progress bar) are `check_perf`'s.

use std::time::Duration;

use crate::check_perf::{
    block_on_tokio, clean_up, connect_clients, finish_bar, load_model, progress_bar,
    random_key_body, refuse_used_prefix, request_error, CheckFlags, Putters,
};
use crate::ctl::{exit, CtlError, CtlResult};

/// Key bytes per put (etcd: `ksize`).
pub const DATASCALE_KEY_BYTES: usize = 512;
/// Value bytes per put (etcd: `vsize`).
pub const DATASCALE_VALUE_BYTES: usize = 512;
/// etcd's default prefix of the check's keys.
pub const DATASCALE_PREFIX: &str = "/etcdctl-check-datascale/";
/// The metric read before and after the puts.
pub const RESIDENT_MEMORY_METRIC: &str = "process_resident_memory_bytes";
/// Deadline of one `/metrics` fetch (etcdctl's `http.Get` has none; this stands for it).
pub const METRICS_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest `/metrics` page read, bytes.
pub const METRICS_PAGE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// One of etcd's datascale models.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatascaleLoad {
    /// Keys put (etcd: `limit`).
    pub keys: u64,
    /// Bytes per key-value pair, as printed (etcd: `kvSize`).
    pub kv_bytes: u32,
    /// Concurrent clients, one connection each.
    pub clients: u32,
}

impl DatascaleLoad {
    /// etcd's model for `name` (see [`load_model`]). Errors: etcd's
    /// `unknown load option NAME`.
    pub fn named(name: &str) -> std::result::Result<DatascaleLoad, String> {
        let (keys, clients) = match load_model(name)? {
            "s" => (10_000, 50),
            "m" => (100_000, 200),
            "l" => (1_000_000, 500),
            _ => (3_000_000, 1_000),
        };
        Ok(DatascaleLoad {
            keys,
            kv_bytes: 1024,
            clients,
        })
    }
}

/// The value of the first line of a Prometheus text page that starts with
/// [`RESIDENT_MEMORY_METRIC`] (etcdctl's match: a prefix match, rest trimmed and parsed).
/// Errors: etcdctl's printed reason, `could not find: ...` or `parse error: ...`.
pub fn resident_memory_in(page: &str) -> std::result::Result<f64, String> {
    let value = page
        .lines()
        .find_map(|line| line.strip_prefix(RESIDENT_MEMORY_METRIC))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("could not find: {RESIDENT_MEMORY_METRIC}"))?;
    value
        .parse::<f64>()
        .map_err(|_| format!("parse error: strconv.ParseFloat: parsing {value:?}: invalid syntax"))
}

/// The endpoint's resident memory, bytes, from `<endpoint>/metrics` (`http://` added
/// when the endpoint has no scheme). https sends `--cert`/`--key` as etcdctl does and
/// verifies the server with `--cacert` unless `--insecure-skip-tls-verify`.
/// Errors: the line etcdctl prints (`client certificate error: ...`,
/// `fetch error: ...`, `could not find: ...`, `parse error: ...`).
pub fn endpoint_memory_bytes(
    endpoint: &str,
    flags: &CheckFlags,
) -> std::result::Result<f64, String> {
    let host = if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    };
    let url = format!("{host}/metrics");
    let mut agent = ureq::AgentBuilder::new().timeout(METRICS_TIMEOUT);
    if host.starts_with("https://") {
        let (Some(cert), Some(key)) = (&flags.tls.cert, &flags.tls.key) else {
            // Go's tls.LoadX509KeyPair("", "").
            return Err("client certificate error: open : no such file or directory".into());
        };
        let settings = net::tls::ClientTlsSettings {
            cert_file: Some(cert.clone()),
            key_file: Some(key.clone()),
            trusted_ca_file: flags.tls.cacert.clone(),
            insecure_skip_verify: flags.insecure_skip_tls_verify,
            // Go's http client verifies against the system's roots without a CA file.
            system_roots: true,
            params: Default::default(),
        };
        let mut config = (*settings
            .build()
            .map_err(|e| format!("client certificate error: {}", e.0))?)
        .clone();
        // HTTP/1.1 here; the gRPC client's config offers h2.
        config.alpn_protocols.clear();
        agent = agent.tls_config(std::sync::Arc::new(config));
    }
    // etcdctl reads the body whatever the status.
    let response = match agent.build().get(&url).call() {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(e) => return Err(format!("fetch error: Get {url:?}: {e}")),
    };
    let mut page = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(response.into_reader(), METRICS_PAGE_BYTES_MAX),
        &mut page,
    )
    .map_err(|e| format!("fetch error: reading {url}: {e}"))?;
    resident_memory_in(&page)
}

/// The memory reading etcdctl accepts (a non-zero value); otherwise prints the reason
/// and `FAIL: Could not read process_resident_memory_bytes <when> the put operations.`
/// and exits with status 1, as etcdctl does.
fn read_memory(endpoint: &str, flags: &CheckFlags, when: &str) -> CtlResult<f64> {
    let bytes = endpoint_memory_bytes(endpoint, flags).unwrap_or_else(|reason| {
        println!("{reason}");
        0.0
    });
    if bytes == 0.0 {
        println!("FAIL: Could not read {RESIDENT_MEMORY_METRIC} {when} the put operations.");
        return Err(CtlError::new(exit::ERROR, String::new()));
    }
    Ok(bytes)
}

/// etcdctl's result line: the memory difference in MiB with 2 decimals.
pub fn memory_line(bytes_before: f64, bytes_after: f64) -> String {
    let mb_used = (bytes_after - bytes_before) / (1024.0 * 1024.0);
    format!("PASS: Approximate system memory used : {mb_used:.2} MB.")
}

/// Runs `check datascale` on the current tokio runtime, printing as etcdctl does.
async fn run(flags: &CheckFlags, load: DatascaleLoad) -> CtlResult {
    let clients = connect_clients(&flags.endpoints, &flags.tls, load.clients).await?;
    let endpoint = flags
        .endpoints
        .first()
        .ok_or_else(|| request_error("no endpoint"))?;
    refuse_used_prefix(&mut clients[0].clone(), &flags.prefix).await?;
    let before = read_memory(endpoint, flags, "before")?;
    println!(
        "Start data scale check for work load [{} key-value pairs, {} bytes per key-value, {} concurrent clients].",
        load.keys, load.kv_bytes, load.clients
    );
    let bar = progress_bar(load.keys);
    let putters = Putters::start(&clients, vec![0; DATASCALE_VALUE_BYTES], Some(bar.clone()));
    for _ in 0..load.keys {
        let mut key = flags.prefix.as_bytes().to_vec();
        key.extend(random_key_body(DATASCALE_KEY_BYTES));
        putters.send(key).await;
    }
    let tally = putters.finish().await?;
    finish_bar(&bar);
    let after = read_memory(endpoint, flags, "after")?;
    let cleanup = (flags.auto_compact, flags.auto_defrag);
    clean_up(
        &clients,
        (&flags.endpoints, &flags.tls),
        &flags.prefix,
        cleanup,
    )
    .await?;
    if !tally.errors.is_empty() {
        println!("FAIL: too many errors");
        for (error, count) in &tally.errors {
            println!("FAIL: ERROR({error}) -> {count}");
        }
        return Err(CtlError::new(exit::ERROR, String::new()));
    }
    println!("{}", memory_line(before, after));
    Ok(())
}

/// `cairnctl check datascale` whole: etcdctl's texts and exit statuses (4 for an unknown
/// load, 3 for a prefix holding keys, 1 with `FAIL: ...` lines on stdout otherwise).
pub fn check_datascale_command(flags: &CheckFlags) -> CtlResult {
    let load =
        DatascaleLoad::named(&flags.load).map_err(|e| CtlError::new(exit::BAD_FEATURE, e))?;
    block_on_tokio(run(flags, load))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_are_etcds() {
        assert_eq!(DatascaleLoad::named("small"), DatascaleLoad::named("s"));
        let xl = DatascaleLoad::named("xLarge").unwrap();
        assert_eq!((xl.keys, xl.kv_bytes, xl.clients), (3_000_000, 1024, 1000));
        assert_eq!(DatascaleLoad::named("m").unwrap().clients, 200);
        assert_eq!(
            DatascaleLoad::named("big").unwrap_err(),
            "unknown load option big"
        );
    }

    #[test]
    fn resident_memory_is_the_first_matching_line() {
        let page = "# HELP process_resident_memory_bytes Resident memory size in bytes.\n\
                    # TYPE process_resident_memory_bytes gauge\n\
                    process_resident_memory_bytes 4.8574464e+07\n\
                    process_resident_memory_bytes 1\n";
        assert_eq!(resident_memory_in(page), Ok(48_574_464.0));
        assert_eq!(
            resident_memory_in("process_virtual_memory_bytes 1\n").unwrap_err(),
            "could not find: process_resident_memory_bytes"
        );
        assert_eq!(
            resident_memory_in("process_resident_memory_bytes x\n").unwrap_err(),
            "parse error: strconv.ParseFloat: parsing \"x\": invalid syntax"
        );
    }

    #[test]
    fn memory_line_is_etcdctls() {
        let mib = 1024.0 * 1024.0;
        assert_eq!(
            memory_line(10.0 * mib, 58.574 * mib),
            "PASS: Approximate system memory used : 48.57 MB."
        );
        assert_eq!(
            memory_line(2.0 * mib, mib),
            "PASS: Approximate system memory used : -1.00 MB."
        );
    }
}
