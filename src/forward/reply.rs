//! Replies of the remote (SPEC 7). [`ReplyParser`] turns bytes into [`RemoteReply`]s without
//! any I/O (and is what the fuzz target drives, through [`parse_replies`]); [`ReplyReader`]
//! feeds it from a socket, every wait with a deadline.
//!
//! Memory stays bounded whatever the remote sends: a line keeps its code and at most
//! [`MAX_REPLY_LINE`] bytes of text, the rest of it is read and dropped; a reply keeps at most
//! [`MAX_REPLY_LINES`] lines, further ones are read (their codes checked) and dropped. SPEC 7:
//! "A reply line that is too long is read for its code and cut, not treated as a failure" —
//! a 2xx to the dot with a 100 kB text is a delivery, and failing it would send the message
//! again (Postfix reads replies the same way).

use super::client::ClientError;
use crate::log;
use crate::sys::{self, Wait};
use std::fmt;
use std::io::{self, Read};
use std::net::TcpStream;
use std::os::unix::io::AsRawFd;
use std::time::{Duration, Instant};

/// Text kept of one reply line. RFC 5321 4.5.3.1.5 allows 512 octets; real servers send
/// longer texts, so eight times that; what is longer is read and dropped.
pub const MAX_REPLY_LINE: usize = 4096;
/// Lines kept of one multi-line reply (EHLO lists a dozen keywords at most); further lines
/// are read and dropped.
pub const MAX_REPLY_LINES: usize = 100;
/// What one read from the socket asks for.
const READ_CHUNK: usize = 8 * 1024;
/// The code, the separator, the text, and room for the CR of the line end.
const LINE_KEPT: usize = 4 + MAX_REPLY_LINE + 1;
/// The longest wait forward asks for: a deadline further away is as good as none, and
/// keeps `Instant` arithmetic in range (`-t 18446744073709551615` must not panic).
pub const MAX_WAIT: Duration = Duration::from_secs(100 * 365 * 86400);

/// A reply of the remote: the code and the text of each line (after the code), made safe
/// for log lines and reports once here (non-printable bytes escaped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteReply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl RemoteReply {
    /// 2xx.
    pub fn is_positive(&self) -> bool {
        self.code / 100 == 2
    }

    /// 5xx.
    pub fn is_permanent(&self) -> bool {
        self.code / 100 == 5
    }
}

impl fmt::Display for RemoteReply {
    /// One line: `550 5.1.1 first line second line`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        for l in self.lines.iter().filter(|l| !l.is_empty()) {
            write!(f, " {l}")?;
        }
        Ok(())
    }
}

/// A reply that cannot be read as one: its meaning is unknown, so the connection is given up
/// and nothing is counted delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyError {
    /// A line that is not a code from 200 to 599 followed by ` `, `-` or the line end
    /// (escaped, cut to [`super::MAX_QUOTED`] bytes).
    Malformed(String),
    /// Lines of one reply with different codes (RFC 5321 4.2.1: every line carries the
    /// same): `550-` then `250 ` is neither a refusal nor an acceptance.
    MixedCodes(u16, u16),
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::Malformed(l) => write!(f, "malformed reply line \"{l}\""),
            ReplyError::MixedCodes(a, b) => {
                write!(f, "reply lines with different codes ({a}, then {b})")
            }
        }
    }
}

/// The reply parser, without I/O: bytes in ([`ReplyParser::feed`]), replies out.
#[derive(Debug, Default)]
pub struct ReplyParser {
    /// The start of the current line: at most [`LINE_KEPT`] bytes.
    line: Vec<u8>,
    /// The code of the reply in progress (after its first line).
    code: Option<u16>,
    /// Its lines so far, at most [`MAX_REPLY_LINES`].
    lines: Vec<String>,
}

impl ReplyParser {
    /// Takes bytes up to the end of one reply. Returns how many bytes were used and, when a
    /// reply ended, the reply; the bytes after it are left for the next call.
    pub fn feed(&mut self, bytes: &[u8]) -> (usize, Option<Result<RemoteReply, ReplyError>>) {
        let mut used = 0;
        while let Some(rest) = bytes.get(used..).filter(|r| !r.is_empty()) {
            let Some(i) = crate::sys::memchr(b'\n', rest) else {
                self.keep(rest);
                return (bytes.len(), None);
            };
            self.keep(&rest[..i]);
            used += i + 1;
            if let Some(reply) = self.end_line() {
                return (used, Some(reply));
            }
        }
        (used, None)
    }

    /// Whether a reply has begun and not ended.
    pub fn in_reply(&self) -> bool {
        !self.line.is_empty() || self.code.is_some()
    }

    /// Keeps what fits of a piece of the current line; the rest is dropped unseen.
    fn keep(&mut self, piece: &[u8]) {
        let room = LINE_KEPT.saturating_sub(self.line.len());
        self.line.extend_from_slice(&piece[..piece.len().min(room)]);
    }

    fn end_line(&mut self) -> Option<Result<RemoteReply, ReplyError>> {
        let mut line = std::mem::take(&mut self.line);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        line.truncate(LINE_KEPT - 1);
        let result = self.add_line(&line);
        line.clear();
        self.line = line; // the allocation serves the next line
        match result {
            Ok(false) => None,
            Ok(true) => {
                let code = self.code.take().unwrap_or_default();
                let lines = std::mem::take(&mut self.lines);
                Some(Ok(RemoteReply { code, lines }))
            }
            Err(e) => {
                self.code = None;
                self.lines.clear();
                Some(Err(e))
            }
        }
    }

    /// One whole line of the reply in progress; true when it was the last.
    fn add_line(&mut self, line: &[u8]) -> Result<bool, ReplyError> {
        let (code, last, text) = parse_line(line)?;
        match self.code {
            Some(first) if first != code => return Err(ReplyError::MixedCodes(first, code)),
            _ => self.code = Some(code),
        }
        if self.lines.len() < MAX_REPLY_LINES {
            self.lines.push(log::escape(text));
        }
        Ok(last)
    }
}

/// Every reply in `bytes`, in order (an incomplete one at the end is left out). For tests and
/// the fuzz target: the parser that forward runs on the socket, on a slice.
pub fn parse_replies(bytes: &[u8]) -> Vec<Result<RemoteReply, ReplyError>> {
    let mut parser = ReplyParser::default();
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (used, reply) = parser.feed(rest);
        rest = &rest[used..];
        out.extend(reply);
    }
    out
}

/// A byte source whose reads can be bounded in time: the socket, the descriptors of a UCSPI
/// client (`-u`, see `client::Channel`), or a slice in tests.
pub trait TimedRead: Read {
    /// The next read waits at most `limit` (never zero).
    fn read_within(&mut self, limit: Duration) -> io::Result<()>;
    /// Whether a read would return at once (bytes, or the end of the stream): how the
    /// client sees a remote speaking out of turn before it writes.
    fn readable_now(&mut self) -> io::Result<bool>;
}

impl TimedRead for TcpStream {
    fn read_within(&mut self, limit: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(limit))
    }

    fn readable_now(&mut self) -> io::Result<bool> {
        sys::wait_fd(self.as_raw_fd(), Wait::Read, Instant::now())
    }
}

impl TimedRead for &[u8] {
    fn read_within(&mut self, _: Duration) -> io::Result<()> {
        Ok(())
    }

    fn readable_now(&mut self) -> io::Result<bool> {
        Ok(!self.is_empty())
    }
}

/// `timeout` from now, in range whatever the timeout (see [`MAX_WAIT`]).
pub fn deadline(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout.min(MAX_WAIT)).unwrap_or(now)
}

/// The bytes read from the remote and not yet parsed (`buf[start..end]`), and the parser.
#[derive(Debug)]
pub struct ReplyReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    parser: ReplyParser,
}

impl Default for ReplyReader {
    fn default() -> ReplyReader {
        ReplyReader {
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            parser: ReplyParser::default(),
        }
    }
}

impl ReplyReader {
    /// One reply, single- or multi-line, within `timeout` for the whole of it.
    pub fn read<S: TimedRead>(
        &mut self,
        src: &mut S,
        timeout: Duration,
        what: &'static str,
    ) -> Result<RemoteReply, ClientError> {
        let deadline = deadline(timeout);
        loop {
            if self.start < self.end {
                let (used, reply) = self.parser.feed(&self.buf[self.start..self.end]);
                self.start += used;
                if let Some(reply) = reply {
                    return reply.map_err(ClientError::Reply);
                }
            } else {
                self.fill(src, deadline, what)?;
            }
        }
    }

    /// Bytes received and not yet read as a reply.
    pub fn unread(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Whether anything was received that no reply read so far took.
    pub fn has_unread(&self) -> bool {
        self.start < self.end || self.parser.in_reply()
    }

    /// One read from `src` into the (empty) buffer, waiting until `deadline` at most.
    pub fn fill<S: TimedRead>(
        &mut self,
        src: &mut S,
        deadline: Instant,
        what: &'static str,
    ) -> Result<(), ClientError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ClientError::Timeout(what));
        }
        src.read_within(left).map_err(ClientError::Io)?;
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
        let free = &mut self.buf[self.end..];
        match src.read(free) {
            Ok(0) if free.is_empty() => Ok(()), // unreachable: filled only when empty
            Ok(0) => Err(ClientError::Closed),
            Ok(n) => {
                self.end += n;
                Ok(())
            }
            Err(e) => match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                    Err(ClientError::Timeout(what))
                }
                io::ErrorKind::Interrupted => Ok(()),
                io::ErrorKind::ConnectionReset => Err(ClientError::Closed),
                _ => Err(ClientError::Io(e)),
            },
        }
    }
}

/// `250-text` -> (250, false, text); `250 text` or `250` -> (250, true, text). Codes from 200
/// to 599 (RFC 5321 4.2: 2yz to 5yz); what a code means is for the caller to judge.
fn parse_line(line: &[u8]) -> Result<(u16, bool, &[u8]), ReplyError> {
    let malformed = || ReplyError::Malformed(super::quote(&log::escape(line)));
    let code = match line.get(..3) {
        Some(&[a @ b'2'..=b'5', b @ b'0'..=b'9', c @ b'0'..=b'9']) => [a, b, c]
            .iter()
            .fold(0u16, |n, d| n * 10 + u16::from(d - b'0')),
        _ => return Err(malformed()),
    };
    match line.get(3) {
        None => Ok((code, true, &b""[..])),
        Some(b' ') => Ok((code, true, &line[4..])),
        Some(b'-') => Ok((code, false, &line[4..])),
        Some(_) => Err(malformed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: u16, lines: &[&str]) -> Result<RemoteReply, ReplyError> {
        Ok(RemoteReply {
            code,
            lines: lines.iter().map(|l| l.to_string()).collect(),
        })
    }

    #[test]
    fn reply_lines_parse() {
        assert_eq!(
            parse_line(b"250-PIPELINING").unwrap(),
            (250, false, &b"PIPELINING"[..])
        );
        assert_eq!(
            parse_line(b"550 5.1.1 no").unwrap(),
            (550, true, &b"5.1.1 no"[..])
        );
        assert_eq!(parse_line(b"250").unwrap(), (250, true, &b""[..]));
        assert_eq!(parse_line(b"334 x").unwrap(), (334, true, &b"x"[..]));
        for bad in [
            &b"25"[..],
            b"250x",
            b"abc ok",
            b"999 no",
            b"199 no",
            b"600 no",
            b"",
        ] {
            assert!(parse_line(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn replies_parse_across_pieces_and_escape() {
        let mut p = ReplyParser::default();
        assert_eq!(p.feed(b"250-a\r\n25"), (9, None));
        assert!(p.in_reply());
        let (used, r) = p.feed(b"0 b\x1b\r\n354 next");
        assert_eq!(used, 6);
        assert_eq!(r, Some(reply(250, &["a", "b\\x1b"])));
        assert!(!p.in_reply());
        assert_eq!(
            parse_replies(b"220 hi\n250 ok\r\n451 4.3.0 later\r\n550 no end"),
            [
                reply(220, &["hi"]),
                reply(250, &["ok"]),
                reply(451, &["4.3.0 later"])
            ]
        );
    }

    #[test]
    fn a_long_line_is_cut_not_refused() {
        let mut bytes = b"250 ".to_vec();
        bytes.extend(std::iter::repeat_n(b'x', 100_000));
        bytes.extend_from_slice(b"\r\n220 next\r\n");
        let got = parse_replies(&bytes);
        assert_eq!(got.len(), 2);
        let first = got[0].as_ref().unwrap();
        assert_eq!(first.code, 250);
        assert_eq!(first.lines, ["x".repeat(MAX_REPLY_LINE)]);
        assert_eq!(got[1], reply(220, &["next"]));
        // Fed in small pieces, the parser holds no more than one cut line.
        let mut p = ReplyParser::default();
        for piece in bytes[..100_004].chunks(7) {
            assert_eq!(p.feed(piece).1, None);
            assert!(p.line.capacity() <= 2 * LINE_KEPT);
        }
    }

    #[test]
    fn lines_beyond_the_cap_are_read_and_dropped() {
        let mut bytes = "250-more\r\n".repeat(10_000).into_bytes();
        bytes.extend_from_slice(b"250 end\r\n");
        let got = parse_replies(&bytes);
        assert_eq!(got.len(), 1);
        let r = got[0].as_ref().unwrap();
        assert_eq!((r.code, r.lines.len()), (250, MAX_REPLY_LINES));
        // The codes of dropped lines still count.
        let mut mixed = "250-more\r\n".repeat(200).into_bytes();
        mixed.extend_from_slice(b"550 no\r\n");
        assert_eq!(
            parse_replies(&mixed),
            [Err(ReplyError::MixedCodes(250, 550))]
        );
    }

    #[test]
    fn mixed_codes_and_garbage_are_errors() {
        assert_eq!(
            parse_replies(b"550-5.7.1 no\r\n250 ok\r\n250 after\r\n"),
            [
                Err(ReplyError::MixedCodes(550, 250)),
                reply(250, &["after"])
            ]
        );
        let long = [&b"x"[..]; 300].concat();
        let Err(ReplyError::Malformed(text)) = &parse_replies(&[&long[..], b"\r\n"].concat())[0]
        else {
            panic!()
        };
        assert_eq!(text, &format!("{}…", "x".repeat(super::super::MAX_QUOTED)));
    }

    #[test]
    fn reader_reads_from_any_source() {
        let mut src: &[u8] = b"220 hi\r\n250-a\r\n250 b\r\n";
        let mut r = ReplyReader::default();
        let t = Duration::from_secs(1);
        assert_eq!(r.read(&mut src, t, "x").unwrap().code, 220);
        assert!(r.has_unread());
        assert_eq!(r.unread(), b"250-a\r\n250 b\r\n");
        assert_eq!(r.read(&mut src, t, "x").unwrap().lines, ["a", "b"]);
        assert!(!r.has_unread());
        assert!(matches!(r.read(&mut src, t, "x"), Err(ClientError::Closed)));
        // A wait of u64::MAX seconds is only a long wait.
        let mut src: &[u8] = b"250 ok\r\n";
        assert!(r.read(&mut src, Duration::from_secs(u64::MAX), "x").is_ok());
    }

    #[test]
    fn reply_renders_on_one_line() {
        let r = RemoteReply {
            code: 550,
            lines: vec!["5.1.1 first".into(), "5.1.1 second".into()],
        };
        assert_eq!(r.to_string(), "550 5.1.1 first 5.1.1 second");
    }
}
