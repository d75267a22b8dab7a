//! forward (SPEC 7) against real servers: tests/forward_server.py (aiosmtpd, or its raw
//! mode that records how commands arrived and can misbehave) and Postfix's smtp-sink.
//! Spool files are written in the spool format directly or stored by the real
//! smtpfront-spool; bounces are caught by a SENDMAIL script that saves argv and stdin.
//!
//! Every run is bounded: forward is killed after RUN_LIMIT, servers when dropped.

mod common;
use common::postfix::{self, Postfix};
use common::spool::{spool_dir, stuffed};
use common::{command, free_port, run_with_input, scratch, tool, Server, REJECT, SPOOL};
use smtpfront::spool::format::Header;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime};

const FORWARD: &str = env!("CARGO_BIN_EXE_forward");
const RUN_LIMIT: Duration = Duration::from_secs(120);
/// Names of spool files: they sort by arrival and carry the arrival time (1796000000 is
/// late November 2026, in the past of these tests; 1000000000 is 2001).
const OLD: &str = "1796000000.000001.1.0";
const OLDER: &str = "1795999000.000001.1.0";
const ANCIENT: &str = "1000000000.000001.1.0";

// ------------------------------------------------------------------------ the remote

/// tests/forward_server.py on a free port; killed when dropped.
struct Remote {
    child: Child,
    port: u16,
    out: PathBuf,
}

/// What the remote accepted: its envelope lines and the exact message bytes.
#[derive(Debug)]
struct Received {
    envelope: String,
    data: Vec<u8>,
}

impl Remote {
    /// `config`: extra JSON members, e.g. `"mode": "raw", "pipelining": false`.
    fn start(config: &str) -> Option<Remote> {
        let (child, port, out) = common::start_forward_server(config, "forward-remote")?;
        Some(Remote { child, port, out })
    }

    fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn received(&self) -> Vec<Received> {
        let mut names: Vec<String> = fs::read_dir(&self.out)
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().into_string().ok())
            .filter(|n| n.starts_with("msg-") && n.ends_with(".eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|n| {
                let base = n.strip_suffix(".eml").unwrap();
                Received {
                    envelope: fs::read_to_string(self.out.join(format!("{base}.env"))).unwrap(),
                    data: fs::read(self.out.join(n)).unwrap(),
                }
            })
            .collect()
    }

    /// Raw mode: each connection's reads, in order (CR and LF shown as `\r`, `\n`).
    fn reads(&self) -> Vec<String> {
        let mut all = Vec::new();
        for n in 1.. {
            let Ok(t) = fs::read_to_string(self.out.join(format!("transcript-{n}.txt"))) else {
                break;
            };
            all.extend(t.lines().map(str::to_string));
        }
        all
    }
}

impl Remote {
    /// Waits until `n` messages were received (a relay delivers when it likes); returns them.
    fn wait_received(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + RUN_LIMIT;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} messages received",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------------ the spool

/// Writes `new/ID` in the spool format; returns its bytes.
fn put(dir: &Path, id: &str, sender: &str, rcpts: &[&str], message: &[u8]) -> Vec<u8> {
    let header = Header {
        helo: "client.test".into(),
        sender: sender.into(),
        body: Some("8BITMIME".into()),
        smtputf8: false,
        recipients: rcpts.iter().map(|r| r.to_string()).collect(),
    };
    let mut file = header.render();
    file.extend_from_slice(&stuffed(message));
    fs::write(dir.join("new").join(id), &file).unwrap();
    file
}

fn queue(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir.join("new"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn file(dir: &Path, id: &str) -> Vec<u8> {
    fs::read(dir.join("new").join(id)).unwrap()
}

/// Each bounce: (argv, message).
fn bounces(dir: &Path) -> Vec<(String, String)> {
    let mut names: Vec<PathBuf> = fs::read_dir(dir.join("bounces"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "msg"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| {
            let argv = fs::read_to_string(p.with_extension("argv")).unwrap();
            (argv, fs::read_to_string(p).unwrap())
        })
        .collect()
}

// ------------------------------------------------------------------------ forward

struct Ran {
    code: i32,
    out: String,
    log: String,
    took: Duration,
}

fn forward(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Ran {
    let d = dir.to_str().unwrap();
    let sendmail = format!("{d}/sendmail");
    let mut all = vec![
        ("SPOOLDIR", d),
        ("SENDMAIL", sendmail.as_str()),
        ("HELOHOST", "relay.test"),
    ];
    all.extend_from_slice(env);
    run(command(FORWARD, &all).args(args))
}

/// forward with its address space limited to `kib` KiB (`ulimit -v`): a run that tried to
/// hold what the remote or a file sends would fail to allocate and abort.
fn forward_limited(dir: &Path, kib: u32, args: &[&str]) -> Ran {
    let d = dir.to_str().unwrap();
    let sendmail = format!("{d}/sendmail");
    let env = [
        ("SPOOLDIR", d),
        ("SENDMAIL", sendmail.as_str()),
        ("HELOHOST", "relay.test"),
    ];
    let script = format!("ulimit -v {kib} && exec \"$0\" \"$@\"");
    run(command("/bin/sh", &env)
        .args(["-c", &script, FORWARD])
        .args(args))
}

/// forward, killed and failed after `limit` (for runs that used to hang).
fn forward_within(dir: &Path, limit: Duration, args: &[&str]) -> Ran {
    let d = dir.to_str().unwrap();
    let sendmail = format!("{d}/sendmail");
    let env = [
        ("SPOOLDIR", d),
        ("SENDMAIL", sendmail.as_str()),
        ("HELOHOST", "relay.test"),
    ];
    run_within(command(FORWARD, &env).args(args), limit)
}

/// Runs `cmd` to its end (its output read as it comes); killed and failed after RUN_LIMIT.
fn run(cmd: &mut std::process::Command) -> Ran {
    run_within(cmd, RUN_LIMIT)
}

fn run_within(cmd: &mut std::process::Command, limit: Duration) -> Ran {
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let log = drain(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} ran longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ran {
        code: status.code().unwrap_or(-1),
        out: out.join().unwrap(),
        log: log.join().unwrap(),
        took: started.elapsed(),
    }
}

/// forward's log lines without their `forward[PID]: ` prefix (checked on every line).
fn log_lines(log: &str) -> Vec<&str> {
    log.lines()
        .map(|l| {
            let (pid, text) = l
                .strip_prefix("forward[")
                .and_then(|r| r.split_once("]: "))
                .unwrap_or_else(|| panic!("not a log line: {l:?}"));
            assert!(
                !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()),
                "{l:?}"
            );
            text
        })
        .collect()
}

/// The whole log of a run, line by line.
fn assert_log(log: &str, want: &[&str]) {
    assert_eq!(log_lines(log), want, "the log:\n{log}");
}

/// SPEC 8 as the log applies it: quoted text cut at 200 bytes with `…`.
fn cut(text: &str) -> String {
    match text.get(..200) {
        Some(head) if text.len() > 200 => format!("{head}…"),
        _ => text.to_string(),
    }
}

fn assert_contains(hay: &str, needles: &[&str]) {
    for n in needles {
        assert!(hay.contains(n), "{n:?} missing in:\n{hay}");
    }
}

/// A DSN of SPEC 7 / RFC 3464 for `rcpt` with `status` and `diagnostic`, to `sender`.
fn assert_dsn(bounce: &(String, String), sender: &str, rcpt: &str, status: &str, diag: &str) {
    let (argv, msg) = bounce;
    assert_eq!(argv, &format!("[-i]\n[-f]\n[]\n[--]\n[{sender}]\n"));
    assert_contains(
        msg,
        &[
            &format!("To: <{sender}>\n"),
            "Content-Type: multipart/report; report-type=delivery-status;",
            "Content-Type: text/plain",
            "Content-Type: message/delivery-status\n",
            "Reporting-MTA: dns; relay.test\n",
            "Arrival-Date: ",
            &format!("Final-Recipient: rfc822; {rcpt}\nAction: failed\nStatus: {status}\n"),
            &format!("Diagnostic-Code: {diag}"),
            "Content-Type: text/rfc822-headers\n",
            "Subject: ",
        ],
    );
    let boundary = msg
        .split("boundary=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert_eq!(msg.matches(&format!("--{boundary}\n")).count(), 3, "{msg}");
    assert!(msg.ends_with(&format!("--{boundary}--\n")), "{msg}");
}

fn message(subject: &str, body: &str) -> Vec<u8> {
    format!("From: s@example.net\r\nSubject: {subject}\r\n\r\n{body}").into_bytes()
}

// ------------------------------------------------------------------------ delivery

/// Everything delivered, oldest first, byte for byte: two files written in the spool
/// format and one stored by the real smtpfront-spool through pipes. The queue ends empty.
#[test]
fn all_delivered_oldest_first_byte_for_byte() {
    let Some(remote) = Remote::start("") else {
        return;
    };
    let dir = spool_dir("fw-all");
    let first = message(
        "first",
        ".leading dot\r\n..two dots\r\n.\r\n8-bit: \u{e9}t\u{e9}\r\n",
    );
    put(
        &dir,
        OLD,
        "s@example.net",
        &["a@x.test", "b@x.test"],
        &first,
    );
    let second = message("second", "");
    put(&dir, OLDER, "t@example.net", &["c@x.test"], &second);
    let d = dir.to_str().unwrap();
    let stored = run_with_input(
        SPOOL,
        &[("SPOOLDIR", d), ("RELAYCLIENT", "")],
        b"EHLO c.test\r\nMAIL FROM:<u@example.net>\r\nRCPT TO:<d@x.test>\r\nDATA\r\n\
          Subject: third\r\n\r\n..stuffed by the client\r\n.\r\nQUIT\r\n",
    );
    assert!(String::from_utf8_lossy(&stored.stdout).contains("queued as"));
    assert_eq!(queue(&dir).len(), 3);

    let ran = forward(&dir, &[], &[&remote.target()]);
    assert_eq!(ran.code, 0, "{}", ran.log);
    assert!(queue(&dir).is_empty(), "{}", ran.log);
    let got = remote.received();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].data, second, "the older file goes first");
    let size = stuffed(&second).len();
    assert_eq!(
        got[0].envelope,
        format!("HELO relay.test\nMAIL t@example.net SIZE={size} BODY=8BITMIME\nRCPT c@x.test\n")
    );
    assert_eq!(got[1].data, first);
    assert!(got[1].envelope.ends_with("RCPT a@x.test\nRCPT b@x.test\n"));
    let third = String::from_utf8(got[2].data.clone()).unwrap();
    assert!(third.starts_with("Received: from c.test"), "{third}");
    assert!(
        third.ends_with("\r\nSubject: third\r\n\r\n.stuffed by the client\r\n"),
        "{third}"
    );
    assert_contains(
        &ran.log,
        &["forward[", "to <a@x.test>: delivered: 250", "removed"],
    );
    assert!(bounces(&dir).is_empty());
}

/// 250, 550 and 451 for three recipients: the file is rewritten with only the 451 one, the
/// sender gets a DSN for the 550 one, exit 75; the next run delivers the rest.
#[test]
fn mixed_replies_rewrite_bounce_and_retry() {
    let rcpt = r#""rcpt": {"bad@x.test": "550 5.1.1 No such user", "later@x.test": "451 4.2.0 Mailbox busy"}"#;
    let Some(remote) = Remote::start(rcpt) else {
        return;
    };
    let dir = spool_dir("fw-mixed");
    let msg = message("mixed", "body\r\n");
    let before = put(
        &dir,
        OLD,
        "s@example.net",
        &["ok@x.test", "bad@x.test", "later@x.test"],
        &msg,
    );
    let ran = forward(&dir, &[], &[&remote.target()]);
    assert_eq!(ran.code, 75, "{}", ran.log);
    let got = remote.received();
    assert_eq!(got.len(), 1);
    let size = stuffed(&msg).len();
    let mail = format!("MAIL s@example.net SIZE={size} BODY=8BITMIME\nRCPT ok@x.test\n");
    assert!(got[0].envelope.ends_with(&mail), "{:?}", got[0]);
    assert_eq!(got[0].data, msg);

    let after = file(&dir, OLD);
    let (header, data) = Header::parse(&after).unwrap();
    assert_eq!(header.recipients, ["later@x.test"]);
    assert_eq!(header.sender, "s@example.net");
    assert!(before.ends_with(data));
    assert_eq!(
        fs::metadata(dir.join("new").join(OLD))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    let b = bounces(&dir);
    assert_eq!(b.len(), 1);
    assert_dsn(
        &b[0],
        "s@example.net",
        "bad@x.test",
        "5.1.1",
        "smtp; 550 5.1.1 No such user",
    );
    assert!(!b[0].1.contains("Final-Recipient: rfc822; later@x.test"));
    assert!(!b[0].1.contains("Final-Recipient: rfc822; ok@x.test"));
    assert_contains(
        &ran.log,
        &[
            "to <ok@x.test>: delivered: 250",
            "to <bad@x.test>: bounced: 550 5.1.1 No such user",
            "to <later@x.test>: deferred: 451 4.2.0 Mailbox busy",
            "rewritten",
        ],
    );
    drop(remote);

    let Some(remote) = Remote::start("") else {
        return;
    };
    let ran = forward(&dir, &[], &[&remote.target()]);
    assert_eq!(ran.code, 0, "{}", ran.log);
    assert!(queue(&dir).is_empty());
    let got = remote.received();
    assert_eq!(got.len(), 1);
    assert!(
        got[0].envelope.ends_with("\nRCPT later@x.test\n"),
        "{:?}",
        got[0]
    );
    assert_eq!(bounces(&dir).len(), 1, "no second bounce");
}

/// 451 at the dot: every file kept as it was, exit 75, no bounce.
#[test]
fn temporary_failure_at_the_dot_keeps_everything() {
    let Some(remote) = Remote::start(r#""dot": "451 4.3.0 Try again later""#) else {
        return;
    };
    let dir = spool_dir("fw-dot451");
    let a = put(
        &dir,
        OLDER,
        "s@example.net",
        &["a@x.test"],
        &message("a", "x\r\n"),
    );
    let b = put(
        &dir,
        OLD,
        "s@example.net",
        &["b@x.test", "c@x.test"],
        &message("b", "y\r\n"),
    );
    let ran = forward(&dir, &[], &[&remote.target()]);
    assert_eq!(ran.code, 75, "{}", ran.log);
    assert_eq!((file(&dir, OLDER), file(&dir, OLD)), (a, b));
    assert!(remote.received().is_empty());
    assert!(bounces(&dir).is_empty());
    assert_contains(
        &ran.log,
        &["to <c@x.test>: deferred: 451 4.3.0 Try again later", "kept"],
    );
}

/// A 5xx at the dot bounces every accepted recipient and removes the file.
#[test]
fn permanent_failure_at_the_dot_bounces_all() {
    let Some(remote) = Remote::start(r#""dot": "554 5.6.0 Content rejected""#) else {
        return;
    };
    let dir = spool_dir("fw-dot554");
    put(
        &dir,
        OLD,
        "s@example.net",
        &["a@x.test", "b@x.test"],
        &message("rejected", "x\r\n"),
    );
    let ran = forward(&dir, &[], &[&remote.target()]);
    assert_eq!(ran.code, 0, "{}", ran.log);
    assert!(queue(&dir).is_empty());
    let b = bounces(&dir);
    assert_eq!(b.len(), 1, "one report for both recipients");
    assert_dsn(
        &b[0],
        "s@example.net",
        "a@x.test",
        "5.6.0",
        "smtp; 554 5.6.0 Content rejected",
    );
    assert_dsn(
        &b[0],
        "s@example.net",
        "b@x.test",
        "5.6.0",
        "smtp; 554 5.6.0 Content rejected",
    );
}

// ------------------------------------------------------------------------ no delivery

/// 554 at the greeting: nothing sent, nothing changed, exit 75 (QUIT sent politely); a
/// message older than QUEUELIFETIME is bounced with the greeting and removed.
#[test]
fn greeting_554_keeps_mail_and_expires_old_mail() {
    let Some(remote) = Remote::start(r#""mode": "raw", "greeting": "554 5.3.2 Not now""#) else {
        return;
    };
    let dir = spool_dir("fw-greeting");
    let young = put(
        &dir,
        OLD,
        "s@example.net",
        &["a@x.test"],
        &message("young", "x\r\n"),
    );
    put(
        &dir,
        ANCIENT,
        "s@example.net",
        &["b@x.test"],
        &message("old", "x\r\n"),
    );
    let ran = forward(&dir, &[("QUEUELIFETIME", "864000")], &[&remote.target()]);
    assert_eq!(ran.code, 75, "{}", ran.log);
    assert_eq!(queue(&dir), [OLD]);
    assert_eq!(file(&dir, OLD), young);
    assert!(remote.received().is_empty());
    let b = bounces(&dir);
    assert_eq!(b.len(), 1);
    assert_dsn(
        &b[0],
        "s@example.net",
        "b@x.test",
        "4.4.7",
        "smtp; 554 5.3.2 Not now",
    );
    assert_contains(
        &ran.log,
        &["greeting: 554 5.3.2 Not now", "to <b@x.test>: expired"],
    );
    assert_eq!(remote.reads(), ["QUIT\\r\\n"]);
}

/// Nobody listening: exit 75 at once, nothing changed, no bounce.
#[test]
fn connection_refused_changes_nothing() {
    let dir = spool_dir("fw-refused");
    let before = put(
        &dir,
        OLD,
        "s@example.net",
        &["a@x.test"],
        &message("x", "x\r\n"),
    );
    let port = free_port();
    let ran = forward(&dir, &[], &[&format!("127.0.0.1:{port}")]);
    assert_eq!(ran.code, 75, "{}", ran.log);
    assert_eq!(file(&dir, OLD), before);
    assert!(bounces(&dir).is_empty());
    // SPEC 8: one line for the run, never one per message or recipient.
    let lines = log_lines(&ran.log);
    let want = format!("127.0.0.1:{port}: cannot connect: *: 1 messages, 1 recipients kept");
    common::assert_lines_like(&lines, &[&want]);
}

/// SPEC 8, issue 13: with the primary down, a queue of many messages gives exactly one log
/// line for the run (host, cause, what was kept), not one per message and recipient; a
/// closed port and a 421 greeting alike.
#[test]
fn primary_down_logs_one_line_for_a_queue_of_many() {
    let dir = spool_dir("fw-quiet");
    for i in 0..300u64 {
        let id = format!("1796000000.{i:06}.1.{i}");
        put(
            &dir,
            &id,
            "s@example.net",
            &["a@x.test", "b@x.test"],
            &message("x", "x\r\n"),
        );
    }
    let port = free_port();
    let ran = forward(&dir, &[], &[&format!("127.0.0.1:{port}")]);
    assert_eq!(ran.code, 75, "{}", ran.log);
    assert_eq!(queue(&dir).len(), 300);
    let want = format!("127.0.0.1:{port}: cannot connect: *: 300 messages, 600 recipients kept");
    common::assert_lines_like(&log_lines(&ran.log), &[&want]);

    let Some(remote) = Remote::start(r#""mode": "raw", "greeting": "421 4.3.2 Busy""#) else {
        return;
    };
    let ran = forward(&dir, &[], &[&remote.target()]);
    assert_eq!(ran.code, 75, "{}", ran.log);
    assert_eq!(queue(&dir).len(), 300);
    let want = format!(
        "{}: greeting: 421 4.3.2 Busy: 300 messages, 600 recipients kept",
        remote.target()
    );
    assert_log(&ran.log, &[&want]);
}

/// QUEUELIFETIME=1 and the host unreachable: the old message is bounced (4.4.7, with the
/// reason) and removed; nothing left, so exit 0.
#[test]
fn expired_message_while_unreachable_is_bounced_and_removed() {
    let dir = spool_dir("fw-expired");
    put(
        &dir,
        ANCIENT,
        "s@example.net",
        &["a@x.test", "b@x.test"],
        &message("old", "x\r\n"),
    );
    let port = free_port();
    let ran = forward(
        &dir,
        &[("QUEUELIFETIME", "1")],
        &[&format!("127.0.0.1:{port}")],
    );
    assert_eq!(ran.code, 0, "{}", ran.log);
    assert!(queue(&dir).is_empty());
    let b = bounces(&dir);
    assert_eq!(b.len(), 1);
    assert_dsn(
        &b[0],
        "s@example.net",
        "a@x.test",
        "4.4.7",
        "X-forward; 127.0.0.1:",
    );
    assert_dsn(
        &b[0],
        "s@example.net",
        "b@x.test",
        "4.4.7",
        "X-forward; 127.0.0.1:",
    );
    assert_contains(
        &b[0].1,
        &[
            "Subject: old\n",
            "Arrival-Date: Sun, 9 Sep 2001 01:46:40 +0000",
        ],
    );
    assert_contains(
        &ran.log,
        &[
            "to <a@x.test>: expired",
            "bounce sent to <s@example.net>",
            "removed",
        ],
    );
}

/// The connection closed in the middle of DATA: nothing removed, exit 75.
#[test]
fn connection_closed_mid_data_removes_nothing() {
    let Some(remote) = Remote::start(r#""mode": "raw", "close_in_data": true"#) else {
        return;
    };
    let dir = spool_dir("fw-middata");
    let a = put(
        &dir,
        OLDER,
        "s@example.net",
        &["a@x.test"],
        &message("a", "x\r\ny\r\n"),
    );
    let b = put(
        &dir,
        OLD,
        "s@example.net",
        &["b@x.test"],
        &message("b", "z\r\n"),
    );
    let ran = forward(&dir, &[], &[&remote.target()]);
    assert_eq!(ran.code, 75, "{}", ran.log);
    assert_eq!((file(&dir, OLDER), file(&dir, OLD)), (a, b));
    assert!(bounces(&dir).is_empty());
    // a was given up in DATA (its own lines); b waits without one (SPEC 8).
    assert_contains(
        &ran.log,
        &[
            &format!("{OLDER} to <a@x.test>: deferred: "),
            &format!(
                "{}: connection given up: 1 messages, 1 recipients kept",
                remote.target()
            ),
        ],
    );
    assert!(!ran.log.contains("to <b@x.test>"), "{}", ran.log);
}

/// The remote stops answering after the message: `-t 2` gives up in about 2 s, exit 75,
/// nothing removed.
#[test]
fn silent_remote_times_out() {
    let Some(remote) = Remote::start(r#""mode": "raw", "hang_at": "dot""#) else {
        return;
    };
    let dir = spool_dir("fw-silent");
    let a = put(
        &dir,
        OLD,
        "s@example.net",
        &["a@x.test"],
        &message("a", "x\r\n"),
    );
    let ran = forward(&dir, &[], &["-t", "2", &remote.target()]);
    assert_eq!(ran.code, 75, "{}", ran.log);
    assert!(ran.took < Duration::from_secs(15), "{:?}", ran.took);
    assert_eq!(file(&dir, OLD), a);
    assert_contains(
        &ran.log,
        &["timeout waiting for the reply to the final dot"],
    );
}

/// A remote that sends an endless reply line, or endless reply lines: the reader keeps the
/// code and a bounded part (4096 bytes a line, 100 lines a reply), reads and drops the rest
/// in bounded memory (forward runs with 32 MiB of address space), and gives up at the
/// timeout, not at some length: nothing changes, exit 75.
#[test]
fn endless_reply_lines_are_read_in_bounded_memory_until_the_timeout() {
    for (start, unit) in [
        ("220 ", "x".repeat(8192)),
        ("", "220-more\r\n".repeat(1000)),
    ] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            use std::io::Write;
            let (mut conn, _) = listener.accept().unwrap();
            let _ = conn.write_all(start.as_bytes());
            while conn.write_all(unit.as_bytes()).is_ok() {} // until forward hangs up
        });
        let dir = spool_dir("fw-endless");
        let msg = message("m", "x\r\n");
        let before = put(&dir, OLD, "s@example.net", &["a@x.test"], &msg);
        let size = stuffed(&msg).len();
        let ran = forward_limited(&dir, 32 * 1024, &["-t", "2", &format!("127.0.0.1:{port}")]);
        assert_eq!(ran.code, 75, "{}", ran.log);
        assert_eq!(file(&dir, OLD), before);
        let why = format!("127.0.0.1:{port}: timeout waiting for the greeting");
        let _ = size;
        assert_log(
            &ran.log,
            &[&format!("{why}: 1 messages, 1 recipients kept")],
        );
        server.join().unwrap();
    }
}

/// PIPELINING offered: MAIL, every RCPT and DATA in one write; RSET between messages.
#[test]
fn pipelining_sends_the_envelope_in_one_write() {
    let Some(remote) = Remote::start(r#""mode": "raw""#) else {
        return;
    };
    let dir = spool_dir("fw-pipe");
    put(
        &dir,
        OLDER,
        "s@example.net",
        &["a@x.test", "b@x.test", "c@x.test"],
        &message("a", "x\r\n"),
    );
    put(&dir, OLD, "", &["d@x.test"], &message("b", "y\r\n"));
    let ran = forward(&dir, &[], &["-h", "me.test", &remote.target()]);
    assert_eq!(ran.code, 0, "{}", ran.log);
    let size = stuffed(&message("a", "x\r\n")).len();
    assert_eq!(
        remote.reads(),
        [
            "EHLO me.test\\r\\n".to_string(),
            format!(
                "MAIL FROM:<s@example.net> SIZE={size} BODY=8BITMIME\\r\\nRCPT TO:<a@x.test>\\r\\n\
                 RCPT TO:<b@x.test>\\r\\nRCPT TO:<c@x.test>\\r\\nDATA\\r\\n"
            ),
            "RSET\\r\\n".to_string(),
            format!(
                "MAIL FROM:<> SIZE={size} BODY=8BITMIME\\r\\nRCPT TO:<d@x.test>\\r\\nDATA\\r\\n"
            ),
            "QUIT\\r\\n".to_string(),
        ]
    );
    assert_eq!(remote.received().len(), 2);
}

/// Many recipients are pipelined in groups of 100 (RFC 2920 3.1: no deadlock when both
/// socket buffers fill), DATA in the last group.
#[test]
fn pipelining_many_recipients_in_groups() {
    let Some(remote) = Remote::start(r#""mode": "raw""#) else {
        return;
    };
    let dir = spool_dir("fw-groups");
    let rcpts: Vec<String> = (0..250).map(|i| format!("r{i}@x.test")).collect();
    let rcpts: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    put(
        &dir,
        OLD,
        "s@example.net",
        &rcpts,
        &message("many", "x\r\n"),
    );
    let ran = forward(&dir, &[], &[&remote.target()]);
    assert_eq!(ran.code, 0, "{}", ran.log);
    let reads = remote.reads();
    let counts: Vec<(usize, bool, bool)> = reads
        .iter()
        .map(|r| {
            (
                r.matches("RCPT TO:").count(),
                r.contains("MAIL"),
                r.contains("DATA"),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [
            (0, false, false),
            (100, true, false),
            (100, false, false),
            (50, false, true),
            (0, false, false)
        ]
    );
    assert_eq!(remote.received()[0].envelope.matches("RCPT ").count(), 250);
}

/// Without PIPELINING, one command at a time.
#[test]
fn without_pipelining_one_command_per_write() {
    let Some(remote) = Remote::start(r#""mode": "raw", "pipelining": false"#) else {
        return;
    };
    let dir = spool_dir("fw-nopipe");
    let msg = message("a", "x\r\n");
    put(&dir, OLD, "s@example.net", &["a@x.test", "b@x.test"], &msg);
    let ran = forward(&dir, &[], &[&remote.target()]);
    assert_eq!(ran.code, 0, "{}", ran.log);
    let reads = remote.reads();
    assert_eq!(reads.len(), 6, "{reads:?}");
    assert!(
        reads[1].starts_with("MAIL FROM:<s@example.net> SIZE="),
        "{reads:?}"
    );
    assert_eq!(
        reads[2..],
        [
            "RCPT TO:<a@x.test>\\r\\n",
            "RCPT TO:<b@x.test>\\r\\n",
            "DATA\\r\\n",
            "QUIT\\r\\n"
        ]
    );
    let got = remote.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, msg);
}

/// EHLO refused with 502: HELO, and neither SIZE nor BODY (no extensions known).
#[test]
fn helo_when_ehlo_is_refused() {
    let Some(remote) = Remote::start(r#""mode": "raw", "ehlo": false"#) else {
        return;
    };
    let dir = spool_dir("fw-helo");
    put(
        &dir,
        OLD,
        "s@example.net",
        &["a@x.test"],
        &message("a", "x\r\n"),
    );
    let ran = forward(&dir, &[], &[&remote.target()]);
    assert_eq!(ran.code, 0, "{}", ran.log);
    let reads = remote.reads();
    assert_eq!(
        reads[..3],
        [
            "EHLO relay.test\\r\\n",
            "HELO relay.test\\r\\n",
            "MAIL FROM:<s@example.net>\\r\\n"
        ]
    );
    assert_eq!(
        remote.received()[0].envelope,
        "HELO relay.test\nMAIL s@example.net\nRCPT a@x.test\n"
    );
}

// ------------------------------------------------------------------------ bounces

/// SPEC 7: never a bounce to a null sender; the failed recipient is dropped with a log line.
#[test]
fn null_sender_bounce_is_dropped() {
    let Some(remote) = Remote::start(r#""rcpt": {"bad@x.test": "550 5.1.1 No such user"}"#) else {
        return;
    };
    let dir = spool_dir("fw-null");
    put(
        &dir,
        OLD,
        "",
        &["bad@x.test"],
        &message("a bounce", "x\r\n"),
    );
    let ran = forward(&dir, &[], &[&remote.target()]);
    assert_eq!(ran.code, 0, "{}", ran.log);
    assert!(queue(&dir).is_empty());
    assert!(bounces(&dir).is_empty());
    assert_contains(
        &ran.log,
        &[
            "to <bad@x.test>: bounced: 550",
            "null sender: no bounce sent",
            "removed",
        ],
    );
}

/// sendmail failing: the failed recipient stays queued (the delivered one does not), exit 75.
#[test]
fn failed_sendmail_keeps_the_bounced_recipient() {
    let Some(remote) = Remote::start(r#""rcpt": {"bad@x.test": "550 5.1.1 No such user"}"#) else {
        return;
    };
    let dir = spool_dir("fw-sendmail-fails");
    fs::write(dir.join("sendmail-exit"), "1").unwrap();
    put(
        &dir,
        OLD,
        "s@example.net",
        &["ok@x.test", "bad@x.test"],
        &message("m", "x\r\n"),
    );
    let ran = forward(&dir, &[], &[&remote.target()]);
    assert_eq!(ran.code, 75, "{}", ran.log);
    let after = file(&dir, OLD);
    assert_eq!(Header::parse(&after).unwrap().0.recipients, ["bad@x.test"]);
    assert_eq!(remote.received().len(), 1);
    assert_contains(
        &ran.log,
        &["bounce to <s@example.net> not sent: sendmail failed"],
    );
}

// ------------------------------------------------------------------------ the spool

/// A file that does not parse (garbage, or incomplete: no final dot) goes to bad/ with a
/// log line; the run goes on and the good message is delivered.
#[test]
fn unparsable_files_go_to_bad() {
    let Some(remote) = Remote::start("") else {
        return;
    };
    let dir = spool_dir("fw-bad");
    fs::write(dir.join("new").join(OLDER), b"garbage\r\n").unwrap();
    let mut incomplete = put(&dir, ANCIENT, "s@example.net", &["a@x.test"], b"x\r\n");
    incomplete.truncate(incomplete.len() - 3);
    fs::write(dir.join("new").join(ANCIENT), &incomplete).unwrap();
    put(
        &dir,
        OLD,
        "s@example.net",
        &["a@x.test"],
        &message("good", "x\r\n"),
    );
    let ran = forward(&dir, &[], &[&remote.target()]);
    assert_eq!(ran.code, 0, "{}", ran.log);
    assert!(queue(&dir).is_empty());
    assert_eq!(
        fs::read(dir.join("bad").join(OLDER)).unwrap(),
        b"garbage\r\n"
    );
    assert_eq!(fs::read(dir.join("bad").join(ANCIENT)).unwrap(), incomplete);
    assert_eq!(
        fs::metadata(dir.join("bad")).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(remote.received().len(), 1);
    assert_contains(&ran.log, &[&format!("{OLDER}: unparsable"), "moved to"]);
}

/// A file with a lone dot line inside the message would end DATA early and turn the rest
/// into commands: it is never sent past that line, the connection is given up, and the file
/// goes to bad/. The next run delivers the message behind it.
#[test]
fn lone_dot_inside_a_file_is_never_sent() {
    let Some(remote) = Remote::start(r#""mode": "raw""#) else {
        return;
    };
    let dir = spool_dir("fw-lonedot");
    let mut bad = Header {
        helo: "client.test".into(),
        sender: "s@example.net".into(),
        body: None,
        smtputf8: false,
        recipients: vec!["a@x.test".into()],
    }
    .render();
    bad.extend_from_slice(b"Subject: x\r\n\r\nbefore\r\n.\r\nRSET\r\nMAIL FROM:<evil@x>\r\n.\r\n");
    fs::write(dir.join("new").join(OLDER), &bad).unwrap();
    put(
        &dir,
        OLD,
        "s@example.net",
        &["b@x.test"],
        &message("good", "x\r\n"),
    );
    let ran = forward(&dir, &[], &[&remote.target()]);
    assert_eq!(ran.code, 75, "{}", ran.log);
    assert_eq!(fs::read(dir.join("bad").join(OLDER)).unwrap(), bad);
    assert_eq!(queue(&dir), [OLD]);
    assert!(
        !remote.reads().iter().any(|r| r.contains("evil")),
        "{:?}",
        remote.reads()
    );
    assert!(remote.received().is_empty());
    assert_contains(&ran.log, &["not properly dot-stuffed", "moved to"]);
    let ran = forward(&dir, &[], &[&remote.target()]);
    assert_eq!(ran.code, 0, "{}", ran.log);
    assert_eq!(remote.received().len(), 1);
}

/// tmp/ files older than 36 hours are removed at the start of a run; younger ones stay.
#[test]
fn stale_tmp_files_are_removed() {
    let dir = spool_dir("fw-stale");
    let stale = dir.join("tmp").join("1790000000.000001.7.0");
    let young = dir.join("tmp").join("1796000000.000001.7.0");
    fs::write(&stale, b"half").unwrap();
    fs::write(&young, b"in progress").unwrap();
    let f = fs::File::options().write(true).open(&stale).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(37 * 3600))
        .unwrap();
    let ran = forward(&dir, &[], &[&format!("127.0.0.1:{}", free_port())]);
    assert_eq!(ran.code, 0, "an empty queue: {}", ran.log);
    assert!(!stale.exists());
    assert!(young.exists());
    assert_contains(&ran.log, &["removed stale"]);
}

/// `--list`: a line per message (id, age, size, sender, count, recipients), then totals.
#[test]
fn list_shows_the_queue() {
    let dir = spool_dir("fw-list");
    let a = message("a", "x\r\n");
    put(&dir, OLDER, "s@example.net", &["a@x.test", "b@x.test"], &a);
    put(&dir, OLD, "", &["c@x.test"], &message("b", ""));
    fs::write(dir.join("new").join("1796000001.000001.1.0"), b"garbage").unwrap();
    let ran = forward(&dir, &[], &["--list"]);
    assert_eq!(ran.code, 0, "{}", ran.log);
    let lines: Vec<&str> = ran.out.lines().collect();
    assert_eq!(lines.len(), 4, "{}", ran.out);
    let (sa, sb) = (stuffed(&a).len(), stuffed(&message("b", "")).len());
    let fields: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(fields[0], OLDER);
    assert!(
        fields[1].contains('h') || fields[1].contains('d'),
        "{}",
        lines[0]
    );
    assert_eq!(
        fields[2..],
        [
            &sa.to_string(),
            "<s@example.net>",
            "2",
            "<a@x.test>",
            "<b@x.test>"
        ]
    );
    assert!(
        lines[1].starts_with(OLD) && lines[1].ends_with(&format!(" {sb} <> 1 <c@x.test>")),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with("1796000001.000001.1.0 unparsable"),
        "{}",
        lines[2]
    );
    assert_eq!(
        lines[3],
        format!("2 messages, {} bytes, 3 recipients, 1 unparsable", sa + sb)
    );
    assert!(
        dir.join("new").join("1796000001.000001.1.0").exists(),
        "--list changes nothing"
    );
}

// ------------------------------------------------------------------------ the lock

/// The lock held (here by the test): exit 75 at once, nothing sent.
#[test]
fn lock_held_exits_at_once() {
    let Some(remote) = Remote::start("") else {
        return;
    };
    let dir = spool_dir("fw-locked");
    let before = put(
        &dir,
        OLD,
        "s@example.net",
        &["a@x.test"],
        &message("m", "x\r\n"),
    );
    let lock = fs::File::create(dir.join("lock")).unwrap();
    lock.try_lock().unwrap();
    let ran = forward(&dir, &[], &[&remote.target()]);
    assert_eq!(ran.code, 75, "{}", ran.log);
    assert!(ran.took < Duration::from_secs(5));
    assert_eq!(file(&dir, OLD), before);
    assert!(remote.received().is_empty());
    assert_contains(&ran.log, &["another forward is running"]);
}

/// Two forwards at once: the second exits 75 while the first delivers; nothing twice.
#[test]
fn two_forwards_at_once_send_nothing_twice() {
    let Some(remote) = Remote::start(r#""mode": "raw", "dot_delay": 2"#) else {
        return;
    };
    let dir = spool_dir("fw-two");
    put(
        &dir,
        OLDER,
        "s@example.net",
        &["a@x.test"],
        &message("a", "x\r\n"),
    );
    put(
        &dir,
        OLD,
        "s@example.net",
        &["b@x.test"],
        &message("b", "x\r\n"),
    );
    let target = remote.target();
    let first = {
        let dir = dir.clone();
        std::thread::spawn(move || forward(&dir, &[], &[&target]))
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !remote.reads().iter().any(|r| r.contains("DATA")) {
        assert!(
            Instant::now() < deadline,
            "the first forward never sent DATA"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = forward(&dir, &[], &[&remote.target()]);
    assert_eq!(second.code, 75, "{}", second.log);
    assert!(second.took < Duration::from_secs(2), "{:?}", second.took);
    let first = first.join().unwrap();
    assert_eq!(first.code, 0, "{}", first.log);
    assert!(queue(&dir).is_empty());
    assert_eq!(remote.received().len(), 2);
}

// ------------------------------------------------------------------------ exit statuses

#[test]
fn usage_errors_exit_64() {
    let dir = spool_dir("fw-usage");
    for args in [
        &[][..],
        &["-t", "soon", "mx"],
        &["-x", "mx"],
        &["a", "b"],
        &["mx:port"],
    ] {
        let ran = forward(&dir, &[], args);
        assert_eq!(ran.code, 64, "{args:?}: {}", ran.log);
        assert_contains(&ran.log, &["usage: forward"]);
    }
}

/// `forward --help` was "unknown option" (exit 64): now the usage on stdout, exit 0, even
/// without SPOOLDIR. It names `-u` (SPEC 7).
#[test]
fn help_prints_the_usage_and_exits_0() {
    let ran = run(command(FORWARD, &[]).arg("--help"));
    assert_eq!(ran.code, 0, "{}", ran.log);
    assert_eq!(
        ran.out,
        "usage: forward [-h helohost] [-t seconds] host[:port]\n\
         \x20      forward [-h helohost] [-t seconds] -u\n\
         \x20      forward --list\n\
         \x20      forward --wait seconds\n\
         \x20      forward --help\n\
         \x20 -u: send over the connection of a UCSPI client (read fd 6, write fd 7), e.g.\n\
         \x20     s6-tcpclient mx 25 s6-ucspitlsc -- forward -u  (STARTTLS through the helper)\n"
    );
    assert_eq!(ran.log, "");
}

#[test]
fn configuration_errors_exit_78_naming_variable_and_value() {
    let dir = spool_dir("fw-config");
    for (var, value) in [
        ("QUEUELIFETIME", "a week"),
        ("SYSLOG", "mial"),
        ("SPOOLDIR", "/nonexistent/spool"),
    ] {
        let ran = forward(&dir, &[(var, value)], &["--list"]);
        assert_eq!(ran.code, 78, "{var}={value}: {}", ran.log);
        assert_contains(&ran.log, &[var, value]);
    }
    let ran = run(command(FORWARD, &[]).arg("mx.example"));
    assert_eq!(ran.code, 78, "{}", ran.log);
    assert_contains(&ran.log, &["SPOOLDIR is not set"]);
}

// ------------------------------------------------------------------------ other servers

/// Postfix's smtp-sink (PIPELINING, SIZE, 8BITMIME, ENHANCEDSTATUSCODES) takes everything.
#[test]
fn smtp_sink_takes_everything() {
    let Some(sink) = tool("smtp-sink") else {
        return;
    };
    let dir = spool_dir("fw-sink");
    let dumps = dir.join("dumps");
    fs::create_dir_all(&dumps).unwrap();
    fs::set_permissions(&dumps, fs::Permissions::from_mode(0o777)).unwrap();
    for i in 0..5 {
        let id = format!("179600000{i}.000001.1.0");
        let rcpts = ["a@x.test", "b@x.test", "c@x.test"];
        put(
            &dir,
            &id,
            "s@example.net",
            &rcpts[..=i % 3],
            &message(&format!("sink {i}"), ".x\r\n"),
        );
    }
    let port = free_port();
    let mut cmd = command(sink, &[]);
    if run(command("id", &[]).arg("-u")).out.trim() == "0" {
        cmd.args(["-u", "nobody"]); // smtp-sink refuses to run as root without it
    }
    let template = format!("{}/%H%M%S.", dumps.display());
    let child = cmd
        .args(["-d", &template, &format!("127.0.0.1:{port}"), "10"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _sink = Kill(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "smtp-sink did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let ran = forward(&dir, &[], &[&format!("127.0.0.1:{port}")]);
    assert_eq!(ran.code, 0, "{}", ran.log);
    assert!(queue(&dir).is_empty());
    assert_eq!(
        ran.log.matches(": delivered: 250").count(),
        1 + 2 + 3 + 1 + 2
    );
    assert_eq!(fs::read_dir(&dumps).unwrap().count(), 5);
}

/// The whole chain: swaks -> tcpserver -> smtpfront-reject -> smtpfront-spool -> forward ->
/// aiosmtpd. 50 messages of varied size and content arrive once each, identical to what was
/// sent after the 3 lines of the Received header smtpfront-spool adds.
#[test]
fn end_to_end_fifty_messages() {
    let (Some(swaks), Some(remote)) = (tool("swaks"), Remote::start("")) else {
        return;
    };
    let dir = spool_dir("fw-e2e");
    let d = dir.to_str().unwrap();
    let env = [("SPOOLDIR", d), ("RELAYCLIENT", "")];
    let Some(server) = Server::start_with(&[REJECT, SPOOL], &env, &["-c", "10", "-l", "mx.test"])
    else {
        return;
    };
    let messages: Vec<Vec<u8>> = (0..50).map(e2e_message).collect();
    let files: Vec<PathBuf> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let p = dir.join(format!("m{i}.eml"));
            // swaks ends the data with CRLF . CRLF itself: the file holds no last line end.
            fs::write(&p, m.strip_suffix(b"\r\n").unwrap()).unwrap();
            p
        })
        .collect();
    let port = server.port.to_string();
    std::thread::scope(|s| {
        for chunk in files.chunks(10) {
            let (swaks, port) = (&swaks, &port);
            s.spawn(move || {
                for f in chunk {
                    let ran = run(command(swaks, &[])
                        .args([
                            "--server",
                            &format!("127.0.0.1:{port}"),
                            "--helo",
                            "client.test",
                        ])
                        .args([
                            "--from",
                            "a@example.net",
                            "--to",
                            "b@example.com",
                            "--timeout",
                            "30",
                        ])
                        .args(["--data", &format!("@{}", f.display()), "--suppress-data"])
                        .stdin(Stdio::null()));
                    assert_eq!(ran.code, 0, "swaks: {}{}", ran.out, ran.log);
                }
            });
        }
    });
    assert_eq!(queue(&dir).len(), 50, "{}", server.log());

    let ran = forward(&dir, &[], &[&remote.target()]);
    assert_eq!(ran.code, 0, "{}", ran.log);
    assert!(queue(&dir).is_empty());
    let got = remote.received();
    assert_eq!(got.len(), 50);
    let mut seen = [false; 50];
    for r in &got {
        let mut rest = &r.data[..];
        for _ in 0..3 {
            let end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            rest = &rest[end + 2..];
        }
        assert!(r.data.starts_with(b"Received: from client.test"));
        let text = String::from_utf8_lossy(rest);
        let Some(subject) = text.split("Subject: message ").nth(1) else {
            panic!("not sent: {:?}", String::from_utf8_lossy(&r.data[..300]));
        };
        let i: usize = subject.split("\r\n").next().unwrap().parse().unwrap();
        if messages[i] != rest {
            let at = rest.iter().zip(&messages[i]).position(|(a, b)| a != b);
            let at = at.unwrap_or(rest.len().min(messages[i].len()));
            panic!(
                "message {i} changed at byte {at} (lengths {} and {}): {:?}",
                rest.len(),
                messages[i].len(),
                String::from_utf8_lossy(&rest[at.saturating_sub(20)..(at + 40).min(rest.len())])
            );
        }
        assert!(!seen[i], "message {i} arrived twice");
        seen[i] = true;
        // SIZE= is the stored size: the dot-stuffed message with the Received header.
        let size = stuffed(&r.data).len();
        let envelope =
            format!("HELO relay.test\nMAIL a@example.net SIZE={size}\nRCPT b@example.com\n");
        assert_eq!(r.envelope, envelope);
    }
}

/// Message `i` of the end-to-end test: dots at line starts, 8-bit bytes, lines up to 900
/// characters, and one of 1 MB. CRLF throughout, no line of a lone dot at the end (swaks
/// would take it for the end of its input).
fn e2e_message(i: usize) -> Vec<u8> {
    let mut m = format!(
        "From: a@example.net\r\nTo: b@example.com\r\nSubject: message {i}\r\n\
         Message-ID: <{i}@e2e.test>\r\n\r\n"
    )
    .into_bytes();
    match i % 5 {
        0 => m.extend_from_slice(b"plain text\r\nsecond line\r\n"),
        1 => m.extend_from_slice(b".leading dot\r\n..two\r\n.\r\n...\r\n. space\r\nlast\r\n"),
        2 => m.extend_from_slice(
            b"8-bit: caf\xc3\xa9 \xe9\xff\xfe\x80 end\r\n\xc3\xa9.\r\n.\xc3\xa9\r\n",
        ),
        3 => {
            for n in (100..=900).step_by(100) {
                let line: String = (0..n)
                    .map(|k| (b'a' + ((k + i) % 26) as u8) as char)
                    .collect();
                m.extend_from_slice(format!("{line}\r\n.{line}\r\n").as_bytes());
            }
        }
        _ => {
            for n in 0..(i * 7) {
                m.extend_from_slice(format!("line {n} of message {i}\r\n").as_bytes());
            }
        }
    }
    if i == 25 {
        let line = format!("{}\r\n", "0123456789abcdef".repeat(4));
        while m.len() < 1024 * 1024 {
            m.extend_from_slice(line.as_bytes());
        }
    }
    m
}

// ------------------------------------------------------------------------ a remote out of step

/// One message `m` for a@x.test from s@example.net in a fresh spool: (dir, file, size).
fn one_message(name: &str) -> (PathBuf, Vec<u8>, usize) {
    let dir = spool_dir(name);
    let msg = message("m", "x\r\n");
    let file = put(&dir, OLD, "s@example.net", &["a@x.test"], &msg);
    (dir, file, stuffed(&msg).len())
}

/// The log of a run that gave the connection up over the one message of [`one_message`]
/// for `why`, keeping it (the reason names the host, 127.0.0.1).
fn given_up(why: &str, size: usize) -> Vec<String> {
    vec![
        format!("{OLD}: {why}: connection given up"),
        format!("{OLD} to <a@x.test>: deferred: 127.0.0.1: {why}"),
        format!("{OLD} from <s@example.net>: {size} bytes, 1 recipients, 1 left: kept"),
    ]
}

fn assert_log_owned(log: &str, want: &[String]) {
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    assert_log(log, &want);
}

/// SPEC 7: nothing is delivered without a 354 to DATA. A remote that answers DATA with 250
/// (with and without PIPELINING) gets no message; the file stays, exit 75, and the
/// connection is given up (the remote may be reading a message we never send).
#[test]
fn data_answered_250_instead_of_354_keeps_the_message() {
    for pipelining in ["true", "false"] {
        let config =
            format!(r#""mode": "raw", "pipelining": {pipelining}, "data": "250 2.0.0 Ok""#);
        let Some(remote) = Remote::start(&config) else {
            return;
        };
        let (dir, before, size) = one_message("fw-data250");
        let ran = forward(&dir, &[], &[&remote.target()]);
        assert_eq!(ran.code, 75, "{}", ran.log);
        assert_eq!(file(&dir, OLD), before);
        assert!(remote.received().is_empty());
        assert!(bounces(&dir).is_empty());
        let why = "unexpected reply to DATA: 250 2.0.0 Ok";
        assert_log_owned(&ran.log, &given_up(why, size));
    }
}

/// SPEC 7: "A reply line that is too long is read for its code and cut, not treated as a
/// failure." 250 and 100 kB of text to the dot is a delivery: the file is removed, and the
/// next run sends nothing again (it used to be kept and sent twice). The log quotes 200 bytes.
#[test]
fn dot_reply_of_100_kb_on_one_line_is_one_delivery() {
    let text = "x".repeat(100_000);
    let Some(remote) = Remote::start(&format!(r#""mode": "raw", "dot": "250 {text}""#)) else {
        return;
    };
    let (dir, _, size) = one_message("fw-longdot");
    let ran = forward(&dir, &[], &[&remote.target()]);
    assert_eq!(ran.code, 0, "{}", ran.log);
    assert!(queue(&dir).is_empty());
    assert_eq!(remote.received().len(), 1);
    let said = cut(&format!("250 {}", &text[..4096]));
    assert_log(
        &ran.log,
        &[
            &format!("{OLD} to <a@x.test>: delivered: {said}"),
            &format!("{OLD} from <s@example.net>: {size} bytes, 1 recipients, 0 left: removed"),
        ],
    );
    let again = forward(&dir, &[], &[&remote.target()]);
    assert_eq!(again.code, 0, "{}", again.log);
    assert_eq!(remote.received().len(), 1, "sent once");
}

/// 10,000 lines in the reply to the dot: the lines beyond 100 are read and dropped, not
/// treated as a failure: one delivery.
#[test]
fn dot_reply_of_10000_lines_is_one_delivery() {
    let dot = format!("{}250 2.0.0 Ok", "250-x\\r\\n".repeat(9_999));
    let Some(remote) = Remote::start(&format!(r#""mode": "raw", "dot": "{dot}""#)) else {
        return;
    };
    let (dir, _, size) = one_message("fw-manydot");
    let ran = forward(&dir, &[], &[&remote.target()]);
    assert_eq!(ran.code, 0, "{}", ran.log);
    assert!(queue(&dir).is_empty());
    assert_eq!(remote.received().len(), 1);
    let said = cut(&format!("250{}", " x".repeat(100)));
    assert_log(
        &ran.log,
        &[
            &format!("{OLD} to <a@x.test>: delivered: {said}"),
            &format!("{OLD} from <s@example.net>: {size} bytes, 1 recipients, 0 left: removed"),
        ],
    );
}

/// `550-` then `250 ` to the dot (RFC 5321 4.2.1: every line of a reply has the same code)
/// is neither a refusal nor an acceptance: it used to count as delivered (the code of the
/// last line). Now the connection is given up and the message kept.
#[test]
fn dot_reply_with_mixed_codes_is_not_a_delivery() {
    let dot = r#""dot": "550-5.7.1 Rejected\r\n250 2.0.0 Ok""#;
    let Some(remote) = Remote::start(&format!(r#""mode": "raw", {dot}"#)) else {
        return;
    };
    let (dir, before, size) = one_message("fw-mixeddot");
    let ran = forward(&dir, &[], &[&remote.target()]);
    assert_eq!(ran.code, 75, "{}", ran.log);
    assert_eq!(file(&dir, OLD), before);
    assert!(bounces(&dir).is_empty());
    let why = "reply lines with different codes (550, then 250)";
    assert_log_owned(&ran.log, &given_up(why, size));
}

/// Two replies to MAIL shift every later reply by one: the reply to RCPT would be read as
/// the reply to DATA, and so on. Without PIPELINING the extra reply is found before RCPT is
/// written (out of turn); with it, the RCPT reply arrives where DATA's 354 should be.
/// Either way nothing is counted delivered (both used to remove the file).
#[test]
fn two_replies_to_mail_never_count_as_a_delivery() {
    for (pipelining, why) in [
        ("false", r#"the remote sent "250 2.0.0 Extra" out of turn"#),
        ("true", "unexpected reply to DATA: 250 2.1.5 Ok"),
    ] {
        let config = format!(
            r#""mode": "raw", "pipelining": {pipelining}, "extra": {{"MAIL": "250 2.0.0 Extra"}}"#
        );
        let Some(remote) = Remote::start(&config) else {
            return;
        };
        let (dir, before, size) = one_message("fw-extra");
        let ran = forward(&dir, &[], &[&remote.target()]);
        assert_eq!(ran.code, 75, "{}", ran.log);
        assert_eq!(file(&dir, OLD), before);
        assert!(remote.received().is_empty());
        assert_log_owned(&ran.log, &given_up(why, size));
    }
}

/// A 250 sent with the 354, before the message: it is no reply to the dot (the remote then
/// refuses the message at the dot with 554). It used to be read as the reply to the dot and
/// the message removed; now it is found before the message is written.
#[test]
fn reply_sent_before_the_message_is_no_reply_to_the_dot() {
    let config =
        r#""mode": "raw", "data": "354 Go ahead\r\n250 2.0.0 Early", "dot": "554 5.6.0 No""#;
    let Some(remote) = Remote::start(config) else {
        return;
    };
    let (dir, before, size) = one_message("fw-early");
    let ran = forward(&dir, &[], &[&remote.target()]);
    assert_eq!(ran.code, 75, "{}", ran.log);
    assert_eq!(file(&dir, OLD), before);
    assert!(bounces(&dir).is_empty());
    let why = r#"the remote sent "250 2.0.0 Early" out of turn"#;
    assert_log_owned(&ran.log, &given_up(why, size));
}

/// `250` and then `554` to one dot: which one answered the dot is not known (the 250 may
/// have been sent early), so the message is not counted delivered: kept, and sent again by
/// a later run (a duplicate rather than a loss). It used to be removed.
#[test]
fn second_reply_behind_the_reply_to_the_dot_keeps_the_message() {
    let config = r#""mode": "raw", "dot": "250 2.0.0 Ok\r\n554 5.6.0 No""#;
    let Some(remote) = Remote::start(config) else {
        return;
    };
    let (dir, before, size) = one_message("fw-dottwice");
    let ran = forward(&dir, &[], &[&remote.target()]);
    assert_eq!(ran.code, 75, "{}", ran.log);
    assert_eq!(file(&dir, OLD), before);
    assert!(bounces(&dir).is_empty());
    let why = r#"the remote sent "554 5.6.0 No" out of turn"#;
    assert_log_owned(&ran.log, &given_up(why, size));
}

/// SPEC 8: a log line quotes at most 200 bytes of remote text (and of an address), with `…`.
#[test]
fn log_lines_quote_at_most_200_bytes_of_remote_text() {
    let long_rcpt = format!("{}@x.test", "l".repeat(300));
    let text = format!("550 5.1.1 {}", "y".repeat(1000));
    let config = format!(r#""mode": "raw", "rcpt": {{"{long_rcpt}": "{text}"}}"#);
    let Some(remote) = Remote::start(&config) else {
        return;
    };
    let dir = spool_dir("fw-quote");
    let msg = message("m", "x\r\n");
    put(&dir, OLD, "s@example.net", &[&long_rcpt], &msg);
    let ran = forward(&dir, &[], &[&remote.target()]);
    assert_eq!(ran.code, 0, "{}", ran.log);
    let size = stuffed(&msg).len();
    assert_log(
        &ran.log,
        &[
            &format!("{OLD} to <{}>: bounced: {}", cut(&long_rcpt), cut(&text)),
            &format!("{OLD}: bounce sent to <s@example.net>"),
            &format!("{OLD} from <s@example.net>: {size} bytes, 1 recipients, 0 left: removed"),
        ],
    );
}

// ------------------------------------------------------------------------ hostile spool files

/// A symbolic link planted at tmp/ID: the rewrite after a partial delivery used to open
/// tmp/ID with create+truncate, write the message into the link's target, and rename the
/// link into new/. Now it writes a fresh file created exclusively; the target is untouched.
#[test]
fn rewrite_never_writes_through_a_symlink_in_tmp() {
    let Some(remote) = Remote::start(r#""rcpt": {"later@x.test": "451 4.2.0 Busy"}"#) else {
        return;
    };
    let dir = spool_dir("fw-tmplink");
    let msg = message("m", "x\r\n");
    let before = put(
        &dir,
        OLD,
        "s@example.net",
        &["ok@x.test", "later@x.test"],
        &msg,
    );
    let precious = dir.join("precious");
    fs::write(&precious, b"precious\n").unwrap();
    std::os::unix::fs::symlink(&precious, dir.join("tmp").join(OLD)).unwrap();
    let ran = forward(&dir, &[], &[&remote.target()]);
    assert_eq!(ran.code, 75, "{}", ran.log);
    assert_eq!(fs::read(&precious).unwrap(), b"precious\n");
    let new = dir.join("new").join(OLD);
    assert!(fs::symlink_metadata(&new).unwrap().is_file());
    let after = file(&dir, OLD);
    let (header, data) = Header::parse(&after).unwrap();
    assert_eq!(header.recipients, ["later@x.test"]);
    assert!(before.ends_with(data));
    let tmp: Vec<String> = fs::read_dir(dir.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(tmp, [OLD], "the link stays, nothing else is left in tmp/");
    assert_eq!(fs::read_link(dir.join("tmp").join(OLD)).unwrap(), precious);
}

/// A FIFO in new/ used to block the open for ever, with the lock held (`--list` too). Now
/// its type is checked before a non-blocking open: `--list` shows it, a run moves it to
/// bad/ with a log line and delivers the rest.
#[test]
fn fifo_in_new_hangs_neither_list_nor_delivery() {
    let Some(remote) = Remote::start("") else {
        return;
    };
    let dir = spool_dir("fw-fifo");
    let fifo = dir.join("new").join(OLDER);
    let made = command("mkfifo", &[]).arg(&fifo).status().unwrap();
    assert!(made.success());
    let msg = message("good", "x\r\n");
    put(&dir, OLD, "s@example.net", &["a@x.test"], &msg);
    let size = stuffed(&msg).len();
    let limit = Duration::from_secs(20);

    let list = forward_within(&dir, limit, &["--list"]);
    assert_eq!(list.code, 0, "{}", list.log);
    let lines: Vec<&str> = list.out.lines().collect();
    assert_eq!(lines.len(), 3, "{}", list.out);
    assert_eq!(
        lines[0],
        format!("{OLDER} unparsable: a FIFO, not a regular file")
    );
    assert_eq!(
        lines[2],
        format!("1 messages, {size} bytes, 1 recipients, 1 unparsable")
    );

    let ran = forward_within(&dir, limit, &[&remote.target()]);
    assert_eq!(ran.code, 0, "{}", ran.log);
    assert!(queue(&dir).is_empty());
    use std::os::unix::fs::FileTypeExt;
    let bad = dir.join("bad").join(OLDER);
    assert!(fs::symlink_metadata(&bad).unwrap().file_type().is_fifo());
    assert_eq!(remote.received().len(), 1);
    assert_log(
        &ran.log,
        &[
            &format!(
                "{OLDER}: unparsable (a FIFO, not a regular file): moved to {}",
                bad.display()
            ),
            &format!("{OLD} to <a@x.test>: delivered: 250 2.0.0 Ok: queued"),
            &format!("{OLD} from <s@example.net>: {size} bytes, 1 recipients, 0 left: removed"),
        ],
    );
}

/// A symbolic link in new/ pointing at a message file elsewhere: forward used to follow it,
/// send that file and remove the link. Now the link itself goes to bad/, its target is never
/// read; and an earlier bad/ file of the same name is kept (the link becomes bad/ID.1).
#[test]
fn symlink_in_new_goes_to_bad_unread_and_replaces_nothing() {
    let Some(remote) = Remote::start("") else {
        return;
    };
    let dir = spool_dir("fw-newlink");
    let elsewhere = scratch("fw-elsewhere");
    fs::create_dir_all(elsewhere.join("new")).unwrap();
    let target = elsewhere.join("new").join(OLDER);
    let outside = put(
        &elsewhere,
        OLDER,
        "evil@example.net",
        &["evil@x.test"],
        b"evil\r\n",
    );
    std::os::unix::fs::symlink(&target, dir.join("new").join(OLDER)).unwrap();
    fs::create_dir(dir.join("bad")).unwrap();
    fs::write(dir.join("bad").join(OLDER), b"earlier\n").unwrap();
    let msg = message("good", "x\r\n");
    put(&dir, OLD, "s@example.net", &["a@x.test"], &msg);

    let ran = forward(&dir, &[], &[&remote.target()]);
    assert_eq!(ran.code, 0, "{}", ran.log);
    assert!(queue(&dir).is_empty());
    let got = remote.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, msg);
    assert_eq!(fs::read(&target).unwrap(), outside);
    assert_eq!(fs::read(dir.join("bad").join(OLDER)).unwrap(), b"earlier\n");
    let moved = dir.join("bad").join(format!("{OLDER}.1"));
    assert_eq!(fs::read_link(&moved).unwrap(), target);
    let size = stuffed(&msg).len();
    assert_log(
        &ran.log,
        &[
            &format!(
                "{OLDER}: unparsable (a symbolic link, not a regular file): moved to {}",
                moved.display()
            ),
            &format!("{OLD} to <a@x.test>: delivered: 250 2.0.0 Ok: queued"),
            &format!("{OLD} from <s@example.net>: {size} bytes, 1 recipients, 0 left: removed"),
        ],
    );
}

/// A file name whose time stamp is out of range used to panic ("overflow when adding
/// duration to instant", exit 134) in `--list` and in a run. Its age now comes from the
/// mtime: it is listed and delivered.
#[test]
fn time_stamp_out_of_range_in_a_name_does_not_panic() {
    let Some(remote) = Remote::start("") else {
        return;
    };
    let dir = spool_dir("fw-bigname");
    let name = "9223372036854775808.1.1.1";
    let msg = message("m", "x\r\n");
    put(&dir, name, "s@example.net", &["a@x.test"], &msg);
    let size = stuffed(&msg).len();
    let list = forward(&dir, &[], &["--list"]);
    assert_eq!(list.code, 0, "{}", list.log);
    let lines: Vec<&str> = list.out.lines().collect();
    assert_eq!(lines.len(), 2, "{}", list.out);
    let fields: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(fields[0], name);
    let secs = fields[1].strip_suffix('s').unwrap();
    assert!(secs.parse::<u64>().unwrap() < 60, "{}", lines[0]);
    assert_eq!(
        fields[2..],
        [&size.to_string(), "<s@example.net>", "1", "<a@x.test>"]
    );
    let ran = forward(&dir, &[], &[&remote.target()]);
    assert_eq!(ran.code, 0, "{}", ran.log);
    assert!(queue(&dir).is_empty());
    assert_eq!(remote.received().len(), 1);
}

/// `-t 18446744073709551615` used to panic computing the deadline of the first reply. It is
/// a very long timeout.
#[test]
fn timeout_of_u64_max_seconds_does_not_panic() {
    let Some(remote) = Remote::start("") else {
        return;
    };
    let (dir, _, size) = one_message("fw-bigtimeout");
    let ran = forward(&dir, &[], &["-t", "18446744073709551615", &remote.target()]);
    assert_eq!(ran.code, 0, "{}", ran.log);
    assert!(queue(&dir).is_empty());
    assert_log(
        &ran.log,
        &[
            &format!("{OLD} to <a@x.test>: delivered: 250 2.0.0 Ok: queued"),
            &format!("{OLD} from <s@example.net>: {size} bytes, 1 recipients, 0 left: removed"),
        ],
    );
}

/// `--list` of a file with 10,000 recipients of 4,000 bytes (40 MB of envelope) used to
/// hold it all and print it on one line. It now runs in 32 MiB of address space and prints
/// ten recipients and `... and 9990 more`.
#[test]
fn list_of_10000_recipients_of_4000_bytes_stays_bounded() {
    let dir = spool_dir("fw-biglist");
    let rcpts: Vec<String> = (0..10_000)
        .map(|i| format!("{i:05}{}@x.test", "r".repeat(3_988)))
        .collect();
    assert_eq!(rcpts[0].len(), 4_000);
    let refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    let msg = message("m", "x\r\n");
    put(&dir, OLD, "s@example.net", &refs, &msg);
    let size = stuffed(&msg).len();
    let ran = forward_limited(&dir, 32 * 1024, &["--list"]);
    assert_eq!(ran.code, 0, "{}", ran.log);
    assert!(
        ran.out.len() < 64 * 1024,
        "{} bytes of output",
        ran.out.len()
    );
    let lines: Vec<&str> = ran.out.lines().collect();
    assert_eq!(lines.len(), 2);
    let (id, rest) = lines[0].split_once(' ').unwrap();
    let (_age, rest) = rest.split_once(' ').unwrap();
    assert_eq!(id, OLD);
    let shown: Vec<String> = rcpts[..10].iter().map(|r| format!("<{r}>")).collect();
    assert_eq!(
        rest,
        format!(
            "{size} <s@example.net> 10000 {} ... and 9990 more",
            shown.join(" ")
        )
    );
    assert_eq!(
        lines[1],
        format!("1 messages, {size} bytes, 10000 recipients")
    );
}

// ------------------------------------------------------------------------ -u and STARTTLS

/// How `forward -u` is run: under s6-tcpclient alone, or with s6-ucspitlsc in between
/// (the UCSPI-TLS helper of SPEC 7's TLS bullet) checking the test certificate for `name`.
enum Under<'a> {
    TcpClient,
    UcspiTlsc { name: &'a str },
}

/// `s6-tcpclient 127.0.0.1 PORT [s6-ucspitlsc -k NAME --] forward -u` with the spool's
/// settings and `env`; `None` (skipped) when s6-networking or the certificate is missing.
fn forward_u(dir: &Path, port: u16, under: Under, env: &[(&str, &str)]) -> Option<Ran> {
    let bin = common::s6_networking()?;
    let (cert, _) = common::test_certificate()?;
    let d = dir.to_str().unwrap();
    let sendmail = format!("{d}/sendmail");
    // s6-ucspitlsc runs s6-tlsc-io by name.
    let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display());
    let mut all = vec![
        ("SPOOLDIR", d),
        ("SENDMAIL", sendmail.as_str()),
        ("HELOHOST", "relay.test"),
        ("PATH", path.as_str()),
        ("CAFILE", cert.to_str().unwrap()),
    ];
    all.extend_from_slice(env);
    let port = port.to_string();
    let mut cmd = command(bin.join("s6-tcpclient"), &all);
    cmd.args(["-q", "-H", "-l", "relay.test", "127.0.0.1", &port]);
    if let Under::UcspiTlsc { name } = under {
        cmd.arg(bin.join("s6-ucspitlsc"))
            .args(["-v", "0", "-k", name, "--"]);
    }
    Some(run(cmd.args([FORWARD, "-u"])))
}

/// A remote with STARTTLS (the test certificate, CN mx.test).
fn tls_remote() -> Option<Remote> {
    let (cert, key) = common::test_certificate()?;
    Remote::start(&format!(
        r#""tls": {{"cert": {:?}, "key": {:?}}}"#,
        cert.to_str().unwrap(),
        key.to_str().unwrap()
    ))
}

/// The lines of a run that delivered one message to one recipient.
fn delivered_lines(id: &str, sender: &str, rcpt: &str, file: &[u8]) -> Vec<String> {
    let (_, data) = Header::parse(file).unwrap();
    vec![
        format!("{id} to <{rcpt}>: delivered: 250 2.0.0 Ok: queued"),
        format!(
            "{id} from <{sender}>: {} bytes, 1 recipients, 0 left: removed",
            data.len()
        ),
    ]
}

/// SPEC 7 `-u`: over s6-tcpclient's fds 6 and 7, two messages go out oldest first, byte
/// for byte, the queue ends empty, and the log is the same as over forward's own socket.
#[test]
fn dash_u_delivers_over_the_ucspi_connection() {
    let Some(remote) = Remote::start("") else {
        return;
    };
    let dir = spool_dir("fw-u");
    let first = message("first", ".dot\r\n8-bit: \u{e9}\r\n");
    let f1 = put(&dir, OLD, "s@example.net", &["a@x.test"], &first);
    let second = message("second", "");
    let f2 = put(&dir, OLDER, "t@example.net", &["c@x.test"], &second);
    let Some(ran) = forward_u(&dir, remote.port, Under::TcpClient, &[]) else {
        return;
    };
    assert_eq!(ran.code, 0, "{}", ran.log);
    assert!(queue(&dir).is_empty());
    let got = remote.received();
    assert_eq!(got.len(), 2);
    assert_eq!((&got[0].data, &got[1].data), (&second, &first));
    let size = stuffed(&second).len();
    assert_eq!(
        got[0].envelope,
        format!("HELO relay.test\nMAIL t@example.net SIZE={size} BODY=8BITMIME\nRCPT c@x.test\n")
    );
    let mut want = delivered_lines(OLDER, "t@example.net", "c@x.test", &f2);
    want.extend(delivered_lines(OLD, "s@example.net", "a@x.test", &f1));
    assert_log(
        &ran.log,
        &want.iter().map(String::as_str).collect::<Vec<_>>(),
    );
}

/// SPEC 7 TLS: under s6-ucspitlsc, a primary offering STARTTLS gets it; the message
/// arrives inside TLS (the primary's side of the connection says so), after a second EHLO,
/// and forward's one TLS line names the protocol and cipher the primary saw.
#[test]
fn starttls_through_s6_ucspitlsc() {
    let Some(remote) = tls_remote() else {
        return;
    };
    let dir = spool_dir("fw-tls");
    let msg = message("tls", "secret\r\n");
    let f = put(&dir, OLD, "s@example.net", &["a@x.test"], &msg);
    let under = Under::UcspiTlsc { name: "mx.test" };
    let env = [("REQUIRE_TLS", "1")];
    let Some(ran) = forward_u(&dir, remote.port, under, &env) else {
        return;
    };
    assert_eq!(ran.code, 0, "{}", ran.log);
    let got = remote.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, msg);
    assert!(got[0].envelope.starts_with("HELO relay.test\n"));
    let seen = fs::read_to_string(remote.out.join("msg-0001.tls")).expect("not inside TLS");
    let (protocol, cipher) = seen.trim_end().split_once(' ').unwrap();
    assert!(protocol.starts_with("TLSv1."), "{seen}");
    let port = remote.port;
    let mut want = vec![format!("127.0.0.1:{port}: TLS {protocol} {cipher}")];
    want.extend(delivered_lines(OLD, "s@example.net", "a@x.test", &f));
    assert_log(
        &ran.log,
        &want.iter().map(String::as_str).collect::<Vec<_>>(),
    );
}

/// SPEC 7 TLS: REQUIRE_TLS and a primary without STARTTLS: nothing sent, everything
/// kept, exit 75, one line saying why (and the message's own lines).
#[test]
fn require_tls_and_no_starttls_keeps_everything() {
    let Some(remote) = Remote::start("") else {
        return;
    };
    let dir = spool_dir("fw-tls-required");
    let before = put(
        &dir,
        OLD,
        "s@example.net",
        &["a@x.test"],
        &message("x", "x\r\n"),
    );
    let under = Under::UcspiTlsc { name: "mx.test" };
    let Some(ran) = forward_u(&dir, remote.port, under, &[("REQUIRE_TLS", "")]) else {
        return;
    };
    assert_eq!(ran.code, 75, "{}", ran.log);
    assert_eq!(file(&dir, OLD), before);
    assert!(remote.received().is_empty());
    assert!(bounces(&dir).is_empty());
    let why = format!(
        "127.0.0.1:{}: no STARTTLS offered, and REQUIRE_TLS is set",
        remote.port
    );
    assert_log(
        &ran.log,
        &[&format!("{why}: 1 messages, 1 recipients kept")],
    );
}

/// SPEC 7 TLS: without REQUIRE_TLS a primary without STARTTLS gets the mail in clear,
/// and the log says so.
#[test]
fn no_starttls_offered_sends_in_clear() {
    let Some(remote) = Remote::start("") else {
        return;
    };
    let dir = spool_dir("fw-tls-clear");
    let msg = message("clear", "x\r\n");
    let f = put(&dir, OLD, "s@example.net", &["a@x.test"], &msg);
    let under = Under::UcspiTlsc { name: "mx.test" };
    let Some(ran) = forward_u(&dir, remote.port, under, &[]) else {
        return;
    };
    assert_eq!(ran.code, 0, "{}", ran.log);
    let got = remote.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, msg);
    assert!(!remote.out.join("msg-0001.tls").exists());
    let port = remote.port;
    let mut want = vec![format!(
        "127.0.0.1:{port}: no STARTTLS offered: sending in clear"
    )];
    want.extend(delivered_lines(OLD, "s@example.net", "a@x.test", &f));
    assert_log(
        &ran.log,
        &want.iter().map(String::as_str).collect::<Vec<_>>(),
    );
}

/// SPEC 7 TLS: a failed handshake (the certificate is not for the name s6-ucspitlsc
/// checks) with REQUIRE_TLS: nothing sent, everything kept, exit 75, the log says why.
#[test]
fn failed_handshake_keeps_everything() {
    let Some(remote) = tls_remote() else {
        return;
    };
    let dir = spool_dir("fw-tls-failed");
    let before = put(
        &dir,
        OLD,
        "s@example.net",
        &["a@x.test"],
        &message("x", "x\r\n"),
    );
    let under = Under::UcspiTlsc { name: "other.test" };
    let Some(ran) = forward_u(&dir, remote.port, under, &[("REQUIRE_TLS", "")]) else {
        return;
    };
    assert_eq!(ran.code, 75, "{}", ran.log);
    assert_eq!(file(&dir, OLD), before);
    assert!(remote.received().is_empty());
    let why = format!(
        "127.0.0.1:{}: STARTTLS: handshake failed or the TLS helper went away",
        remote.port
    );
    // The helper says why on the same stderr; forward's own lines are the run's log.
    let (ours, helper): (Vec<&str>, Vec<&str>) =
        ran.log.lines().partition(|l| l.starts_with("forward["));
    assert_eq!(
        helper,
        ["s6-tlsc-io: fatal: : unable to tls_handshake: name `other.test' not present in server certificate"]
    );
    assert_log(
        &ours.join("\n"),
        &[&format!("{why}: 1 messages, 1 recipients kept")],
    );
}

/// Issue 10: forward into a real MTA that insists on TLS. A private Postfix with
/// `smtpd_tls_security_level = encrypt` (and the test certificate) relays on, in clear, to
/// the test server; forward runs under s6-tcpclient + s6-ucspitlsc with REQUIRE_TLS. The
/// message arrives whole behind Postfix's Received header, which says ESMTPS; the queue
/// ends empty, and both sides log the TLS session.
#[test]
fn forward_into_postfix_with_smtpd_tls_encrypt() {
    let Some(remote) = Remote::start("") else {
        return;
    };
    let Some((cert, key)) = common::test_certificate() else {
        return;
    };
    let relayhost = format!("[127.0.0.1]:{}", remote.port);
    let settings = [
        ("smtpd_tls_security_level", "encrypt"),
        ("smtpd_tls_cert_file", cert.to_str().unwrap()),
        ("smtpd_tls_key_file", key.to_str().unwrap()),
        ("relayhost", relayhost.as_str()),
        ("smtp_tls_security_level", "none"),
    ];
    let Some(mta) = Postfix::start("fw-postfix-mta", &settings) else {
        return;
    };
    let dir = spool_dir("fw-postfix");
    // Every header Postfix would otherwise add for a client on 127.0.0.1 is there.
    let msg = b"From: <s@example.net>\r\nTo: <a@x.test>\r\n\
        Date: Wed, 02 Dec 2026 12:00:00 +0000\r\nMessage-ID: <fw.1@example.net>\r\n\
        Subject: to Postfix\r\n\r\n.a line with a leading dot\r\nthe end\r\n";
    let f = put(&dir, OLD, "s@example.net", &["a@x.test"], msg);
    let under = Under::UcspiTlsc { name: "mx.test" };
    let Some(ran) = forward_u(&dir, mta.port, under, &[("REQUIRE_TLS", "1")]) else {
        return;
    };
    assert_eq!(ran.code, 0, "{}\n{}", ran.log, mta.log());
    assert!(queue(&dir).is_empty());
    let lines = log_lines(&ran.log);
    assert_eq!(lines.len(), 3, "{}", ran.log);
    let port = mta.port;
    let tls = lines[0]
        .strip_prefix(&format!("127.0.0.1:{port}: TLS TLSv1.3 "))
        .unwrap_or_else(|| panic!("{}", ran.log));
    let qid = lines[1]
        .strip_prefix(&format!(
            "{OLD} to <a@x.test>: delivered: 250 2.0.0 Ok: queued as "
        ))
        .unwrap_or_else(|| panic!("{}", ran.log));
    assert_eq!(
        lines[2],
        delivered_lines(OLD, "s@example.net", "a@x.test", &f)[1]
    );
    let got = remote.wait_received(1);
    assert_eq!(got.len(), 1);
    let (head, rest) = got[0].data.split_at(got[0].data.len() - msg.len());
    assert_eq!(rest, msg);
    let head = String::from_utf8(head.to_vec()).unwrap();
    common::assert_lines_like(
        &head.split_terminator("\r\n").collect::<Vec<_>>(),
        &[
            "Received: from relay.test (unknown [127.0.0.1])",
            &format!("\tby {} (Postfix) with ESMTPS id {qid}", postfix::HOSTNAME),
            "\tfor <a@x.test>; *",
        ],
    );
    mta.wait_for_log(
        "smtpd",
        &format!("Anonymous TLS connection established from unknown[127.0.0.1]: TLSv1.3 with cipher {tls} *"),
    );
}

/// A primary that offers STARTTLS and then answers it `454 4.7.0 TLS not available`.
const TLS_NOT_AVAILABLE: &str = r#""mode": "raw", "starttls": "454 4.7.0 TLS not available""#;

/// SPEC 7 TLS: REQUIRE_TLS and a primary refusing STARTTLS with 454: nothing sent after
/// the refusal but QUIT, everything kept, exit 75, the log says why.
#[test]
fn starttls_454_with_require_tls_keeps_everything() {
    let Some(remote) = Remote::start(TLS_NOT_AVAILABLE) else {
        return;
    };
    let dir = spool_dir("fw-tls-454-required");
    let before = put(
        &dir,
        OLD,
        "s@example.net",
        &["a@x.test"],
        &message("x", "x\r\n"),
    );
    let under = Under::UcspiTlsc { name: "mx.test" };
    let Some(ran) = forward_u(&dir, remote.port, under, &[("REQUIRE_TLS", "")]) else {
        return;
    };
    assert_eq!(ran.code, 75, "{}", ran.log);
    assert_eq!(file(&dir, OLD), before);
    assert!(remote.received().is_empty());
    assert!(bounces(&dir).is_empty());
    assert_eq!(
        remote.reads(),
        ["EHLO relay.test\\r\\n", "STARTTLS\\r\\n", "QUIT\\r\\n"]
    );
    let why = format!(
        "127.0.0.1:{}: STARTTLS refused: 454 4.7.0 TLS not available, and REQUIRE_TLS is set",
        remote.port
    );
    assert_log(
        &ran.log,
        // SPEC 8: no connection that carried mail, so one line for the run.
        &[&format!("{why}: 1 messages, 1 recipients kept")],
    );
}

/// SPEC 7 TLS, where it is silent: without REQUIRE_TLS a 454 to STARTTLS leaves the
/// session as it was (RFC 3207 4), and the mail goes on in clear on the same connection,
/// as Postfix's `smtp_tls_security_level = may` does; the log says so.
#[test]
fn starttls_454_without_require_tls_sends_in_clear() {
    let Some(remote) = Remote::start(TLS_NOT_AVAILABLE) else {
        return;
    };
    let dir = spool_dir("fw-tls-454-clear");
    let msg = message("clear", "x\r\n");
    let f = put(&dir, OLD, "s@example.net", &["a@x.test"], &msg);
    let under = Under::UcspiTlsc { name: "mx.test" };
    let Some(ran) = forward_u(&dir, remote.port, under, &[]) else {
        return;
    };
    assert_eq!(ran.code, 0, "{}", ran.log);
    assert!(queue(&dir).is_empty());
    let got = remote.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, msg);
    let reads = remote.reads();
    assert_eq!(reads[..2], ["EHLO relay.test\\r\\n", "STARTTLS\\r\\n"]);
    assert!(
        reads[2].starts_with("MAIL FROM:<s@example.net>"),
        "{reads:?}"
    );
    let port = remote.port;
    let mut want = vec![format!(
        "127.0.0.1:{port}: STARTTLS refused: 454 4.7.0 TLS not available: sending in clear"
    )];
    want.extend(delivered_lines(OLD, "s@example.net", "a@x.test", &f));
    assert_log(
        &ran.log,
        &want.iter().map(String::as_str).collect::<Vec<_>>(),
    );
}

/// REQUIRE_TLS with `forward host` (no helper can exist): no connection at all, exit 75.
#[test]
fn require_tls_without_a_helper_sends_nothing() {
    let Some(remote) = Remote::start("") else {
        return;
    };
    let dir = spool_dir("fw-tls-nohelper");
    let before = put(
        &dir,
        OLD,
        "s@example.net",
        &["a@x.test"],
        &message("x", "x\r\n"),
    );
    let ran = forward(&dir, &[("REQUIRE_TLS", "")], &[&remote.target()]);
    assert_eq!(ran.code, 75, "{}", ran.log);
    assert_eq!(file(&dir, OLD), before);
    assert!(remote.received().is_empty());
    let why = format!(
        "{}: REQUIRE_TLS is set, and there is no UCSPI-TLS helper (run forward -u under s6-ucspitlsc)",
        remote.target()
    );
    assert_log(
        &ran.log,
        &[&format!("{why}: 1 messages, 1 recipients kept")],
    );
}

/// `-u` by hand, without a UCSPI client: fds 6 and 7 are not open: usage, exit 64.
#[test]
fn dash_u_without_a_connection_is_a_usage_error() {
    let dir = spool_dir("fw-u-nofds");
    let ran = forward(&dir, &[], &["-u"]);
    assert_eq!(ran.code, 64, "{}", ran.log);
    assert!(
        ran.log.starts_with("forward: -u: fds 6 and 7 are not open"),
        "{}",
        ran.log
    );
}
