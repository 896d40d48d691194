//! The member's log on stderr, for an operator to read: colour only on a terminal, Raft's
//! library (openraft) at WARN unless `RUST_LOG` or `--loglevel` names it, and warnings and
//! errors that repeat folded into one line a minute with a count.
//!
//! A member that cannot reach another (it crashed, the network broke) would otherwise write the
//! same five openraft lines at every heartbeat: hundreds a minute that bury everything else.
//! [`RepeatFolder`] decides, line by line, what is written: the first of a kind, then nothing
//! for [`REPEAT_WINDOW`], then the next one with how many were left out. Two lines are of one
//! kind when they differ only in the time stamp and in numbers.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long repeats of a warning or error are left out after it was written.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(60);

/// Kinds remembered at most; past it, kinds not seen within the window are forgotten.
const KINDS_MAX: usize = 4096;

/// Digit runs this long are identifiers (Raft node ids), not counts.
const ID_DIGITS_MIN: usize = 10;

/// Characters of a line (after the time stamp) that make its kind.
const KIND_CHARS_MAX: usize = 200;

/// The filter when neither `RUST_LOG` nor a `--loglevel` naming openraft says otherwise.
pub fn filter_directives(loglevel: &str, rust_log: Option<&str>) -> String {
    if let Some(rust_log) = rust_log.filter(|value| !value.trim().is_empty()) {
        return rust_log.to_string();
    }
    if loglevel.contains("openraft") {
        return loglevel.to_string();
    }
    format!("{loglevel},openraft=warn")
}

/// Installs the subscriber: `directives` as the filter, ANSI colour when stderr is a terminal.
pub fn init(directives: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_new(directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    let writer = FoldingStderr {
        folder: Arc::new(Mutex::new(RepeatFolder::new(REPEAT_WINDOW))),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer)
        .try_init();
}

/// When a kind of line was last written and how many of it were left out since.
#[derive(Debug, Clone, Copy)]
struct Kind {
    written_at: Instant,
    left_out: u64,
}

/// Decides which log lines are written (see the module documentation). `now` is passed in, so
/// the rule is tested without a clock.
#[derive(Debug)]
pub struct RepeatFolder {
    window: Duration,
    kinds: HashMap<String, Kind>,
}

impl RepeatFolder {
    /// A folder that leaves repeats out for `window`.
    pub fn new(window: Duration) -> RepeatFolder {
        RepeatFolder {
            window,
            kinds: HashMap::new(),
        }
    }

    /// The text to write for `line` (one formatted event, ending in a newline) at `now`: the
    /// line itself, the line with a count of the repeats left out before it, or `None`.
    pub fn admit(&mut self, line: &str, now: Instant) -> Option<String> {
        let plain = strip_ansi(line);
        let mut words = plain.split_whitespace();
        let _time = words.next();
        if !matches!(words.next(), Some("WARN" | "ERROR")) {
            return Some(line.to_string());
        }
        let kind = kind_of(&plain);
        if self.kinds.len() >= KINDS_MAX {
            let window = self.window;
            self.kinds
                .retain(|_, seen| now.duration_since(seen.written_at) < window);
            if self.kinds.len() >= KINDS_MAX {
                self.kinds.clear();
            }
        }
        match self.kinds.get_mut(&kind) {
            None => {
                self.kinds.insert(
                    kind,
                    Kind {
                        written_at: now,
                        left_out: 0,
                    },
                );
                Some(line.to_string())
            }
            Some(seen) if now.duration_since(seen.written_at) < self.window => {
                seen.left_out += 1;
                None
            }
            Some(seen) => {
                let left_out = std::mem::take(&mut seen.left_out);
                let since = now.duration_since(seen.written_at).as_secs();
                seen.written_at = now;
                if left_out == 0 {
                    return Some(line.to_string());
                }
                let body = line.trim_end_matches('\n');
                Some(format!("{body} (and {left_out} more like it in the last {since}s)\n"))
            }
        }
    }
}

/// What makes two lines of one kind: the text after the time stamp, with counts, durations and
/// ports replaced. Digits inside a word (a peer id) and runs of ten digits or more (a Raft node
/// id) stay: two dead members are two kinds.
fn kind_of(plain: &str) -> String {
    let after_time = plain.split_once(' ').map(|(_, rest)| rest).unwrap_or(plain);
    let chars: Vec<char> = after_time.chars().take(KIND_CHARS_MAX).collect();
    let mut kind = String::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            kind.push(chars[i]);
            i += 1;
            continue;
        }
        let end = i + chars[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        let in_word = (i > 0 && chars[i - 1].is_ascii_alphabetic())
            || chars
                .get(end)
                .is_some_and(|c| c.is_ascii_alphabetic() && *c != 's' && *c != 'm');
        if in_word || end - i >= ID_DIGITS_MIN {
            kind.extend(&chars[i..end]);
        } else {
            kind.push('#');
        }
        i = end;
    }
    kind
}

/// `text` without ANSI escape sequences (`ESC [ ... letter`).
fn strip_ansi(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            plain.push(c);
            continue;
        }
        for next in chars.by_ref() {
            if next.is_ascii_alphabetic() {
                break;
            }
        }
    }
    plain
}

/// Writes admitted lines to stderr; the fmt layer hands it one whole event per writer.
#[derive(Clone)]
struct FoldingStderr {
    folder: Arc<Mutex<RepeatFolder>>,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for FoldingStderr {
    type Writer = FoldingWriter;

    fn make_writer(&'a self) -> FoldingWriter {
        FoldingWriter {
            folder: self.folder.clone(),
            buffer: Vec::new(),
        }
    }
}

/// One event's bytes, admitted (or not) when the fmt layer is done with them.
struct FoldingWriter {
    folder: Arc<Mutex<RepeatFolder>>,
    buffer: Vec<u8>,
}

impl Write for FoldingWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for FoldingWriter {
    fn drop(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let line = String::from_utf8_lossy(&self.buffer);
        let admitted = self
            .folder
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .admit(&line, Instant::now());
        if let Some(text) = admitted {
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(time: &str, level: &str, message: &str) -> String {
        format!("2026-12-05T12:{time}Z {level} openraft::replication: {message}\n")
    }

    #[test]
    fn a_repeated_warning_is_written_once_a_window_with_a_count() {
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        let mut folder = RepeatFolder::new(Duration::from_secs(60));
        let first = line("00:00.1", " WARN", "heartbeat error: Unreachable node 7 after 499.9ms");
        let again = line("00:00.6", " WARN", "heartbeat error: Unreachable node 7 after 500.1ms");
        let later = line("01:01.0", " WARN", "heartbeat error: Unreachable node 7 after 498.2ms");
        let other = line("00:00.7", "ERROR", "RPCError err=Unreachable node 7");
        let table: [(&str, &String, u64, Option<String>); 6] = [
            ("first of its kind", &first, 0, Some(first.clone())),
            ("same but numbers", &again, 1, None),
            ("another kind", &other, 1, Some(other.clone())),
            ("same again", &again, 30, None),
            (
                "after the window, with the count",
                &later,
                61,
                Some(later.replace('\n', " (and 2 more like it in the last 61s)\n")),
            ),
            ("the count starts over", &again, 62, None),
        ];
        for (what, text, second, expected) in table {
            assert_eq!(folder.admit(text, at(second)), expected, "{what}");
        }
    }

    #[test]
    fn kinds_keep_identifiers_and_drop_counts() {
        let kind = |text: &str| kind_of(&format!("2026-12-05T12:00:00Z {text}"));
        assert_eq!(
            kind("WARN x: to target=13294249191678100760 after 499.99ms, 12 tries"),
            "WARN x: to target=13294249191678100760 after #.#ms, # tries"
        );
        assert_ne!(
            kind("WARN x: cannot connect to 12D3KooWR4z2xGxCn46TfHb"),
            kind("WARN x: cannot connect to 12D3KooWAbA11fSAWV5sr2mR"),
            "two members are two kinds"
        );
        assert_ne!(
            kind("WARN x: target=13294249191678100760"),
            kind("WARN x: target=3362807075761698885"),
            "two Raft node ids are two kinds"
        );
        assert_eq!(kind("WARN x: 127.0.0.1:9396"), "WARN x: #.#.#.#:#");
    }

    #[test]
    fn info_lines_and_colour_codes() {
        let start = Instant::now();
        let mut folder = RepeatFolder::new(Duration::from_secs(60));
        let info = line("00:00.1", " INFO", "this member is now the raft leader (term 2)");
        assert_eq!(folder.admit(&info, start), Some(info.clone()));
        assert_eq!(folder.admit(&info, start), Some(info.clone()), "INFO is never folded");
        let coloured = "\u{1b}[2m2026-12-05T12:00:00Z\u{1b}[0m \u{1b}[33m WARN\u{1b}[0m x: down 1\n";
        assert_eq!(folder.admit(coloured, start), Some(coloured.to_string()));
        let coloured_again = "\u{1b}[2m2026-12-05T12:00:01Z\u{1b}[0m \u{1b}[33m WARN\u{1b}[0m x: down 2\n";
        assert_eq!(
            folder.admit(coloured_again, start),
            None,
            "escapes do not hide the level"
        );
    }

    #[test]
    fn openraft_is_quiet_unless_asked() {
        assert_eq!(filter_directives("info", None), "info,openraft=warn");
        assert_eq!(filter_directives("debug", Some("")), "debug,openraft=warn");
        assert_eq!(filter_directives("info,openraft=info", None), "info,openraft=info");
        assert_eq!(filter_directives("info", Some("openraft=debug")), "openraft=debug");
    }
}
