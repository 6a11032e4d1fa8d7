//! cairnctl's help and usage errors against Debian's etcdctl 3.4, byte for byte (stdout,
//! stderr, exit status). No server is needed: help and flag errors happen before etcdctl
//! dials.
//!
//! Differences the comparison removes, each for a stated reason:
//! - commands only one of them has (`CAIRNCTL_ONLY`, `ETCDCTL_ONLY`): their lines in the
//!   COMMANDS lists (the root's, their group's) are dropped, and cairnctl-only commands'
//!   help is not compared.
//! - `endpoint --help`: etcdctl's `--cluster` is a persistent flag of `endpoint`, listed in
//!   the group's OPTIONS; cairnctl defines it on each sub-command (whose help lists it
//!   under GLOBAL OPTIONS as etcdctl's does), so the group's own help lacks it.
//!
//! Requires Debian's `etcdctl` 3.4; skipped with a message when it is missing.

use std::path::PathBuf;
use std::process::Command;

/// Flags of one command that only one of them has, as (command, start of the OPTIONS
/// line): dropped from that one's help. The widest flag of each block is in both, so the
/// alignment of the other lines does not change.
const ETCDCTL_ONLY_FLAGS: &[(&str, &str)] = &[
    // etcdctl defrag --data-dir defragments an offline data directory; cairnctl has no
    // offline defrag.
    ("defrag", "      --data-dir="),
    // etcdctl snapshot restore --wal-dir: cairnctl restores no separate WAL directory.
    ("snapshot restore", "      --wal-dir="),
];
/// See [`ETCDCTL_ONLY_FLAGS`].
const CAIRNCTL_ONLY_FLAGS: &[(&str, &str)] = &[
    // check perf --duration-s: cairnctl's shorter runs (etcdctl always runs 60 s).
    ("check perf", "      --duration-s="),
];

/// cairnctl's own commands, with the reason etcdctl has no text for them.
const CAIRNCTL_ONLY: &[(&str, &str)] = &[("check disk", "cairnctl's WAL fdatasync check")];

/// etcdctl's commands cairnctl does not implement.
const ETCDCTL_ONLY: &[&str] = &[
    "completion bash",
    "completion fish",
    "completion powershell",
    "completion zsh",
    "migrate",
];

/// stdout, stderr and exit status.
#[derive(Debug, PartialEq, Eq)]
struct Output {
    stdout: String,
    stderr: String,
    code: Option<i32>,
}

fn run(program: &PathBuf, args: &[&str]) -> Output {
    let mut command = Command::new(program);
    command.args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("ETCDCTL_") {
            command.env_remove(&name);
        }
    }
    let out = command.output().expect("the program runs");
    Output {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code(),
    }
}

/// Lines of the help of `path` that start a flag of `flags`'.
fn is_flag_of(flags: &[(&str, &str)], path: &str, line: &str) -> bool {
    flags.iter().any(|(c, f)| *c == path && line.starts_with(f))
}

/// etcdctl's text (of `path`) without the lines of `ETCDCTL_ONLY` and `ETCDCTL_ONLY_FLAGS`.
fn without_etcdctl_only(path: &str, text: &str) -> String {
    text.split_inclusive('\n')
        .filter(|line| !is_flag_of(ETCDCTL_ONLY_FLAGS, path, line))
        .filter(|line| {
            !ETCDCTL_ONLY
                .iter()
                .any(|c| line.starts_with(&format!("\t{c}\t")))
        })
        .collect()
}

/// cairnctl's text (of `path`) without the COMMANDS lines of `CAIRNCTL_ONLY` and
/// the lines of `CAIRNCTL_ONLY_FLAGS`.
fn without_cairnctl_only(path: &str, text: &str) -> String {
    text.split_inclusive('\n')
        .filter(|line| !is_flag_of(CAIRNCTL_ONLY_FLAGS, path, line))
        .filter(|line| {
            // Listed in the root's COMMANDS by full path, in its group's by the rest.
            !CAIRNCTL_ONLY.iter().any(|(c, _)| {
                let listed = match c.strip_prefix(path).and_then(|r| r.strip_prefix(' ')) {
                    Some(rest) => rest,
                    None => c,
                };
                line.starts_with(&format!("\t{listed}\t"))
            })
        })
        .collect()
}

fn etcdctl() -> Option<PathBuf> {
    let found = Command::new("etcdctl").arg("version").output().ok()?;
    let text = String::from_utf8_lossy(&found.stdout).into_owned();
    text.contains("etcdctl version: 3.4")
        .then(|| PathBuf::from("etcdctl"))
}

fn cairnctl() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cairnctl"))
}

/// Runs `args` with both and returns (etcdctl's, cairnctl's) outputs, filtered as the
/// help of command `path`.
fn both(etcdctl: &PathBuf, path: &str, args: &[&str]) -> (Output, Output) {
    let mut expected = run(etcdctl, args);
    expected.stdout = without_etcdctl_only(path, &expected.stdout);
    let mut actual = run(&cairnctl(), args);
    actual.stdout = without_cairnctl_only(path, &actual.stdout);
    (expected, actual)
}

/// Every command path cairnctl's root help lists (runnable commands, from its clap tree),
/// and the groups above them.
fn cairnctl_commands() -> Vec<String> {
    let root = run(&cairnctl(), &["--help"]);
    let listed = root
        .stdout
        .split("COMMANDS:\n")
        .nth(1)
        .expect("a COMMANDS section")
        .split("\n\n")
        .next()
        .unwrap_or_default()
        .lines()
        .map(|l| {
            l.trim_start_matches('\t')
                .split('\t')
                .next()
                .unwrap()
                .to_string()
        })
        .collect::<Vec<_>>();
    let mut paths = listed.clone();
    for path in &listed {
        if let Some((group, _)) = path.split_once(' ') {
            if !paths.iter().any(|p| p == group) {
                paths.push(group.to_string());
            }
        }
    }
    paths.sort();
    paths
}

#[test]
fn help_of_every_command_matches_etcdctl() {
    let Some(etcdctl) = etcdctl() else {
        eprintln!("skipped: Debian's etcdctl 3.4 is not installed");
        return;
    };
    let commands = cairnctl_commands();
    assert!(
        commands.len() > 40,
        "cairnctl lists its commands: {commands:?}"
    );
    let mut failures = Vec::new();
    let mut compared = 0;
    for path in std::iter::once(String::new()).chain(commands) {
        let skipped = CAIRNCTL_ONLY.iter().any(|(c, _)| *c == path);
        if skipped || path == "help" {
            continue;
        }
        let mut args: Vec<&str> = path.split_whitespace().collect();
        args.push("--help");
        let (expected, actual) = both(&etcdctl, &path, &args);
        let (expected, actual) = if path == "endpoint" {
            // See the module doc: the group's persistent --cluster.
            let strip = |o: Output| Output {
                stdout: o
                    .stdout
                    .split_inclusive('\n')
                    .filter(|l| !l.contains("--cluster["))
                    .collect(),
                ..o
            };
            (strip(expected), strip(actual))
        } else {
            (expected, actual)
        };
        compared += 1;
        if expected != actual {
            failures.push(format!(
                "{args:?}\n--- etcdctl\n{expected:?}\n--- cairnctl\n{actual:?}"
            ));
        }
    }
    assert!(compared > 40);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Usage errors and help requests across commands: cobra's usage on stdout, pflag's error
/// twice on stderr, exit 1; help on stdout, exit 0.
#[test]
fn usage_errors_match_etcdctl() {
    let Some(etcdctl) = etcdctl() else {
        eprintln!("skipped: Debian's etcdctl 3.4 is not installed");
        return;
    };
    let cases: &[&[&str]] = &[
        &["get", "--foo"],
        &["get", "--foo=1", "k"],
        &["put", "--bar", "k", "v"],
        &["member", "list", "--nope"],
        &["lease", "grant", "--x", "10"],
        &["get", "-x"],
        &["get", "-xk"],
        &["frob"],
        &["frob", "x"],
        &["member", "frob"],
        &["member"],
        &["put", "--lease"],
        &["get", "-w"],
        &["--endpoints"],
        &["get", "--limit", "abc", "x"],
        &["get", "--limit=99999999999999999999", "x"],
        &["get", "--rev=1.5", "x"],
        &["compaction", "--physical=x", "1"],
        &["get", "--from-key=false", "--bar"],
        &["lock", "--ttl=x", "l"],
        &["endpoint", "hashkv", "--rev=z"],
        &["get", "--prefix=maybe", "x"],
        &["del", "--prev-kv=yes", "x"],
        &["txn", "-i=nope"],
        &["get", "--dial-timeout=5", "x"],
        &["get", "--command-timeout=3x", "x"],
        &["--hex=2", "get", "x"],
        &["--foo", "get", "x"],
        // cobra's Find: an unknown long flag takes the next word, so "x" is the command.
        &["--foo", "get", "x"],
        &["-x", "get", "k"],
        // Suggestions (Levenshtein <= 2 or prefix), unique prefixes as the command.
        &["e"],
        &["gett"],
        &["ge", "--foo"],
        &["mem", "list", "--x"],
        &["member", "frob"],
        &["help", "member", "frob"],
        &["get", "-w=json", "--bar"],
        &["get", "--consistency"],
        &["txn", "-i", "--x"],
        &["--hex=true", "get", "--bar"],
        &["user", "add", "--interactive=nope", "x"],
        &["lease", "grant", "-h"],
        &["snapshot"],
        // pflag takes the next word as the value, even `--prev-kv`; then --bogus is unknown.
        &["put", "--lease", "--prev-kv", "--bogus"],
        &["get", "--order", "-w", "-x"],
        &["get", "--help"],
        &["get", "-h"],
        &["help", "get"],
        &["help", "member", "add"],
        &["help", "frob"],
        &["member", "add", "--help"],
        &["--help"],
    ];
    let mut failures = Vec::new();
    for args in cases {
        // Filters of a command's own flags do not apply to these commands.
        let (expected, actual) = both(&etcdctl, "", args);
        if expected != actual {
            failures.push(format!(
                "{args:?}\n--- etcdctl\n{expected:?}\n--- cairnctl\n{actual:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
