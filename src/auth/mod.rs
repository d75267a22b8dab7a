//! SMTP AUTH (SPEC 3 AUTH, RFC 4954): the PLAIN and LOGIN dialogues as a small state
//! machine that turns client lines into credentials, and [`checkpassword`], which checks
//! them the qmail way. No I/O here; the session drives it.

pub mod checkpassword;

use crate::base64;
use crate::reply::Reply;

pub const CANCELLED: Reply = Reply::fixed(501, "5.5.2", "Authentication cancelled");
pub const BAD_BASE64: Reply = Reply::fixed(501, "5.5.2", "Invalid base64 data");
pub const BAD_CREDENTIAL_BYTES: Reply = Reply::fixed(
    501,
    "5.5.2",
    "Malformed credentials (NUL byte or a user name that is not UTF-8)",
);
pub const BAD_SYNTAX: Reply =
    Reply::fixed(501, "5.5.2", "Syntax: AUTH mechanism [initial-response]");
pub const UNKNOWN_MECHANISM: Reply = Reply::fixed(504, "5.5.4", "Unrecognized authentication type");
pub const SUCCEEDED: Reply = Reply::fixed(235, "2.7.0", "Authentication successful");
pub const FAILED: Reply = Reply::fixed(535, "5.7.8", "Authentication credentials invalid");
pub const TEMPORARY: Reply = Reply::fixed(454, "4.7.0", "Temporary authentication failure");
pub const TOO_MANY_FAILURES: Reply =
    Reply::fixed(421, "4.7.0", "Too many failed authentications, closing");
pub const ALREADY: Reply = Reply::fixed(503, "5.5.1", "Already authenticated");
pub const IN_TRANSACTION: Reply =
    Reply::fixed(503, "5.5.1", "AUTH not allowed during a transaction");
pub const NOT_OFFERED: Reply = Reply::fixed(503, "5.5.1", "AUTH not available");
pub const REQUIRED: Reply = Reply::fixed(530, "5.7.0", "Authentication required");

/// Where a dialogue waits for the client's next line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dialogue {
    PlainResponse,
    LoginUser,
    LoginPassword { user: String },
}

/// What the session does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Send the `334` and wait for the client's answer in `Dialogue`.
    Ask(Dialogue, Reply),
    /// Check these with the checkpassword program. The password is bytes: checkpassword
    /// programs compare bytes, and a Latin-1 password must work too.
    Check { user: String, password: Vec<u8> },
    /// The attempt failed before any check (syntax, base64, cancel, mechanism).
    Fail(Reply),
}

fn challenge(text: &str) -> Reply {
    Reply::new(334, "", base64::encode(text.as_bytes()))
}

/// `AUTH mechanism [initial-response]`.
pub fn begin(arg: &str) -> Next {
    let mut words = arg.split_ascii_whitespace();
    let Some(mechanism) = words.next() else {
        return Next::Fail(BAD_SYNTAX);
    };
    let initial = words.next();
    if words.next().is_some() {
        return Next::Fail(BAD_SYNTAX);
    }
    match (mechanism.to_ascii_uppercase().as_str(), initial) {
        ("PLAIN", None) => Next::Ask(Dialogue::PlainResponse, Reply::new(334, "", "")),
        ("PLAIN", Some(r)) => plain(r.as_bytes()),
        ("LOGIN", None) => Next::Ask(Dialogue::LoginUser, challenge("Username:")),
        ("LOGIN", Some(r)) => login_user(r.as_bytes()),
        _ => Next::Fail(UNKNOWN_MECHANISM),
    }
}

/// The client's answer to a `334`.
pub fn respond(dialogue: Dialogue, line: &[u8]) -> Next {
    if line == b"*" {
        return Next::Fail(CANCELLED);
    }
    match dialogue {
        Dialogue::PlainResponse => plain(line),
        Dialogue::LoginUser => login_user(line),
        Dialogue::LoginPassword { user } => match decode_field(line) {
            Ok(password) => Next::Check { user, password },
            Err(r) => Next::Fail(r),
        },
    }
}

/// One credential field. A NUL would split the `user\0password\0timestamp\0` record that
/// checkpassword reads, letting the client choose the fields: refused.
fn decode_field(b64: &[u8]) -> Result<Vec<u8>, Reply> {
    let bytes = base64::decode(b64).map_err(|_| BAD_BASE64)?;
    if bytes.contains(&0) {
        return Err(BAD_CREDENTIAL_BYTES);
    }
    Ok(bytes)
}

/// A user name is logged and kept for the session: it must be text.
fn decode_user(b64: &[u8]) -> Result<String, Reply> {
    String::from_utf8(decode_field(b64)?).map_err(|_| BAD_CREDENTIAL_BYTES)
}

fn login_user(b64: &[u8]) -> Next {
    match decode_user(b64) {
        Ok(user) => Next::Ask(Dialogue::LoginPassword { user }, challenge("Password:")),
        Err(r) => Next::Fail(r),
    }
}

/// RFC 4616: `authzid NUL authcid NUL password`; `=` alone is an empty response.
fn plain(b64: &[u8]) -> Next {
    let bytes = if b64 == b"=" {
        Vec::new()
    } else {
        match base64::decode(b64) {
            Ok(b) => b,
            Err(_) => return Next::Fail(BAD_BASE64),
        }
    };
    let parts: Vec<&[u8]> = bytes.split(|&b| b == 0).collect();
    let [authzid, user, password] = parts[..] else {
        return Next::Fail(BAD_CREDENTIAL_BYTES);
    };
    let Ok(user) = std::str::from_utf8(user) else {
        return Next::Fail(BAD_CREDENTIAL_BYTES);
    };
    // Acting for another identity is not supported: the authzid must be empty or the user.
    if !authzid.is_empty() && authzid != user.as_bytes() {
        return Next::Fail(FAILED);
    }
    Next::Check {
        user: user.to_string(),
        password: password.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(user: &str, password: &str) -> Next {
        Next::Check {
            user: user.into(),
            password: password.as_bytes().to_vec(),
        }
    }

    #[test]
    fn plain_with_and_without_initial_response() {
        let ir = base64::encode(b"\0alice\0secret");
        assert_eq!(begin(&format!("PLAIN {ir}")), check("alice", "secret"));
        assert_eq!(
            begin("plain"),
            Next::Ask(Dialogue::PlainResponse, Reply::new(334, "", ""))
        );
        assert_eq!(
            respond(Dialogue::PlainResponse, ir.as_bytes()),
            check("alice", "secret")
        );
        let with_id = base64::encode(b"alice\0alice\0pw");
        assert_eq!(begin(&format!("PLAIN {with_id}")), check("alice", "pw"));
        let other = base64::encode(b"bob\0alice\0pw");
        assert_eq!(begin(&format!("PLAIN {other}")), Next::Fail(FAILED));
    }

    #[test]
    fn login_dialogue() {
        let Next::Ask(d, r) = begin("LOGIN") else {
            panic!()
        };
        assert_eq!(r.text, "VXNlcm5hbWU6");
        let Next::Ask(d, r) = respond(d, base64::encode(b"alice").as_bytes()) else {
            panic!()
        };
        assert_eq!(r.text, "UGFzc3dvcmQ6");
        assert_eq!(
            respond(d, base64::encode(b"pw").as_bytes()),
            check("alice", "pw")
        );
        let Next::Ask(d, _) = begin(&format!("LOGIN {}", base64::encode(b"bob"))) else {
            panic!()
        };
        assert_eq!(d, Dialogue::LoginPassword { user: "bob".into() });
    }

    #[test]
    fn failures() {
        assert_eq!(begin("CRAM-MD5"), Next::Fail(UNKNOWN_MECHANISM));
        assert_eq!(begin(""), Next::Fail(BAD_SYNTAX));
        assert_eq!(begin("PLAIN a b"), Next::Fail(BAD_SYNTAX));
        assert_eq!(begin("PLAIN Zg="), Next::Fail(BAD_BASE64));
        assert_eq!(respond(Dialogue::LoginUser, b"*"), Next::Fail(CANCELLED));
        assert_eq!(
            respond(Dialogue::PlainResponse, b"!!!!"),
            Next::Fail(BAD_BASE64)
        );
        assert_eq!(
            begin(&format!("PLAIN {}", base64::encode(b"no-nuls"))),
            Next::Fail(BAD_CREDENTIAL_BYTES)
        );
        // A NUL would let the client choose checkpassword's fields.
        let nul_user = base64::encode(b"alice\0s3cret");
        assert_eq!(
            respond(Dialogue::LoginUser, nul_user.as_bytes()),
            Next::Fail(BAD_CREDENTIAL_BYTES)
        );
        let d = Dialogue::LoginPassword {
            user: "alice".into(),
        };
        assert_eq!(
            respond(d, base64::encode(b"pw\0x").as_bytes()),
            Next::Fail(BAD_CREDENTIAL_BYTES)
        );
    }

    #[test]
    fn a_latin1_password_is_passed_as_bytes() {
        let d = Dialogue::LoginPassword {
            user: "alice".into(),
        };
        assert_eq!(
            respond(d, base64::encode(b"s\xe9cret").as_bytes()),
            Next::Check {
                user: "alice".into(),
                password: b"s\xe9cret".to_vec()
            }
        );
    }
}
