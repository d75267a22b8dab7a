//! UCSPI-TLS (SPEC 3.1): STARTTLS without a TLS library in this program. A TLS helper
//! (`s6-ucspitlsd`) sits in the chain, keeps the network socket and the key, and leaves three
//! descriptors in the environment: a control socket (`SSLCTLFD`), and the two ends of the
//! decrypted channel (`SSLREADFD`, `SSLWRITEFD`). The command `Y` on the control socket has
//! it do the handshake on the network socket; it then answers `VAR=value\0 ... \0\0` (at
//! least `SSL_PROTOCOL` and `SSL_CIPHER`) and the session goes on over the channel.
//!
//! The lower-case `y` would close the control socket without an answer; with s6-networking
//! 2.5.1.3 it also kills the helper after the handshake. `Y` is used.

use crate::config::Settings;
use crate::sys::{self, Wait};
use std::fmt;
use std::io;
use std::os::unix::io::RawFd;
use std::time::Instant;

/// The helper's answer is at most this long. s6-tlsd-io writes it through one 4 KiB buffer,
/// and without client certificates (we never ask for one) it is a few dozen bytes; a helper
/// talking without end must not make us buffer without end.
pub const MAX_ANSWER: usize = 4096;

/// What the handshake settled, as the helper reported it (for the Received header and log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    pub protocol: String,
    pub cipher: String,
}

/// Why the session could not move to TLS. Each ends the session (SPEC 3.1).
#[derive(Debug)]
pub enum TlsError {
    /// No helper: the driver was asked for TLS it cannot give (a bug, never the client's).
    NotAvailable,
    /// The helper did not answer within TIMEOUT.
    Timeout,
    /// The control socket closed before a full answer: the handshake failed, or the
    /// helper died.
    HelperGone,
    /// The answer was longer than [`MAX_ANSWER`].
    AnswerTooLong,
    /// Clear text was still unread where the handshake should have begun (in-process
    /// transports only; over a socket those bytes go to the helper and fail the handshake).
    ClearTextPending,
    Io(io::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::NotAvailable => write!(f, "no UCSPI-TLS helper"),
            TlsError::Timeout => write!(f, "the TLS helper did not answer in time (TIMEOUT)"),
            TlsError::HelperGone => write!(f, "handshake failed or the TLS helper went away"),
            TlsError::AnswerTooLong => {
                write!(f, "the TLS helper's answer is over {MAX_ANSWER} bytes")
            }
            TlsError::ClearTextPending => write!(f, "clear text where the handshake should be"),
            TlsError::Io(e) => write!(f, "control socket: {e}"),
        }
    }
}

/// Parses the helper's answer: NUL-terminated `VAR=value` entries ended by an empty one.
/// `None` while it is incomplete. Missing variables read as `unknown`; control characters
/// become `?` (the values end up in a header and a log line).
pub fn parse_answer(buf: &[u8]) -> Option<TlsInfo> {
    let mut info = TlsInfo {
        protocol: "unknown".into(),
        cipher: "unknown".into(),
    };
    let mut rest = buf;
    loop {
        let end = rest.iter().position(|&b| b == 0)?;
        let (entry, tail) = (&rest[..end], &rest[end + 1..]);
        if entry.is_empty() {
            return Some(info);
        }
        if let Some(v) = entry.strip_prefix(b"SSL_PROTOCOL=") {
            info.protocol = printable(v);
        } else if let Some(v) = entry.strip_prefix(b"SSL_CIPHER=") {
            info.cipher = printable(v);
        }
        rest = tail;
    }
}

fn printable(v: &[u8]) -> String {
    String::from_utf8_lossy(v)
        .chars()
        .map(|c| if c.is_control() || c == ' ' { '?' } else { c })
        .collect()
}

/// The three descriptors of a UCSPI-TLS helper, checked open.
#[derive(Debug)]
pub struct Helper {
    pub ctl: RawFd,
    pub read: RawFd,
    pub write: RawFd,
}

impl Helper {
    /// SPEC 3.1: a helper when all three variables are set and name open descriptors;
    /// `Ok(None)` when none is set; `Err(why)` (for the log) otherwise.
    pub fn from_settings(s: &Settings) -> Result<Option<Helper>, String> {
        let fds = [
            ("SSLCTLFD", s.sslctlfd),
            ("SSLREADFD", s.sslreadfd),
            ("SSLWRITEFD", s.sslwritefd),
        ];
        if fds.iter().all(|(_, v)| v.is_none()) {
            return Ok(None);
        }
        let mut open = [0; 3];
        for (slot, (name, value)) in open.iter_mut().zip(fds) {
            let fd = value.and_then(|v| RawFd::try_from(v).ok());
            match fd {
                Some(fd) if sys::fd_is_open(fd) => *slot = fd,
                Some(_) => return Err(format!("{name} is not an open descriptor: no STARTTLS")),
                None => return Err(format!("{name} is not set: no STARTTLS")),
            }
        }
        let [ctl, read, write] = open;
        Ok(Some(Helper { ctl, read, write }))
    }

    /// Sends `Y`, waits (until `deadline`) for the answer, closes the control socket.
    pub fn handshake(&self, deadline: Instant) -> Result<TlsInfo, TlsError> {
        sys::set_nonblocking(self.ctl, true).map_err(TlsError::Io)?;
        let result = self.command(deadline).and_then(|()| self.answer(deadline));
        sys::close(self.ctl);
        result
    }

    fn command(&self, deadline: Instant) -> Result<(), TlsError> {
        loop {
            match sys::write(self.ctl, b"Y") {
                Ok(1) => return Ok(()),
                Ok(_) => return Err(TlsError::HelperGone),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait(self.ctl, Wait::Write, deadline)?
                }
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                    return Err(TlsError::HelperGone)
                }
                Err(e) => return Err(TlsError::Io(e)),
            }
        }
    }

    fn answer(&self, deadline: Instant) -> Result<TlsInfo, TlsError> {
        let mut buf = [0u8; MAX_ANSWER];
        let mut len = 0;
        loop {
            if let Some(info) = parse_answer(&buf[..len]) {
                return Ok(info);
            }
            if len == buf.len() {
                return Err(TlsError::AnswerTooLong);
            }
            match sys::read(self.ctl, &mut buf[len..]) {
                Ok(0) => return Err(TlsError::HelperGone),
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait(self.ctl, Wait::Read, deadline)?
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Err(TlsError::HelperGone)
                }
                Err(e) => return Err(TlsError::Io(e)),
            }
        }
    }
}

fn wait(fd: RawFd, what: Wait, deadline: Instant) -> Result<(), TlsError> {
    match sys::wait_fd(fd, what, deadline) {
        Ok(true) => Ok(()),
        Ok(false) => Err(TlsError::Timeout),
        Err(e) => Err(TlsError::Io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s6_answer_is_parsed() {
        let a = b"SSL_PROTOCOL=TLSv1.3\0SSL_CIPHER=TLS_AES_256_GCM_SHA384\0SSL_TLS_SNI_SERVERNAME\0SSL_PEER_CERT_HASH\0SSL_PEER_CERT_SUBJECT\0\0";
        assert_eq!(
            parse_answer(a),
            Some(TlsInfo {
                protocol: "TLSv1.3".into(),
                cipher: "TLS_AES_256_GCM_SHA384".into()
            })
        );
    }

    #[test]
    fn incomplete_answers_wait_for_more() {
        let a = b"SSL_PROTOCOL=TLSv1.3\0SSL_CIPHER=X\0\0";
        for cut in 0..a.len() {
            assert_eq!(parse_answer(&a[..cut]), None, "cut at {cut}");
        }
    }

    #[test]
    fn missing_values_are_unknown_and_controls_replaced() {
        let info = parse_answer(b"SSL_CIPHER=A\r\nB C\0\0").unwrap();
        assert_eq!(info.protocol, "unknown");
        assert_eq!(info.cipher, "A??B?C");
        assert_eq!(parse_answer(b"\0").unwrap().cipher, "unknown");
    }

    fn settings(ctl: Option<u32>, read: Option<u32>, write: Option<u32>) -> Settings {
        Settings {
            sslctlfd: ctl,
            sslreadfd: read,
            sslwritefd: write,
            ..Settings::default()
        }
    }

    #[test]
    fn helper_needs_three_open_descriptors() {
        assert!(matches!(
            Helper::from_settings(&settings(None, None, None)),
            Ok(None)
        ));
        // 0, 1 and 2 are open in a test process.
        assert!(matches!(
            Helper::from_settings(&settings(Some(0), Some(1), Some(2))),
            Ok(Some(_))
        ));
        let e = Helper::from_settings(&settings(Some(0), None, Some(2))).unwrap_err();
        assert_eq!(e, "SSLREADFD is not set: no STARTTLS");
        let e = Helper::from_settings(&settings(Some(0), Some(1), Some(999_999))).unwrap_err();
        assert_eq!(e, "SSLWRITEFD is not an open descriptor: no STARTTLS");
    }
}
