//! Findings of the security review (issue "Security review findings") on the front ends,
//! each reproduced through the real binaries: AUTH behind SMTPREJECT, credentials in the
//! log, HELO bytes that forward could not read back, the envelope bounded in bytes,
//! control characters in settings and in quoted local parts, log amplification, and a
//! checkpassword that leaves a child behind.

mod common;
use common::{command, run_bounded, run_with_input, scratch, ECHO, REJECT, SPOOL};
use std::path::Path;
use std::time::{Duration, Instant};

const FORWARD: &str = env!("CARGO_BIN_EXE_forward");
const CHECKPW: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/checkpassword-test");

/// Reply lines (greeting included) and log lines without their `PROGRAM[PID]: ` prefix.
fn session(program: &str, env: &[(&str, &str)], input: &[u8]) -> (Vec<String>, Vec<String>) {
    let out = run_with_input(program, env, input);
    let replies = String::from_utf8_lossy(&out.stdout)
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let log = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| match l.split_once("]: ") {
            Some((_, rest)) => rest.to_string(),
            None => l.to_string(),
        })
        .collect();
    (replies, log)
}

/// `AUTH PLAIN` initial response for alice / s3cret, the password checkpassword-test takes.
const ALICE: &str = "AGFsaWNlAHMzY3JldA==";

#[test]
fn reject_offers_no_auth_and_never_runs_checkpassword() {
    let dir = scratch("reject-auth");
    let record = dir.join("cp");
    let program = format!("{CHECKPW} --record {}", record.display());
    let (replies, _) = session(
        REJECT,
        &[
            ("SMTPREJECT", "closed for maintenance"),
            ("CHECKPASSWORD", &program),
        ],
        format!("EHLO x\r\nAUTH PLAIN {ALICE}\r\nAUTH LOGIN\r\nQUIT\r\n").as_bytes(),
    );
    assert!(replies[1].starts_with("250-"), "{replies:?}");
    assert_eq!(
        replies[2..],
        [
            "250-SIZE 0",
            "250-8BITMIME",
            "250-SMTPUTF8",
            "250-ENHANCEDSTATUSCODES",
            "250 PIPELINING",
            "503 5.5.1 AUTH not available",
            "503 5.5.1 AUTH not available",
            "221 2.0.0 Good bye",
        ]
    );
    assert!(
        !record.with_extension("fd3").exists(),
        "checkpassword ran while SMTPREJECT was set"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn auth_lines_are_never_logged_however_spaced() {
    let secret = "dGVzdAB0ZXN0AHRlc3Q=";
    let input = format!(
        " AUTH PLAIN {secret}\r\nAUTH\tPLAIN {secret}\r\n\tauth plain {secret}\r\n\
         aUtH\0PLAIN {secret}\r\nAUTH {secret}\r\nQUIT\r\n"
    );
    let (_, log) = session(ECHO, &[], input.as_bytes());
    let logged: Vec<&str> = log
        .iter()
        .map(String::as_str)
        .filter(|l| !l.starts_with("end: "))
        .collect();
    assert_eq!(
        logged,
        [
            "AUTH PLAIN ... -> 500 5.5.1 Command not recognized",
            "AUTH PLAIN ... -> 500 5.5.1 Command not recognized",
            "AUTH plain ... -> 500 5.5.1 Command not recognized",
            "AUTH ... -> 501 5.5.2 NUL byte in command",
            "AUTH ... -> 503 5.5.1 AUTH not available",
        ]
    );
    assert!(log.iter().all(|l| !l.contains(secret)), "{log:#?}");
}

/// 3,000 bytes of `\xff` in HELO became 9,000 bytes in the spool, which forward refused
/// (moved to bad/, no bounce). Now what the front end stores, forward reads back.
#[test]
fn hostile_helo_is_stored_so_forward_can_read_it() {
    let spool = scratch("helo-roundtrip");
    for len in [1, 3000, 4091] {
        let mut input = b"HELO ".to_vec();
        input.extend(std::iter::repeat_n(0xffu8, len));
        input.extend_from_slice(
            b"\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n",
        );
        let (replies, log) = session(
            SPOOL,
            &[("SPOOLDIR", spool.to_str().unwrap()), ("RELAYCLIENT", "")],
            &input,
        );
        assert!(
            replies[5].starts_with("250 2.0.0 Ok: queued as "),
            "{replies:?} {log:?}"
        );
    }
    let listed = run_bounded(
        {
            let mut c = command(FORWARD, &[("SPOOLDIR", spool.to_str().unwrap())]);
            c.arg("--list");
            c
        },
        Duration::from_secs(30),
    );
    assert_eq!(listed.code, Some(0), "{}", listed.stderr);
    let last = listed.stdout.lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("3 message"), "{}", listed.stdout);
    assert!(!spool.join("bad").exists() || is_empty(&spool.join("bad")));
    for f in std::fs::read_dir(spool.join("new")).unwrap() {
        let text = std::fs::read(f.unwrap().path()).unwrap();
        let helo = text.split(|&b| b == b'\n').next().unwrap();
        assert!(helo.len() <= 4096 + 6, "HELO line of {} bytes", helo.len());
        assert!(helo[5..helo.len() - 1].iter().all(|&b| b == b'?'));
    }
    let _ = std::fs::remove_dir_all(spool);
}

fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

/// 10,000 recipients of 4,000 bytes were accepted: 40 MB per unauthenticated session.
#[test]
fn the_envelope_is_bounded_in_bytes() {
    let local = "l".repeat(3990);
    let mut input = b"MAIL FROM:<a@b.c>\r\n".to_vec();
    for i in 0..300 {
        input.extend_from_slice(format!("RCPT TO:<{local}{i:04}@e.f>\r\n").as_bytes());
    }
    input.extend_from_slice(b"QUIT\r\n");
    let (replies, _) = session(ECHO, &[], &input);
    let accepted = replies
        .iter()
        .filter(|l| l.starts_with("250 2.1.5 Recipient <"))
        .count();
    let refused = replies
        .iter()
        .filter(|l| *l == "452 4.5.3 Too many recipients")
        .count();
    // 1 MiB holds 262 of these 4,000-byte addresses.
    assert_eq!((accepted, refused), (262, 38), "{:?}", &replies[..3]);
}

#[test]
fn control_characters_in_settings_are_configuration_errors() {
    for (name, value) in [
        ("SMTPGREETING", "mx\x1b[31m"),
        ("FIXUP_RECEIVED_HOST", "a\nb"),
        ("HEADER_ADD", "X-A: 1\rX-B: 2"),
    ] {
        let (replies, log) = session(ECHO, &[(name, value)], b"QUIT\r\n");
        assert_eq!(replies, ["421 4.3.0 Configuration error, try again later"]);
        assert_eq!(
            log,
            [format!(
                "configuration error: {name}={value:?} holds a control character"
            )]
        );
    }
    // forward: a LF in HELOHOST would send two commands and shift every reply by one.
    let spool = scratch("helohost-lf");
    let ran = run_bounded(
        {
            let mut c = command(
                FORWARD,
                &[
                    ("SPOOLDIR", spool.to_str().unwrap()),
                    ("HELOHOST", "me\r\nRSET"),
                ],
            );
            c.arg("127.0.0.1:1");
            c
        },
        Duration::from_secs(30),
    );
    assert_eq!(ran.code, Some(78), "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("HELOHOST=\"me\\r\\nRSET\" holds a control character"),
        "{}",
        ran.stderr
    );
    let _ = std::fs::remove_dir_all(spool);
}

#[test]
fn control_characters_in_quoted_local_parts_are_refused() {
    let (replies, _) = session(
        ECHO,
        &[],
        "MAIL FROM:<\"a\u{85}b\"@b.c>\r\nMAIL FROM:<\"a b\"@b.c>\r\nRCPT TO:<\"x\u{9f}\"@d.e>\r\nQUIT\r\n"
            .as_bytes(),
    );
    assert_eq!(
        replies[1..],
        [
            "501 5.5.2 Syntax error in address",
            "250 2.1.0 Sender <\"a b\"@b.c> accepted",
            "501 5.5.2 Syntax error in address",
            "221 2.0.0 Good bye",
        ]
    );
}

/// 2,000 lines of `MAIL FROM:<` + 4,080 x `\xff` + `>` (8 MB in) gave 33 MB of log.
#[test]
fn hostile_lines_cannot_amplify_the_log() {
    let mut line = b"MAIL FROM:<".to_vec();
    line.extend(std::iter::repeat_n(0xffu8, 4080));
    line.extend_from_slice(b">\r\n");
    let input: Vec<u8> = line.repeat(2000);
    let out = run_with_input(ECHO, &[], &input);
    assert!(
        out.stderr.len() < input.len() / 4,
        "{} bytes of log for {} bytes in",
        out.stderr.len(),
        input.len()
    );
    let log = String::from_utf8_lossy(&out.stderr);
    let first = log.lines().next().unwrap();
    let quoted = first.split_once("]: ").unwrap().1;
    let want = format!(
        "MAIL FROM:<{}… -> 501 5.5.2 Syntax error in address",
        "\\xff".repeat(200 - 11)
    );
    assert_eq!(quoted, want);
    // And with MAXNOTIMPL the syntax errors end the session like unknown commands.
    let (replies, _) = session(ECHO, &[("MAXNOTIMPL", "3")], &input);
    assert_eq!(
        replies[1..],
        [
            "501 5.5.2 Syntax error in address",
            "501 5.5.2 Syntax error in address",
            "501 5.5.2 Syntax error in address",
            "503 5.5.0 Too many unrecognized commands, closing",
        ]
    );
}

/// A checkpassword that starts a child and hangs: at the timeout the whole process group
/// dies, so nothing keeps the log pipe (our stderr) open.
#[test]
fn checkpassword_timeout_kills_its_children_too() {
    let dir = scratch("cp-children");
    let script = dir.join("checkpassword");
    std::fs::write(&script, "#!/bin/sh\nsleep 100 &\nsleep 100\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let started = Instant::now();
    let out = run_with_input(
        ECHO,
        &[
            ("CHECKPASSWORD", script.to_str().unwrap()),
            ("TIMEOUT", "2"),
        ],
        format!("AUTH PLAIN {ALICE}\r\nQUIT\r\n").as_bytes(),
    );
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(30),
        "the session's stderr stayed open for {took:?}"
    );
    let replies = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        replies.split("\r\n").skip(1).collect::<Vec<_>>(),
        [
            "454 4.7.0 Temporary authentication failure",
            "221 2.0.0 Good bye",
            ""
        ]
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// The environment may hold names and values that are not UTF-8 (a tcpserver rules file,
/// an inetd, a shell can put them there). Reading `${PROTO}*` through `std::env::vars`
/// panicked on them: every connection answered nothing and died (exit 134). Now each front
/// end reads only its own variables, byte-wise.
#[test]
fn environment_entries_that_are_not_utf8_are_ignored() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let input = b"EHLO client.example\r\nMAIL FROM:<a@example.net>\r\nQUIT\r\n";
    for (program, extra) in [
        (ECHO, None),
        (REJECT, Some(("SMTPREJECT", "Closed for maintenance"))),
    ] {
        let mut cmd = command(program, &[("PROTO", "TCP"), ("TCPREMOTEIP", "192.0.2.7")]);
        cmd.env(
            OsStr::from_bytes(b"X\xff"),
            OsStr::from_bytes(b"bad \xfe value"),
        )
        .env("LANG_VALUE", OsStr::from_bytes(b"\xc3\x28"))
        .env(OsStr::from_bytes(b"TCP\xff"), "x");
        if let Some((k, v)) = extra {
            cmd.env(k, v);
        }
        let out = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(input)?;
                child.wait_with_output()
            })
            .expect("run");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = stdout.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(out.status.code(), Some(0), "{program}: {lines:?}");
        let mail = if extra.is_some() {
            "451 4.3.2 Closed for maintenance"
        } else {
            "250 2.1.0 Sender <a@example.net> accepted"
        };
        assert_eq!(lines.first().map(|l| l.starts_with("220 ")), Some(true));
        assert_eq!(
            lines[lines.len() - 2..],
            [mail, "221 2.0.0 Good bye"],
            "{program}"
        );
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(
            log.lines()
                .any(|l| l.contains("]: end: remote 192.0.2.7 helo client.example ")),
            "{program}: {log}"
        );
    }
}

/// The front ends start without Rust's runtime (`#![no_main]`), which used to ignore
/// SIGPIPE for them: a client that closes its end while we write must still end the
/// session with a log line and a normal exit, not kill the process with SIGPIPE.
#[test]
fn a_client_gone_while_we_write_is_logged_not_a_signal() {
    use std::io::Write;
    use std::os::unix::process::ExitStatusExt;
    for program in [ECHO, SPOOL] {
        let spool = scratch("sigpipe-spool");
        let spool_dir = spool.to_str().unwrap();
        let mut child = command(program, &[("SPOOLDIR", spool_dir), ("RELAYCLIENT", "")])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        // Close the reading end of its stdout before it writes its greeting.
        drop(child.stdout.take());
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(&b"NOOP\r\n".repeat(64));
        drop(stdin);
        let out = child.wait_with_output().expect("wait");
        assert_eq!(out.status.signal(), None, "{program}: killed by a signal");
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(
            log.lines().any(|l| l.ends_with(": client went away")),
            "{program}: {log}"
        );
    }
}
