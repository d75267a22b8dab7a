//! SMTP AUTH (SPEC 3 AUTH, SPEC 2 CHECKPASSWORD / REQUIRE_AUTH, SPEC 8: passwords are never
//! logged): every reply through pipes with smtpfront-echo and smtpfront-spool, the
//! checkpassword interface with tests/checkpassword-test (and Debian's checkpw), and real
//! clients (swaks, Python's smtplib) under tcpserver.
//!
//! Every session's log goes through [`assert_no_secrets`]: no password, no base64 of one,
//! and no AUTH response (initial or after a `334`) may ever reach stderr.

mod common;

use common::{
    command, log_lines_without_prefix, python, run_bounded, run_with_input, scratch,
    swaks_client_lines, swaks_server_lines, tool, Server, ECHO, SPOOL,
};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The checkpassword program of these tests (accepts alice / s3cret; see its header).
const CHECKPW: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/checkpassword-test");
const USER: &str = "alice";
const PASSWORD: &str = "s3cret";
const WRONG: &str = "wr0ng-pass";
/// A password with a space, a non-ASCII letter and a control byte: it must reach the
/// checkpassword program exactly as sent (and, being wrong, be refused).
const ODD: &str = "pa ss w\u{f6}rd\u{1}";
/// Every password any test sends: none may reach a log, nor its base64.
const PASSWORDS: [&str; 3] = [PASSWORD, WRONG, ODD];

/// What tcpserver would set: the local name, hence the HELO/EHLO reply, is `mx.test`.
const CONN: [(&str, &str); 4] = [
    ("PROTO", "TCP"),
    ("TCPREMOTEIP", "192.0.2.7"),
    ("TCPLOCALHOST", "mx.test"),
    ("TCPLOCALIP", "198.51.100.1"),
];

// ---------------------------------------------------------------------------------------
// Helpers.

/// Base64 (RFC 4648), written here rather than taken from the crate under test.
fn b64(data: impl AsRef<[u8]>) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.as_ref().chunks(3) {
        let mut n = 0u32;
        for (i, &b) in chunk.iter().enumerate() {
            n |= u32::from(b) << (16 - 8 * i);
        }
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The PLAIN response (RFC 4616) with an empty authorization identity.
fn plain(user: &str, password: &str) -> String {
    b64(format!("\0{user}\0{password}"))
}

/// SMTP verbs: a script line starting with none of these is an AUTH response.
const VERBS: [&str; 11] = [
    "HELO", "EHLO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT", "VRFY", "HELP", "AUTH",
];

/// SPEC 8: the log holds no password, no base64 of a password or of a PLAIN response, and
/// none of the AUTH responses of `input` (initial responses and lines answering a `334`;
/// message lines between DATA and the dot are not responses).
fn assert_no_secrets(log: &str, input: &str) {
    // The LOGIN answer with the user name is a response too.
    let mut secrets: Vec<String> = vec![b64(USER)];
    for pw in PASSWORDS {
        secrets.push(pw.to_string());
        secrets.push(b64(pw));
        for user in [USER, "bob"] {
            secrets.push(plain(user, pw));
            secrets.push(b64(format!("{user}\0{user}\0{pw}")));
        }
    }
    let mut in_data = false;
    for line in input.lines() {
        let line = line.trim_end_matches('\r');
        if in_data {
            in_data = line != ".";
            continue;
        }
        let words: Vec<&str> = line.split(' ').collect();
        let verb = words[0].to_ascii_uppercase();
        if verb == "DATA" {
            in_data = true;
        } else if verb == "AUTH" {
            secrets.extend(words.get(2).map(|w| w.to_string()));
        } else if !VERBS.contains(&verb.as_str()) {
            secrets.push(line.to_string());
        }
    }
    for s in secrets.iter().filter(|s| s.len() >= 6) {
        assert!(
            !log.contains(s.as_str()),
            "the log shows a credential ({s:?}):\n{log}"
        );
    }
}

/// Lines joined with CRLF, ending with one.
fn script(lines: &[&str]) -> String {
    lines.iter().map(|l| format!("{l}\r\n")).collect()
}

struct Run {
    out: String,
    err: String,
    code: i32,
}

impl Run {
    /// The last line of each reply after the greeting (a multi-line EHLO reply is its
    /// `250 ` line).
    fn answers(&self) -> Vec<&str> {
        self.out
            .lines()
            .skip(1)
            .filter(|l| l.as_bytes().get(3) != Some(&b'-'))
            .collect()
    }

    /// The replies, one for each of `expected`: equal, or starting with it and a space
    /// (`"235 2.7.0"` matches `235 2.7.0 Authentication successful`; `"334 "` matches only
    /// the empty challenge).
    fn assert_answers(&self, expected: &[&str]) {
        let got = self.answers();
        let ok = got.len() == expected.len()
            && got
                .iter()
                .zip(expected)
                .all(|(g, e)| g == e || g.starts_with(&format!("{e} ")));
        assert!(
            ok,
            "replies differ\nexpected: {expected:#?}\ngot: {got:#?}\nstderr:\n{}",
            self.err
        );
    }
}

/// Runs `program` on `input` through pipes with CONN and `env`; checks the log for secrets.
fn session(program: &str, env: &[(&str, &str)], input: &str) -> Run {
    let mut all = CONN.to_vec();
    all.extend_from_slice(env);
    let o = run_with_input(program, &all, input.as_bytes());
    let run = Run {
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
        code: o.status.code().unwrap_or(-1),
    };
    assert_no_secrets(&run.err, input);
    run
}

/// smtpfront-echo with `CHECKPASSWORD` = the test program, plus `env`.
fn auth_echo(env: &[(&str, &str)], input: &str) -> Run {
    let mut all = vec![("CHECKPASSWORD", CHECKPW)];
    all.extend_from_slice(env);
    session(ECHO, &all, input)
}

/// A front end driven one command at a time, for timing and for the closing of the
/// connection. Killed when dropped.
struct Live {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
    sent: String,
}

impl Live {
    fn start(program: &str, env: &[(&str, &str)]) -> Live {
        let mut all = CONN.to_vec();
        all.extend_from_slice(env);
        let mut child = command(program, &all)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).split(b'\n') {
                let Ok(mut line) = line else { break };
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if tx
                    .send(String::from_utf8_lossy(&line).into_owned())
                    .is_err()
                {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let mut live = Live {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr: Some(stderr),
            sent: String::new(),
        };
        let greeting = live.reply(Duration::from_secs(10));
        assert!(greeting.as_deref().is_some_and(|g| g.starts_with("220 ")));
        live
    }

    fn send(&mut self, line: &str) {
        self.sent.push_str(line);
        self.sent.push_str("\r\n");
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("write");
        stdin.flush().unwrap();
    }

    /// The next reply (its lines joined by `\n`), or `None` at end of output; fails the
    /// test after `limit`.
    fn reply(&mut self, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        let mut text = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let last = line.as_bytes().get(3) != Some(&b'-');
                    text.push_str(&line);
                    if last {
                        return Some(text);
                    }
                    text.push('\n');
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    assert!(text.is_empty(), "output ended inside a reply: {text:?}");
                    return None;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("no reply within {limit:?} (so far {text:?})")
                }
            }
        }
    }

    /// Sends `line` and returns the reply (within 10 s).
    fn ask(&mut self, line: &str) -> String {
        self.send(line);
        self.reply(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("connection closed after {line:?}"))
    }

    /// Closes stdin, waits (10 s at most) for the exit; returns (log, exit code) after
    /// checking the log for secrets.
    fn finish(&mut self) -> (String, i32) {
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "the front end did not exit");
            std::thread::sleep(Duration::from_millis(10));
        };
        let log = self.stderr.take().unwrap().join().unwrap();
        assert_no_secrets(&log, &self.sent);
        (log, status.code().unwrap_or(-1))
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls the server's log until `n` sessions of `HELO client.test` have ended.
fn wait_for_ends(server: &Server, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = server.log();
        let ends = log_lines_without_prefix(&log)
            .iter()
            .filter(|m| m.starts_with("end: remote 127.0.0.1 helo client.test messages "))
            .count();
        if ends >= n {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "{n} session end(s) not logged:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads the files `--record PREFIX` of checkpassword-test wrote.
struct Recorded {
    fd3: Vec<u8>,
    args: Vec<u8>,
    fds: String,
    pid: u32,
}

fn recorded(prefix: &Path) -> Recorded {
    let read = |ext: &str| {
        let p = PathBuf::from(format!("{}.{ext}", prefix.display()));
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    Recorded {
        fd3: read("fd3"),
        args: read("args"),
        fds: String::from_utf8(read("fds")).unwrap(),
        pid: String::from_utf8(read("pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap(),
    }
}

// ---------------------------------------------------------------------------------------
// The dialogue, through pipes with smtpfront-echo.

#[test]
fn base64_helper_matches_rfc4648() {
    for (plain, coded) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foobar", "Zm9vYmFy"),
        ("Username:", "VXNlcm5hbWU6"),
        ("Password:", "UGFzc3dvcmQ6"),
    ] {
        assert_eq!(b64(plain), coded);
    }
}

#[test]
fn ehlo_offers_auth_only_with_checkpassword() {
    let input = script(&["EHLO client.test", "QUIT"]);
    let with = auth_echo(&[], &input);
    let ehlo: Vec<&str> = with.out.lines().skip(1).take(7).collect();
    assert_eq!(
        ehlo,
        [
            "250-mx.test",
            "250-SIZE 0",
            "250-8BITMIME",
            "250-SMTPUTF8",
            "250-ENHANCEDSTATUSCODES",
            "250-PIPELINING",
            "250 AUTH PLAIN LOGIN"
        ],
        "{}",
        with.out
    );
    with.assert_answers(&["250 AUTH PLAIN LOGIN", "221 2.0.0"]);

    let without = session(ECHO, &[], &input);
    assert!(!without.out.contains("AUTH"), "{}", without.out);
    without.assert_answers(&["250 PIPELINING", "221 2.0.0"]);
}

#[test]
fn plain_with_initial_response() {
    let good = auth_echo(
        &[],
        &script(&[
            "EHLO client.test",
            &format!("AUTH PLAIN {}", plain(USER, PASSWORD)),
            "QUIT",
        ]),
    );
    good.assert_answers(&[
        "250 AUTH PLAIN LOGIN",
        "235 2.7.0 Authentication successful",
        "221 2.0.0",
    ]);
    assert!(
        good.err.contains("AUTH accepted for user alice"),
        "{}",
        good.err
    );
    assert_eq!(good.code, 0);

    // An authorization identity equal to the user, and the mechanism in lower case.
    let authzid = auth_echo(
        &[],
        &script(&[
            "EHLO client.test",
            &format!("auth plain {}", b64(format!("{USER}\0{USER}\0{PASSWORD}"))),
            "QUIT",
        ]),
    );
    authzid.assert_answers(&["250 AUTH PLAIN LOGIN", "235 2.7.0", "221 2.0.0"]);

    // A wrong password, an unknown user: 535, and the session goes on.
    let bad = auth_echo(
        &[],
        &script(&[
            "EHLO client.test",
            &format!("AUTH PLAIN {}", plain(USER, WRONG)),
            &format!("AUTH PLAIN {}", plain("bob", PASSWORD)),
            "NOOP",
            "QUIT",
        ]),
    );
    bad.assert_answers(&[
        "250 AUTH PLAIN LOGIN",
        "535 5.7.8 Authentication credentials invalid",
        "535 5.7.8",
        "250 2.0.0",
        "221 2.0.0",
    ]);
    assert!(
        bad.err.contains("AUTH refused for user alice"),
        "{}",
        bad.err
    );
    assert!(bad.err.contains("AUTH refused for user bob"), "{}", bad.err);
    assert!(!bad.err.contains("AUTH accepted"), "{}", bad.err);
    // SPEC 8: the error is logged with the command, without its credentials.
    assert!(
        bad.err.contains("AUTH PLAIN ... -> 535 5.7.8"),
        "{}",
        bad.err
    );
}

#[test]
fn plain_without_initial_response() {
    let good = auth_echo(
        &[],
        &script(&[
            "EHLO client.test",
            "AUTH PLAIN",
            &plain(USER, PASSWORD),
            "QUIT",
        ]),
    );
    // RFC 4954: an empty challenge is "334 " (with the space).
    assert!(good.out.contains("\r\n334 \r\n"), "{:?}", good.out);
    good.assert_answers(&["250 AUTH PLAIN LOGIN", "334 ", "235 2.7.0", "221 2.0.0"]);
    assert!(
        good.err.contains("AUTH accepted for user alice"),
        "{}",
        good.err
    );

    let bad = auth_echo(
        &[],
        &script(&[
            "EHLO client.test",
            "AUTH PLAIN",
            &plain(USER, WRONG),
            "NOOP",
            "QUIT",
        ]),
    );
    bad.assert_answers(&[
        "250 AUTH PLAIN LOGIN",
        "334 ",
        "535 5.7.8",
        "250 2.0.0",
        "221 2.0.0",
    ]);
    // The failed response is logged as "(AUTH response)", never as itself.
    assert!(
        bad.err.contains("(AUTH response) -> 535 5.7.8"),
        "{}",
        bad.err
    );
}

#[test]
fn login_with_and_without_initial_response() {
    let without = auth_echo(
        &[],
        &script(&[
            "EHLO client.test",
            "AUTH LOGIN",
            &b64(USER),
            &b64(PASSWORD),
            "QUIT",
        ]),
    );
    without.assert_answers(&[
        "250 AUTH PLAIN LOGIN",
        "334 VXNlcm5hbWU6",
        "334 UGFzc3dvcmQ6",
        "235 2.7.0",
        "221 2.0.0",
    ]);
    assert!(without.err.contains("AUTH accepted for user alice"));

    let with = auth_echo(
        &[],
        &script(&[
            "EHLO client.test",
            &format!("AUTH LOGIN {}", b64(USER)),
            &b64(PASSWORD),
            "QUIT",
        ]),
    );
    with.assert_answers(&[
        "250 AUTH PLAIN LOGIN",
        "334 UGFzc3dvcmQ6",
        "235 2.7.0",
        "221 2.0.0",
    ]);

    let bad = auth_echo(
        &[],
        &script(&[
            "EHLO client.test",
            "AUTH LOGIN",
            &b64(USER),
            &b64(WRONG),
            &format!("AUTH LOGIN {}", b64(USER)),
            &b64(WRONG),
            "NOOP",
            "QUIT",
        ]),
    );
    bad.assert_answers(&[
        "250 AUTH PLAIN LOGIN",
        "334 VXNlcm5hbWU6",
        "334 UGFzc3dvcmQ6",
        "535 5.7.8",
        "334 UGFzc3dvcmQ6",
        "535 5.7.8",
        "250 2.0.0",
        "221 2.0.0",
    ]);
}

#[test]
fn star_cancels_with_501() {
    let run = auth_echo(
        &[],
        &script(&[
            "EHLO client.test",
            "AUTH PLAIN",
            "*",
            "AUTH LOGIN",
            "*",
            "AUTH LOGIN",
            &b64(USER),
            "*",
            "NOOP",
            &format!("AUTH PLAIN {}", plain(USER, PASSWORD)),
            "QUIT",
        ]),
    );
    run.assert_answers(&[
        "250 AUTH PLAIN LOGIN",
        "334 ",
        "501 5.5.2",
        "334 VXNlcm5hbWU6",
        "501 5.5.2",
        "334 VXNlcm5hbWU6",
        "334 UGFzc3dvcmQ6",
        "501 5.5.2",
        "250 2.0.0",
        "235 2.7.0",
        "221 2.0.0",
    ]);
    assert_eq!(run.code, 0);
}

#[test]
fn bad_base64_is_501() {
    let good_plain = plain(USER, PASSWORD); // AGFsaWNlAHMzY3JldA==
    let unpadded = good_plain.trim_end_matches('=').to_string();
    let short_pad = format!("{unpadded}=");
    let bad_char = good_plain.replacen('s', "!", 1);
    let user = b64(USER); // YWxpY2U=
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        // Initial responses: missing padding, short padding, a character outside the
        // alphabet, non-zero pad bits.
        (vec![format!("AUTH PLAIN {unpadded}")], vec!["501 5.5.2"]),
        (vec![format!("AUTH PLAIN {short_pad}")], vec!["501 5.5.2"]),
        (vec![format!("AUTH PLAIN {bad_char}")], vec!["501 5.5.2"]),
        (vec!["AUTH PLAIN Zh==".into()], vec!["501 5.5.2"]),
        (vec!["AUTH LOGIN YWxpY2U".into()], vec!["501 5.5.2"]),
        (vec!["AUTH LOGIN YWxp*2U=".into()], vec!["501 5.5.2"]),
        // Responses to a 334.
        (
            vec!["AUTH PLAIN".into(), unpadded.clone()],
            vec!["334 ", "501 5.5.2"],
        ),
        (
            vec!["AUTH PLAIN".into(), "AGFsaWNl AHMzY3JldA==".into()],
            vec!["334 ", "501 5.5.2"],
        ),
        (
            vec!["AUTH LOGIN".into(), "YWxpY2U==".into()],
            vec!["334 VXNlcm5hbWU6", "501 5.5.2"],
        ),
        (
            vec!["AUTH LOGIN".into(), user.clone(), "czNjcmV0=".into()],
            vec!["334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6", "501 5.5.2"],
        ),
        (
            vec!["AUTH LOGIN".into(), user.clone(), "czNj\u{e9}mV0".into()],
            vec!["334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6", "501 5.5.2"],
        ),
    ];
    for (auth, replies) in cases {
        let mut lines = vec!["HELO client.test".to_string()];
        lines.extend(auth.iter().cloned());
        lines.extend(["NOOP".to_string(), "QUIT".to_string()]);
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let run = auth_echo(&[], &script(&lines));
        let mut expected = vec!["250 mx.test"];
        expected.extend(replies);
        expected.extend(["250 2.0.0", "221 2.0.0"]);
        run.assert_answers(&expected);
        assert!(!run.err.contains("AUTH accepted"), "{auth:?}\n{}", run.err);
    }
}

#[test]
fn unknown_mechanism_is_504() {
    let run = auth_echo(
        &[],
        &script(&[
            "EHLO client.test",
            "AUTH CRAM-MD5",
            "AUTH GSSAPI",
            &format!(
                "AUTH XOAUTH2 {}",
                b64("user=alice\u{1}auth=Bearer x\u{1}\u{1}")
            ),
            &format!("AUTH PLAIN {}", plain(USER, PASSWORD)),
            "QUIT",
        ]),
    );
    run.assert_answers(&[
        "250 AUTH PLAIN LOGIN",
        "504 5.5.4",
        "504 5.5.4",
        "504 5.5.4",
        "235 2.7.0",
        "221 2.0.0",
    ]);
}

#[test]
fn auth_when_already_authenticated_is_503() {
    let run = auth_echo(
        &[],
        &script(&[
            "EHLO client.test",
            &format!("AUTH PLAIN {}", plain(USER, PASSWORD)),
            &format!("AUTH PLAIN {}", plain(USER, PASSWORD)),
            "AUTH LOGIN",
            "MAIL FROM:<a@example.net>",
            "QUIT",
        ]),
    );
    run.assert_answers(&[
        "250 AUTH PLAIN LOGIN",
        "235 2.7.0",
        "503 5.5.1",
        "503 5.5.1",
        "250 2.1.0",
        "221 2.0.0",
    ]);
}

#[test]
fn auth_inside_a_transaction_is_503() {
    let run = auth_echo(
        &[],
        &script(&[
            "EHLO client.test",
            "MAIL FROM:<a@example.net>",
            &format!("AUTH PLAIN {}", plain(USER, PASSWORD)),
            "AUTH LOGIN",
            "RCPT TO:<b@example.com>",
            "RSET",
            &format!("AUTH PLAIN {}", plain(USER, PASSWORD)),
            "QUIT",
        ]),
    );
    run.assert_answers(&[
        "250 AUTH PLAIN LOGIN",
        "250 2.1.0",
        "503 5.5.1",
        "503 5.5.1",
        // The refused AUTH left the transaction as it was.
        "250 2.1.5 Recipient <b@example.com> accepted",
        "250 2.0.0",
        "235 2.7.0",
        "221 2.0.0",
    ]);
}

#[test]
fn auth_without_checkpassword_is_503() {
    let run = session(
        ECHO,
        &[],
        &script(&[
            "EHLO client.test",
            &format!("AUTH PLAIN {}", plain(USER, PASSWORD)),
            "AUTH LOGIN",
            "AUTH CRAM-MD5",
            "MAIL FROM:<a@example.net>",
            "QUIT",
        ]),
    );
    run.assert_answers(&[
        "250 PIPELINING",
        "503 5.5.1",
        "503 5.5.1",
        "503 5.5.1",
        "250 2.1.0",
        "221 2.0.0",
    ]);
}

/// SPEC 3: three failures are answered 535; the fourth gets 421 and the connection closes:
/// nothing after it is answered. All kinds of failure count: PLAIN with and without an
/// initial response, LOGIN, and an authorization identity that is not the user.
#[test]
fn the_fourth_failure_is_421_and_closes() {
    let run = auth_echo(
        &[],
        &script(&[
            "EHLO client.test",
            &format!("AUTH PLAIN {}", plain(USER, WRONG)),
            "AUTH PLAIN",
            &plain("bob", WRONG),
            "AUTH LOGIN",
            &b64(USER),
            &b64(WRONG),
            &format!("AUTH PLAIN {}", b64(format!("bob\0{USER}\0{PASSWORD}"))),
            "NOOP",
            &format!("AUTH PLAIN {}", plain(USER, PASSWORD)),
            "QUIT",
        ]),
    );
    run.assert_answers(&[
        "250 AUTH PLAIN LOGIN",
        "535 5.7.8",
        "334 ",
        "535 5.7.8",
        "334 VXNlcm5hbWU6",
        "334 UGFzc3dvcmQ6",
        "535 5.7.8",
        "421 4.7.0",
    ]);
    assert_eq!(run.code, 0, "an orderly 421 exits 0 (SPEC 9)");
    assert!(run.err.contains("closed by the server"), "{}", run.err);
    assert!(!run.err.contains("AUTH accepted"), "{}", run.err);

    // The same with a client that keeps its side open: the server closes.
    let mut live = Live::start(ECHO, &[("CHECKPASSWORD", CHECKPW)]);
    live.ask("HELO client.test");
    for _ in 0..3 {
        let r = live.ask(&format!("AUTH PLAIN {}", plain(USER, WRONG)));
        assert!(r.starts_with("535 5.7.8 "), "{r}");
    }
    let r = live.ask(&format!("AUTH PLAIN {}", plain(USER, WRONG)));
    assert!(r.starts_with("421 4.7.0 "), "{r}");
    assert_eq!(
        live.reply(Duration::from_secs(5)),
        None,
        "the connection stays open after the 421"
    );
    let (_, code) = live.finish();
    assert_eq!(code, 0);
}

#[test]
fn after_auth_the_received_header_says_esmtpa() {
    let message = [
        "MAIL FROM:<a@example.net>",
        "RCPT TO:<b@example.com>",
        "DATA",
        "Subject: t",
        "",
        "body",
        ".",
        "QUIT",
    ];
    let mut lines = vec![
        "EHLO client.test".to_string(),
        format!("AUTH PLAIN {}", plain(USER, PASSWORD)),
    ];
    lines.extend(message.iter().map(|s| s.to_string()));
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let run = auth_echo(&[], &script(&lines));
    run.assert_answers(&[
        "250 AUTH PLAIN LOGIN",
        "235 2.7.0",
        "250 2.1.0",
        "250 2.1.5",
        "354",
        "250 2.0.0",
        "221 2.0.0",
    ]);
    let headers: Vec<&str> = run
        .err
        .lines()
        .filter_map(|l| l.split_once(": header: ").map(|(_, h)| h))
        .collect();
    assert!(
        headers.iter().any(|h| h.contains("with ESMTPA via TCP;")),
        "{}",
        run.err
    );
    assert!(
        run.err.contains("AUTH accepted for user alice"),
        "{}",
        run.err
    );

    // Without AUTH (CHECKPASSWORD set or not): ESMTP.
    let mut lines = vec!["EHLO client.test"];
    lines.extend(message);
    let plain_run = auth_echo(&[], &script(&lines));
    assert!(
        plain_run.err.contains("with ESMTP via TCP;"),
        "{}",
        plain_run.err
    );
    assert!(!plain_run.err.contains("ESMTPA"), "{}", plain_run.err);
}

#[test]
fn require_auth_refuses_mail_until_authenticated() {
    let run = auth_echo(
        &[("REQUIRE_AUTH", "1")],
        &script(&[
            "EHLO client.test",
            "MAIL FROM:<a@example.net>",
            &format!("AUTH PLAIN {}", plain(USER, WRONG)),
            "MAIL FROM:<a@example.net>",
            "AUTH LOGIN",
            &b64(USER),
            &b64(PASSWORD),
            "MAIL FROM:<a@example.net>",
            "RCPT TO:<b@example.com>",
            "QUIT",
        ]),
    );
    run.assert_answers(&[
        "250 AUTH PLAIN LOGIN",
        "530 5.7.0",
        "535 5.7.8",
        "530 5.7.0",
        "334 VXNlcm5hbWU6",
        "334 UGFzc3dvcmQ6",
        "235 2.7.0",
        "250 2.1.0",
        "250 2.1.5",
        "221 2.0.0",
    ]);
    assert!(
        run.err.contains("MAIL FROM:<a@example.net> -> 530 5.7.0"),
        "{}",
        run.err
    );

    // RELAYCLIENT set: no AUTH needed.
    let relay = auth_echo(
        &[("REQUIRE_AUTH", "1"), ("RELAYCLIENT", "")],
        &script(&[
            "EHLO client.test",
            "MAIL FROM:<a@example.net>",
            "RCPT TO:<b@example.com>",
            "QUIT",
        ]),
    );
    relay.assert_answers(&[
        "250 AUTH PLAIN LOGIN",
        "250 2.1.0",
        "250 2.1.5",
        "221 2.0.0",
    ]);
}

// ---------------------------------------------------------------------------------------
// smtpfront-spool: AUTH lets the client relay; mail rules still apply.

/// `DIR/spool`, mode 0700 (the front end does not create the spool directory itself).
fn spool_dir(dir: &Path) -> PathBuf {
    use std::os::unix::fs::DirBuilderExt;
    let d = dir.join("spool");
    std::fs::DirBuilder::new().mode(0o700).create(&d).unwrap();
    d
}

fn queued(spool: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(spool.join("new"))
        .map(|r| {
            r.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn spool_relays_only_after_auth() {
    let dir = scratch("auth-spool");
    let spooldir = spool_dir(&dir);
    let run = session(
        SPOOL,
        &[
            ("SPOOLDIR", spooldir.to_str().unwrap()),
            ("CHECKPASSWORD", CHECKPW),
        ],
        &script(&[
            "EHLO client.test",
            "MAIL FROM:<a@example.net>",
            "RCPT TO:<friend@elsewhere.example>",
            "RSET",
            &format!("AUTH PLAIN {}", plain(USER, PASSWORD)),
            "MAIL FROM:<a@example.net>",
            "RCPT TO:<friend@elsewhere.example>",
            "DATA",
            "Subject: relayed",
            "",
            "after AUTH",
            ".",
            "QUIT",
        ]),
    );
    run.assert_answers(&[
        "250 AUTH PLAIN LOGIN",
        "250 2.1.0",
        "553 5.7.1",
        "250 2.0.0",
        "235 2.7.0",
        "250 2.1.0",
        "250 2.1.5",
        "354",
        "250 2.0.0",
        "221 2.0.0",
    ]);
    let stored = queued(&spooldir);
    assert_eq!(stored.len(), 1, "{stored:#?}");
    let m = &stored[0];
    assert!(
        m.contains("\r\nRCPT TO:<friend@elsewhere.example>\r\n"),
        "{m}"
    );
    assert!(m.contains("with ESMTPA via TCP;"), "{m}");
    assert!(m.contains("\r\n\r\nafter AUTH\r\n.\r\n"), "{m}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mail_rules_still_apply_after_auth() {
    let dir = scratch("auth-rules");
    let spooldir = spool_dir(&dir);
    let rules = dir.join("mailrules");
    std::fs::write(&rules, "d*:blocked@*:No\n").unwrap();
    let run = session(
        SPOOL,
        &[
            ("SPOOLDIR", spooldir.to_str().unwrap()),
            ("CHECKPASSWORD", CHECKPW),
            ("MAILRULES", rules.to_str().unwrap()),
        ],
        &script(&[
            "EHLO client.test",
            "MAIL FROM:<a@example.net>",
            "RCPT TO:<ok@example.com>",
            "RSET",
            "AUTH LOGIN",
            &b64(USER),
            &b64(PASSWORD),
            "MAIL FROM:<a@example.net>",
            "RCPT TO:<blocked@example.com>",
            "RCPT TO:<ok@example.com>",
            "DATA",
            "Subject: rules",
            "",
            "x",
            ".",
            "QUIT",
        ]),
    );
    run.assert_answers(&[
        "250 AUTH PLAIN LOGIN",
        "250 2.1.0",
        "553 5.7.1 Relaying denied",
        "250 2.0.0",
        "334 VXNlcm5hbWU6",
        "334 UGFzc3dvcmQ6",
        "235 2.7.0",
        "250 2.1.0",
        "553 5.7.1 No",
        "250 2.1.5",
        "354",
        "250 2.0.0",
        "221 2.0.0",
    ]);
    let stored = queued(&spooldir);
    assert_eq!(stored.len(), 1);
    assert!(stored[0].contains("RCPT TO:<ok@example.com>\r\n"));
    assert!(!stored[0].contains("blocked@"), "{}", stored[0]);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// The checkpassword interface.

/// The program gets exactly `user\0password\0timestamp\0` on fd 3 and `true` as its one
/// argument (after those of CHECKPASSWORD), with neither its stdin nor its stdout on the
/// SMTP connection: what it prints never reaches the client.
#[test]
fn checkpassword_gets_three_fields_and_true() {
    let dir = scratch("auth-record");
    let cases = [
        (
            "plain",
            vec![
                format!("AUTH PLAIN {}", plain(USER, PASSWORD)),
                "QUIT".to_string(),
            ],
            PASSWORD,
            "235 2.7.0",
        ),
        (
            "login",
            vec![
                "AUTH LOGIN".to_string(),
                b64(USER),
                b64(ODD),
                "QUIT".to_string(),
            ],
            ODD,
            "535 5.7.8",
        ),
    ];
    for (name, auth, password, verdict) in cases {
        let prefix = dir.join(name);
        let program = format!("{CHECKPW} --record {}", prefix.display());
        let mut lines = vec!["HELO client.test".to_string()];
        lines.extend(auth);
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let run = auth_echo(&[("CHECKPASSWORD", &program)], &script(&lines));
        assert!(
            run.answers().iter().any(|a| a.starts_with(verdict)),
            "{name}: {}",
            run.out
        );
        assert!(!run.out.contains("noise"), "{name}: {}", run.out);
        let got = recorded(&prefix);
        assert_eq!(got.args, b"true\0", "{name}: the arguments");
        assert_eq!(
            got.fd3.iter().filter(|&&b| b == 0).count(),
            3,
            "{name}: {:?}",
            got.fd3
        );
        assert_eq!(got.fd3.last(), Some(&0), "{name}: {:?}", got.fd3);
        let fields: Vec<&[u8]> = got.fd3[..got.fd3.len() - 1].split(|&b| b == 0).collect();
        assert_eq!(fields[0], USER.as_bytes(), "{name}");
        assert_eq!(fields[1], password.as_bytes(), "{name}");
        assert!(!fields[2].is_empty(), "{name}: empty timestamp");
        assert_eq!(
            got.fds.lines().collect::<Vec<_>>(),
            ["0 /dev/null", "1 /dev/null"],
            "{name}: the program's stdin/stdout: {}",
            got.fds
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// fd 3 is `user\0password\0timestamp\0`: a user name or password holding a NUL cannot be
/// passed on without shifting the fields. PLAIN refuses it (RFC 4616: four fields is
/// malformed); LOGIN must too, whatever the checkpassword program would make of it: a user
/// `alice\0s3cret` with any password would be checked as alice / s3cret (and logged as
/// such, password included), a password `s3cret\0junk` forges the timestamp.
#[test]
fn a_nul_in_a_name_or_password_never_reaches_checkpassword() {
    let dir = scratch("auth-nul");
    let cases = [
        (
            "login-user",
            vec![
                "AUTH LOGIN".to_string(),
                b64(format!("{USER}\0{PASSWORD}")),
                b64("junk"),
            ],
        ),
        (
            "login-password",
            vec![
                "AUTH LOGIN".to_string(),
                b64(USER),
                b64(format!("{PASSWORD}\0junk")),
            ],
        ),
        (
            "plain",
            vec![format!(
                "AUTH PLAIN {}",
                b64(format!("\0{USER}\0{PASSWORD}\0junk"))
            )],
        ),
    ];
    let mut failures = Vec::new();
    for (name, auth) in cases {
        let prefix = dir.join(name);
        let program = format!("{CHECKPW} --record {}", prefix.display());
        let mut lines = vec!["HELO client.test".to_string()];
        lines.extend(auth);
        lines.extend(["MAIL FROM:<a@example.net>".to_string(), "QUIT".to_string()]);
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let input = script(&lines);
        let mut env = CONN.to_vec();
        env.extend([("CHECKPASSWORD", program.as_str()), ("REQUIRE_AUTH", "1")]);
        let o = run_with_input(ECHO, &env, input.as_bytes());
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        // After the greeting and the HELO reply: the reply that ends the AUTH.
        let verdict = out
            .lines()
            .skip(2)
            .find(|l| !l.starts_with("334 "))
            .unwrap_or("")
            .to_string();
        let mut wrong = Vec::new();
        if !(verdict.starts_with("501 5.5.2 ") || verdict.starts_with("535 5.7.8 ")) {
            wrong.push(format!(
                "answered {verdict:?}, expected 501 5.5.2 (or 535 5.7.8)"
            ));
        }
        if out.contains("\r\n250 2.1.0 ") {
            wrong.push("MAIL was accepted under REQUIRE_AUTH".to_string());
        }
        if let Ok(fd3) = std::fs::read(format!("{}.fd3", prefix.display())) {
            wrong.push(format!(
                "checkpassword ran with fd 3 = {:?}",
                String::from_utf8_lossy(&fd3)
            ));
        }
        if err.contains(PASSWORD) {
            wrong.push("the password is in the log".to_string());
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{name}: {}\nstdout:\n{out}stderr:\n{err}",
                wrong.join("; ")
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A program that hangs is killed after min(TIMEOUT, 30 s): `454 4.7.0` in about 2 s with
/// TIMEOUT=2, and the session goes on.
#[test]
fn a_hanging_checkpassword_times_out_with_454() {
    let dir = scratch("auth-hang");
    let prefix = dir.join("hang");
    let program = format!("{CHECKPW} --record {} --hang", prefix.display());
    let mut live = Live::start(ECHO, &[("CHECKPASSWORD", &program), ("TIMEOUT", "2")]);
    live.ask("HELO client.test");
    let started = Instant::now();
    let r = live.ask(&format!("AUTH PLAIN {}", plain(USER, PASSWORD)));
    let took = started.elapsed();
    assert!(r.starts_with("454 4.7.0 "), "{r}");
    assert!(
        took >= Duration::from_millis(1800) && took < Duration::from_secs(8),
        "454 after {took:?}, expected about 2 s"
    );
    // The program was killed and reaped.
    let pid = recorded(&prefix).pid;
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the checkpassword program {pid} is still there"
    );
    // The slow check was not the client's idleness: the session goes on.
    assert!(live.ask("NOOP").starts_with("250 "));
    assert!(live.ask("QUIT").starts_with("221 "));
    let (log, code) = live.finish();
    assert_eq!(code, 0);
    assert!(log.contains("AUTH could not be checked"), "{log}");
    assert!(log.contains("timed out"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A crash (SIGSEGV) and exit 111 are temporary failures: `454 4.7.0`, logged. They are
/// the server's trouble, not failed attempts of the client: five of them do not close
/// the session.
#[test]
fn a_crashing_checkpassword_is_454() {
    for (mode, why) in [("--segv", "killed by a signal"), ("--temp", "exited 111")] {
        let program = format!("{CHECKPW} {mode}");
        let mut lines = vec!["EHLO client.test".to_string()];
        for _ in 0..5 {
            lines.push(format!("AUTH PLAIN {}", plain(USER, PASSWORD)));
        }
        lines.extend(["NOOP".to_string(), "QUIT".to_string()]);
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let run = auth_echo(&[("CHECKPASSWORD", &program)], &script(&lines));
        run.assert_answers(&[
            "250 AUTH PLAIN LOGIN",
            "454 4.7.0 Temporary authentication failure",
            "454 4.7.0",
            "454 4.7.0",
            "454 4.7.0",
            "454 4.7.0",
            "250 2.0.0",
            "221 2.0.0",
        ]);
        assert!(run.err.contains("AUTH could not be checked"), "{}", run.err);
        assert!(run.err.contains(why), "{mode}: {}", run.err);
    }
}

#[test]
fn a_missing_checkpassword_is_454_and_logged() {
    let dir = scratch("auth-missing");
    let missing = dir.join("no-such-checkpassword");
    let not_executable = dir.join("not-executable");
    std::fs::write(&not_executable, "#!/bin/sh\nexit 0\n").unwrap();
    for program in [&missing, &not_executable] {
        let path = program.to_str().unwrap();
        let run = auth_echo(
            &[("CHECKPASSWORD", path)],
            &script(&[
                "EHLO client.test",
                &format!("AUTH PLAIN {}", plain(USER, PASSWORD)),
                "AUTH LOGIN",
                &b64(USER),
                &b64(PASSWORD),
                "QUIT",
            ]),
        );
        run.assert_answers(&[
            "250 AUTH PLAIN LOGIN",
            "454 4.7.0",
            "334 VXNlcm5hbWU6",
            "334 UGFzc3dvcmQ6",
            "454 4.7.0",
            "221 2.0.0",
        ]);
        let line = run
            .err
            .lines()
            .find(|l| l.contains("AUTH could not be checked"))
            .unwrap_or_else(|| panic!("no log line:\n{}", run.err));
        assert!(line.contains(path), "{line}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// SPEC 8 in its own test (every other test checks it too): each way an AUTH can end in
/// an error reply is logged without the credentials.
#[test]
fn the_log_never_shows_credentials() {
    let long = b64(format!("\0{USER}\0{PASSWORD}").repeat(300));
    let input = script(&[
        "EHLO client.test",
        &format!("AUTH PLAIN {}", plain(USER, WRONG)),
        "AUTH PLAIN",
        &format!("{}!", plain(USER, PASSWORD)),
        "AUTH PLAIN",
        &long,
        "AUTH LOGIN",
        &b64(USER),
        &format!("{}*", b64(PASSWORD)),
        &format!("AUTH LOGIN {}", b64(USER)),
        &b64(ODD),
        "AUTH PLAIN",
        &plain(USER, WRONG),
        &format!("AUTH LOGIN {}", b64(USER)),
        &b64(WRONG),
    ]);
    let run = auth_echo(&[], &input);
    run.assert_answers(&[
        "250 AUTH PLAIN LOGIN",
        "535 5.7.8",
        "334 ",
        "501 5.5.2",
        "334 ",
        "501 5.5.2",
        "334 VXNlcm5hbWU6",
        "334 UGFzc3dvcmQ6",
        "501 5.5.2",
        "334 UGFzc3dvcmQ6",
        "535 5.7.8",
        "334 ",
        "535 5.7.8",
        "334 UGFzc3dvcmQ6",
        "421 4.7.0",
    ]);
    for shown in [
        "AUTH PLAIN ... -> 535 5.7.8",
        "(AUTH response) -> 501 5.5.2",
        "(AUTH response) -> 535 5.7.8",
        "(AUTH response) -> 421 4.7.0",
    ] {
        assert!(run.err.contains(shown), "{shown:?} not in\n{}", run.err);
    }
    assert!(!run.err.contains(&long[..40]), "{}", run.err);
}

// ---------------------------------------------------------------------------------------
// Debian's checkpw: the real thing, against a password file in a scratch directory.

/// libnss_wrapper.so (Debian libnss-wrapper), or `None` when missing outside CI.
fn nss_wrapper() -> Option<PathBuf> {
    let found = std::fs::read_dir("/usr/lib")
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("libnss_wrapper.so"))
        .chain([PathBuf::from("/usr/lib/libnss_wrapper.so")])
        .find(|p| p.exists());
    if found.is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("libnss_wrapper.so is missing (CI=true: .ci/run must install libnss-wrapper)");
        }
        eprintln!("SKIPPED: libnss-wrapper is not installed");
    }
    found
}

/// checkpw (Debian package checkpw) reads the password from ~USER/Maildir/.password and
/// then becomes the user. The user comes from a passwd file in a scratch directory through
/// nss_wrapper (LD_PRELOAD, set by `env` for checkpw only), so neither /etc/passwd nor any
/// real home directory is touched. checkpw changes its uid and groups, so it needs root.
#[test]
fn debian_checkpw() {
    let (Some(checkpw), Some(env), Some(wrapper)) = (tool("checkpw"), tool("env"), nss_wrapper())
    else {
        return;
    };
    let dir = scratch("auth-checkpw");
    let maildir = dir.join("home/alice/Maildir");
    std::fs::create_dir_all(&maildir).unwrap();
    let pwfile = maildir.join(".password");
    std::fs::write(&pwfile, format!("{PASSWORD}\n")).unwrap();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    let meta = std::fs::metadata(&pwfile).unwrap();
    if meta.uid() != 0 {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI runs as root: checkpw must be tested"
        );
        eprintln!("SKIPPED: checkpw changes uid and groups, which needs root");
        return;
    }
    let (uid, gid) = (meta.uid(), meta.gid());
    let passwd = dir.join("passwd");
    let group = dir.join("group");
    std::fs::write(
        &passwd,
        format!(
            "alice:x:{uid}:{gid}:Alice:{}:/bin/sh\n",
            dir.join("home/alice").display()
        ),
    )
    .unwrap();
    std::fs::write(&group, format!("alice:x:{gid}:\n")).unwrap();
    let program = format!(
        "{} LD_PRELOAD={} NSS_WRAPPER_PASSWD={} NSS_WRAPPER_GROUP={} {}",
        env.display(),
        wrapper.display(),
        passwd.display(),
        group.display(),
        checkpw.display()
    );
    assert_eq!(
        program.split_whitespace().count(),
        5,
        "a path with white space: {program}"
    );
    let run = auth_echo(
        &[("CHECKPASSWORD", &program)],
        &script(&[
            "EHLO client.test",
            &format!("AUTH PLAIN {}", plain(USER, WRONG)),
            &format!("AUTH PLAIN {}", plain("bob", PASSWORD)),
            "AUTH LOGIN",
            &b64(USER),
            &b64(PASSWORD),
            "MAIL FROM:<a@example.net>",
            "QUIT",
        ]),
    );
    run.assert_answers(&[
        "250 AUTH PLAIN LOGIN",
        "535 5.7.8",
        "535 5.7.8",
        "334 VXNlcm5hbWU6",
        "334 UGFzc3dvcmQ6",
        "235 2.7.0",
        "250 2.1.0",
        "221 2.0.0",
    ]);
    assert!(
        run.err.contains("AUTH accepted for user alice"),
        "{}",
        run.err
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// Real clients under tcpserver.

/// swaks with `--auth MECH`: the good password delivers (exit 0, 235 in the transcript),
/// the wrong one fails the AUTH (exit 28, 535 in the transcript, nothing sent).
#[test]
fn swaks_auth_plain_and_login() {
    let Some(swaks) = tool("swaks") else {
        return;
    };
    let Some(server) = Server::start(&[ECHO], &[("CHECKPASSWORD", CHECKPW)], 10) else {
        return;
    };
    let mut sessions = 0;
    for mech in ["PLAIN", "LOGIN"] {
        for (password, code) in [(PASSWORD, 0), (WRONG, 28)] {
            let mut cmd = command(&swaks, &[]);
            cmd.args(["--server", &format!("127.0.0.1:{}", server.port)])
                .args(["--from", "a@example.net", "--to", "b@example.com"])
                .args(["--helo", "client.test", "--timeout", "20"])
                .args(["--auth", mech, "--auth-user", USER])
                .args(["--auth-password", password]);
            let ran = run_bounded(cmd, Duration::from_secs(60));
            sessions += 1;
            let t = ran.all();
            assert_eq!(ran.code, Some(code), "{mech} {password}:\n{t}");
            // Whole lines of the transcript only: not `Trying 127.0.0.1:PORT...`.
            let client = swaks_client_lines(&t);
            let server_lines = swaks_server_lines(&t);
            assert!(
                client
                    .iter()
                    .any(|l| l.starts_with(&format!("AUTH {mech}"))),
                "{mech}:\n{t}"
            );
            if mech == "LOGIN" {
                assert!(server_lines.contains(&"334 VXNlcm5hbWU6"), "{t}");
                assert!(server_lines.contains(&"334 UGFzc3dvcmQ6"), "{t}");
            }
            if code == 0 {
                assert!(
                    server_lines.contains(&"235 2.7.0 Authentication successful"),
                    "{t}"
                );
                assert!(
                    t.lines().any(|l| common::like(
                        l,
                        &format!(
                            "<-  250 2.0.0 Received # bytes for 1 recipient(s), queue id {}",
                            common::QUEUE_ID
                        )
                    )),
                    "{t}"
                );
            } else {
                assert!(
                    t.lines()
                        .any(|l| l == "<** 535 5.7.8 Authentication credentials invalid"),
                    "{t}"
                );
                assert!(!client.iter().any(|l| l.starts_with("MAIL FROM")), "{t}");
                assert!(!t.contains(" -> MAIL FROM"), "{t}");
            }
        }
    }
    let log = wait_for_ends(&server, sessions);
    let messages = log_lines_without_prefix(&log);
    let count = |m: &str| messages.iter().filter(|&&l| l == m).count();
    assert_eq!(count("AUTH accepted for user alice"), 2, "{log}");
    assert_eq!(count("AUTH refused for user alice"), 2, "{log}");
    assert_eq!(
        log.matches("AUTH accepted for user alice").count(),
        2,
        "{log}"
    );
    assert_eq!(log.matches("with ESMTPA").count(), 2, "{log}");
    assert_no_secrets(&log, "");
}

/// Python's smtplib: `login()` with the mechanism it picks (PLAIN, with an initial
/// response) and with LOGIN forced; a wrong password raises SMTPAuthenticationError 535.
const SMTPLIB_SCRIPT: &str = r#"
import smtplib, sys
port, mech, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = smtplib.SMTP('127.0.0.1', port, local_hostname='client.test', timeout=10)
s.set_debuglevel(1)
s.ehlo()
print('AUTHEXT', ' '.join(s.esmtp_features.get('auth', '').split()))
if mech != 'any':
    s.esmtp_features['auth'] = mech
try:
    code, text = s.login('alice', password)
    print('LOGIN', code, text.decode())
    print('SEND', s.sendmail('a@example.net', ['b@example.com'], b'Subject: x\r\n\r\nhi\r\n'))
except smtplib.SMTPAuthenticationError as e:
    print('AUTHERROR', e.smtp_code, e.smtp_error.decode())
print('NOOP', s.noop()[0])
print('QUIT', s.quit()[0])
"#;

#[test]
fn python_smtplib_login() {
    let Some(python) = python() else {
        return;
    };
    let Some(server) = Server::start(&[ECHO], &[("CHECKPASSWORD", CHECKPW)], 10) else {
        return;
    };
    let mut refused = 0;
    for (mech, sent) in [("any", "AUTH PLAIN "), ("LOGIN", "AUTH LOGIN")] {
        for password in [PASSWORD, WRONG] {
            let mut cmd = command(&python, &[]);
            cmd.args([
                "-c",
                SMTPLIB_SCRIPT,
                &server.port.to_string(),
                mech,
                password,
            ]);
            let ran = run_bounded(cmd, Duration::from_secs(30));
            let out = &ran.stdout;
            assert_eq!(ran.code, Some(0), "{mech} {password}:\n{}", ran.all());
            // The script's whole output, line by line.
            let lines: Vec<&str> = out.lines().collect();
            let expected: &[&str] = if password == PASSWORD {
                &[
                    "AUTHEXT PLAIN LOGIN",
                    "LOGIN 235 2.7.0 Authentication successful",
                    "SEND {}",
                    "NOOP 250",
                    "QUIT 221",
                ]
            } else {
                // smtplib tries every mechanism both sides know: PLAIN and LOGIN.
                refused += if mech == "any" { 2 } else { 1 };
                &[
                    "AUTHEXT PLAIN LOGIN",
                    "AUTHERROR 535 5.7.8 Authentication credentials invalid",
                    "NOOP 250",
                    "QUIT 221",
                ]
            };
            assert_eq!(lines, expected, "{out}");
            assert!(ran.stderr.contains(sent), "{mech}: {}", ran.stderr);
        }
    }
    let log = wait_for_ends(&server, 4);
    let messages = log_lines_without_prefix(&log);
    let count = |m: &str| messages.iter().filter(|&&l| l == m).count();
    assert_eq!(count("AUTH accepted for user alice"), 2, "{log}");
    assert_eq!(count("AUTH refused for user alice"), refused, "{log}");
    assert_eq!(
        log.matches("AUTH accepted for user alice").count(),
        2,
        "{log}"
    );
    assert_no_secrets(&log, "");
}
