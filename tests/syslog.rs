//! SPEC 8: with SYSLOG set, log lines go to syslog (here a datagram socket of the test's
//! own, named by SYSLOG_SOCKET), in RFC 3164 form with the facility and `PROGRAM[PID]`.

mod common;
use common::{echo, like, log_lines_of, reply_lines};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

#[test]
fn log_lines_reach_syslog_with_the_facility() {
    let dir = common::scratch("syslog");
    let path = dir.join("log.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let p = path.to_str().unwrap();
    let (out, err, code) = echo(
        &[("SYSLOG", "mail"), ("SYSLOG_SOCKET", p)],
        "FOO\r\nQUIT\r\n",
    );
    assert_eq!(code, 0);
    assert!(
        reply_lines(&out).contains(&"500 5.5.1 Command not recognized"),
        "{out}"
    );
    assert!(
        err.is_empty(),
        "nothing on stderr when logging to syslog: {err}"
    );
    let mut lines = vec![];
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        if lines.len() == 2 {
            break;
        }
    }
    assert_eq!(lines.len(), 2, "{lines:?}");
    // <22> = facility mail (2) * 8 + severity info (6).
    assert!(lines[0].starts_with("<22>"), "{lines:?}");
    // `<22>TIMESTAMP smtpfront-echo[PID]: MESSAGE`, the message whole.
    assert!(
        like(
            &lines[0],
            "<22>* smtpfront-echo[#]: FOO -> 500 5.5.1 Command not recognized"
        ),
        "{lines:?}"
    );
    assert!(
        like(
            &lines[1],
            "<22>* smtpfront-echo[#]: end: remote unknown helo none messages 0 bytes in # out #: QUIT"
        ),
        "{lines:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn unreachable_syslog_falls_back_to_stderr() {
    let (_, err, code) = echo(
        &[("SYSLOG", "local3"), ("SYSLOG_SOCKET", "/nonexistent/sock")],
        "QUIT\r\n",
    );
    assert_eq!(code, 0);
    let messages = log_lines_of(&err, "smtpfront-echo");
    assert_eq!(messages.len(), 2, "{err}");
    assert!(
        like(messages[0], "syslog unreachable (*), logging to stderr"),
        "{err}"
    );
    assert!(
        like(
            messages[1],
            "end: remote unknown helo none messages 0 bytes in # out #: QUIT"
        ),
        "{err}"
    );
}
