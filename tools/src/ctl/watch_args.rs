//! `watch`'s argument rules, as etcdctl 3.4 applies them (`watch_command.go`
//! `parseWatchArgs`, `getWatchChan`; `util.go` `argify`): the key, range end and exec
//! command of the command line and of each interactive `watch ...` line, the
//! `ETCDCTL_WATCH_KEY` / `ETCDCTL_WATCH_RANGE_END` variables, and pflag's parsing of an
//! interactive line's flags with pflag's error texts.

use super::go;
use super::kv::prefix_range_end;

/// "bad number of arguments".
pub const BAD_ARGS_NUM: &str = "bad number of arguments";
/// A key both in `ETCDCTL_WATCH_KEY` and on the command line.
pub const BAD_ARGS_CONFLICT_ENV: &str =
    "bad number of arguments (found conflicting environment key)";
/// `--` with nothing after it.
pub const BAD_ARGS_SEPARATOR: &str =
    "bad number of arguments (found separator --, but no commands)";

/// The flags of one watch: etcdctl's `--prefix`, `--rev`, `--prev-kv`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatchFlags {
    /// `--prefix`.
    pub prefix: bool,
    /// `--rev`: the revision to start at, 0 for "after the current one".
    pub rev: i64,
    /// `--prev-kv`.
    pub prev_kv: bool,
}

/// One watch as parsed: the positional arguments left for the key and range end
/// (`getWatchChan`'s input) and the command to run per event (empty: none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedWatch {
    /// `[key] [range_end] ...` (only the first two are used).
    pub watch_args: Vec<String>,
    /// `[exec-command arg1 ...]`.
    pub exec_args: Vec<String>,
    /// The flags (for an interactive line, the line's own; else the command line's).
    pub flags: WatchFlags,
}

/// `parseWatchArgs` for the command line. `os_args`: the process's arguments (the
/// separator `--` is looked for after the first `watch`); `command_args`: the positional
/// arguments clap (cobra) gave, `--` removed. Errors: the `BAD_ARGS_*` texts (exit 128).
pub fn parse_command_line(
    os_args: &[String],
    command_args: &[String],
    flags: WatchFlags,
    env_key: &str,
    env_range: &str,
) -> Result<ParsedWatch, String> {
    let raw = match os_args.iter().position(|a| a == "watch") {
        Some(at) => &os_args[at + 1..],
        None => os_args,
    };
    let separator = raw.iter().position(|a| a == "--");
    if separator.is_some_and(|at| at + 1 == raw.len()) {
        return Err(BAD_ARGS_SEPARATOR.into());
    }
    if separator.is_none() && raw.is_empty() && env_key.is_empty() {
        return Err(BAD_ARGS_NUM.into());
    }
    if let (Some(exec_at), false) = (separator, env_key.is_empty()) {
        // Match the positional arguments against the raw ones from the end: one that
        // stops matching at the separator was given before it, next to the variable.
        let mut raw_at = raw.len() - 1;
        for arg in command_args.iter().rev() {
            if *arg == raw[raw_at] {
                match raw_at.checked_sub(1) {
                    Some(next) => raw_at = next,
                    None => break,
                }
                continue;
            }
            if raw_at == exec_at {
                return Err(BAD_ARGS_CONFLICT_ENV.into());
            }
        }
    }
    if separator.is_none() && !command_args.is_empty() && !env_key.is_empty() {
        return Err(BAD_ARGS_CONFLICT_ENV.into());
    }
    Ok(finish(
        raw,
        command_args.to_vec(),
        flags,
        env_key,
        env_range,
    ))
}

/// `parseWatchArgs` for one interactive line, already split by [`argify`] (its first
/// word is `watch`). Errors: the `BAD_ARGS_*` texts and pflag's (all exit 128).
pub fn parse_interactive(
    line_args: &[String],
    env_key: &str,
    env_range: &str,
) -> Result<ParsedWatch, String> {
    let watch_args = &line_args[1..];
    let separator = watch_args.iter().position(|a| a == "--");
    if separator.is_some_and(|at| at + 1 == watch_args.len()) {
        return Err(BAD_ARGS_SEPARATOR.into());
    }
    let (flags, positional) = parse_flags(watch_args)?;
    if separator.is_none() && env_key.is_empty() && positional.is_empty() {
        return Err(BAD_ARGS_NUM.into());
    }
    if separator.is_none() && !positional.is_empty() && !env_key.is_empty() {
        return Err(BAD_ARGS_CONFLICT_ENV.into());
    }
    Ok(finish(watch_args, positional, flags, env_key, env_range))
}

/// The common tail of `parseWatchArgs`: the exec command after the first `--` of
/// `with_separator`, the variable's key and range end put first, and the positional
/// arguments cut before the last one equal to the command's first word.
fn finish(
    with_separator: &[String],
    mut watch_args: Vec<String>,
    flags: WatchFlags,
    env_key: &str,
    env_range: &str,
) -> ParsedWatch {
    let exec_args = match with_separator.iter().position(|a| a == "--") {
        Some(at) => with_separator[at + 1..].to_vec(),
        None => Vec::new(),
    };
    if !env_key.is_empty() {
        let mut ranges = vec![env_key.to_string()];
        if !env_range.is_empty() {
            ranges.push(env_range.to_string());
        }
        ranges.append(&mut watch_args);
        watch_args = ranges;
    }
    if let Some(first) = exec_args.first() {
        let end = watch_args.iter().rposition(|a| a == first).unwrap_or(0);
        watch_args.truncate(end);
    }
    ParsedWatch {
        watch_args,
        exec_args,
        flags,
    }
}

/// `getWatchChan`'s key and range end: the first argument is the key, a second one the
/// range end (more are ignored, as etcdctl does); `--prefix` makes the range end the
/// prefix's (the empty key: all keys, `\0`..`\0`, as clientv3 `WithPrefix`).
pub fn key_range(args: &[String], flags: WatchFlags) -> Result<(Vec<u8>, Vec<u8>), String> {
    let Some(key) = args.first() else {
        return Err(BAD_ARGS_NUM.into());
    };
    let mut key = key.as_bytes().to_vec();
    let mut range_end = Vec::new();
    if args.len() == 2 {
        if flags.prefix {
            return Err("`range_end` and `--prefix` are mutually exclusive".into());
        }
        range_end = args[1].as_bytes().to_vec();
    }
    if flags.prefix {
        if key.is_empty() {
            key = vec![0];
            range_end = vec![0];
        } else {
            range_end = prefix_range_end(&key);
        }
    }
    Ok((key, range_end))
}

/// Why [`argify`] failed, as etcdctl fails.
#[derive(Debug, PartialEq, Eq)]
pub enum ArgifyError {
    /// A double-quoted word Go's `%q` scan refuses: `Error: invalid syntax`, exit 3.
    Syntax,
    /// etcdctl slices a single-quoted word with the number of words instead of its
    /// length (`args[i][1 : len(args)-1]`); out of bounds, Go panics with this text
    /// (exit 2).
    Panic(String),
}

/// etcdctl's `argify`: the words of an interactive line, as the regular expression
/// `"(?:[^"\\]|\\.)*"|'[^']*'|[^'"\s]\S*[^'"\s]?` finds them (leftmost first), then
/// double-quoted words unquoted as Go literals and single-quoted ones cut as etcdctl
/// does (`[1 : number of words - 1]`, a bug kept for the same output).
pub fn argify(line: &str) -> Result<Vec<String>, ArgifyError> {
    let words = find_words(line);
    let count = words.len();
    let mut args = Vec::with_capacity(count);
    for word in words {
        if word.starts_with('\'') {
            let high = count.wrapping_sub(1);
            if count == 0 || high < 1 || high > word.len() {
                return Err(ArgifyError::Panic(if high > word.len() {
                    format!(
                        "slice bounds out of range [:{high}] with length {}",
                        word.len()
                    )
                } else {
                    format!("slice bounds out of range [1:{high}]")
                }));
            }
            args.push(String::from_utf8_lossy(&word.as_bytes()[1..high]).into_owned());
        } else if word.starts_with('"') {
            let bytes = go::unquote(word).ok_or(ArgifyError::Syntax)?;
            args.push(String::from_utf8_lossy(&bytes).into_owned());
        } else {
            args.push(word.to_string());
        }
    }
    Ok(args)
}

/// RE2's `\s`: `[\t\n\f\r ]`.
fn is_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{c}' | '\r' | ' ')
}

/// The matches of argify's expression, left to right.
fn find_words(line: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let mut at = 0;
    while let Some(c) = line[at..].chars().next() {
        let rest = &line[at..];
        let len = match c {
            '"' => double_quoted_len(rest),
            '\'' => rest[1..].find('\'').map(|end| end + 2),
            c if is_space(c) => None,
            _ => Some(rest.find(is_space).unwrap_or(rest.len())),
        };
        match len {
            Some(len) => {
                words.push(&rest[..len]);
                at += len;
            }
            None => at += c.len_utf8(),
        }
    }
    words
}

/// Length of `"(?:[^"\\]|\\.)*"` at the start of `text` (which starts with `"`).
fn double_quoted_len(text: &str) -> Option<usize> {
    let mut chars = text.char_indices().skip(1);
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Some(at + 1),
            '\\' => match chars.next() {
                Some((_, '\n')) | None => return None,
                Some(_) => {}
            },
            _ => {}
        }
    }
    None
}

/// pflag's parse of `watch`'s flags on an interactive line (interspersed with the
/// positional arguments, which it returns; all after `--` are positional).
fn parse_flags(args: &[String]) -> Result<(WatchFlags, Vec<String>), String> {
    let mut flags = WatchFlags::default();
    let mut positional = Vec::new();
    let mut at = 0;
    while at < args.len() {
        let arg = &args[at];
        at += 1;
        if arg == "--" {
            positional.extend_from_slice(&args[at..]);
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (long, None),
            };
            let bad = |why: String| {
                format!(
                    "invalid argument {} for \"--{name}\" flag: {why}",
                    go::quote(value.unwrap_or_default().as_bytes())
                )
            };
            let boolean = || value.map_or(Ok(true), go::parse_bool).map_err(bad);
            match name {
                "prefix" => flags.prefix = boolean()?,
                "prev-kv" => flags.prev_kv = boolean()?,
                "interactive" => {
                    boolean()?;
                }
                "rev" => {
                    let text = match value {
                        Some(v) => v.to_string(),
                        None if at < args.len() => {
                            at += 1;
                            args[at - 1].clone()
                        }
                        None => return Err("flag needs an argument: --rev".into()),
                    };
                    flags.rev = go::parse_int(&text).map_err(|why| {
                        format!(
                            "invalid argument {} for \"--rev\" flag: {why}",
                            go::quote(text.as_bytes())
                        )
                    })?;
                }
                _ => return Err(format!("unknown flag: --{name}")),
            }
        } else if let Some(short) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            for c in short.chars() {
                if c != 'i' {
                    return Err(format!("unknown shorthand flag: '{c}' in -{short}"));
                }
            }
        } else {
            positional.push(arg.clone());
        }
    }
    Ok((flags, positional))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    fn command_line(line: &str, key: &str, range: &str) -> Result<ParsedWatch, String> {
        let os_args = strings(&line.split(' ').collect::<Vec<_>>());
        // cobra's positional arguments: flags (`--rev N`) out, the first `--` out.
        let mut positional = Vec::new();
        let mut words = os_args[2..].iter();
        let mut after_separator = false;
        while let Some(w) = words.next() {
            if after_separator {
                positional.push(w.clone());
            } else if w == "--" {
                after_separator = true;
            } else if w == "--rev" {
                words.next();
            } else {
                positional.push(w.clone());
            }
        }
        parse_command_line(&os_args, &positional, WatchFlags::default(), key, range)
    }

    #[test]
    fn exec_form_as_etcdctl() {
        let p = command_line("etcdctl watch --rev 1 foo -- echo a b", "", "").unwrap();
        assert_eq!(p.watch_args, strings(&["foo"]));
        assert_eq!(p.exec_args, strings(&["echo", "a", "b"]));
        // The last word equal to the command's first cuts the key arguments (etcdctl).
        let p = command_line("etcdctl watch foo -- echo echo", "", "").unwrap();
        assert_eq!(p.watch_args, strings(&["foo", "echo"]));
        let p = command_line("etcdctl watch --rev 1 -- echo 1", "foo", "").unwrap();
        assert_eq!(p.watch_args, strings(&["foo"]));
        assert_eq!(p.exec_args, strings(&["echo", "1"]));
    }

    #[test]
    fn command_line_errors_as_etcdctl() {
        assert_eq!(
            command_line("etcdctl watch foo --", "", ""),
            Err(BAD_ARGS_SEPARATOR.into())
        );
        assert_eq!(
            command_line("etcdctl watch", "", ""),
            Err(BAD_ARGS_NUM.into())
        );
        assert_eq!(
            command_line("etcdctl watch foo -- echo 1", "foo", ""),
            Err(BAD_ARGS_CONFLICT_ENV.into())
        );
        assert_eq!(
            command_line("etcdctl watch foo", "foo", ""),
            Err(BAD_ARGS_CONFLICT_ENV.into())
        );
    }

    #[test]
    fn interactive_lines_as_etcdctl() {
        let parse = |line: &str| parse_interactive(&argify(line).unwrap(), "", "");
        let p = parse("watch --rev 1 --prefix fo -- sh -c \"echo $K\"").unwrap();
        assert_eq!(p.watch_args, strings(&["fo"]));
        assert_eq!(p.exec_args, strings(&["sh", "-c", "echo $K"]));
        assert_eq!(
            p.flags,
            WatchFlags {
                prefix: true,
                rev: 1,
                prev_kv: false
            }
        );
        assert_eq!(parse("watch --prefix"), Err(BAD_ARGS_NUM.into()));
        assert_eq!(parse("watch foo --"), Err(BAD_ARGS_SEPARATOR.into()));
        assert_eq!(
            parse("watch --bogus foo"),
            Err("unknown flag: --bogus".into())
        );
        assert_eq!(
            parse("watch -x foo"),
            Err("unknown shorthand flag: 'x' in -x".into())
        );
        assert_eq!(
            parse("watch --rev=abc foo"),
            Err("invalid argument \"abc\" for \"--rev\" flag: strconv.ParseInt: parsing \"abc\": invalid syntax".into())
        );
        assert_eq!(
            parse("watch foo --rev"),
            Err("flag needs an argument: --rev".into())
        );
        let p = parse("watch -- echo").unwrap();
        assert!(p.watch_args.is_empty());
        assert_eq!(key_range(&p.watch_args, p.flags), Err(BAD_ARGS_NUM.into()));
    }

    #[test]
    fn argify_as_etcdctl() {
        assert_eq!(
            argify("watch  foo\tbar ").unwrap(),
            strings(&["watch", "foo", "bar"])
        );
        assert_eq!(
            argify("watch \"a b\\x41\" x").unwrap(),
            strings(&["watch", "a bA", "x"])
        );
        // Single quotes are cut at [1 : words - 1]: right for 4 words and 2 letters.
        assert_eq!(
            argify("watch --rev 1 'fo'").unwrap(),
            strings(&["watch", "--rev", "1", "fo"])
        );
        assert_eq!(
            argify("watch --rev 1 'foo'").unwrap(),
            strings(&["watch", "--rev", "1", "fo"])
        );
        assert_eq!(
            argify("watch --rev 1 --prefix 'a'"),
            Err(ArgifyError::Panic(
                "slice bounds out of range [:4] with length 3".into()
            ))
        );
        assert_eq!(argify("watch \"\\q\""), Err(ArgifyError::Syntax));
        // An unterminated quote is skipped; the word after it is found.
        assert_eq!(argify("watch \"fo").unwrap(), strings(&["watch", "fo"]));
        assert!(argify("").unwrap().is_empty());
    }

    #[test]
    fn key_ranges_as_get_watch_chan() {
        let f = WatchFlags::default();
        assert_eq!(
            key_range(&strings(&["a", "b", "c"]), f),
            Ok((b"a".to_vec(), vec![]))
        );
        assert_eq!(
            key_range(&strings(&["a", "b"]), f),
            Ok((b"a".to_vec(), b"b".to_vec()))
        );
        let p = WatchFlags { prefix: true, ..f };
        assert_eq!(
            key_range(&strings(&["a"]), p),
            Ok((b"a".to_vec(), b"b".to_vec()))
        );
        assert!(key_range(&strings(&["a", "b"]), p).is_err());
    }
}
