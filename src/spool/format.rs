//! The message file format (SPEC 6): the SMTP transaction that will replay the message, as
//! text with CRLF line ends.
//!
//! ```text
//! HELO client.helo.name
//! MAIL FROM:<sender@example.net> BODY=8BITMIME
//! RCPT TO:<rcpt1@example.com>
//! DATA
//! Received: ...
//! ...the message, dot-stuffed...
//! .
//! ```
//!
//! [`Header`] renders and parses the lines before the message; [`Stuffer`] dot-stuffs the
//! message as it streams to disk.

use std::fmt;

/// The envelope part of a message file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// What the client said in HELO/EHLO, or `[ip]` if it said nothing.
    pub helo: String,
    pub sender: String,
    /// The `BODY=` value, only when the client gave one.
    pub body: Option<String>,
    pub recipients: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError(pub String);

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed message file: {}", self.0)
    }
}

impl std::error::Error for FormatError {}

/// A line of the file never carries a CR, LF or NUL of client origin.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

impl Header {
    /// The lines up to and including `DATA`.
    pub fn render(&self) -> Vec<u8> {
        let mut s = format!(
            "HELO {}\r\nMAIL FROM:<{}>",
            clean(&self.helo),
            clean(&self.sender)
        );
        if let Some(body) = &self.body {
            s.push_str(" BODY=");
            s.push_str(&clean(body));
        }
        s.push_str("\r\n");
        for r in &self.recipients {
            s.push_str("RCPT TO:<");
            s.push_str(&clean(r));
            s.push_str(">\r\n");
        }
        s.push_str("DATA\r\n");
        s.into_bytes()
    }

    /// Parses a whole file: the header and the message that follows `DATA` (still
    /// dot-stuffed, ending with the `.` line). A file that does not end with the dot line is
    /// incomplete and refused.
    pub fn parse(file: &[u8]) -> Result<(Header, &[u8]), FormatError> {
        let mut rest = file;
        let mut next_line = || -> Result<&str, FormatError> {
            let end = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| FormatError("a header line without CRLF".into()))?;
            let line = std::str::from_utf8(&rest[..end])
                .map_err(|_| FormatError("a header line that is not UTF-8".into()))?;
            rest = &rest[end + 2..];
            Ok(line)
        };
        let helo = next_line()?
            .strip_prefix("HELO ")
            .ok_or_else(|| FormatError("the first line is not HELO".into()))?
            .to_string();
        let mail = next_line()?
            .strip_prefix("MAIL FROM:<")
            .ok_or_else(|| FormatError("the second line is not MAIL FROM".into()))?;
        let (sender, params) = mail
            .rsplit_once('>')
            .ok_or_else(|| FormatError("MAIL FROM without '>'".into()))?;
        let body = match params.trim() {
            "" => None,
            p => Some(
                p.strip_prefix("BODY=")
                    .ok_or_else(|| FormatError(format!("unknown MAIL parameter {p:?}")))?
                    .to_string(),
            ),
        };
        let mut recipients = Vec::new();
        loop {
            let line = next_line()?;
            if line == "DATA" {
                break;
            }
            let r = line
                .strip_prefix("RCPT TO:<")
                .and_then(|r| r.strip_suffix('>'))
                .ok_or_else(|| FormatError(format!("unexpected line {line:?}")))?;
            recipients.push(r.to_string());
        }
        if recipients.is_empty() {
            return Err(FormatError("no recipients".into()));
        }
        let data = rest;
        if !(data == b".\r\n" || data.ends_with(b"\r\n.\r\n")) {
            return Err(FormatError(
                "the message does not end with the dot line".into(),
            ));
        }
        Ok((
            Header {
                helo,
                sender: sender.to_string(),
                body,
                recipients,
            },
            data,
        ))
    }
}

/// Dot-stuffs message bytes on their way to the file: a `.` at the start of a line is
/// doubled. Lines end with CRLF (the line reader normalised them), so a line starts after
/// every LF.
#[derive(Debug)]
pub struct Stuffer {
    at_line_start: bool,
}

impl Default for Stuffer {
    fn default() -> Self {
        Stuffer {
            at_line_start: true,
        }
    }
}

impl Stuffer {
    /// Calls `out` with the stuffed form of `bytes` (at most two calls per line start).
    pub fn stuff<E>(
        &mut self,
        bytes: &[u8],
        mut out: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut rest = bytes;
        while !rest.is_empty() {
            if self.at_line_start && rest[0] == b'.' {
                out(b".")?;
            }
            let (chunk, more) = match crate::sys::memchr(b'\n', rest) {
                Some(i) => rest.split_at(i + 1),
                None => (rest, &b""[..]),
            };
            out(chunk)?;
            self.at_line_start = chunk.ends_with(b"\n");
            rest = more;
        }
        Ok(())
    }

    /// The end of the message: the last line end (if the message lacked one) and the dot.
    pub fn finish<E>(&mut self, mut out: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        if !self.at_line_start {
            out(b"\r\n")?;
        }
        self.at_line_start = true;
        out(b".\r\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            helo: "client.example".into(),
            sender: "a@example.net".into(),
            body: Some("8BITMIME".into()),
            recipients: vec!["r1@example.com".into(), "r2@example.com".into()],
        }
    }

    fn stuffed(pieces: &[&[u8]]) -> Vec<u8> {
        let mut s = Stuffer::default();
        let mut out = Vec::new();
        for p in pieces {
            s.stuff::<()>(p, |b| {
                out.extend_from_slice(b);
                Ok(())
            })
            .unwrap();
        }
        s.finish::<()>(|b| {
            out.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn render_then_parse_round_trips() {
        let mut file = header().render();
        assert_eq!(
            file,
            b"HELO client.example\r\nMAIL FROM:<a@example.net> BODY=8BITMIME\r\n\
              RCPT TO:<r1@example.com>\r\nRCPT TO:<r2@example.com>\r\nDATA\r\n"
        );
        file.extend_from_slice(b"Subject: x\r\n\r\n..dot\r\n.\r\n");
        let (h, data) = Header::parse(&file).unwrap();
        assert_eq!(h, header());
        assert_eq!(data, b"Subject: x\r\n\r\n..dot\r\n.\r\n");
    }

    #[test]
    fn null_sender_and_no_body() {
        let h = Header {
            body: None,
            sender: String::new(),
            ..header()
        };
        let mut file = h.render();
        file.extend_from_slice(b".\r\n");
        assert_eq!(Header::parse(&file).unwrap().0, h);
    }

    #[test]
    fn incomplete_files_are_refused() {
        let mut file = header().render();
        file.extend_from_slice(b"Subject: x\r\n\r\nbody\r\n");
        assert!(Header::parse(&file).is_err());
        assert!(Header::parse(b"HELO x\r\nMAIL FROM:<a@b>\r\nDATA\r\n.\r\n").is_err());
        assert!(Header::parse(b"garbage").is_err());
        assert!(Header::parse(b"").is_err());
    }

    #[test]
    fn stuffing_doubles_leading_dots_across_pieces() {
        assert_eq!(
            stuffed(&[b".a\r\n", b"b.\r\n", b".", b"\r\n"]),
            b"..a\r\nb.\r\n..\r\n.\r\n"
        );
        assert_eq!(stuffed(&[b"x", b".y\r\n"]), b"x.y\r\n.\r\n");
        assert_eq!(stuffed(&[b"no end"]), b"no end\r\n.\r\n");
        assert_eq!(stuffed(&[]), b".\r\n");
    }

    #[test]
    fn control_bytes_cannot_add_lines() {
        let h = Header {
            helo: "evil\r\nRCPT TO:<x@y>".into(),
            ..header()
        };
        let text = String::from_utf8(h.render()).unwrap();
        assert_eq!(text.matches("RCPT TO").count(), 3);
        assert!(text.starts_with("HELO evil??RCPT TO:<x@y>\r\n"));
    }
}
