//! One command line -> [`Command`]. Pure: no state, no I/O; errors are named values that
//! [`CommandError::reply`] maps to the wire in one place.

use crate::address::{parse_path, PathError};
use crate::reply::{self, Reply};

/// `BODY=` of RFC 6152.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    SevenBit,
    EightBitMime,
}

impl Body {
    pub fn as_str(self) -> &'static str {
        match self {
            Body::SevenBit => "7BIT",
            Body::EightBitMime => "8BITMIME",
        }
    }
}

/// The ESMTP parameters of MAIL FROM that mean something here; the rest are kept verbatim
/// (for the echo back end) and otherwise ignored (SPEC 3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    pub size: Option<u64>,
    pub body: Option<Body>,
    /// `SMTPUTF8` (RFC 6531, SPEC 3.2): addresses of the transaction may hold UTF-8.
    pub smtputf8: bool,
    pub all: Params,
}

/// ESMTP parameters as given, one space between them. One string rather than one per
/// parameter: every pipelined MAIL of an SMTPUTF8 batch has one, and two allocations a
/// command showed in the benchmark (bench/run utf8).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(String);

impl Params {
    fn parse(tail: &str) -> Params {
        let mut all = String::new();
        for p in tail.split_ascii_whitespace() {
            if all.is_empty() {
                all.reserve_exact(tail.len());
            } else {
                all.push(' ');
            }
            all.push_str(p);
        }
        Params(all)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.split_ascii_whitespace()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The parameters separated by single spaces.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Helo(String),
    Ehlo(String),
    Mail {
        sender: String,
        params: MailParams,
    },
    Rcpt {
        recipient: String,
        params: Params,
    },
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Help,
    Auth(String),
    /// `argument`: something followed the verb (SPEC 3.1: `501`).
    StartTls {
        argument: bool,
    },
    /// SPEC 3.3: the node as given, trimmed; checked by [`crate::etrn::Node::parse`].
    Etrn(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandError {
    Unknown,
    Nul,
    NoDomain,
    MailSyntax,
    RcptSyntax,
    BadPath(PathError),
    BadParameter,
    NotUtf8,
}

impl CommandError {
    pub fn reply(self) -> Reply {
        match self {
            CommandError::Unknown => reply::NOT_IMPLEMENTED,
            CommandError::Nul => reply::NUL_IN_COMMAND,
            CommandError::NoDomain => reply::NEED_DOMAIN,
            CommandError::MailSyntax => reply::BAD_MAIL_SYNTAX,
            CommandError::RcptSyntax => reply::BAD_RCPT_SYNTAX,
            CommandError::BadPath(_) | CommandError::NotUtf8 => reply::BAD_PATH,
            CommandError::BadParameter => reply::BAD_PARAMETER,
        }
    }
}

/// Parses one command line (line end already removed).
pub fn parse(line: &[u8]) -> Result<Command, CommandError> {
    // SPEC 3: a NUL byte in a command is refused, whatever the command.
    if line.contains(&0) {
        return Err(CommandError::Nul);
    }
    let (verb, arg) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &b""[..]),
    };
    let verb = verb.to_ascii_uppercase();
    match verb.as_slice() {
        b"HELO" => Ok(Command::Helo(domain_arg(arg)?)),
        b"EHLO" => Ok(Command::Ehlo(domain_arg(arg)?)),
        b"MAIL" => mail(arg),
        b"RCPT" => rcpt(arg),
        b"DATA" => Ok(Command::Data),
        b"RSET" => Ok(Command::Rset),
        b"NOOP" => Ok(Command::Noop),
        b"QUIT" => Ok(Command::Quit),
        b"VRFY" => Ok(Command::Vrfy),
        b"HELP" => Ok(Command::Help),
        b"AUTH" => Ok(Command::Auth(text(arg)?.trim().to_string())),
        b"STARTTLS" => Ok(Command::StartTls {
            argument: !trim(arg).is_empty(),
        }),
        // Not UTF-8: kept lossily, for the node check to refuse with ETRN's own 501.
        b"ETRN" => Ok(Command::Etrn(
            String::from_utf8_lossy(trim(arg)).into_owned(),
        )),
        _ => Err(CommandError::Unknown),
    }
}

fn text(arg: &[u8]) -> Result<&str, CommandError> {
    std::str::from_utf8(arg).map_err(|_| CommandError::NotUtf8)
}

fn domain_arg(arg: &[u8]) -> Result<String, CommandError> {
    // Unicode white space around the name goes too (found by the `command` fuzz target:
    // a trailing U+205F stayed).
    let name = sanitised(trim(arg));
    let name = name.trim();
    if name.is_empty() {
        return Err(CommandError::NoDomain);
    }
    Ok(name.to_string())
}

fn trim(b: &[u8]) -> &[u8] {
    let b = trim_start(b);
    let n = b
        .iter()
        .rev()
        .take_while(|&&c| c == b' ' || c == b'\t')
        .count();
    &b[..b.len() - n]
}

/// Client text that is only ever recorded (the HELO name), made safe in bytes as stored
/// (SPEC 3): UTF-8 characters stay, and every control character and every byte that is not
/// UTF-8 becomes one `?`. The result is never longer than the input, so the spool line
/// stays within what forward reads back (a lossy U+FFFD per byte tripled it).
fn sanitised(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.extend(
            chunk
                .valid()
                .chars()
                .map(|c| if c.is_control() { '?' } else { c }),
        );
        out.extend(std::iter::repeat_n('?', chunk.invalid().len()));
    }
    out
}

/// `FROM:` / `TO:` then optional spaces, case-insensitive; returns what follows.
fn after_keyword<'a>(arg: &'a [u8], keyword: &[u8]) -> Option<&'a [u8]> {
    let arg = trim_start(arg);
    if arg.len() < keyword.len() || !arg[..keyword.len()].eq_ignore_ascii_case(keyword) {
        return None;
    }
    Some(trim_start(&arg[keyword.len()..]))
}

fn trim_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|&&c| c == b' ' || c == b'\t').count();
    &b[n..]
}

/// The path, then the parameters: nothing may follow the `>` but spaces and parameters.
fn path_and_params(rest: &[u8]) -> Result<(String, Params), CommandError> {
    let rest = text(rest)?;
    let path = parse_path(rest).map_err(CommandError::BadPath)?;
    let tail = &rest[path.consumed..];
    if !(tail.is_empty() || tail.starts_with([' ', '\t'])) {
        return Err(CommandError::BadPath(PathError::NoClosingBracket));
    }
    Ok((path.address, Params::parse(tail)))
}

fn mail(arg: &[u8]) -> Result<Command, CommandError> {
    let rest = after_keyword(arg, b"FROM:").ok_or(CommandError::MailSyntax)?;
    let (sender, all) = path_and_params(rest)?;
    if sender.eq_ignore_ascii_case("postmaster") {
        // A bare postmaster is a recipient only (RFC 5321 4.5.1).
        return Err(CommandError::BadPath(PathError::NoDomain));
    }
    let mut params = MailParams {
        all,
        ..MailParams::default()
    };
    for p in params.all.iter() {
        let (key, value) = match p.bytes().position(|b| b == b'=') {
            Some(i) => (&p[..i], &p[i + 1..]),
            None => (p, ""),
        };
        if key.eq_ignore_ascii_case("SIZE") {
            let n = value.parse().map_err(|_| CommandError::BadParameter)?;
            params.size = Some(n);
        } else if key.eq_ignore_ascii_case("BODY") {
            params.body = Some(match value.to_ascii_uppercase().as_str() {
                "7BIT" => Body::SevenBit,
                "8BITMIME" => Body::EightBitMime,
                _ => return Err(CommandError::BadParameter),
            });
        } else if key.eq_ignore_ascii_case("SMTPUTF8") {
            // RFC 6531 3.4: a keyword without a value.
            if key.len() < p.len() {
                return Err(CommandError::BadParameter);
            }
            params.smtputf8 = true;
        }
    }
    Ok(Command::Mail { sender, params })
}

fn rcpt(arg: &[u8]) -> Result<Command, CommandError> {
    let rest = after_keyword(arg, b"TO:").ok_or(CommandError::RcptSyntax)?;
    let (recipient, params) = path_and_params(rest)?;
    if recipient.is_empty() {
        return Err(CommandError::BadPath(PathError::BadLocalPart));
    }
    Ok(Command::Rcpt { recipient, params })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_any_case() {
        assert_eq!(parse(b"nOoP"), Ok(Command::Noop));
        assert_eq!(parse(b"QUIT"), Ok(Command::Quit));
        assert_eq!(parse(b"data"), Ok(Command::Data));
        assert_eq!(parse(b"EXPN x"), Err(CommandError::Unknown));
        assert_eq!(parse(b""), Err(CommandError::Unknown));
    }

    #[test]
    fn helo_needs_a_domain() {
        assert_eq!(parse(b"HELO"), Err(CommandError::NoDomain));
        assert_eq!(parse(b"EHLO   "), Err(CommandError::NoDomain));
        assert_eq!(parse(b"EHLO x.y"), Ok(Command::Ehlo("x.y".into())));
    }

    /// 3,000 bytes of `\xff` in HELO became 9,000 bytes of U+FFFD in the spool, which
    /// forward's line limit refused: the mail went to bad/ without a bounce.
    #[test]
    fn helo_is_sanitised_in_bytes() {
        let mut line = b"HELO ".to_vec();
        line.extend(std::iter::repeat_n(0xffu8, 3000));
        let Ok(Command::Helo(name)) = parse(&line) else {
            panic!("HELO refused")
        };
        assert_eq!(name, "?".repeat(3000));
        assert_eq!(
            parse("EHLO b\u{fc}cher.example\x1b\u{85}x\t ".as_bytes()),
            Ok(Command::Ehlo("b\u{fc}cher.example??x".into()))
        );
        // The fuzz target's input: Unicode white space at the end is trimmed too.
        assert_eq!(
            parse("EHLO AUTH UTH\u{205f}\r\t\t\u{205f}\t".as_bytes()),
            Ok(Command::Ehlo("AUTH UTH\u{205f}???".into()))
        );
    }

    #[test]
    fn mail_with_params() {
        let c = parse(b"MAIL FROM: <a@b.c> size=10 BODY=8bitmime X-FOO=1").unwrap();
        let Command::Mail { sender, params } = c else {
            panic!()
        };
        assert_eq!(sender, "a@b.c");
        assert_eq!(params.size, Some(10));
        assert_eq!(params.body, Some(Body::EightBitMime));
        assert_eq!(params.all.as_str(), "size=10 BODY=8bitmime X-FOO=1");
        assert!(!params.smtputf8);
    }

    /// SPEC 3.2: SMTPUTF8, in any case, without a value; UTF-8 addresses parse, invalid
    /// UTF-8 (overlong encodings included) is a syntax error.
    #[test]
    fn mail_with_smtputf8() {
        let c = parse("MAIL FROM:<j\u{f6}rg@b\u{fc}cher.example> smtputf8".as_bytes()).unwrap();
        let Command::Mail { sender, params } = c else {
            panic!()
        };
        assert_eq!(sender, "j\u{f6}rg@b\u{fc}cher.example");
        assert!(params.smtputf8);
        assert_eq!(params.all.iter().collect::<Vec<_>>(), ["smtputf8"]);
        assert_eq!(
            parse(b"MAIL FROM:<a@b> SMTPUTF8=yes"),
            Err(CommandError::BadParameter)
        );
        for bad in [
            &b"MAIL FROM:<j\xf6rg@b.c> SMTPUTF8"[..],
            b"MAIL FROM:<a\xc0\xafb@b.c> SMTPUTF8",
            b"MAIL FROM:<a\xe0\x80\xafb@b.c> SMTPUTF8",
            b"RCPT TO:<a@b\xed\xa0\x80.c>",
        ] {
            assert_eq!(parse(bad), Err(CommandError::NotUtf8));
        }
    }

    #[test]
    fn mail_errors() {
        assert_eq!(parse(b"MAIL <a@b>"), Err(CommandError::MailSyntax));
        assert_eq!(
            parse(b"MAIL FROM:<a@b> SIZE=x"),
            Err(CommandError::BadParameter)
        );
        assert_eq!(
            parse(b"MAIL FROM:<a@b> BODY=BINARYMIME"),
            Err(CommandError::BadParameter)
        );
        assert!(matches!(
            parse(b"MAIL FROM:<a@b>x"),
            Err(CommandError::BadPath(_))
        ));
        assert!(matches!(
            parse(b"MAIL FROM:<postmaster>"),
            Err(CommandError::BadPath(_))
        ));
        assert_eq!(parse(b"MAIL FROM:<a\0@b>"), Err(CommandError::Nul));
    }

    #[test]
    fn rcpt_postmaster_and_null() {
        assert_eq!(
            parse(b"RCPT TO:<Postmaster>"),
            Ok(Command::Rcpt {
                recipient: "Postmaster".into(),
                params: Params::default()
            })
        );
        assert!(parse(b"RCPT TO:<>").is_err());
        assert_eq!(parse(b"RCPT FROM:<a@b>"), Err(CommandError::RcptSyntax));
    }
}
