//! etcdctl 3.4's help and usage errors for cairnctl's clap tree.
//!
//! etcdctl parses with cobra/pflag and prints help through its own template
//! (`etcdctl/ctlv3/help.go`: `usageTemplate`, `etcdFlagUsages`, a `text/tabwriter` with
//! tab padding). This module renders that text for any (sub)command of a [`clap::Command`]
//! — which flags exist, their short names, defaults and which are global come from the
//! clap tree, how etcdctl words a command or flag (cobra `Use`, `Short`, `Long`, the
//! flag's Go type and usage) from `usage_text` — and turns clap's parse errors into
//! cobra's and pflag's texts ([`report`]).

use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, Command};

use super::usage_text::{COMMANDS, GLOBAL_FLAGS};
use super::{go, parse_go_bool};

/// The program name etcdctl's texts use (`etcdctl get ...`, `unknown command "x" for
/// "etcdctl"`): cairnctl prints etcdctl's output byte for byte.
pub const ROOT_NAME: &str = "etcdctl";
/// The release cairnctl reproduces (etcd `version.Version`).
pub const ETCDCTL_VERSION: &str = "3.4.23";
/// Its API version (etcd `version.APIVersion`).
pub const API_VERSION: &str = "3.4";

/// A pflag value's Go type: it decides how `etcdFlagUsages` prints the default and how a
/// bad value is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoType {
    /// `bool`: `--flag[=false]` (pflag's `NoOptDefVal` "true"); `strconv.ParseBool`.
    Bool,
    /// `string`: `--flag="default"` (Go `%q`).
    String,
    /// `int`/`int64`/`uint`: `--flag=0`; `strconv.ParseInt`.
    Int,
    /// `time.Duration`: `--flag=5s`; `time.ParseDuration`.
    Duration,
    /// `[]string`: `--flag=[a,b]`.
    StringSlice,
}

/// How etcdctl words one flag.
#[derive(Clone, Copy, Debug)]
pub struct FlagText {
    /// Long name, without `--`.
    pub name: &'static str,
    /// Go type of its pflag value.
    pub go: GoType,
    /// pflag's usage text.
    pub usage: &'static str,
    /// A persistent flag of the parent command (listed under GLOBAL OPTIONS).
    pub inherited: bool,
}

impl FlagText {
    /// A command's own flag.
    pub const fn new(name: &'static str, go: GoType, usage: &'static str) -> FlagText {
        FlagText {
            name,
            go,
            usage,
            inherited: false,
        }
    }

    /// A persistent flag of the parent command.
    pub const fn inherited(name: &'static str, go: GoType, usage: &'static str) -> FlagText {
        FlagText {
            inherited: true,
            ..FlagText::new(name, go, usage)
        }
    }
}

/// How etcdctl words one command (cobra's fields).
#[derive(Clone, Copy, Debug)]
pub struct CommandText {
    /// Names from the root, space separated (`"member add"`; `""` is the root).
    pub path: &'static str,
    /// cobra `Use` (its first word is the command's name).
    pub use_line: &'static str,
    /// cobra `Short`.
    pub short: &'static str,
    /// cobra `Long` (empty: no DESCRIPTION section).
    pub long: &'static str,
    /// The command's flags (`-h/--help` excepted).
    pub flags: &'static [FlagText],
}

/// etcdctl's text of the command at `path`, if etcdctl has that command.
pub fn command_text(path: &[&str]) -> Option<&'static CommandText> {
    let joined = path.join(" ");
    COMMANDS.iter().find(|c| c.path == joined)
}

/// One line of OPTIONS / GLOBAL OPTIONS.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FlagView {
    short: Option<char>,
    name: String,
    go: GoType,
    default: String,
    usage: String,
}

impl FlagView {
    /// `etcdFlagUsages`' line: `  -s, --name=default\tusage` or `      --name[=false]\tusage`.
    fn line(&self) -> String {
        let head = match self.short {
            Some(c) => format!("  -{c}, --{}", self.name),
            None => format!("      --{}", self.name),
        };
        let value = match self.go {
            GoType::Bool => format!("[={}]", self.default),
            GoType::String => format!("={}", go::quote(self.default.as_bytes())),
            GoType::StringSlice => format!("=[{}]", self.default),
            GoType::Int | GoType::Duration => format!("={}", self.default),
        };
        format!("{head}{value}\t{}\n", self.usage)
    }
}

/// The Go type of a clap argument as its value parser and action say (the fallback for
/// flags etcdctl does not have).
pub fn inferred_go_type(arg: &Arg) -> GoType {
    use std::any::TypeId;
    if matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse) {
        return GoType::Bool;
    }
    if matches!(arg.get_action(), ArgAction::Append) || arg.get_value_delimiter().is_some() {
        return GoType::StringSlice;
    }
    let id = arg.get_value_parser().type_id();
    let ints = [
        TypeId::of::<i64>(),
        TypeId::of::<i32>(),
        TypeId::of::<u64>(),
        TypeId::of::<u32>(),
        TypeId::of::<usize>(),
        TypeId::of::<u16>(),
        TypeId::of::<u8>(),
    ];
    if id == TypeId::of::<bool>() {
        GoType::Bool
    } else if ints.iter().any(|t| id == *t) {
        GoType::Int
    } else if id == TypeId::of::<std::time::Duration>() {
        GoType::Duration
    } else {
        GoType::String
    }
}

/// etcdctl's text of flag `name` of the command at `path`: its own flag, or at the root
/// a global flag.
fn flag_text(path: &[&str], name: &str) -> Option<&'static FlagText> {
    if path.is_empty() {
        return GLOBAL_FLAGS.iter().find(|f| f.name == name);
    }
    command_text(path).and_then(|t| t.flags.iter().find(|f| f.name == name))
}

/// etcdctl's text of flag `name` as the command at `path` sees it: its own or a global.
fn any_flag_text(path: &[&str], name: &str) -> Option<&'static FlagText> {
    flag_text(path, name).or_else(|| flag_text(&[], name))
}

/// Whether clap's argument is a flag cobra would list (not a positional, not clap's own
/// `--help`/`--version`).
fn is_listed_flag(arg: &Arg) -> bool {
    arg.get_long().is_some()
        && !matches!(arg.get_action(), ArgAction::Help | ArgAction::Version)
        && !arg.is_hide_set()
}

fn flag_view(arg: &Arg, text: Option<&FlagText>) -> FlagView {
    let go = text.map_or_else(|| inferred_go_type(arg), |t| t.go);
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    let default = match (go, defaults.is_empty()) {
        (GoType::Bool, true) => "false".to_string(),
        (GoType::Int, true) => "0".to_string(),
        (GoType::Duration, true) => "0s".to_string(),
        (_, _) => defaults.join(","),
    };
    let usage = match text {
        Some(t) => t.usage.to_string(),
        None => arg.get_help().map(|h| h.to_string()).unwrap_or_default(),
    };
    FlagView {
        short: arg.get_short(),
        name: arg.get_long().unwrap_or_default().to_string(),
        go,
        default,
        usage,
    }
}

/// cobra's `-h, --help` flag of the command named `name`.
fn help_flag(name: &str) -> FlagView {
    FlagView {
        short: Some('h'),
        name: "help".into(),
        go: GoType::Bool,
        default: "false".into(),
        usage: format!("help for {name}"),
    }
}

/// The command at `path` under `root` (clap names).
pub fn find<'a>(root: &'a Command, path: &[&str]) -> Option<&'a Command> {
    path.iter()
        .try_fold(root, |cmd, name| cmd.find_subcommand(name))
}

/// The (local, inherited) flags etcdctl lists for the command at `path`, sorted by name
/// as pflag's `VisitAll`.
fn flags_of(root: &Command, path: &[&str]) -> (Vec<FlagView>, Vec<FlagView>) {
    let Some(cmd) = find(root, path) else {
        return (Vec::new(), Vec::new());
    };
    let global = |name: &str| GLOBAL_FLAGS.iter().find(|f| f.name == name);
    let name = if path.is_empty() {
        ROOT_NAME
    } else {
        cmd.get_name()
    };
    let mut local = vec![help_flag(name)];
    let mut inherited = Vec::new();
    for arg in root
        .get_arguments()
        .filter(|a| a.is_global_set() && is_listed_flag(a))
    {
        let view = flag_view(arg, global(arg.get_long().unwrap_or_default()));
        if path.is_empty() {
            local.push(view);
        } else {
            inherited.push(view);
        }
    }
    if !path.is_empty() {
        for arg in cmd
            .get_arguments()
            .filter(|a| !a.is_global_set() && is_listed_flag(a))
        {
            let t = flag_text(path, arg.get_long().unwrap_or_default());
            let view = flag_view(arg, t);
            if t.is_some_and(|t| t.inherited) {
                inherited.push(view);
            } else {
                local.push(view);
            }
        }
    }
    local.sort_by(|a, b| a.name.cmp(&b.name));
    inherited.sort_by(|a, b| a.name.cmp(&b.name));
    (local, inherited)
}

/// (use line without the parent's path, short, long) of the command at `path`.
fn words(cmd: &Command, path: &[&str]) -> (String, String, String) {
    if let Some(t) = command_text(path) {
        let use_line = if path.is_empty() {
            ROOT_NAME.to_string()
        } else {
            t.use_line.to_string()
        };
        return (use_line, t.short.into(), t.long.into());
    }
    // A cairnctl-only command: its name and positionals, clap's about.
    let mut use_line = cmd.get_name().to_string();
    if cmd.has_subcommands() {
        use_line.push_str(" <subcommand>");
    }
    for arg in cmd.get_positionals() {
        use_line.push_str(&format!(" <{}>", arg.get_id()));
    }
    let short = cmd.get_about().map(|s| s.to_string()).unwrap_or_default();
    let long = cmd
        .get_long_about()
        .map(|s| s.to_string())
        .unwrap_or_default();
    (use_line, short, long)
}

/// cobra's runnable sub-commands below the command at `path` in `getSubCommands`' order
/// (depth first, each level sorted by name; groups are not runnable), as (name relative
/// to `path`, short). The root also has cobra's `help` command.
fn runnable_below(cmd: &Command, path: &[&str]) -> Vec<(String, String)> {
    let mut subs: Vec<&str> = cmd.get_subcommands().map(|c| c.get_name()).collect();
    if path.is_empty() && !subs.contains(&"help") {
        subs.push("help");
    }
    subs.sort_unstable();
    let mut out = Vec::new();
    for name in subs {
        let mut full = path.to_vec();
        full.push(name);
        match cmd.find_subcommand(name) {
            // clap's own help sub-command (once built) stands for cobra's.
            _ if name == "help" && path.is_empty() => {
                out.push(("help".to_string(), "Help about any command".to_string()));
            }
            _ if name == "help" => {}
            Some(sub) if sub.has_subcommands() => {
                let below = runnable_below(sub, &full);
                out.extend(below.into_iter().map(|(n, s)| (format!("{name} {n}"), s)));
            }
            Some(sub) => out.push((name.to_string(), words(sub, &full).1)),
            None => {}
        }
    }
    out
}

/// etcdctl's help of the command at `path` (`usageFunc`): NAME, USAGE, VERSION (root),
/// API VERSION and COMMANDS (groups), DESCRIPTION, OPTIONS, GLOBAL OPTIONS, aligned by
/// Go's tabwriter. `path` must name a command of `root`.
pub fn usage(root: &Command, path: &[&str]) -> String {
    render(root, path, true)
}

/// [`usage`], with or without cobra's `-h/--help` (cobra adds it to the command it runs
/// only: `help frob` prints the root's usage without it).
fn render(root: &Command, path: &[&str], help_flag: bool) -> String {
    let cmd = find(root, path).expect("usage of a command of the tree");
    let (use_line, short, long) = words(cmd, path);
    let mut out = String::from("NAME:\n");
    let name = if path.is_empty() {
        ROOT_NAME.to_string()
    } else {
        path.join(" ")
    };
    out.push_str(&format!("\t{name} - {short}\n\nUSAGE:\n"));
    let parent = std::iter::once(ROOT_NAME)
        .chain(path[..path.len().saturating_sub(1)].iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let use_full = if path.is_empty() {
        use_line
    } else {
        format!("{parent} {use_line}")
    };
    let use_full = if use_full.contains("[flags]") {
        use_full
    } else {
        format!("{use_full} [flags]")
    };
    out.push_str(&format!("\t{use_full}\n"));
    if path.is_empty() {
        out.push_str(&format!("\nVERSION:\n\t{ETCDCTL_VERSION}\n"));
    }
    if cmd.has_subcommands() {
        out.push_str(&format!("\nAPI VERSION:\n\t{API_VERSION}\n\n\nCOMMANDS:\n"));
        for (sub, short) in runnable_below(cmd, path) {
            out.push_str(&format!("\t{sub}\t{short}\n"));
        }
    }
    let long = long.trim_matches(['\n', '\t', ' ']);
    if !long.is_empty() {
        out.push_str("\nDESCRIPTION:\n");
        for line in long.split('\n') {
            out.push_str(&format!("\t{line}\n"));
        }
    }
    let (mut local, inherited) = flags_of(root, path);
    if !help_flag {
        local.retain(|f| f.name != "help");
    }
    out.push_str("\nOPTIONS:\n");
    local.iter().for_each(|f| out.push_str(&f.line()));
    if !inherited.is_empty() {
        out.push_str("\nGLOBAL OPTIONS:\n");
        inherited.iter().for_each(|f| out.push_str(&f.line()));
    }
    out.push('\n');
    tabwriter(&out)
}

/// Go's `text/tabwriter` as etcdctl sets it up (`minwidth` 0, `tabwidth` 8, `padding` 1,
/// `padchar` '\t', no flags): tab-terminated cells of consecutive lines form columns,
/// each as wide as its widest cell plus one, rounded up to a tab stop and filled with
/// tabs; a line's last cell is not part of a column.
pub fn tabwriter(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut out = Vec::with_capacity(lines.len());
    format_block(&lines, &mut Vec::new(), 0, lines.len(), &mut out);
    out.join("\n")
}

/// tabwriter's `format`: the columns from `widths.len()` on of lines `line0..line1`.
fn format_block(
    lines: &[Vec<&str>],
    widths: &mut Vec<usize>,
    mut line0: usize,
    line1: usize,
    out: &mut Vec<String>,
) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        write_lines(lines, widths, line0, this, out);
        line0 = this;
        let mut width = 0;
        while this < line1 && column + 1 < lines[this].len() {
            width = width.max(lines[this][column].chars().count() + 1);
            this += 1;
        }
        widths.push(width);
        format_block(lines, widths, line0, this, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, widths, line0, line1, out);
}

fn write_lines(
    lines: &[Vec<&str>],
    widths: &[usize],
    line0: usize,
    line1: usize,
    out: &mut Vec<String>,
) {
    const TAB_WIDTH: usize = 8;
    for line in &lines[line0..line1] {
        let mut text = String::new();
        for (j, cell) in line.iter().enumerate() {
            text.push_str(cell);
            if let Some(width) = widths.get(j).filter(|_| j + 1 < line.len()) {
                let cell_width = width.div_ceil(TAB_WIDTH) * TAB_WIDTH;
                let pad = cell_width - cell.chars().count();
                text.push_str(&"\t".repeat(pad.div_ceil(TAB_WIDTH)));
            }
        }
        out.push(text);
    }
}

/// The root's sub-commands in the order etcdctl adds them (`ctl.go`), which is the order
/// of cobra's suggestions.
const ROOT_ORDER: &[&str] = &[
    "get",
    "put",
    "del",
    "txn",
    "compaction",
    "alarm",
    "defrag",
    "endpoint",
    "move-leader",
    "watch",
    "version",
    "lease",
    "member",
    "snapshot",
    "make-mirror",
    "migrate",
    "lock",
    "elect",
    "auth",
    "user",
    "role",
    "check",
];

/// What cobra's `Find` makes of argv.
struct Found<'a> {
    /// clap names from the root.
    path: Vec<&'a str>,
    /// `help <topic>`: `path` is the topic's.
    help: bool,
    /// The topic's words (after `help`).
    topic: Vec<&'a str>,
    /// A word the root has no command for (cobra's `legacyArgs` error).
    unknown: Option<&'a str>,
}

/// cobra's `Find`: at each level the first word that is not a flag (`stripFlags`: a
/// long flag without `=` that is not a bool takes the next word, as does `-x`) names a
/// sub-command, exactly or by a unique prefix.
fn cobra_find<'a>(root: &'a Command, args: &'a [String]) -> Found<'a> {
    let mut rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    let mut found = Found {
        path: Vec::new(),
        help: false,
        topic: Vec::new(),
        unknown: None,
    };
    if strip_flags(root, root, &rest).first() == Some(&"help") {
        found.help = true;
        rest = minus_first(rest, "help");
        found.topic = strip_flags(root, root, &rest);
    }
    let mut cmd = root;
    while let Some(next) = strip_flags(root, cmd, &rest).first().copied() {
        match find_next(cmd, next) {
            Some(sub) => {
                found.path.push(sub.get_name());
                rest = minus_first(rest, next);
                cmd = sub;
            }
            None => {
                if found.path.is_empty() {
                    found.unknown = Some(next);
                }
                break;
            }
        }
    }
    found
}

/// cobra's `findNext`: the sub-command named `word`, or the only one it is a prefix of.
fn find_next<'a>(cmd: &'a Command, word: &str) -> Option<&'a Command> {
    let subs = || cmd.get_subcommands().filter(|c| c.get_name() != "help");
    if let Some(exact) = subs().find(|c| c.get_name() == word) {
        return Some(exact);
    }
    let mut prefixed = subs().filter(|c| c.get_name().starts_with(word));
    match (prefixed.next(), prefixed.next()) {
        (Some(only), None) if !word.is_empty() => Some(only),
        _ => None,
    }
}

/// cobra's `argsMinusFirstX`.
fn minus_first<'a>(mut args: Vec<&'a str>, word: &str) -> Vec<&'a str> {
    if let Some(i) = args.iter().position(|a| *a == word) {
        args.remove(i);
    }
    args
}

/// cobra's `stripFlags`: the words of `args` that are not flags or their values.
fn strip_flags<'a>(root: &Command, cmd: &Command, args: &[&'a str]) -> Vec<&'a str> {
    let mut words = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let s = args[i];
        i += 1;
        if s == "--" {
            break;
        }
        let takes_next = if let Some(long) = s.strip_prefix("--") {
            !long.contains('=') && !is_bool_flag(root, cmd, |a| a.get_long() == Some(long))
        } else {
            let short = s.strip_prefix('-').filter(|f| f.chars().count() == 1);
            short.is_some_and(|f| {
                let c = f.chars().next();
                !is_bool_flag(root, cmd, |a| a.get_short() == c)
            })
        };
        if takes_next {
            if args.len() - i <= 1 {
                break;
            }
            i += 1;
        } else if !s.is_empty() && !s.starts_with('-') {
            words.push(s);
        }
    }
    words
}

/// Whether a flag of `cmd` (or a global one) is a bool (pflag's `NoOptDefVal`), `-h`
/// and `--help` included.
fn is_bool_flag(root: &Command, cmd: &Command, pred: impl Fn(&Arg) -> bool) -> bool {
    find_arg(root, cmd, pred).is_some_and(|a| {
        matches!(a.get_action(), ArgAction::Help) || inferred_go_type(a) == GoType::Bool
    })
}

/// A flag of `cmd` or a global flag of `root`.
fn find_arg<'a>(
    root: &'a Command,
    cmd: &'a Command,
    pred: impl Fn(&Arg) -> bool,
) -> Option<&'a Arg> {
    cmd.get_arguments()
        .chain(root.get_arguments().filter(|a| a.is_global_set()))
        .find(|a| pred(a))
}

/// cobra's `SuggestionsFor` at the root: commands within Levenshtein distance 2 of `word`
/// (case-insensitive) or starting with it, in etcdctl's order.
fn suggestions(root: &Command, word: &str) -> Vec<String> {
    let mut names: Vec<&str> = ROOT_ORDER
        .iter()
        .copied()
        .filter(|n| root.find_subcommand(n).is_some())
        .collect();
    let mut own: Vec<&str> = root
        .get_subcommands()
        .map(|c| c.get_name())
        .filter(|n| *n != "help" && !ROOT_ORDER.contains(n))
        .collect();
    own.sort_unstable();
    names.extend(own);
    let lower = word.to_lowercase();
    names
        .into_iter()
        .filter(|n| {
            levenshtein(&lower, &n.to_lowercase()) <= 2 || n.to_lowercase().starts_with(&lower)
        })
        .map(str::to_string)
        .collect()
}

/// cobra's `ld` on bytes.
fn levenshtein(s: &str, t: &str) -> usize {
    let (s, t) = (s.as_bytes(), t.as_bytes());
    let mut prev: Vec<usize> = (0..=t.len()).collect();
    for i in 1..=s.len() {
        let mut row = vec![i; t.len() + 1];
        for j in 1..=t.len() {
            row[j] = if s[i - 1] == t[j - 1] {
                prev[j - 1]
            } else {
                1 + prev[j].min(row[j - 1]).min(prev[j - 1])
            };
        }
        prev = row;
    }
    prev[t.len()]
}

fn context_text(err: &clap::Error, kind: ContextKind) -> Option<String> {
    match err.get(kind)? {
        ContextValue::String(s) => Some(s.clone()),
        ContextValue::Strings(v) => v.first().cloned(),
        _ => None,
    }
}

/// Prints `err` as etcdctl does and returns its exit status: help (`-h`, `help <cmd>`, a
/// group without sub-command) on stdout with status 0; a flag error as cobra's usage on
/// stdout, then `Error: <pflag text>` twice on stderr (cobra, then etcdctl's
/// `ExitWithError`) with an empty line between, status 1; an unknown command as cobra's
/// `Error: unknown command "x" for "etcdctl"` / `Run 'etcdctl --help' for usage.`.
/// Errors cobra would not raise (clap's positional checks) keep clap's text, status 1.
pub fn report(root: &Command, err: &clap::Error, args: &[String]) -> ExitCode {
    let found = cobra_find(root, args);
    if found.help {
        if found.unknown.is_some() {
            let quoted: Vec<String> = found.topic.iter().map(|t| format!("`{t}`")).collect();
            eprintln!("Unknown help topic [{}]", quoted.join(" "));
            print!("{}", render(root, &[], false));
        } else {
            print!("{}", usage(root, &found.path));
        }
        return ExitCode::SUCCESS;
    }
    if let Some(word) = found.unknown {
        let mut message = format!(
            "unknown command {} for \"{ROOT_NAME}\"",
            go::quote(word.as_bytes())
        );
        let suggested = suggestions(root, word);
        if !suggested.is_empty() {
            message.push_str("\n\nDid you mean this?\n");
            suggested
                .iter()
                .for_each(|s| message.push_str(&format!("\t{s}\n")));
        }
        eprintln!("Error: {message}\nRun '{ROOT_NAME} --help' for usage.\nError: {message}");
        return ExitCode::FAILURE;
    }
    let path = found.path;
    match err.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        | ErrorKind::MissingSubcommand
        // cobra runs a group given an unknown word as the group: its help.
        | ErrorKind::InvalidSubcommand => {
            print!("{}", usage(root, &path));
            ExitCode::SUCCESS
        }
        _ => match flag_error(root, &path, err, args) {
            Some(message) => {
                print!("{}", usage(root, &path));
                eprintln!("Error: {message}\n\nError: {message}");
                ExitCode::FAILURE
            }
            None => {
                let _ = err.print();
                ExitCode::FAILURE
            }
        },
    }
}

/// pflag's text for a flag error, or `None` when cobra would not fail on it.
fn flag_error(root: &Command, path: &[&str], err: &clap::Error, args: &[String]) -> Option<String> {
    let cmd = find(root, path).unwrap_or(root);
    let given = context_text(err, ContextKind::InvalidArg)?;
    let flag = given
        .split([' ', '=', '['])
        .next()
        .unwrap_or_default()
        .to_string();
    // The word of argv that holds the flag (`-xk` for clap's `-x`).
    let word = args
        .iter()
        .skip(1)
        .find(|w| w.starts_with(&flag) && w.starts_with('-'))
        .cloned()
        .unwrap_or_else(|| flag.clone());
    let short = flag.strip_prefix('-').filter(|f| !f.starts_with('-'));
    match err.kind() {
        ErrorKind::UnknownArgument => match short {
            _ if !flag.starts_with('-') => None,
            Some(c) => Some(format!("unknown shorthand flag: '{c}' in {word}")),
            None => Some(format!("unknown flag: {flag}")),
        },
        ErrorKind::InvalidValue | ErrorKind::ValueValidation | ErrorKind::NoEquals => {
            let value = context_text(err, ContextKind::InvalidValue).unwrap_or_default();
            let arg = match short {
                Some(c) => find_arg(root, cmd, |a| a.get_short() == c.chars().next()),
                None => find_arg(root, cmd, |a| a.get_long() == flag.strip_prefix("--")),
            }?;
            // A value-taking flag as argv's last word (pflag takes any next word).
            let last = args.last().map(String::as_str).unwrap_or_default();
            if value.is_empty() && args.len() > 1 && last.starts_with('-') && !last.contains('=') {
                return Some(match last.strip_prefix("--") {
                    Some(_) => format!("flag needs an argument: {last}"),
                    None => {
                        let c = last.chars().last().unwrap_or('-');
                        format!("flag needs an argument: '{c}' in {last}")
                    }
                });
            }
            let long = arg.get_long().unwrap_or_default();
            let go = any_flag_text(path, long).map_or_else(|| inferred_go_type(arg), |t| t.go);
            let why = go_parse_error(go, &value)?;
            let name = match arg.get_short() {
                Some(c) => format!("-{c}, --{}", arg.get_long().unwrap_or_default()),
                None => format!("--{}", arg.get_long().unwrap_or_default()),
            };
            Some(format!(
                "invalid argument {} for {} flag: {why}",
                go::quote(value.as_bytes()),
                go::quote(name.as_bytes())
            ))
        }
        _ => None,
    }
}

/// Why Go's parser refuses `value` for a flag of type `go` (`strconv`, `time`), `None`
/// when Go accepts it.
pub fn go_parse_error(go: GoType, value: &str) -> Option<String> {
    let quoted = go::quote(value.as_bytes());
    match go {
        GoType::Int => {
            let digits = value.strip_prefix(['+', '-']).unwrap_or(value);
            if value.parse::<i64>().is_ok() {
                None
            } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                Some(format!(
                    "strconv.ParseInt: parsing {quoted}: value out of range"
                ))
            } else {
                Some(format!(
                    "strconv.ParseInt: parsing {quoted}: invalid syntax"
                ))
            }
        }
        GoType::Bool => parse_go_bool(value)
            .is_err()
            .then(|| format!("strconv.ParseBool: parsing {quoted}: invalid syntax")),
        GoType::Duration => super::parse_go_duration(value).err(),
        GoType::String | GoType::StringSlice => None,
    }
}

/// `cmd` parsing as etcdctl's cobra/pflag does, recursively: a unique prefix names a
/// sub-command (`cobra.EnablePrefixMatching`, set in etcdctl's `ctl.go`), every bool
/// flag also takes `--flag=<Go bool>` (`--prefix=false`), as pflag's `NoOptDefVal` "true",
/// and a value-taking flag takes the next word even when it starts with `-`.
pub fn cobra_parsing(cmd: Command) -> Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    let cmd = cmd.mut_args(|arg| {
        let is_flag = arg.get_long().is_some() || arg.get_short().is_some();
        if !is_flag || matches!(arg.get_action(), ArgAction::Help | ArgAction::Version) {
            return arg;
        }
        if inferred_go_type(&arg) != GoType::Bool {
            // pflag takes the next word as the value, whatever it starts with.
            return arg.allow_hyphen_values(true);
        }
        let has_default =
            !arg.get_default_values().is_empty() && !matches!(arg.get_action(), ArgAction::SetTrue);
        let arg = arg
            .action(ArgAction::Set)
            .num_args(0..=1)
            .require_equals(true)
            .default_missing_value("true")
            .value_parser(parse_go_bool);
        if has_default {
            arg
        } else {
            arg.default_value("false")
        }
    });
    names.iter().fold(cmd.infer_subcommands(true), |cmd, name| {
        cmd.mut_subcommand(name, cobra_parsing)
    })
}

/// What keeps `root`'s help from being etcdctl's: commands without etcdctl's text (other
/// than those in `own`, cairnctl's own commands `"check disk"` and flags
/// `"check perf --duration-s"`) and flags whose clap definition parses
/// a different Go type than etcdctl's flag (e.g. an `i64` where etcdctl has a string).
pub fn tree_problems(root: &Command, own: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    walk(root, &mut Vec::new(), &mut |path, cmd| {
        let joined = path.join(" ");
        if own
            .iter()
            .any(|o| joined == *o || joined.starts_with(&format!("{o} ")))
        {
            return;
        }
        if command_text(path).is_none() {
            problems.push(format!("`{joined}` has no etcdctl text"));
        }
        for arg in cmd.get_arguments().filter(|a| is_listed_flag(a)) {
            let name = arg.get_long().unwrap_or_default();
            let flag = format!("{joined} --{name}");
            if (arg.is_global_set() && !path.is_empty()) || own.contains(&flag.as_str()) {
                continue;
            }
            match flag_text(path, name) {
                Some(t) if t.go != inferred_go_type(arg) => problems.push(format!(
                    "`{joined} --{name}` parses {:?}, etcdctl's flag is {:?}",
                    inferred_go_type(arg),
                    t.go
                )),
                Some(_) => {}
                None => problems.push(format!("`{joined} --{name}` has no etcdctl text")),
            }
        }
    });
    problems
}

fn walk<'a>(cmd: &'a Command, path: &mut Vec<&'a str>, f: &mut impl FnMut(&[&str], &Command)) {
    f(path, cmd);
    for sub in cmd.get_subcommands().filter(|c| c.get_name() != "help") {
        path.push(sub.get_name());
        walk(sub, path, f);
        path.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabwriter_aligns_as_go() {
        // etcdctl member --help's COMMANDS and OPTIONS blocks.
        let text = "COMMANDS:\n\tadd\tAdds a member\n\tpromote\tPromotes\n\nOPTIONS:\n  -h, --help[=false]\thelp for member\n";
        assert_eq!(
            tabwriter(text),
            "COMMANDS:\n\tadd\tAdds a member\n\tpromote\tPromotes\n\nOPTIONS:\n  -h, --help[=false]\thelp for member\n"
        );
        // A 20-wide cell among a 30-wide column: 31 → 32, so 12 columns → 2 tabs.
        let rows = format!("{}\tx\n{}\ty\n", "a".repeat(20), "b".repeat(30));
        assert_eq!(
            tabwriter(&rows),
            format!("{}\t\tx\n{}\ty\n", "a".repeat(20), "b".repeat(30))
        );
        // An empty line ends a column block.
        assert_eq!(
            tabwriter("ab\tx\n\nabcdefghij\ty\n"),
            "ab\tx\n\nabcdefghij\ty\n"
        );
    }

    #[test]
    fn flag_lines_as_etcd_flag_usages() {
        let view = |short, go, default: &str| FlagView {
            short,
            name: "f".into(),
            go,
            default: default.into(),
            usage: "u".into(),
        };
        assert_eq!(
            view(None, GoType::String, "0").line(),
            "      --f=\"0\"\tu\n"
        );
        assert_eq!(view(None, GoType::Int, "0").line(), "      --f=0\tu\n");
        assert_eq!(
            view(Some('w'), GoType::Bool, "false").line(),
            "  -w, --f[=false]\tu\n"
        );
        assert_eq!(
            view(None, GoType::Duration, "5s").line(),
            "      --f=5s\tu\n"
        );
        assert_eq!(
            view(None, GoType::StringSlice, "a,b").line(),
            "      --f=[a,b]\tu\n"
        );
    }

    #[test]
    fn go_parse_errors() {
        assert_eq!(
            go_parse_error(GoType::Int, "abc").unwrap(),
            "strconv.ParseInt: parsing \"abc\": invalid syntax"
        );
        assert_eq!(
            go_parse_error(GoType::Int, "99999999999999999999").unwrap(),
            "strconv.ParseInt: parsing \"99999999999999999999\": value out of range"
        );
        assert_eq!(go_parse_error(GoType::Int, "-12"), None);
        assert_eq!(
            go_parse_error(GoType::Bool, "maybe").unwrap(),
            "strconv.ParseBool: parsing \"maybe\": invalid syntax"
        );
        assert_eq!(go_parse_error(GoType::Bool, "F"), None);
        assert_eq!(
            go_parse_error(GoType::Duration, "5").unwrap(),
            "time: missing unit in duration \"5\""
        );
        assert_eq!(go_parse_error(GoType::String, "x"), None);
    }

    #[test]
    fn tree_problems_name_missing_texts_and_wrong_types() {
        let root = Command::new("cairnctl")
            .subcommand(
                Command::new("get")
                    .arg(Arg::new("limit").long("limit"))
                    .arg(
                        Arg::new("rev")
                            .long("rev")
                            .value_parser(clap::value_parser!(i64)),
                    ),
            )
            .subcommand(Command::new("frob"));
        let problems = tree_problems(&root, &[]);
        assert_eq!(
            problems,
            [
                "`get --limit` parses String, etcdctl's flag is Int",
                "`frob` has no etcdctl text",
            ]
        );
        assert!(tree_problems(&root, &["frob", "get --limit"]).is_empty());
    }
}
