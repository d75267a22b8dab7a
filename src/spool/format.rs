//! The message file format (SPEC 6): the SMTP transaction that will replay the message, as
//! text with CRLF line ends.
//!
//! ```text
//! HELO client.helo.name
//! MAIL FROM:<sender@example.net> BODY=8BITMIME SMTPUTF8
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
    /// SPEC 3.2: the transaction had `SMTPUTF8` (its addresses may hold UTF-8).
    pub smtputf8: bool,
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
        if self.smtputf8 {
            s.push_str(" SMTPUTF8");
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
        let mut parser = EnvelopeParser::new(usize::MAX);
        let mut rest = file;
        loop {
            let end = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| FormatError("a header line without CRLF".into()))?;
            let line = &rest[..end];
            rest = &rest[end + 2..];
            if parser.line(line)? {
                break;
            }
        }
        let (header, _) = parser.finish()?;
        let data = rest;
        if !(data == b".\r\n" || data.ends_with(b"\r\n.\r\n")) {
            return Err(FormatError(
                "the message does not end with the dot line".into(),
            ));
        }
        Ok((header, data))
    }
}

/// Where the envelope parser is: the line it expects next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Helo,
    Mail,
    RcptOrData,
    Nothing,
}

/// The envelope read one line at a time: `HELO`, `MAIL`, one `RCPT` or more, `DATA`. The one
/// reading of the format ("two parsers that disagree are a vulnerability"): [`Header::parse`]
/// drives it over a whole file, forward over a file it streams. It keeps at most `keep`
/// recipients and counts them all, so a reader can bound its memory (`forward --list`).
#[derive(Debug)]
pub struct EnvelopeParser {
    expect: Expect,
    header: Header,
    keep: usize,
    recipients: u64,
}

impl EnvelopeParser {
    pub fn new(keep: usize) -> EnvelopeParser {
        EnvelopeParser {
            expect: Expect::Helo,
            header: Header {
                helo: String::new(),
                sender: String::new(),
                body: None,
                smtputf8: false,
                recipients: Vec::new(),
            },
            keep,
            recipients: 0,
        }
    }

    /// One line without its CRLF; true when it was `DATA`. A control character is refused:
    /// [`Header::render`] never writes one, and a CR or NUL would end up in a command.
    pub fn line(&mut self, line: &[u8]) -> Result<bool, FormatError> {
        let line = std::str::from_utf8(line)
            .map_err(|_| FormatError("a header line that is not UTF-8".into()))?;
        if line.contains(char::is_control) {
            return Err(FormatError("a control character in the envelope".into()));
        }
        match self.expect {
            Expect::Helo => {
                self.header.helo = line
                    .strip_prefix("HELO ")
                    .ok_or_else(|| FormatError("the first line is not HELO".into()))?
                    .to_string();
                self.expect = Expect::Mail;
            }
            Expect::Mail => {
                let mail = parse_mail(line)?;
                (self.header.sender, self.header.body, self.header.smtputf8) = mail;
                self.expect = Expect::RcptOrData;
            }
            Expect::RcptOrData if line == "DATA" => {
                if self.recipients == 0 {
                    return Err(FormatError("no recipients".into()));
                }
                self.expect = Expect::Nothing;
                return Ok(true);
            }
            Expect::RcptOrData => {
                let r = line
                    .strip_prefix("RCPT TO:<")
                    .and_then(|r| r.strip_suffix('>'))
                    .ok_or_else(|| FormatError(format!("unexpected line {line:?}")))?;
                self.recipients = self.recipients.saturating_add(1);
                if self.header.recipients.len() < self.keep {
                    self.header.recipients.push(r.to_string());
                }
            }
            Expect::Nothing => return Err(FormatError("a line after DATA".into())),
        }
        Ok(false)
    }

    /// After `DATA`: the header (with at most `keep` recipients) and how many there are.
    pub fn finish(self) -> Result<(Header, u64), FormatError> {
        match self.expect {
            Expect::Nothing => Ok((self.header, self.recipients)),
            _ => Err(FormatError("the envelope does not end with DATA".into())),
        }
    }
}

/// `MAIL FROM:<sender> BODY=x SMTPUTF8` -> (sender, body, smtputf8). The sender ends at
/// the last `>`; each parameter [`Header::render`] writes may come once, nothing else.
fn parse_mail(line: &str) -> Result<(String, Option<String>, bool), FormatError> {
    let mail = line
        .strip_prefix("MAIL FROM:<")
        .ok_or_else(|| FormatError("the second line is not MAIL FROM".into()))?;
    let (sender, params) = mail
        .rsplit_once('>')
        .ok_or_else(|| FormatError("MAIL FROM without '>'".into()))?;
    let (mut body, mut smtputf8) = (None, false);
    for p in params.split_whitespace() {
        match p.strip_prefix("BODY=") {
            Some(b) if body.is_none() => body = Some(b.to_string()),
            None if p == "SMTPUTF8" && !smtputf8 => smtputf8 = true,
            _ => return Err(FormatError(format!("unknown MAIL parameter {p:?}"))),
        }
    }
    Ok((sender.to_string(), body, smtputf8))
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
            smtputf8: false,
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

    /// SPEC 3.2: the parameter is kept on the MAIL line and read back; UTF-8 addresses are
    /// stored as they came.
    #[test]
    fn smtputf8_round_trips() {
        let h = Header {
            sender: "j\u{f6}rg@b\u{fc}cher.example".into(),
            smtputf8: true,
            recipients: vec![
                "\u{434}\u{43c}\u{438}\u{442}\u{440}\u{438}\u{439}@xn--e1afmkfd.xn--p1ai".into(),
            ],
            ..header()
        };
        let mut file = h.render();
        assert!(file.starts_with(
            "HELO client.example\r\nMAIL FROM:<j\u{f6}rg@b\u{fc}cher.example> BODY=8BITMIME SMTPUTF8\r\n"
                .as_bytes()
        ));
        file.extend_from_slice(b".\r\n");
        assert_eq!(Header::parse(&file).unwrap().0, h);
        let no_body = Header { body: None, ..h };
        let mut file = no_body.render();
        file.extend_from_slice(b".\r\n");
        assert_eq!(Header::parse(&file).unwrap().0, no_body);
        let parse = |s: &[u8]| Header::parse(s).map(|(h, _)| h).map_err(|e| e.0);
        assert_eq!(
            parse(b"HELO a\r\nMAIL FROM:<s> SMTPUTF8 SMTPUTF8\r\nRCPT TO:<r>\r\nDATA\r\n.\r\n"),
            Err("unknown MAIL parameter \"SMTPUTF8\"".into())
        );
        assert_eq!(
            parse(b"HELO a\r\nMAIL FROM:<s> smtputf8\r\nRCPT TO:<r>\r\nDATA\r\n.\r\n"),
            Err("unknown MAIL parameter \"smtputf8\"".into())
        );
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
    fn control_characters_and_order_are_checked() {
        let parse = |s: &[u8]| Header::parse(s).map(|(h, _)| h).map_err(|e| e.0);
        assert_eq!(
            parse(b"HELO a\rb\r\nMAIL FROM:<>\r\nRCPT TO:<r>\r\nDATA\r\n.\r\n"),
            Err("a control character in the envelope".into())
        );
        assert_eq!(
            parse(b"MAIL FROM:<>\r\nHELO a\r\nRCPT TO:<r>\r\nDATA\r\n.\r\n"),
            Err("the first line is not HELO".into())
        );
        assert_eq!(
            parse(b"HELO a\r\nMAIL FROM:<s> SIZE=1\r\nRCPT TO:<r>\r\nDATA\r\n.\r\n"),
            Err("unknown MAIL parameter \"SIZE=1\"".into())
        );
    }

    #[test]
    fn the_line_parser_keeps_some_recipients_and_counts_all() {
        let mut p = EnvelopeParser::new(2);
        for line in [
            "HELO h",
            "MAIL FROM:<s>",
            "RCPT TO:<a>",
            "RCPT TO:<b>",
            "RCPT TO:<c>",
        ] {
            assert_eq!(p.line(line.as_bytes()), Ok(false));
        }
        assert_eq!(p.line(b"DATA"), Ok(true));
        assert!(p.line(b"DATA").is_err());
        let (h, n) = p.finish().unwrap();
        assert_eq!((h.recipients, n), (vec!["a".to_string(), "b".into()], 3));
        let mut p = EnvelopeParser::new(9);
        assert_eq!(p.line(b"HELO h"), Ok(false));
        assert!(p.finish().is_err(), "no DATA yet");
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
