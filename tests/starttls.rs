//! STARTTLS with a real UCSPI-TLS helper (SPEC 3.1): `tcpserver ... s6-ucspitlsd --
//! smtpfront-reject smtpfront-spool` with a self-signed certificate for mx.test, and real
//! clients: swaks --tls, openssl s_client -starttls smtp, Python's smtplib.starttls(), and a
//! scripted client (tests/starttls_client.py) for the injection, garbage instead of a
//! handshake, STARTTLS twice or with an argument, REQUIRE_TLS and AUTH.

mod common;

use common::postfix::Postfix;
use common::{assert_lines_like, command, like, python, run_bounded, scratch, tool, Server};
use common::{QUEUE_ID, REJECT, SPOOL};
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const CLIENT_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/starttls_client.py");
const READY: &str = "220 2.0.0 Ready to start TLS";
const LIMIT: Duration = Duration::from_secs(30);

/// A spool served through s6-ucspitlsd.
struct Tls {
    dir: PathBuf,
    server: Server,
}

impl Tls {
    fn start(name: &str, env: &[(&str, &str)]) -> Option<Tls> {
        Tls::start_chain(name, env, &[REJECT, SPOOL], &[])
    }

    /// `tcpserver OPTS... s6-ucspitlsd -- CHAIN...` (`-v` in OPTS: tcpserver logs each
    /// child's exit status).
    fn start_chain(name: &str, env: &[(&str, &str)], chain: &[&str], opts: &[&str]) -> Option<Tls> {
        let bin = common::s6_networking()?;
        let (cert, key) = common::test_certificate()?;
        let dir = scratch(name);
        fs::create_dir(dir.join("spool")).unwrap();
        let spool = dir.join("spool").to_str().unwrap().to_string();
        // s6-ucspitlsd runs s6-tlsd-io by name.
        let path = format!("{}:/usr/bin:/bin", bin.display());
        let ucspitlsd = bin.join("s6-ucspitlsd");
        let mut vars = vec![
            ("PATH", path.as_str()),
            ("CERTFILE", cert.to_str().unwrap()),
            ("KEYFILE", key.to_str().unwrap()),
            ("SPOOLDIR", spool.as_str()),
            ("RELAYCLIENT", ""),
        ];
        vars.extend_from_slice(env);
        let mut argv = vec![ucspitlsd.to_str().unwrap(), "--"];
        argv.extend_from_slice(chain);
        let mut all_opts = vec!["-c", "10", "-l", "mx.test"];
        all_opts.extend_from_slice(opts);
        let server = Server::start_with(&argv, &vars, &all_opts)?;
        Some(Tls { dir, server })
    }

    fn port(&self) -> String {
        self.server.port.to_string()
    }

    /// Waits (with a deadline) until `n` messages are in `new/`; returns them.
    fn wait_stored(&self, n: usize, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        loop {
            let stored = self.stored();
            if stored.len() >= n {
                return stored;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} messages stored after {limit:?}:\n{}",
                stored.len(),
                self.server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stored(&self) -> Vec<String> {
        let mut names: Vec<PathBuf> = fs::read_dir(self.dir.join("spool/new"))
            .map(|r| r.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        names.sort();
        names
            .iter()
            .map(|p| String::from_utf8(fs::read(p).unwrap()).unwrap())
            .collect()
    }

    /// What smtpfront-spool logged (without the prefix), once the end line of a session
    /// that read something is there (tcpserver's start-up probe reads nothing). Lines of
    /// the TLS helper are left out.
    fn log_after_end(&self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.server.log();
            let lines: Vec<String> = log
                .lines()
                .filter_map(common::split_log_line)
                .filter(|(program, _)| *program == "smtpfront-spool")
                .map(|(_, m)| m.to_string())
                .collect();
            if lines
                .iter()
                .any(|l| l.starts_with("end: ") && !like(l, "end: * bytes in 0 out *"))
            {
                return lines;
            }
            assert!(Instant::now() < deadline, "no end line in the log:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The exit status tcpserver (`-v`) logged for the session whose smtpfront-spool logged
    /// `end_line` (s6-ucspitlsd execs into the chain: the PID is tcpserver's child's).
    fn exit_status_of(&self, end_line: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.server.log();
            let pid = log
                .lines()
                .find_map(|l| {
                    l.strip_prefix("smtpfront-spool[")?
                        .strip_suffix(&format!("]: {end_line}"))
                })
                .unwrap_or_else(|| panic!("no {end_line:?} in the log:\n{log}"));
            let prefix = format!("tcpserver: end {pid} status ");
            if let Some(status) = log.lines().find_map(|l| l.strip_prefix(&prefix)) {
                return status.to_string();
            }
            assert!(Instant::now() < deadline, "no exit status of {pid}:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs tests/starttls_client.py with `steps`; its output lines.
    fn script(&self, steps: &[&str]) -> Option<Vec<String>> {
        let mut cmd = command(python()?, &[]);
        cmd.arg(CLIENT_PY).arg(self.port()).args(steps);
        let ran = run_bounded(cmd, LIMIT);
        assert_eq!(ran.code, Some(0), "{}", ran.stderr);
        Some(ran.stdout.lines().map(str::to_string).collect())
    }
}

impl Drop for Tls {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

const GREETING: &str = "220 mx.test smtpfront ESMTP";

/// smtpfront-spool's EHLO lists ETRN (SPEC 3.3).
const EHLO_CLEAR: [&str; 8] = [
    "250-mx.test",
    "250-SIZE 0",
    "250-8BITMIME",
    "250-SMTPUTF8",
    "250-ENHANCEDSTATUSCODES",
    "250-PIPELINING",
    "250-ETRN",
    "250 STARTTLS",
];

const EHLO_TLS: [&str; 7] = [
    "250-mx.test",
    "250-SIZE 0",
    "250-8BITMIME",
    "250-SMTPUTF8",
    "250-ENHANCEDSTATUSCODES",
    "250-PIPELINING",
    "250 ETRN",
];

/// The Received header of a stored message (its three lines after the spool's SMTP lines).
fn received(stored: &str) -> Vec<&str> {
    let lines: Vec<&str> = stored.split("\r\n").collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("Received: "))
        .unwrap_or_else(|| panic!("no Received header:\n{stored}"));
    lines[at..at + 3].to_vec()
}

#[test]
fn swaks_tls_message_stored_with_esmtps_and_the_cipher() {
    let Some(tls) = Tls::start("tls-swaks", &[]) else {
        return;
    };
    let Some(swaks) = tool("swaks") else {
        return;
    };
    let mut cmd = command(swaks, &[]);
    cmd.args(["--server", &format!("127.0.0.1:{}", tls.port()), "--tls"])
        .args(["--helo", "client.test", "--from", "sender@example.net"])
        .args(["--to", "rcpt@example.com", "--timeout", "20"]);
    let ran = run_bounded(cmd, LIMIT);
    let transcript = ran.all();
    assert_eq!(ran.code, Some(0), "{transcript}");
    // `=== TLS started with cipher TLSv1.3:TLS_AES_256_GCM_SHA384:256`: swaks' side.
    let started = transcript
        .lines()
        .find_map(|l| l.strip_prefix("=== TLS started with cipher "))
        .unwrap_or_else(|| panic!("{transcript}"));
    let mut parts = started.split(':');
    let (version, cipher) = (parts.next().unwrap(), parts.next().unwrap());
    assert_eq!(version, "TLSv1.3", "{transcript}");
    let inside: Vec<&str> = transcript
        .lines()
        .filter_map(|l| l.strip_prefix("<~  "))
        .collect();
    assert_eq!(&inside[..7], EHLO_TLS, "{transcript}");
    assert!(
        inside
            .iter()
            .any(|l| like(l, &format!("250 2.0.0 Ok: queued as {QUEUE_ID}"))),
        "{transcript}"
    );
    let stored = tls.stored();
    assert_eq!(stored.len(), 1, "{}", tls.server.log());
    assert_lines_like(
        &received(&stored[0]),
        &[
            "Received: from client.test ([127.0.0.1])",
            "\tby mx.test ([127.0.0.1])",
            &format!("\twith ESMTPS via TCP ({version} {cipher}); *"),
        ],
    );
    let log = tls.log_after_end();
    assert!(
        log.contains(&format!("TLS started: {version} {cipher}")),
        "{log:#?}"
    );
}

#[test]
fn openssl_s_client_starttls_smtp_gets_tls13_and_the_certificate() {
    let Some(tls) = Tls::start("tls-s-client", &[]) else {
        return;
    };
    let Some(openssl) = tool("openssl") else {
        return;
    };
    let mut cmd = command(openssl, &[]);
    cmd.args(["s_client", "-starttls", "smtp", "-brief", "-connect"])
        .arg(format!("127.0.0.1:{}", tls.port()));
    let ran = run_bounded(cmd, LIMIT);
    let out = ran.all();
    let lines: Vec<&str> = out.lines().collect();
    for want in [
        "CONNECTION ESTABLISHED",
        "Protocol version: TLSv1.3",
        "Peer certificate: CN = mx.test",
    ] {
        assert!(lines.contains(&want), "{want:?} missing:\n{out}");
    }
    let log = tls.log_after_end();
    assert!(
        log.iter().any(|l| like(l, "TLS started: TLSv1.3 TLS_*")),
        "{log:#?}"
    );
}

#[test]
fn python_smtplib_starttls_stores_the_message() {
    let Some(tls) = Tls::start("tls-smtplib", &[]) else {
        return;
    };
    let Some(py) = python() else {
        return;
    };
    let script = r#"
import smtplib, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), local_hostname="py.test", timeout=20)
s.ehlo()
print("before", s.has_extn("starttls"))
print("starttls", *s.starttls(context=ctx))
s.ehlo()
print("after", s.has_extn("starttls"))
print(s.sock.version(), s.sock.cipher()[0])
s.sendmail("a@example.net", ["b@example.com"], b"Subject: t\r\n\r\nover TLS\r\n")
s.quit()
"#;
    let mut cmd = command(py, &[]);
    cmd.args(["-c", script, &tls.port()]);
    let ran = run_bounded(cmd, LIMIT);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let out: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(
        &out[..3],
        [
            "before True",
            "starttls 220 b'2.0.0 Ready to start TLS'",
            "after False"
        ]
    );
    let (version, cipher) = out[3].split_once(' ').unwrap();
    let stored = tls.stored();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].starts_with("HELO py.test\r\n"), "{}", stored[0]);
    assert_lines_like(
        &received(&stored[0]),
        &[
            "Received: from py.test ([127.0.0.1])",
            "\tby mx.test ([127.0.0.1])",
            &format!("\twith ESMTPS via TCP ({version} {cipher}); *"),
        ],
    );
}

/// CVE-2011-0411: `STARTTLS\r\nMAIL FROM:<x@y>\r\n` in one write gets no reply to the
/// MAIL, neither in clear nor inside TLS.
#[test]
fn starttls_injection_gets_no_reply_in_clear_or_in_tls() {
    let Some(tls) = Tls::start("tls-injection", &[]) else {
        return;
    };
    let Some(out) = tls.script(&[
        "1:EHLO a",
        "1:STARTTLS|MAIL FROM:<x@y>",
        "TLS",
        "1:EHLO a",
        "1:RCPT TO:<b@example.com>",
        "1:QUIT",
        "EOF",
    ]) else {
        return;
    };
    let mut want = vec![GREETING];
    want.extend(EHLO_CLEAR);
    want.extend([READY, "TLS TLSv1.3 *"]);
    want.extend(EHLO_TLS);
    want.extend(["503 5.5.1 MAIL first", "221 2.0.0 Good bye", "EOF"]);
    assert_lines_like(&out, &want);
    let log = tls.log_after_end();
    assert!(
        log.iter()
            .any(|l| like(l, "STARTTLS: # bytes sent before the handshake thrown away")),
        "{log:#?}"
    );
}

#[test]
fn starttls_twice_and_with_an_argument_are_refused() {
    let Some(tls) = Tls::start("tls-twice", &[]) else {
        return;
    };
    let Some(out) = tls.script(&[
        "1:STARTTLS now",
        "1:STARTTLS",
        "TLS",
        "1:STARTTLS",
        "1:QUIT",
    ]) else {
        return;
    };
    assert_lines_like(
        &out,
        &[
            GREETING,
            "501 5.5.4 Syntax: STARTTLS",
            READY,
            "TLS TLSv1.3 *",
            "503 5.5.1 TLS already started",
            "221 2.0.0 Good bye",
        ],
    );
}

/// SPEC 3.1: a failed handshake ends the session (logged), and the transaction begun in
/// clear is not stored.
#[test]
fn garbage_instead_of_a_handshake_ends_the_session_cleanly() {
    let Some(tls) = Tls::start("tls-garbage", &[]) else {
        return;
    };
    let Some(out) = tls.script(&[
        "1:MAIL FROM:<a@example.net>",
        "1:RCPT TO:<b@example.com>",
        "1:STARTTLS",
        "RAW:this is not a TLS ClientHello\r\n\r\n",
        "EOF",
    ]) else {
        return;
    };
    assert_lines_like(
        &out,
        &[
            GREETING,
            "250 2.1.0 Sender accepted",
            "250 2.1.5 Recipient accepted",
            READY,
            "EOF",
        ],
    );
    let log = tls.log_after_end();
    assert!(
        log.contains(&"STARTTLS: handshake failed or the TLS helper went away".to_string()),
        "{log:#?}"
    );
    assert!(
        log.iter().any(|l| like(
            l,
            "end: remote 127.0.0.1 helo none messages 0 bytes in # out #: TLS failed"
        )),
        "{log:#?}"
    );
    assert!(tls.stored().is_empty());
}

/// SPEC 2 REQUIRE_TLS: MAIL refused in clear, accepted inside TLS.
#[test]
fn require_tls_refuses_mail_in_clear() {
    let Some(tls) = Tls::start("tls-require", &[("REQUIRE_TLS", "1")]) else {
        return;
    };
    let Some(out) = tls.script(&[
        "1:MAIL FROM:<a@example.net>",
        "1:STARTTLS",
        "TLS",
        "1:MAIL FROM:<a@example.net>",
        "1:QUIT",
    ]) else {
        return;
    };
    assert_lines_like(
        &out,
        &[
            GREETING,
            "530 5.7.0 Must issue a STARTTLS command first",
            READY,
            "TLS TLSv1.3 *",
            "250 2.1.0 Sender accepted",
            "221 2.0.0 Good bye",
        ],
    );
}

/// SPEC 3.1: AUTH is neither listed nor accepted before TLS; inside TLS it is, and the
/// message says ESMTPSA. (`/bin/true` as checkpassword accepts every password.)
#[test]
fn auth_only_after_tls_and_received_says_esmtpsa() {
    let Some(tls) = Tls::start("tls-auth", &[("CHECKPASSWORD", "/bin/true")]) else {
        return;
    };
    let Some(out) = tls.script(&[
        "1:EHLO a",
        "1:AUTH PLAIN AHVAZXhhbXBsZS5uZXQAcGFzcw==",
        "1:STARTTLS",
        "TLS",
        "1:EHLO a",
        "1:AUTH PLAIN AHVAZXhhbXBsZS5uZXQAcGFzcw==",
        "4:MAIL FROM:<u@example.net>|RCPT TO:<b@example.com>|DATA|Subject: t||x|.",
        "1:QUIT",
    ]) else {
        return;
    };
    let mut want = vec![GREETING];
    want.extend(EHLO_CLEAR);
    want.extend([
        "530 5.7.0 Must issue a STARTTLS command first",
        READY,
        "TLS TLSv1.3 *",
    ]);
    want.extend(&EHLO_TLS[..6]);
    want.extend([
        "250-ETRN",
        "250 AUTH PLAIN LOGIN",
        "235 2.7.0 Authentication successful",
        "250 2.1.0 Sender accepted",
        "250 2.1.5 Recipient accepted",
        "354 End your message with a line holding only a dot",
    ]);
    let queued = format!("250 2.0.0 Ok: queued as {QUEUE_ID}");
    want.extend([queued.as_str(), "221 2.0.0 Good bye"]);
    assert_lines_like(&out, &want);
    let stored = tls.stored();
    assert_eq!(stored.len(), 1);
    assert_lines_like(
        &received(&stored[0])[2..],
        &["\twith ESMTPSA via TCP (TLSv1.3 TLS_*); *"],
    );
}

/// Issue 10: a real MTA relays into the chain with `smtp_tls_security_level = encrypt`. A
/// private Postfix gets a message by SMTP and relays it over TLS into s6-ucspitlsd +
/// smtpfront-spool: it arrives whole behind Postfix's Received header and ours says
/// ESMTPS; Postfix logs the TLS connection it made.
#[test]
fn postfix_relays_into_the_chain_with_tls_encrypt() {
    let Some(tls) = Tls::start("tls-postfix", &[]) else {
        return;
    };
    let relayhost = format!("[127.0.0.1]:{}", tls.port());
    let settings = [
        ("relayhost", relayhost.as_str()),
        ("smtp_tls_security_level", "encrypt"),
    ];
    let Some(mta) = Postfix::start("tls-postfix-mta", &settings) else {
        return;
    };
    let message = b"From: <a@example.net>\r\nTo: <b@example.com>\r\n\
        Date: Wed, 02 Dec 2026 12:00:00 +0000\r\nMessage-ID: <tls.1@example.net>\r\n\
        Subject: through Postfix\r\n\r\n.a line with a leading dot\r\nthe end\r\n";
    let Some(reply) = mta.inject("a@example.net", "b@example.com", message) else {
        return;
    };
    let qid = reply
        .strip_prefix("250 2.0.0 Ok: queued as ")
        .unwrap_or_else(|| panic!("{reply}"));
    let stored = tls.wait_stored(1, Duration::from_secs(60));
    let lines: Vec<&str> = stored[0].split("\r\n").collect();
    assert_eq!(
        lines[..4],
        [
            "HELO postfix.test",
            "MAIL FROM:<a@example.net>",
            "RCPT TO:<b@example.com>",
            "DATA"
        ]
    );
    assert_lines_like(
        &lines[4..10],
        &[
            "Received: from postfix.test ([127.0.0.1])",
            "\tby mx.test ([127.0.0.1])",
            "\twith ESMTPS via TCP (TLSv1.3 TLS_*); *",
            "Received: from client.test (unknown [127.0.0.1])",
            &format!("\tby postfix.test (Postfix) with ESMTP id {qid}"),
            "\tfor <b@example.com>; *",
        ],
    );
    // The message whole, as stored: dot-stuffed, then the final dot.
    let rest = lines[10..].join("\r\n");
    let want = String::from_utf8(message.to_vec())
        .unwrap()
        .replace("\n.a", "\n..a")
        + ".\r\n";
    assert_eq!(rest, want);
    let cipher = lines[6]
        .strip_prefix("\twith ESMTPS via TCP (TLSv1.3 ")
        .and_then(|l| l.split_once(')'))
        .unwrap()
        .0;
    let port = tls.port();
    let peer = format!("127.0.0.1[127.0.0.1]:{port}");
    mta.wait_for_log(
        "smtp",
        &format!("Untrusted TLS connection established to {peer}: TLSv1.3 with cipher {cipher} *"),
    );
    mta.wait_for_log(
        "smtp",
        &format!(
            "{qid}: to=<b@example.com>, relay={peer}, delay=*, dsn=2.0.0, \
             status=sent (250 2.0.0 Ok: queued as {QUEUE_ID})"
        ),
    );
}

/// SPEC 3 (a timeout: `421 4.4.2`, nothing half-stored, exit) inside TLS: after the
/// handshake, a client that sends `steps` and then nothing gets the 421 inside TLS after
/// TIMEOUT, nothing is stored, and the front end exits 0 (tcpserver -v says so).
fn timeout_inside_tls(name: &str, steps: &[&str], replies: &[&str]) {
    let Some(tls) = Tls::start_chain(name, &[("TIMEOUT", "2")], &[REJECT, SPOOL], &["-v"]) else {
        return;
    };
    let mut all = vec!["1:STARTTLS", "TLS"];
    all.extend_from_slice(steps);
    all.extend(["READ", "EOF"]);
    let started = Instant::now();
    let Some(out) = tls.script(&all) else {
        return;
    };
    let took = started.elapsed();
    let mut want = vec![GREETING, READY, "TLS TLSv1.3 *"];
    want.extend_from_slice(replies);
    want.extend(["421 4.4.2 Timeout, closing the connection", "EOF"]);
    assert_lines_like(&out, &want);
    // TIMEOUT=2, and a loaded 2-core machine gets a generous margin.
    assert!(took >= Duration::from_secs(2), "{took:?}");
    assert!(took < Duration::from_secs(15), "{took:?}");
    let log = tls.log_after_end();
    // (The first end line may be tcpserver's start-up probe, which read nothing.)
    let pattern = "end: remote 127.0.0.1 helo none messages 0 bytes in # out #: timeout (TIMEOUT)";
    let end = log
        .iter()
        .find(|l| like(l, pattern))
        .unwrap_or_else(|| panic!("{log:#?}"));
    assert_eq!(tls.exit_status_of(end), "0");
    assert!(tls.stored().is_empty());
    assert!(fs::read_dir(tls.dir.join("spool/tmp"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn timeout_right_after_the_handshake_421_inside_tls() {
    timeout_inside_tls("tls-timeout-idle", &[], &[]);
}

#[test]
fn timeout_in_the_middle_of_data_inside_tls_stores_nothing() {
    timeout_inside_tls(
        "tls-timeout-data",
        &[
            "3:MAIL FROM:<a@example.net>|RCPT TO:<b@example.com>|DATA",
            "RAW:Subject: half a message\r\n\r\nand then nothing",
        ],
        &[
            "250 2.1.0 Sender accepted",
            "250 2.1.5 Recipient accepted",
            "354 End your message with a line holding only a dot",
        ],
    );
}

/// The 100 MiB body of [`big_message_over_tls_in_bounded_memory`]: line K is `K` in 8
/// digits, a space, 69 letters, CRLF (80 bytes); the client sends the same lines.
const BIG_LINES: usize = 100 * 1024 * 1024 / 80;
const BIG_FILL: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefg";

/// Issue 10 / SPEC 3 (memory stays bounded whatever the client sends): one 100 MiB message
/// over TLS into smtpfront-spool. It is stored whole (every line checked), and the front
/// end's peak RSS, as GNU time measures it around smtpfront-spool, stays under 16 MiB.
#[test]
fn big_message_over_tls_in_bounded_memory() {
    let Some(time) = tool("time") else {
        return;
    };
    let time = time.to_str().unwrap().to_string();
    let chain = [time.as_str(), "-f", "peak RSS %M KiB", SPOOL];
    let Some(tls) = Tls::start_chain("tls-big", &[], &chain, &[]) else {
        return;
    };
    let Some(py) = python() else {
        return;
    };
    let script = r#"
import smtplib, ssl, sys
lines, fill = int(sys.argv[2]), sys.argv[3].encode()
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), local_hostname="big.test", timeout=120)
s.starttls(context=ctx)
s.ehlo()
s.mail("a@example.net")
s.rcpt("b@example.com")
code, _ = s.docmd("DATA")
assert code == 354, code
s.send(b"Subject: big\r\n\r\n")
for start in range(0, lines, 1024):
    s.send(b"".join(b"%08d %s\r\n" % (k, fill) for k in range(start, min(start + 1024, lines))))
s.send(b".\r\n")
code, text = s.getreply()
print(code, text.decode())
s.quit()
"#;
    let mut cmd = command(py, &[]);
    cmd.args(["-c", script, &tls.port(), &BIG_LINES.to_string(), BIG_FILL]);
    let ran = run_bounded(cmd, Duration::from_secs(300));
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert!(
        like(
            ran.stdout.trim_end(),
            &format!("250 2.0.0 Ok: queued as {QUEUE_ID}")
        ),
        "{}",
        ran.stdout
    );
    check_big_message(&tls.dir.join("spool/new"));
    // The size counts the message as received (SPEC 3 DATABYTES): Subject, blank line, body.
    let size = 14 + 2 + BIG_LINES * 80;
    let log = tls.log_after_end();
    let accepted = format!(
        "accepted: queue id {QUEUE_ID} from <a@example.net> to 1 recipient(s), {size} bytes"
    );
    assert!(log.iter().any(|l| like(l, &accepted)), "{log:#?}");
    let peak = peak_rss_kib(&tls.server);
    assert!(peak < 16 * 1024, "peak RSS {peak} KiB");
}

/// GNU time's line `peak RSS N KiB` in the server's log (written when the session ends).
fn peak_rss_kib(server: &Server) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = server.log();
        if let Some(n) = log.lines().find_map(|l| {
            l.strip_prefix("peak RSS ")?
                .strip_suffix(" KiB")?
                .parse()
                .ok()
        }) {
            return n;
        }
        assert!(Instant::now() < deadline, "no peak RSS line:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The one file in `new/` is the 100 MiB message whole: the spool's SMTP lines, our
/// Received header, the Subject, then exactly the body lines in order, and the dot.
fn check_big_message(new: &std::path::Path) {
    use std::io::BufRead;
    let files: Vec<PathBuf> = fs::read_dir(new)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let mut r = std::io::BufReader::new(fs::File::open(&files[0]).unwrap());
    let mut line = Vec::new();
    let mut next = |line: &mut Vec<u8>| {
        line.clear();
        r.read_until(b'\n', line).unwrap();
        String::from_utf8(line.clone()).unwrap()
    };
    let head: Vec<String> = (0..10).map(|_| next(&mut line)).collect();
    assert_lines_like(
        &head,
        &[
            "HELO big.test\r\n",
            "MAIL FROM:<a@example.net>\r\n",
            "RCPT TO:<b@example.com>\r\n",
            "DATA\r\n",
            "Received: from big.test ([127.0.0.1])\r\n",
            "\tby mx.test ([127.0.0.1])\r\n",
            "\twith ESMTPS via TCP (TLSv1.3 TLS_*); *\r\n",
            "Subject: big\r\n",
            "\r\n",
            &format!("{:08} {BIG_FILL}\r\n", 0),
        ],
    );
    for k in 1..BIG_LINES {
        let got = next(&mut line);
        assert_eq!(
            got,
            format!("{k:08} {BIG_FILL}\r\n"),
            "line {k} of the body"
        );
    }
    assert_eq!(next(&mut line), ".\r\n");
    assert_eq!(next(&mut line), "", "more after the final dot");
}
