//! ETRN (SPEC 3.3, RFC 1985) through the real programs: every reply of smtpfront-spool
//! through pipes (allowed, not allowed, no FIFO, no reader, malformed, inside a transaction,
//! 251 when nothing waits for the node), what smtpfront-echo and smtpfront-reject answer,
//! Python's smtplib under tcpserver, and `forward --wait` (SPEC 7): woken by an ETRN, by
//! SIGALRM, by the time running out, and refusing a `trigger` that is not a FIFO.
//!
//! The FIFO's reader is either a real `forward --wait` or, as `service/forward/run` does,
//! the FIFO held open for reading by the test ([`Fifo::hold`]), which also counts the bytes.

mod common;

use common::{command, scratch, Guard, Server, ECHO, REJECT, SPOOL};
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

const FORWARD: &str = env!("CARGO_BIN_EXE_forward");
/// The checkpassword program of the AUTH tests (accepts alice / s3cret).
const CHECKPW: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/checkpassword-test");
/// `AUTH PLAIN` of alice / s3cret.
const AUTH_ALICE: &str = "AUTH PLAIN AGFsaWNlAHMzY3JldA==";
/// How long a process woken by a byte or a signal may take to exit.
const WAKE_LIMIT: Duration = Duration::from_secs(2);

const STARTED: &str = "250 2.0.0 Queuing for node example.com started";
const NOT_WAITING: &str = "251 2.0.0 No messages waiting for node example.org";
const UNABLE: &str = "458 4.3.0 Unable to queue messages for node example.com";
const BAD_NODE: &str = "501 5.5.4 Syntax: ETRN domain, ETRN @domain or ETRN #queue";
const IN_TRANSACTION: &str = "503 5.5.1 ETRN is not allowed inside a mail transaction";

fn not_allowed(node: &str) -> String {
    format!("459 4.7.1 Node {node} not allowed: not a domain this host is a backup MX for")
}

/// A spool directory, a RCPTHOSTS file naming example.com, and the settings of a front end
/// as tcpserver would give them.
struct Backup {
    root: PathBuf,
}

impl Backup {
    fn new(name: &str) -> Backup {
        let root = scratch(name);
        fs::create_dir(root.join("spool")).unwrap();
        fs::write(root.join("rcpthosts"), "example.com\n").unwrap();
        Backup { root }
    }

    fn spool(&self) -> PathBuf {
        self.root.join("spool")
    }

    fn trigger(&self) -> PathBuf {
        self.spool().join("trigger")
    }

    fn env(&self) -> Vec<(String, String)> {
        let path = |p: PathBuf| p.to_str().unwrap().to_string();
        vec![
            ("SPOOLDIR".into(), path(self.spool())),
            ("RCPTHOSTS".into(), path(self.root.join("rcpthosts"))),
            ("PROTO".into(), "TCP".into()),
            ("TCPREMOTEIP".into(), "192.0.2.7".into()),
            ("TCPLOCALHOST".into(), "backup.test".into()),
        ]
    }

    /// One session of smtpfront-spool through pipes, with `extra` settings: the reply lines
    /// (greeting included) and the log.
    fn session(&self, extra: &[(&str, &str)], lines: &[&str]) -> (Vec<String>, String) {
        let env = self.env();
        let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        all.extend_from_slice(extra);
        session(SPOOL, &all, lines)
    }

    /// Stores one message for `rcpt` with the real smtpfront-spool (RELAYCLIENT).
    fn queue_for(&self, rcpt: &str) {
        let (replies, log) = self.session(
            &[("RELAYCLIENT", "")],
            &[
                "MAIL FROM:<a@example.net>",
                &format!("RCPT TO:<{rcpt}>"),
                "DATA",
                "Subject: waiting",
                "",
                "for the primary",
                ".",
                "QUIT",
            ],
        );
        let queued = format!("250 2.0.0 Ok: queued as {}", common::QUEUE_ID);
        assert!(common::like(&replies[4], &queued), "{replies:#?}\n{log}");
    }

    /// The FIFO made by the real `forward --wait 0` (which returns at once).
    fn make_fifo(&self) {
        let out = self.forward_wait("0").output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert!(fs::metadata(self.trigger()).unwrap().file_type().is_fifo());
    }

    fn forward_wait(&self, seconds: &str) -> std::process::Command {
        let spool = self.spool();
        let mut c = command(FORWARD, &[("SPOOLDIR", spool.to_str().unwrap())]);
        c.args(["--wait", seconds]);
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }
}

impl Drop for Backup {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// Runs `program` on `lines` (CRLF added); returns the reply lines and the log.
fn session(program: &str, env: &[(&str, &str)], lines: &[&str]) -> (Vec<String>, String) {
    session_args(program, &[], env, lines)
}

/// [`session`] with arguments (smtpfront-reject's chain).
fn session_args(
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
    lines: &[&str],
) -> (Vec<String>, String) {
    use std::io::Write;
    let input: String = lines.iter().map(|l| format!("{l}\r\n")).collect();
    let mut child = command(program, env)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let replies = common::reply_lines(&stdout)
        .iter()
        .map(|l| l.to_string())
        .collect();
    (replies, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The FIFO held open for reading, as service/forward/run holds it: writers find a reader,
/// and what they write stays until it is read here.
struct Fifo(File);

impl Fifo {
    fn hold(path: &Path) -> Fifo {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .unwrap();
        Fifo(f)
    }

    /// How many bytes were written since the last call.
    fn bytes(&mut self) -> usize {
        let mut buf = [0u8; 256];
        let mut n = 0;
        loop {
            match self.0.read(&mut buf) {
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return n,
                Err(e) => panic!("{e}"),
            }
        }
    }
}

/// The one line per ETRN that smtpfront-spool logs (node, client, answer), without the
/// driver's line `COMMAND -> REPLY` of every error reply (SPEC 8).
fn etrn_log(log: &str) -> Vec<&str> {
    common::log_lines_of(log, "smtpfront-spool")
        .into_iter()
        .filter(|l| l.starts_with("ETRN ") && !common::like(l, "* -> *"))
        .collect()
}

// ------------------------------------------------------------------------ which programs

#[test]
fn ehlo_lists_etrn_in_smtpfront_spool_only() {
    let b = Backup::new("etrn-ehlo");
    let (replies, _) = b.session(&[], &["EHLO primary.test", "QUIT"]);
    assert_eq!(
        replies,
        [
            "220 backup.test smtpfront ESMTP",
            "250-backup.test",
            "250-SIZE 0",
            "250-8BITMIME",
            "250-SMTPUTF8",
            "250-ENHANCEDSTATUSCODES",
            "250-PIPELINING",
            "250 ETRN",
            "221 2.0.0 Good bye",
        ]
    );
    // smtpfront-echo stores nothing: ETRN is an unknown command there, as before.
    let (replies, _) = session(
        ECHO,
        &[("TCPLOCALHOST", "backup.test"), ("PROTO", "TCP")],
        &["EHLO primary.test", "ETRN example.com", "QUIT"],
    );
    assert_eq!(replies[6], "250 PIPELINING", "{replies:#?}");
    assert_eq!(replies[7], "500 5.5.1 Command not recognized");
}

/// smtpfront-reject in front of smtpfront-spool: while it refuses, ETRN is not listed and
/// is refused with the operator's text, like MAIL; without SMTPREJECT it is spool's ETRN.
#[test]
fn smtpfront_reject_refuses_etrn_while_it_refuses() {
    let b = Backup::new("etrn-reject");
    b.queue_for("u@example.com");
    b.make_fifo();
    let mut fifo = Fifo::hold(&b.trigger());
    let env = b.env();
    let mut refusing: Vec<(&str, &str)> = env.iter().map(|(k, v)| (&k[..], &v[..])).collect();
    refusing.push(("SMTPREJECT", "Down for maintenance"));
    let lines = ["EHLO primary.test", "ETRN example.com", "QUIT"];
    let (replies, _) = session(REJECT, &refusing, &lines);
    assert_eq!(replies[6], "250 PIPELINING", "{replies:#?}");
    assert_eq!(replies[7], "451 4.3.2 Down for maintenance");
    refusing.push(("SMTPREJECT", "-Closed"));
    let (replies, _) = session(REJECT, &refusing, &lines);
    assert_eq!(replies[7], "553 5.7.1 Closed");
    assert_eq!(fifo.bytes(), 0);

    let passing: Vec<(&str, &str)> = env.iter().map(|(k, v)| (&k[..], &v[..])).collect();
    let (replies, _) = session_args(REJECT, &[SPOOL], &passing, &lines);
    assert_eq!(replies[6], "250-PIPELINING", "{replies:#?}");
    assert_eq!(replies[7], "250 ETRN");
    assert_eq!(replies[8], STARTED);
    assert_eq!(fifo.bytes(), 1);
}

// ------------------------------------------------------------------------ smtpfront-spool

/// Allowed for a domain of RCPTHOSTS: one byte into the FIFO per ETRN, `250`; other nodes
/// are `459` without RELAYCLIENT or AUTH. Every ETRN is logged with node, client, answer.
#[test]
fn a_rcpthosts_domain_may_ask_others_may_not() {
    let b = Backup::new("etrn-rcpthosts");
    b.queue_for("u@example.com");
    b.make_fifo();
    let mut fifo = Fifo::hold(&b.trigger());
    let (replies, log) = b.session(
        &[],
        &[
            "EHLO primary.test",
            "ETRN example.com",
            "ETRN @Example.COM",
            "ETRN example.org",
            "ETRN mail.example.com",
            "ETRN #example.org",
            "QUIT",
        ],
    );
    assert_eq!(
        replies[8..],
        [
            STARTED,
            "250 2.0.0 Queuing for node @example.com started",
            &not_allowed("example.org"),
            &not_allowed("mail.example.com"),
            &not_allowed("#example.org"),
            "221 2.0.0 Good bye",
        ],
        "{log}"
    );
    assert_eq!(fifo.bytes(), 2, "one byte per ETRN that was answered 250");
    assert_eq!(
        etrn_log(&log),
        [
            format!("ETRN example.com from 192.0.2.7 helo primary.test: {STARTED}"),
            "ETRN @Example.COM from 192.0.2.7 helo primary.test: 250 2.0.0 Queuing for node @example.com started".into(),
            format!("ETRN example.org from 192.0.2.7 helo primary.test: {}", not_allowed("example.org")),
            format!("ETRN mail.example.com from 192.0.2.7 helo primary.test: {}", not_allowed("mail.example.com")),
            format!("ETRN #example.org from 192.0.2.7 helo primary.test: {}", not_allowed("#example.org")),
        ],
        "{log}"
    );
    // Once each: the refusals are not logged again by the driver's `COMMAND -> REPLY`
    // line of error replies (they were, twice per refused ETRN).
    let etrn_lines = common::log_lines_of(&log, "smtpfront-spool")
        .into_iter()
        .filter(|l| l.starts_with("ETRN "))
        .count();
    assert_eq!(etrn_lines, 5, "{log}");
}

/// RELAYCLIENT, or AUTH, allows any node; `251` when nothing waits for it (and no byte is
/// written: no run for nothing); `#queue` names the one queue.
#[test]
fn relayclient_and_auth_may_ask_for_any_node() {
    let b = Backup::new("etrn-privileged");
    b.queue_for("u@example.com");
    b.make_fifo();
    let mut fifo = Fifo::hold(&b.trigger());
    let (replies, log) = b.session(
        &[("RELAYCLIENT", "")],
        &["ETRN example.org", "ETRN #queue", "QUIT"],
    );
    assert_eq!(
        replies[1..],
        [
            NOT_WAITING,
            "250 2.0.0 Queuing for node #queue started",
            "221 2.0.0 Good bye"
        ],
        "{log}"
    );
    assert_eq!(fifo.bytes(), 1);

    let (replies, log) = b.session(
        &[("CHECKPASSWORD", CHECKPW)],
        &[
            "EHLO primary.test",
            "ETRN example.org",
            AUTH_ALICE,
            "ETRN example.org",
            "ETRN @example.com",
            "QUIT",
        ],
    );
    assert_eq!(replies[7..9], ["250-ETRN", "250 AUTH PLAIN LOGIN"]);
    assert_eq!(
        replies[9..],
        [
            not_allowed("example.org").as_str(),
            "235 2.7.0 Authentication successful",
            NOT_WAITING,
            "250 2.0.0 Queuing for node @example.com started",
            "221 2.0.0 Good bye",
        ],
        "{log}"
    );
    assert_eq!(fifo.bytes(), 1);
}

/// `458` when the FIFO is missing and when nobody reads it; the log says which.
#[test]
fn no_fifo_or_no_reader_is_458() {
    let b = Backup::new("etrn-458");
    b.queue_for("u@example.com");
    let (replies, log) = b.session(&[], &["ETRN example.com", "QUIT"]);
    assert_eq!(replies[1], UNABLE, "{log}");
    let trigger = b.trigger().display().to_string();
    let said = common::log_lines_of(&log, "smtpfront-spool");
    assert!(said.contains(&format!("ETRN: {trigger}: no such FIFO (forward --wait creates it: is the forward service running?)").as_str()), "{log}");
    assert!(
        !b.trigger().exists(),
        "the front end must not make the FIFO"
    );

    b.make_fifo();
    let (replies, log) = b.session(&[], &["ETRN example.com", "QUIT"]);
    assert_eq!(replies[1], UNABLE, "{log}");
    let said = common::log_lines_of(&log, "smtpfront-spool");
    assert!(
        said.contains(
            &format!("ETRN: {trigger}: nobody waits on it (is the forward service running?)")
                .as_str()
        ),
        "{log}"
    );
    assert_eq!(
        etrn_log(&log),
        [format!(
            "ETRN example.com from 192.0.2.7 helo none: {UNABLE}"
        )]
    );
}

/// A `trigger` that is not a FIFO is never opened for writing: `458`, the file untouched.
#[test]
fn a_trigger_that_is_not_a_fifo_is_left_alone() {
    let b = Backup::new("etrn-notfifo");
    b.queue_for("u@example.com");
    fs::write(b.trigger(), "operator's notes\n").unwrap();
    let (replies, log) = b.session(&[], &["ETRN example.com", "QUIT"]);
    assert_eq!(replies[1], UNABLE, "{log}");
    let trigger = b.trigger().display().to_string();
    assert!(
        common::log_lines_of(&log, "smtpfront-spool")
            .contains(&format!("ETRN: {trigger}: not a FIFO; remove it").as_str()),
        "{log}"
    );
    let out = b.forward_wait("5").output().unwrap();
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("forward: {trigger}: not a FIFO; remove it\n")
    );
    assert_eq!(
        fs::read_to_string(b.trigger()).unwrap(),
        "operator's notes\n"
    );
}

/// `501 5.5.4` for a missing or malformed node, `503 5.5.1` inside a transaction (and
/// after RSET the same ETRN is answered).
#[test]
fn malformed_node_501_inside_a_transaction_503() {
    let b = Backup::new("etrn-syntax");
    b.queue_for("u@example.com");
    b.make_fifo();
    let mut fifo = Fifo::hold(&b.trigger());
    let bad = [
        "ETRN",
        "ETRN   ",
        "ETRN example.com extra",
        "ETRN @",
        "ETRN #",
        "ETRN [192.0.2.1]",
        "ETRN u@example.com",
        "ETRN example..com",
        "etrn b\u{fc}cher..example",
    ];
    let mut lines: Vec<&str> = bad.to_vec();
    lines.extend([
        "MAIL FROM:<a@example.net>",
        "ETRN example.com",
        "ETRN",
        "RSET",
        "etrn example.com",
        "QUIT",
    ]);
    let (replies, log) = b.session(&[("RELAYCLIENT", "")], &lines);
    let mut want = vec![BAD_NODE; bad.len()];
    want.extend([
        "250 2.1.0 Sender accepted",
        IN_TRANSACTION,
        IN_TRANSACTION,
        "250 2.0.0 Reset",
        STARTED,
        "221 2.0.0 Good bye",
    ]);
    assert_eq!(replies[1..], want, "{log}");
    assert_eq!(fifo.bytes(), 1);
    let logged = etrn_log(&log);
    assert_eq!(logged.len(), bad.len() + 3, "{log}");
    assert_eq!(
        logged[0],
        format!("ETRN (no node) from 192.0.2.7 helo none: {BAD_NODE}")
    );
    assert_eq!(
        logged[bad.len()],
        format!("ETRN example.com from 192.0.2.7 helo none: {IN_TRANSACTION}")
    );
}

/// `251` when no queued message has a recipient in the domain: an empty queue, and a queue
/// of mail for other domains only (a sub-domain is not the domain; `@domain` takes it).
#[test]
fn nothing_queued_for_the_domain_is_251() {
    let b = Backup::new("etrn-251");
    b.make_fifo();
    let mut fifo = Fifo::hold(&b.trigger());
    let (replies, _) = b.session(&[], &["ETRN example.com", "QUIT"]);
    assert_eq!(
        replies[1],
        "251 2.0.0 No messages waiting for node example.com"
    );
    b.queue_for("u@example.net");
    b.queue_for("v@mail.example.com");
    let (replies, log) = b.session(&[], &["ETRN example.com", "ETRN @example.com", "QUIT"]);
    assert_eq!(
        replies[1..],
        [
            "251 2.0.0 No messages waiting for node example.com",
            "250 2.0.0 Queuing for node @example.com started",
            "221 2.0.0 Good bye",
        ],
        "{log}"
    );
    assert_eq!(fifo.bytes(), 1);
}

/// A real client (Python's smtplib) under tcpserver: sees ETRN in EHLO and gets the
/// replies; the log names the client's address.
#[test]
fn smtplib_under_tcpserver() {
    let Some(py) = common::python() else {
        return;
    };
    let b = Backup::new("etrn-tcpserver");
    b.queue_for("u@example.com");
    b.make_fifo();
    let mut fifo = Fifo::hold(&b.trigger());
    let env = b.env();
    let env: Vec<(&str, &str)> = env
        .iter()
        .filter(|(k, _)| k.as_str() == "SPOOLDIR" || k.as_str() == "RCPTHOSTS")
        .map(|(k, v)| (&k[..], &v[..]))
        .collect();
    let Some(server) = Server::start(&[SPOOL], &env, 5) else {
        return;
    };
    let script = format!(
        "import smtplib\n\
         s = smtplib.SMTP('127.0.0.1', {}, local_hostname='primary.test')\n\
         s.ehlo()\n\
         print(s.has_extn('etrn'))\n\
         print(s.docmd('ETRN', 'example.org'))\n\
         print(s.docmd('ETRN', 'example.com'))\n\
         s.mail('a@example.net')\n\
         print(s.docmd('ETRN', 'example.com'))\n\
         s.quit()\n",
        server.port
    );
    let mut client = command(py, &[]);
    client.args(["-c", &script]);
    let ran = common::run_bounded(client, Duration::from_secs(30));
    assert_eq!(
        ran.stdout,
        format!(
            "True\n(459, b'4.7.1 Node example.org not allowed: not a domain this host is a backup MX for')\n\
             (250, b'2.0.0 Queuing for node example.com started')\n\
             (503, b'5.5.1 ETRN is not allowed inside a mail transaction')\n"
        ),
        "{}{}",
        ran.stderr,
        server.log()
    );
    assert_eq!(fifo.bytes(), 1);
    // The session's lines are complete once its end line is there.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log().contains(": end: remote 127.0.0.1 ") {
        assert!(Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = server.log();
    assert_eq!(
        etrn_log(&log)[1],
        format!("ETRN example.com from 127.0.0.1 helo primary.test: {STARTED}")
    );
}

// ------------------------------------------------------------------------ forward --wait

/// Waits until process `pid` has the FIFO `path` open (from /proc/PID/fd).
fn wait_open(pid: u32, path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let open = fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| {
                d.flatten()
                    .any(|fd| fs::read_link(fd.path()).is_ok_and(|p| p == path))
            })
            .unwrap_or(false);
        if open {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{pid} never opened {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for `child` to exit within `limit`; its exit code and stderr.
fn exit_within(mut child: Guard, limit: Duration) -> (Option<i32>, String) {
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "still running after {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut err = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code(), err)
}

/// The log messages of a forward run (stderr), without their `forward[PID]: ` prefix.
fn forward_lines(err: &str) -> Vec<&str> {
    common::log_lines_of(err, "forward")
}

/// `forward --wait 60` returns within moments of an ETRN (the real smtpfront-spool), exit 0.
#[test]
fn forward_wait_returns_on_an_etrn() {
    let b = Backup::new("etrn-wait-byte");
    b.queue_for("u@example.com");
    let waiter = Guard(b.forward_wait("60").spawn().unwrap());
    let pid = waiter.0.id();
    wait_open(pid, &b.trigger());
    let mode = fs::metadata(b.trigger()).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o600, "the FIFO is made with mode 0600");
    let (replies, log) = b.session(&[], &["ETRN example.com", "QUIT"]);
    assert_eq!(replies[1], STARTED, "{log}");
    let (code, err) = exit_within(waiter, WAKE_LIMIT);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        forward_lines(&err),
        ["woken by ETRN: the queue is sent now"]
    );
}

/// Without an ETRN it waits its time and exits 0, silently; `--wait 0` only drains.
#[test]
fn forward_wait_times_out_with_0() {
    let b = Backup::new("etrn-wait-timeout");
    let started = Instant::now();
    let (code, err) = exit_within(
        Guard(b.forward_wait("1").spawn().unwrap()),
        Duration::from_secs(10),
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!((code, err.as_str()), (Some(0), ""));
    assert!(fs::metadata(b.trigger()).unwrap().file_type().is_fifo());

    // A byte written while the FIFO was held (a run in progress) is there for the next wait.
    let _held = Fifo::hold(&b.trigger());
    b.queue_for("u@example.com");
    let (replies, _) = b.session(&[], &["ETRN example.com", "QUIT"]);
    assert_eq!(replies[1], STARTED);
    let (code, err) = exit_within(Guard(b.forward_wait("60").spawn().unwrap()), WAKE_LIMIT);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        forward_lines(&err),
        ["woken by ETRN: the queue is sent now"]
    );
    let (code, err) = exit_within(Guard(b.forward_wait("0").spawn().unwrap()), WAKE_LIMIT);
    assert_eq!((code, err.as_str()), (Some(0), ""), "drained: nothing left");
}

/// SIGALRM (daemontools' `svc -a`) ends the wait, exit 0.
#[test]
fn forward_wait_ends_on_sigalrm() {
    let b = Backup::new("etrn-wait-alrm");
    let waiter = Guard(b.forward_wait("60").spawn().unwrap());
    wait_open(waiter.0.id(), &b.trigger());
    // SAFETY: kill(2) on our own child.
    assert_eq!(
        unsafe { libc::kill(waiter.0.id() as i32, libc::SIGALRM) },
        0
    );
    let (code, err) = exit_within(waiter, WAKE_LIMIT);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        forward_lines(&err),
        ["woken by SIGALRM: the queue is sent now"]
    );
}

/// A writer that opens and closes the FIFO without a byte does not end the wait (nor make
/// it spin), and a later byte still does.
#[test]
fn forward_wait_ignores_a_writer_without_a_byte() {
    let b = Backup::new("etrn-wait-empty");
    let waiter = Guard(b.forward_wait("60").spawn().unwrap());
    let pid = waiter.0.id();
    wait_open(pid, &b.trigger());
    drop(
        OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(b.trigger())
            .unwrap(),
    );
    let cpu = |pid: u32| {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let rest: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        rest[11].parse::<u64>().unwrap() + rest[12].parse::<u64>().unwrap()
    };
    let before = cpu(pid);
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut waiter = waiter;
    assert!(
        waiter.0.try_wait().unwrap().is_none(),
        "an empty writer ended the wait"
    );
    assert!(cpu(pid) - before < 10, "the wait spins after a writer left");
    b.queue_for("u@example.com");
    let (replies, _) = b.session(&[], &["ETRN example.com", "QUIT"]);
    assert_eq!(replies[1], STARTED);
    let (code, err) = exit_within(waiter, WAKE_LIMIT);
    assert_eq!(code, Some(0), "{err}");
}

/// Usage: a number of seconds, decimal and non-negative (SPEC 2); SPOOLDIR required.
#[test]
fn forward_wait_usage() {
    let b = Backup::new("etrn-wait-usage");
    for bad in ["-1", "5m", "", "+3"] {
        let out = b.forward_wait(bad).output().unwrap();
        assert_eq!(out.status.code(), Some(64), "{bad:?}");
    }
    let out = command(FORWARD, &[])
        .args(["--wait", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
}
