//! Log lines (SPEC 8): one line per event, `PROGRAM[PID]: ...`, on stderr (for multilog) or,
//! when `SYSLOG` names a facility, to syslog. The `syslog` crate is wrapped here and nowhere
//! else. Client bytes are escaped with [`escape`] before they reach a line.

use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

type SyslogLogger = syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>;

enum Sink {
    /// Lines wait in `pending` while a session batches its output (see [`hold`]).
    Stderr {
        pending: Vec<u8>,
        holding: bool,
    },
    Syslog(Box<SyslogLogger>),
}

/// Held stderr lines are written once this many bytes wait, whatever the batch.
const MAX_PENDING: usize = 8 * 1024;

struct Logger {
    /// `PROGRAM[PID]: `, made once: every line starts with it.
    prefix: String,
    sink: Mutex<Sink>,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Sets the program name and the destination. `facility` is a name from
/// [`crate::config::FACILITIES`]; `socket` overrides `/dev/log`. If syslog cannot be
/// reached the lines go to stderr, with one line saying why.
pub fn init(program: &str, facility: Option<&str>, socket: Option<&Path>) {
    let pid = std::process::id();
    let mut note = None;
    let stderr = Sink::Stderr {
        pending: Vec::new(),
        holding: false,
    };
    let sink = match facility {
        None => stderr,
        Some(name) => {
            let formatter = syslog::Formatter3164 {
                facility: facility_of(name),
                hostname: None,
                process: program.to_string(),
                pid,
            };
            let logger = match socket {
                Some(path) => syslog::unix_custom(formatter, path),
                None => syslog::unix(formatter),
            };
            match logger {
                Ok(l) => Sink::Syslog(Box::new(l)),
                Err(e) => {
                    note = Some(format!("syslog unreachable ({e}), logging to stderr"));
                    stderr
                }
            }
        }
    };
    let _ = LOGGER.set(Logger {
        prefix: format!("{program}[{pid}]: "),
        sink: Mutex::new(sink),
    });
    if let Some(n) = note {
        line(&n);
    }
}

fn facility_of(name: &str) -> syslog::Facility {
    use syslog::Facility::*;
    match name {
        "daemon" => LOG_DAEMON,
        "user" => LOG_USER,
        "local0" => LOG_LOCAL0,
        "local1" => LOG_LOCAL1,
        "local2" => LOG_LOCAL2,
        "local3" => LOG_LOCAL3,
        "local4" => LOG_LOCAL4,
        "local5" => LOG_LOCAL5,
        "local6" => LOG_LOCAL6,
        "local7" => LOG_LOCAL7,
        _ => LOG_MAIL,
    }
}

/// Writes one log line. Before [`init`] it goes to stderr as `smtpfront[PID]`.
pub fn line(msg: &str) {
    line_bytes(msg.as_bytes());
}

/// [`line`] for a line built in bytes from text that is already safe (ASCII, client bytes
/// through [`push_quoted`]): the line of every pipelined message is built so, unchecked.
pub fn line_bytes(msg: &[u8]) {
    let Some(logger) = LOGGER.get() else {
        let _ = writeln!(
            std::io::stderr(),
            "smtpfront[{}]: {}",
            std::process::id(),
            String::from_utf8_lossy(msg)
        );
        return;
    };
    let mut sink = logger.sink.lock().unwrap_or_else(|e| e.into_inner());
    match &mut *sink {
        Sink::Stderr { pending, holding } => {
            // Whole lines per write, so that lines of concurrent processes do not interleave.
            pending.extend_from_slice(logger.prefix.as_bytes());
            pending.extend_from_slice(msg);
            pending.push(b'\n');
            if !*holding || pending.len() >= MAX_PENDING {
                write_out(pending);
            }
        }
        Sink::Syslog(l) => {
            let _ = l.info(String::from_utf8_lossy(msg));
        }
    }
}

fn write_out(pending: &mut Vec<u8>) {
    let _ = std::io::stderr().write_all(pending);
    pending.clear();
}

/// While `on`, stderr lines are held and written by [`flush`]: the session driver flushes
/// them with its replies, so a pipelined batch costs one log write, not one per line.
pub fn hold(on: bool) {
    if let Some(logger) = LOGGER.get() {
        let mut sink = logger.sink.lock().unwrap_or_else(|e| e.into_inner());
        if let Sink::Stderr { pending, holding } = &mut *sink {
            *holding = on;
            if !on {
                write_out(pending);
            }
        }
    }
}

/// Writes the held lines.
pub fn flush() {
    if let Some(logger) = LOGGER.get() {
        let mut sink = logger.sink.lock().unwrap_or_else(|e| e.into_inner());
        if let Sink::Stderr { pending, .. } = &mut *sink {
            if !pending.is_empty() {
                write_out(pending);
            }
        }
    }
}

/// SPEC 8: most bytes of client text one log line quotes. A stranger writes into the log;
/// without a cap a 4 KiB line of `\xff` becomes 16 KiB of log (4x amplification).
pub const MAX_QUOTED: usize = 200;

/// Client text as a log line quotes it: escaped, cut at [`MAX_QUOTED`] bytes with `…`.
pub fn quote(bytes: &[u8]) -> String {
    let mut out = Vec::new();
    push_quoted(&mut out, bytes);
    String::from_utf8(out).expect("printable ASCII, escapes and an ellipsis only")
}

/// [`quote`] appended to a line being built in bytes (see [`line_bytes`]): the line written
/// for every pipelined message quotes the sender without a string of its own.
pub fn push_quoted(out: &mut Vec<u8>, bytes: &[u8]) {
    match bytes.get(..MAX_QUOTED) {
        Some(head) if bytes.len() > MAX_QUOTED => {
            escape_into(out, head);
            out.extend_from_slice("…".as_bytes());
        }
        _ => escape_into(out, bytes),
    }
}

/// Client bytes made safe for a log line: printable ASCII stays, the rest becomes `\xNN`.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = Vec::new();
    escape_into(&mut out, bytes);
    String::from_utf8(out).expect("printable ASCII and escapes only")
}

fn escape_into(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let plain = |b: u8| (0x20..0x7f).contains(&b) && b != b'\\';
    // Short text (an address) byte by byte: UTF-8 has runs too short for the blocks below.
    if bytes.len() <= 32 {
        out.reserve(bytes.len() * 4);
        for &b in bytes {
            match plain(b) {
                true => out.push(b),
                false => out.extend_from_slice(&[
                    b'\\',
                    b'x',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 15)],
                ]),
            }
        }
        return;
    }
    // Room for every byte escaped when the first 16 are not all plain (UTF-8 text, say):
    // no reallocation while escaping. Quoted text is cut at MAX_QUOTED bytes before this.
    match plain_prefix(&bytes[..16], plain) == 16 {
        true => out.reserve(bytes.len() + 8),
        false => out.reserve(bytes.len() * 4),
    }
    let mut rest = bytes;
    // Runs of plain bytes are copied whole: two log lines per pipelined message pass here.
    // Bytes to escape come in runs too (UTF-8 text): each is escaped before looking for
    // the next plain run.
    while let Some((&b, after)) = rest.split_first() {
        if plain(b) {
            let run = plain_prefix(rest, plain);
            out.extend_from_slice(&rest[..run]);
            rest = &rest[run..];
        } else {
            out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]);
            rest = after;
        }
    }
}

/// How many bytes at the start of `bytes` are `plain`: 16 at a time, with no early exit
/// inside a block, so that the compiler can test a block in a few vector instructions.
fn plain_prefix(bytes: &[u8], plain: impl Fn(u8) -> bool) -> usize {
    let mut n = 0;
    for block in bytes.chunks_exact(16) {
        if !block.iter().fold(true, |all, &b| all & plain(b)) {
            break;
        }
        n += 16;
    }
    n + bytes[n..]
        .iter()
        .position(|&b| !plain(b))
        .unwrap_or(bytes.len() - n)
}

#[cfg(test)]
mod tests {
    use super::{escape, quote, MAX_QUOTED};

    #[test]
    fn quote_cuts_long_client_text() {
        assert_eq!(quote(b"short\xff"), "short\\xff");
        let at_limit = vec![b'a'; MAX_QUOTED];
        assert_eq!(quote(&at_limit), "a".repeat(MAX_QUOTED));
        let over = vec![0xffu8; 4096];
        assert_eq!(quote(&over), "\\xff".repeat(MAX_QUOTED) + "…");
    }

    #[test]
    fn escape_agrees_with_a_byte_at_a_time_reference() {
        let reference = |bytes: &[u8]| -> String {
            bytes
                .iter()
                .map(|&b| match b {
                    0x20..=0x7e if b != b'\\' => char::from(b).to_string(),
                    _ => format!("\\x{b:02x}"),
                })
                .collect()
        };
        // Special bytes at every position around the 16-byte blocks.
        for len in 0..40 {
            for at in 0..len {
                for special in [0u8, b'\r', b'\\', 0x7f, 0x80, 0xff, b'~', b' '] {
                    let mut bytes: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                    bytes[at] = special;
                    assert_eq!(escape(&bytes), reference(&bytes), "{bytes:?}");
                }
            }
        }
    }

    #[test]
    fn escape_keeps_printable_and_hides_controls() {
        assert_eq!(escape(b"MAIL FROM:<a@b>"), "MAIL FROM:<a@b>");
        assert_eq!(escape(b"a\r\nb\0\\"), "a\\x0d\\x0ab\\x00\\x5c");
    }
}
