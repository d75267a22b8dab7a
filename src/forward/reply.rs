//! Replies of the remote (SPEC 7): read with a bounded line reader, every wait with a
//! deadline, multi-line replies gathered into one [`RemoteReply`].

use super::client::ClientError;
use crate::log;
use std::fmt;
use std::io::{self, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Longest reply line accepted. RFC 5321 4.5.3.1.5 allows 512 octets; real servers send
/// longer texts, so eight times that, and no more: the remote must not fill our memory.
pub const MAX_REPLY_LINE: usize = 4096;
/// Most lines in one multi-line reply (EHLO lists a dozen keywords at most).
pub const MAX_REPLY_LINES: usize = 100;
/// What one read from the socket asks for.
const READ_CHUNK: usize = 8 * 1024;

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

/// The bytes read from the remote and not yet consumed: `buf[pos..]`.
#[derive(Debug, Default)]
pub struct ReplyReader {
    buf: Vec<u8>,
    pos: usize,
}

impl ReplyReader {
    /// One reply, single- or multi-line, within `timeout` for the whole of it.
    pub fn read(
        &mut self,
        stream: &mut TcpStream,
        timeout: Duration,
        what: &'static str,
    ) -> Result<RemoteReply, ClientError> {
        let deadline = Instant::now() + timeout;
        let mut lines = Vec::new();
        loop {
            let line = self.read_line(stream, deadline, what)?;
            let (code, last, text) = parse_line(&line)?;
            if lines.len() == MAX_REPLY_LINES {
                return Err(ClientError::TooManyLines);
            }
            lines.push(text);
            if last {
                return Ok(RemoteReply { code, lines });
            }
        }
    }

    /// One line without its line end, at most [`MAX_REPLY_LINE`] bytes.
    fn read_line(
        &mut self,
        stream: &mut TcpStream,
        deadline: Instant,
        what: &'static str,
    ) -> Result<Vec<u8>, ClientError> {
        loop {
            let pending = &self.buf[self.pos..];
            if let Some(i) = crate::sys::memchr(b'\n', pending) {
                if i > MAX_REPLY_LINE {
                    return Err(ClientError::LineTooLong);
                }
                let mut line = pending[..i].to_vec();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.pos += i + 1;
                return Ok(line);
            }
            if pending.len() > MAX_REPLY_LINE {
                return Err(ClientError::LineTooLong);
            }
            self.buf.drain(..self.pos);
            self.pos = 0;
            self.fill(stream, deadline, what)?;
        }
    }

    fn fill(
        &mut self,
        stream: &mut TcpStream,
        deadline: Instant,
        what: &'static str,
    ) -> Result<(), ClientError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ClientError::Timeout(what));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(ClientError::Io)?;
        let mut chunk = [0u8; READ_CHUNK];
        match stream.read(&mut chunk) {
            Ok(0) => Err(ClientError::Closed),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
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

/// `250-text` -> (250, false, "text"); `250 text` or `250` -> (250, true, ...).
fn parse_line(line: &[u8]) -> Result<(u16, bool, String), ClientError> {
    let malformed = || ClientError::Malformed(log::escape(&line[..line.len().min(80)]));
    if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
        return Err(malformed());
    }
    let code = line[..3]
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    let (last, text) = match line.get(3) {
        None => (true, &b""[..]),
        Some(b' ') => (true, &line[4..]),
        Some(b'-') => (false, &line[4..]),
        Some(_) => return Err(malformed()),
    };
    if !(200..600).contains(&code) && code != 354 {
        return Err(malformed());
    }
    Ok((code, last, log::escape(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lines_parse() {
        assert_eq!(
            parse_line(b"250-PIPELINING").unwrap(),
            (250, false, "PIPELINING".into())
        );
        assert_eq!(
            parse_line(b"550 5.1.1 no").unwrap(),
            (550, true, "5.1.1 no".into())
        );
        assert_eq!(parse_line(b"250").unwrap(), (250, true, String::new()));
        assert!(parse_line(b"25").is_err());
        assert!(parse_line(b"250x").is_err());
        assert!(parse_line(b"abc ok").is_err());
        assert!(parse_line(b"999 no").is_err());
        assert_eq!(parse_line(b"451 a\x1bb").unwrap().2, "a\\x1bb");
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
