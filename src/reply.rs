//! Every reply the front ends send: a code, an enhanced status code (RFC 3463) and text
//! lines. Replies are data, declared once here by name; `smtp::server` is the one door they
//! leave through (and are logged through, when 400 or above).

use std::borrow::Cow;

/// One SMTP reply. `text` may hold several lines separated by `\n`: it is then sent as a
/// multi-line reply with the code (and status) on every line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Enhanced status code, e.g. "2.1.0"; empty for the greeting and the EHLO lines,
    /// which RFC 2034 leaves without one.
    pub status: Cow<'static, str>,
    pub text: Cow<'static, str>,
}

impl Reply {
    pub const fn fixed(code: u16, status: &'static str, text: &'static str) -> Reply {
        Reply {
            code,
            status: Cow::Borrowed(status),
            text: Cow::Borrowed(text),
        }
    }

    pub fn new(code: u16, status: &'static str, text: impl Into<Cow<'static, str>>) -> Reply {
        Reply {
            code,
            status: Cow::Borrowed(status),
            text: text.into(),
        }
    }

    /// The same reply with another text (a mail rule's RESPONSE field, say).
    pub fn with_text(mut self, text: impl Into<Cow<'static, str>>) -> Reply {
        self.text = text.into();
        self
    }

    pub fn is_error(&self) -> bool {
        self.code >= 400
    }

    /// Appends the wire form (CRLF line ends) to `out`.
    pub fn render(&self, out: &mut Vec<u8>) {
        let code = [
            b'0' + (self.code / 100 % 10) as u8,
            b'0' + (self.code / 10 % 10) as u8,
            b'0' + (self.code % 10) as u8,
        ];
        let mut rest = self.text.as_bytes();
        loop {
            let (line, more) = match crate::sys::memchr(b'\n', rest) {
                Some(i) => (&rest[..i], Some(&rest[i + 1..])),
                None => (rest, None),
            };
            out.extend_from_slice(&code);
            out.push(if more.is_some() { b'-' } else { b' ' });
            if !self.status.is_empty() {
                out.extend_from_slice(self.status.as_bytes());
                out.push(b' ');
            }
            // A reply line never carries a bare CR: it would end the line early.
            let start = out.len();
            out.extend_from_slice(line);
            if crate::sys::memchr(b'\r', line).is_some() {
                for b in &mut out[start..] {
                    if *b == b'\r' {
                        *b = b' ';
                    }
                }
            }
            out.extend_from_slice(b"\r\n");
            match more {
                Some(m) => rest = m,
                None => break,
            }
        }
    }

    /// The first line, for log messages.
    pub fn summary(&self) -> String {
        let first = self.text.split('\n').next().unwrap_or("");
        if self.status.is_empty() {
            format!("{} {}", self.code, first)
        } else {
            format!("{} {} {}", self.code, self.status, first)
        }
    }
}

// SPEC 3: the fixed replies, by name.
pub const OK: Reply = Reply::fixed(250, "2.0.0", "Ok");
pub const RESET_OK: Reply = Reply::fixed(250, "2.0.0", "Reset");
pub const SENDER_OK: Reply = Reply::fixed(250, "2.1.0", "Sender accepted");
pub const RECIPIENT_OK: Reply = Reply::fixed(250, "2.1.5", "Recipient accepted");
pub const START_DATA: Reply =
    Reply::fixed(354, "", "End your message with a line holding only a dot");
pub const BYE: Reply = Reply::fixed(221, "2.0.0", "Good bye");
pub const VRFY: Reply = Reply::fixed(252, "2.5.2", "Cannot verify the user, send some mail");
pub const HELP: Reply = Reply::fixed(
    214,
    "2.0.0",
    "See RFC 5321 (https://www.rfc-editor.org/rfc/rfc5321)",
);

pub const CONFIG_ERROR: Reply = Reply::fixed(421, "4.3.0", "Configuration error, try again later");
pub const TIMEOUT: Reply = Reply::fixed(421, "4.4.2", "Timeout, closing the connection");
pub const TOO_MANY_HOPS: Reply =
    Reply::fixed(554, "5.4.6", "Too many hops, this message is looping");
pub const TOO_BIG: Reply = Reply::fixed(552, "5.3.4", "Message too big");
pub const BACKEND_FAILED: Reply = Reply::fixed(451, "4.3.0", "Local error, try again later");
pub const RULES_FAILED: Reply =
    Reply::fixed(451, "4.3.0", "Mail rules are unusable, try again later");

pub const NOT_IMPLEMENTED: Reply = Reply::fixed(500, "5.5.1", "Command not recognized");
pub const LINE_TOO_LONG: Reply = Reply::fixed(500, "5.5.2", "Line too long");
pub const TOO_MANY_UNKNOWN: Reply =
    Reply::fixed(503, "5.5.0", "Too many unrecognized commands, closing");
pub const NUL_IN_COMMAND: Reply = Reply::fixed(501, "5.5.2", "NUL byte in command");
pub const NEED_DOMAIN: Reply =
    Reply::fixed(501, "5.5.4", "Syntax: HELO or EHLO followed by a domain");
pub const BAD_PATH: Reply = Reply::fixed(501, "5.5.2", "Syntax error in address");
pub const BAD_MAIL_SYNTAX: Reply =
    Reply::fixed(501, "5.5.2", "Syntax: MAIL FROM:<address> [parameters]");
pub const BAD_RCPT_SYNTAX: Reply =
    Reply::fixed(501, "5.5.2", "Syntax: RCPT TO:<address> [parameters]");
pub const BAD_PARAMETER: Reply = Reply::fixed(501, "5.5.4", "Invalid parameter value");
pub const NESTED_MAIL: Reply = Reply::fixed(503, "5.5.1", "Sender already given");
pub const NEED_MAIL: Reply = Reply::fixed(503, "5.5.1", "MAIL first");
pub const NEED_RCPT: Reply = Reply::fixed(503, "5.5.1", "RCPT first");
pub const NO_VALID_RCPT: Reply = Reply::fixed(554, "5.5.1", "No valid recipients");
pub const NULL_SENDER_ONE_RCPT: Reply = Reply::fixed(
    550,
    "5.5.3",
    "A bounce (null sender) goes to one recipient only",
);
pub const TOO_MANY_RCPTS: Reply = Reply::fixed(452, "4.5.3", "Too many recipients");
pub const RELAY_DENIED: Reply = Reply::fixed(553, "5.7.1", "Relaying denied");
pub const POLICY_NOT_CONFIGURED: Reply = Reply::fixed(
    451,
    "4.3.5",
    "Recipient policy not configured, try again later",
);
pub const RCPTHOSTS_FAILED: Reply =
    Reply::fixed(451, "4.3.0", "Recipient list unreadable, try again later");
pub const RULE_REJECT: Reply = Reply::fixed(553, "5.7.1", "Rejected");
pub const RULE_DEFER: Reply = Reply::fixed(451, "4.7.1", "Deferred");

// SPEC 3.1: STARTTLS.
pub const STARTTLS_READY: Reply = Reply::fixed(220, "2.0.0", "Ready to start TLS");
pub const STARTTLS_ARGUMENT: Reply = Reply::fixed(501, "5.5.4", "Syntax: STARTTLS");
pub const STARTTLS_NOT_OFFERED: Reply = Reply::fixed(503, "5.5.1", "STARTTLS not available");
pub const TLS_ALREADY: Reply = Reply::fixed(503, "5.5.1", "TLS already started");
/// RFC 3207's reply, for AUTH before TLS and for MAIL under `REQUIRE_TLS`.
pub const TLS_FIRST: Reply = Reply::fixed(530, "5.7.0", "Must issue a STARTTLS command first");

// SPEC 3.2: SMTPUTF8 (RFC 6531 3.4).
pub const UTF8_NOT_DECLARED: Reply = Reply::fixed(
    553,
    "5.6.7",
    "Must declare SMTPUTF8 to send a UTF-8 address",
);

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(r: &Reply) -> String {
        let mut out = Vec::new();
        r.render(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn one_line_with_and_without_status() {
        assert_eq!(wire(&OK), "250 2.0.0 Ok\r\n");
        assert_eq!(wire(&Reply::new(220, "", "mx ESMTP")), "220 mx ESMTP\r\n");
        assert_eq!(wire(&Reply::new(421, "4.3.0", "")), "421 4.3.0 \r\n");
    }

    #[test]
    fn lines_carry_the_code_and_status_each_and_no_cr() {
        let r = Reply::new(553, "5.7.1", "first\nsec\rond\r\n\nlast\r");
        assert_eq!(
            wire(&r),
            "553-5.7.1 first\r\n553-5.7.1 sec ond \r\n553-5.7.1 \r\n553 5.7.1 last \r\n"
        );
        let ehlo = Reply::new(250, "", "mx\nPIPELINING");
        assert_eq!(wire(&ehlo), "250-mx\r\n250 PIPELINING\r\n");
    }
}
