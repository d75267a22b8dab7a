//! The front ends under a real `tcpserver` (Debian ucspi-tcp) with real clients: swaks,
//! Python's smtplib, Postfix's smtp-source and raw sockets (SPEC 1, 3, 8, 9).
//!
//! Every test is bounded in time: clients run with a deadline and are killed on drop, every
//! socket read and write has a timeout, and the tcpserver is killed when its `Server` drops.

mod common;

use common::{
    assert_lines_like, like, log_entries, python, run_bounded, swaks_client_lines,
    swaks_server_lines, tool, Ran, Server, ECHO, QUEUE_ID, REJECT,
};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// The HELO name every client here uses, so that the end line of a test's session is told
/// apart from the one of the readiness probe of `Server::start` (which says nothing).
const HELO: &str = "client.test";

/// What tcpserver puts in `TCPLOCALHOST` (`-l`), hence the greeting's host.
const LOCAL: &str = "mx.test";

/// Starts `tcpserver -q -R -H -l mx.test -c max 127.0.0.1 PORT argv...`.
///
/// `-l` matters: without it tcpserver looks up the local IP's name in DNS in every child,
/// before it runs the front end, with a 3 s timeout per try. A resolver that drops one UDP
/// packet then stalls a session by 3 s (seen here: 40 sequential smtp-source sessions took
/// 0.1 s or 3.2 s), which would make the timing tests below flaky. `Server::start` does not
/// pass `-l`, so this file uses `Server::start_with`.
fn start(argv: &[&str], env: &[(&str, &str)], max: u32) -> Option<Server> {
    Server::start_with(argv, env, &["-c", &max.to_string(), "-l", LOCAL])
}

/// Polls the server's log until `done` holds; fails the test after `limit`.
fn wait_for_log(server: &Server, limit: Duration, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let log = server.log();
        if done(&log) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "the log did not show what was expected within {limit:?}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `end:` lines of the sessions that said `HELO client.test`, as (program, message)
/// without the `PROGRAM[PID]: ` prefix.
fn client_ends(log: &str) -> Vec<(&str, &str)> {
    log_entries(log)
        .into_iter()
        .filter(|(_, m)| m.starts_with(&format!("end: remote 127.0.0.1 helo {HELO} messages ")))
        .collect()
}

/// The `end:` messages (without the prefix) whose reason, after the last `: `, is `what`.
fn ends_with_reason<'a>(log: &'a str, what: &str) -> Vec<&'a str> {
    log_entries(log)
        .into_iter()
        .map(|(_, m)| m)
        .filter(|m| m.starts_with("end: ") && m.ends_with(&format!(": {what}")))
        .collect()
}

/// The messages of the log (without the prefix) that start with `accepted: `.
fn accepted_lines(log: &str) -> Vec<&str> {
    log_entries(log)
        .into_iter()
        .map(|(_, m)| m)
        .filter(|m| m.starts_with("accepted: "))
        .collect()
}

/// The `250 2.0.0 Received N bytes for R recipient(s), queue id ID` reply of swaks'
/// transcript, checked whole: `recipients` and a queue id of digits.
fn swaks_received(transcript: &str, recipients: usize) -> &str {
    let received: Vec<&str> = swaks_server_lines(transcript)
        .into_iter()
        .filter(|l| l.starts_with("250 2.0.0 Received "))
        .collect();
    assert_eq!(received.len(), 1, "one 250 after DATA in:\n{transcript}");
    assert!(
        like(
            received[0],
            &format!(
                "250 2.0.0 Received # bytes for {recipients} recipient(s), queue id {QUEUE_ID}"
            )
        ),
        "{}",
        received[0]
    );
    received[0]
}

/// The live children of the tcpserver listening on `port`, from /proc: `None` when that
/// tcpserver is not found. Zero means every front end it started has exited and been reaped.
fn tcpserver_children(port: u16) -> Option<usize> {
    let port = port.to_string();
    let pids: Vec<u32> = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let server = pids.iter().copied().find(|pid| {
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        args[0].ends_with(b"tcpserver") && args.contains(&port.as_bytes())
    })?;
    let children = pids
        .iter()
        .filter(|pid| {
            // "pid (comm) state ppid ...": the comm may hold spaces, so split after ')'.
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            rest.split_whitespace().nth(1) == Some(server.to_string().as_str())
        })
        .count();
    Some(children)
}

/// Waits until the tcpserver on `port` has no child left.
fn assert_children_gone(port: u16, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let n = tcpserver_children(port).expect("the tcpserver process is not in /proc");
        if n == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "tcpserver still has {n} child process(es) after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// swaks against the server, with the common envelope and `extra` options.
fn swaks(server: &Server, extra: &[&str]) -> Option<Ran> {
    let swaks = tool("swaks")?;
    let mut cmd = common::command(swaks, &[]);
    cmd.args(["--server", &format!("127.0.0.1:{}", server.port)])
        .args(["--from", "a@example.net", "--helo", HELO])
        .args(["--timeout", "20"])
        .args(extra);
    Some(run_bounded(cmd, Duration::from_secs(60)))
}

/// The message swaks sent, from its transcript: the ` -> ` lines after the 354 up to the
/// lone dot, un-stuffed. Its size with CRLF line ends is what the server must report.
fn swaks_sent_message(transcript: &str) -> Vec<String> {
    let mut lines = transcript
        .lines()
        .skip_while(|l| !l.starts_with("<-  354 "));
    lines.next().expect("no 354 in the transcript");
    let mut message = Vec::new();
    for l in lines {
        let l = l.strip_prefix(" -> ").expect("a DATA line of the client");
        if l == "." {
            return message;
        }
        message.push(l.strip_prefix('.').unwrap_or(l).to_string());
    }
    panic!("no final dot in the transcript:\n{transcript}");
}

fn crlf_size<S: AsRef<str>>(lines: &[S]) -> usize {
    lines.iter().map(|l| l.as_ref().len() + 2).sum()
}

/// The number after `Received ` in a reply or log line.
fn received_bytes(line: &str) -> u64 {
    let rest = line.split("Received ").nth(1).expect("a Received reply");
    rest.split(' ')
        .next()
        .unwrap()
        .parse()
        .expect("a byte count")
}

/// The queue id at the end of a `250 2.0.0 Received ...` reply.
fn queue_id(line: &str) -> &str {
    line.rsplit("queue id ").next().unwrap().trim()
}

/// A raw SMTP client with a line buffer and a deadline on every read.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
enum Got {
    Line(String),
    Timeout,
    Eof,
    Reset,
}

impl Client {
    fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_write_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// The next line (without CRLF), waiting at most `wait`.
    fn line(&mut self, wait: Duration) -> Got {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let text = String::from_utf8_lossy(&line);
                return Got::Line(text.trim_end_matches(['\r', '\n']).to_string());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Got::Timeout;
            }
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Got::Eof,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Got::Reset,
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }
}

/// (1) Plain swaks: every reply of the transaction, the byte count of what it sent, and the
/// log's `accepted:` and `end:` lines.
#[test]
fn swaks_plain_delivery() {
    let Some(server) = start(&[ECHO], &[], 20) else {
        return;
    };
    let Some(ran) = swaks(&server, &["--to", "b@example.com"]) else {
        return;
    };
    let t = ran.all();
    assert_eq!(ran.code, Some(0), "swaks failed:\n{t}");
    assert!(
        swaks_client_lines(&t).contains(&format!("EHLO {HELO}").as_str()),
        "{t}"
    );
    // Every reply, whole and in order; only the byte count and the queue id vary.
    let greeting = format!("220 {LOCAL} smtpfront ESMTP");
    let ehlo = format!("250-{LOCAL}");
    let received_pattern =
        format!("250 2.0.0 Received # bytes for 1 recipient(s), queue id {QUEUE_ID}");
    assert_lines_like(
        &swaks_server_lines(&t),
        &[
            &greeting,
            &ehlo,
            "250-SIZE 0",
            "250-8BITMIME",
            "250-SMTPUTF8",
            "250-ENHANCEDSTATUSCODES",
            "250 PIPELINING",
            "250 2.1.0 Sender <a@example.net> accepted",
            "250 2.1.5 Recipient <b@example.com> accepted",
            "354 End your message with a line holding only a dot",
            &received_pattern,
            "221 2.0.0 Good bye",
        ],
    );
    let received = swaks_received(&t, 1);
    let sent = swaks_sent_message(&t);
    assert_eq!(received_bytes(received), crlf_size(&sent) as u64, "{t}");

    let log = wait_for_log(&server, Duration::from_secs(5), |l| {
        !client_ends(l).is_empty()
    });
    let ends = client_ends(&log);
    assert_eq!(ends.len(), 1, "{log}");
    let (program, end) = ends[0];
    assert_eq!(program, "smtpfront-echo", "{log}");
    assert!(
        like(
            end,
            &format!("end: remote 127.0.0.1 helo {HELO} messages 1 bytes in # out #: QUIT")
        ),
        "{end}"
    );
    assert_eq!(
        accepted_lines(&log),
        [format!(
            "accepted: queue id {} from <a@example.net> to 1 recipient(s), {} bytes",
            queue_id(received),
            received_bytes(received)
        )],
        "{log}"
    );
    assert_children_gone(server.port, Duration::from_secs(5));
}

/// (2) swaks --pipeline with three recipients: swaks sends MAIL, the RCPTs and DATA in one
/// group (it saw PIPELINING) and gets every reply, in order.
#[test]
fn swaks_pipelining_several_recipients() {
    let Some(server) = start(&[ECHO], &[], 20) else {
        return;
    };
    let to = "b@example.com,c@example.com,d@example.com";
    let Some(ran) = swaks(&server, &["--to", to, "--pipeline"]) else {
        return;
    };
    let t = ran.all();
    assert_eq!(ran.code, Some(0), "swaks failed:\n{t}");
    let lines: Vec<&str> = t.lines().collect();
    let mail = lines
        .iter()
        .position(|l| l.starts_with(" -> MAIL FROM:"))
        .unwrap_or_else(|| panic!("no MAIL in:\n{t}"));
    // The pipelined group: five commands, then the five replies.
    assert_eq!(
        lines[mail..mail + 10],
        [
            " -> MAIL FROM:<a@example.net>",
            " -> RCPT TO:<b@example.com>",
            " -> RCPT TO:<c@example.com>",
            " -> RCPT TO:<d@example.com>",
            " -> DATA",
            "<-  250 2.1.0 Sender <a@example.net> accepted",
            "<-  250 2.1.5 Recipient <b@example.com> accepted",
            "<-  250 2.1.5 Recipient <c@example.com> accepted",
            "<-  250 2.1.5 Recipient <d@example.com> accepted",
            "<-  354 End your message with a line holding only a dot",
        ],
        "swaks did not pipeline:\n{t}"
    );
    let received = swaks_received(&t, 3);
    let size = received_bytes(received);
    assert_eq!(size, crlf_size(&swaks_sent_message(&t)) as u64);
    let log = wait_for_log(&server, Duration::from_secs(5), |l| {
        !client_ends(l).is_empty()
    });
    assert_eq!(
        accepted_lines(&log),
        [format!(
            "accepted: queue id {} from <a@example.net> to 3 recipient(s), {size} bytes",
            queue_id(received)
        )],
        "{log}"
    );
    let ends = client_ends(&log);
    assert_eq!(ends.len(), 1, "{log}");
    assert!(
        like(
            ends[0].1,
            &format!("end: remote 127.0.0.1 helo {HELO} messages 1 bytes in # out #: QUIT")
        ),
        "{log}"
    );
}

/// Writes `lines` joined by LF, without a final newline (swaks then adds CRLF . CRLF and
/// nothing else), and returns the size the server must report: every line plus CRLF.
fn write_message(path: &Path, lines: &[String]) -> u64 {
    std::fs::write(path, lines.join("\n")).unwrap();
    crlf_size(lines) as u64
}

/// (3a) Lines that start with a dot: swaks stuffs them, the server un-stuffs them, and the
/// size it reports is the un-stuffed one.
#[test]
fn swaks_dot_stuffing_round_trip() {
    let Some(server) = start(&[ECHO], &[], 20) else {
        return;
    };
    let dir = common::scratch("tcpserver-dots");
    let file = dir.join("message");
    let lines: Vec<String> = [
        "Subject: dots",
        "",
        ".leading dot",
        "..two dots",
        ".",
        ". a dot and a space",
        "...",
        "middle",
        " .not at the start",
        "end",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let expected = write_message(&file, &lines);
    let stuffed = expected + lines.iter().filter(|l| l.starts_with('.')).count() as u64;
    let ran = swaks(
        &server,
        &[
            "--to",
            "b@example.com",
            "--data",
            &format!("@{}", file.display()),
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
    let Some(ran) = ran else {
        return;
    };
    let t = ran.all();
    assert_eq!(ran.code, Some(0), "swaks failed:\n{t}");
    // swaks did stuff: the wire had the doubled dots.
    for wire in [" -> ..leading dot", " -> ...two dots", " -> ..", " -> ...."] {
        assert!(t.lines().any(|l| l == wire), "missing {wire:?} in:\n{t}");
    }
    let received = swaks_received(&t, 1);
    assert_eq!(
        received_bytes(received),
        expected,
        "stuffed size would be {stuffed}"
    );
    let log = wait_for_log(&server, Duration::from_secs(5), |l| {
        !client_ends(l).is_empty()
    });
    assert_eq!(
        accepted_lines(&log),
        [format!(
            "accepted: queue id {} from <a@example.net> to 1 recipient(s), {expected} bytes",
            queue_id(received)
        )],
        "{log}"
    );
}

/// (3b) A message over 1 MiB, with a dot-stuffed line every 50 lines and lone-dot-looking
/// lines: the reported size is exact.
#[test]
fn swaks_one_mebibyte_message() {
    let Some(server) = start(&[ECHO], &[], 20) else {
        return;
    };
    let dir = common::scratch("tcpserver-big");
    let file = dir.join("message");
    let mut lines = vec!["Subject: big".to_string(), String::new()];
    let mut i = 0;
    while crlf_size(&lines) < 1024 * 1024 + 1 {
        lines.push(match i % 50 {
            0 => format!(".{i:06} {}", "abcdefghij".repeat(6)),
            25 => ".".to_string(),
            26 => "..".to_string(),
            _ => format!("x{i:06} {}", "0123456789".repeat(6)),
        });
        i += 1;
    }
    let expected = write_message(&file, &lines);
    assert!(expected > 1024 * 1024);
    let ran = swaks(
        &server,
        &[
            "--to",
            "b@example.com",
            "--suppress-data",
            "--data",
            &format!("@{}", file.display()),
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
    let Some(ran) = ran else {
        return;
    };
    let t = ran.all();
    assert_eq!(ran.code, Some(0), "swaks failed:\n{t}");
    let received = swaks_received(&t, 1);
    assert_eq!(received_bytes(received), expected, "{received}");
    let log = wait_for_log(&server, Duration::from_secs(5), |l| {
        !client_ends(l).is_empty()
    });
    let ends = client_ends(&log);
    assert_eq!(ends.len(), 1, "{log}");
    assert!(
        like(
            ends[0].1,
            &format!("end: remote 127.0.0.1 helo {HELO} messages 1 bytes in # out #: QUIT")
        ),
        "{log}"
    );
}

/// The smtplib script of test 4: prints one result a line, for the test to check.
const SMTPLIB_SCRIPT: &str = r#"
import smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), local_hostname='client.test', timeout=10)
code, _ = s.ehlo()
print('EHLO', code)
for ext in ('pipelining', 'size', '8bitmime', 'enhancedstatuscodes'):
    print('EXT', ext, s.has_extn(ext))
# Record the replies sendmail() gets to MAIL and DATA.
orig_mail, orig_data = s.mail, s.data
def mail(*a, **k):
    r = orig_mail(*a, **k)
    print('MAILREPLY', r[0], r[1].decode())
    return r
def data(*a, **k):
    r = orig_data(*a, **k)
    print('DATAREPLY', r[0], r[1].decode())
    return r
s.mail, s.data = mail, data
m1 = b'Subject: one\r\n\r\nfirst message\r\n'
m2 = b'Subject: two\r\n\r\n.starts with a dot\r\nsecond\r\n'
m3 = ('Subject: trois\r\nContent-Type: text/plain; charset=utf-8\r\n'
      'Content-Transfer-Encoding: 8bit\r\n\r\n'
      'Ca\u00e7a, na\u00efve, \u00fcber, \u20ac 8-bit text\r\n').encode('utf-8')
m4 = b'Subject: four\r\n\r\nto the postmaster\r\n'
print('SEND1', s.sendmail('a@example.net', ['b@example.com'], m1))
print('SEND2', s.sendmail('a@example.net', ['b@example.com', 'c@example.com'], m2))
print('SEND3', s.sendmail('a@example.net', ['b@example.com'], m3, mail_options=['BODY=8BITMIME']))
s.mail('a@example.net')
r = s.rcpt('<postmaster>')
print('RCPT', r[0], r[1].decode())
s.data(m4)
r = s.quit()
print('QUIT', r[0], r[1].decode())
print('SIZES', len(m1), len(m2), len(m3), len(m4))
"#;

/// (4) Python's smtplib: extensions seen, three messages with sendmail() (one BODY=8BITMIME
/// with 8-bit text) and a fourth to <postmaster>, one connection.
#[test]
fn python_smtplib_session() {
    let Some(python) = python() else {
        return;
    };
    let Some(server) = start(&[ECHO], &[], 20) else {
        return;
    };
    let mut cmd = common::command(python, &[]);
    cmd.args(["-c", SMTPLIB_SCRIPT, &server.port.to_string()]);
    let ran = run_bounded(cmd, Duration::from_secs(30));
    assert_eq!(ran.code, Some(0), "{}{}", ran.stdout, ran.stderr);
    let out: Vec<&str> = ran.stdout.lines().collect();
    let sizes: Vec<u64> = out
        .iter()
        .find_map(|l| l.strip_prefix("SIZES "))
        .expect("SIZES")
        .split(' ')
        .map(|n| n.parse().unwrap())
        .collect();
    let expected = [
        "EHLO 250".to_string(),
        "EXT pipelining True".to_string(),
        "EXT size True".to_string(),
        "EXT 8bitmime True".to_string(),
        "EXT enhancedstatuscodes True".to_string(),
        format!(
            "MAILREPLY 250 2.1.0 Sender <a@example.net> accepted, parameters: size={}",
            sizes[0]
        ),
        format!("DATAREPLY 250 2.0.0 Received {} bytes for 1 recipient(s)", sizes[0]),
        "SEND1 {}".to_string(),
        format!(
            "MAILREPLY 250 2.1.0 Sender <a@example.net> accepted, parameters: size={}",
            sizes[1]
        ),
        format!("DATAREPLY 250 2.0.0 Received {} bytes for 2 recipient(s)", sizes[1]),
        "SEND2 {}".to_string(),
        format!(
            "MAILREPLY 250 2.1.0 Sender <a@example.net> accepted, parameters: size={} BODY=8BITMIME",
            sizes[2]
        ),
        format!("DATAREPLY 250 2.0.0 Received {} bytes for 1 recipient(s)", sizes[2]),
        "SEND3 {}".to_string(),
        "MAILREPLY 250 2.1.0 Sender <a@example.net> accepted".to_string(),
        "RCPT 250 2.1.5 Recipient <postmaster> accepted".to_string(),
        format!("DATAREPLY 250 2.0.0 Received {} bytes for 1 recipient(s)", sizes[3]),
        "QUIT 221 2.0.0 Good bye".to_string(),
    ];
    let got: Vec<&str> = out
        .iter()
        .copied()
        .filter(|l| !l.starts_with("SIZES "))
        .collect();
    assert_eq!(got.len(), expected.len(), "{}", ran.stdout);
    for (g, e) in got.iter().zip(&expected) {
        // DATA replies end with the queue id, which changes.
        if e.starts_with("DATAREPLY ") {
            assert!(
                like(g, &format!("{e}, queue id {QUEUE_ID}")),
                "{g:?} vs {e:?}"
            );
        } else {
            assert_eq!(g, e, "{}", ran.stdout);
        }
    }
    let log = wait_for_log(&server, Duration::from_secs(5), |l| {
        !client_ends(l).is_empty()
    });
    let accepted = accepted_lines(&log);
    assert_eq!(accepted.len(), 4, "{log}");
    for (line, (size, rcpts)) in accepted.iter().zip(sizes.iter().zip([1, 2, 1, 1])) {
        assert!(
            like(
                line,
                &format!(
                    "accepted: queue id {QUEUE_ID} from <a@example.net> to {rcpts} recipient(s), {size} bytes"
                )
            ),
            "{line}"
        );
    }
    let ends = client_ends(&log);
    assert_eq!(ends.len(), 1, "{log}");
    assert!(
        like(
            ends[0].1,
            "end: remote 127.0.0.1 helo client.test messages 4 bytes in # out #: QUIT"
        ),
        "{log}"
    );
}

/// Runs smtp-source against the server with `args`.
fn smtp_source(server: &Server, args: &[&str]) -> Option<Ran> {
    let source = tool("smtp-source")?;
    let mut cmd = common::command(source, &[]);
    cmd.args(["-M", HELO, "-f", "a@example.net", "-t", "b@example.com"])
        .args(args)
        .arg(format!("127.0.0.1:{}", server.port));
    Some(run_bounded(cmd, Duration::from_secs(60)))
}

/// (5a) smtp-source, 5 parallel sessions, 100 messages of 2 recipients, one message per
/// connection (smtp-source's default): 100 `accepted:` and 100 `end:` lines.
#[test]
fn smtp_source_parallel_sessions() {
    let Some(server) = start(&[ECHO], &[], 20) else {
        return;
    };
    let Some(ran) = smtp_source(&server, &["-s", "5", "-m", "100", "-l", "1024", "-r", "2"]) else {
        return;
    };
    assert_eq!(ran.code, Some(0), "{}{}", ran.stdout, ran.stderr);
    let log = wait_for_log(&server, Duration::from_secs(10), |l| {
        client_ends(l).len() >= 100
    });
    let accepted = accepted_lines(&log);
    assert_eq!(accepted.len(), 100, "{log}");
    for a in &accepted {
        // -r 2: smtp-source numbers the recipients; 1024 bytes of payload plus its headers.
        assert!(
            like(
                a,
                &format!(
                    "accepted: queue id {QUEUE_ID} from <a@example.net> to 2 recipient(s), # bytes"
                )
            ),
            "{a}"
        );
        let size: u64 = a
            .rsplit(", ")
            .next()
            .unwrap()
            .strip_suffix(" bytes")
            .unwrap()
            .parse()
            .unwrap();
        assert!(size > 1024, "{a}");
    }
    let ends = client_ends(&log);
    assert_eq!(ends.len(), 100, "{log}");
    let end_pattern =
        format!("end: remote 127.0.0.1 helo {HELO} messages 1 bytes in # out #: QUIT");
    assert!(
        ends.iter()
            .all(|&(p, e)| p == "smtpfront-echo" && like(e, &end_pattern)),
        "{log}"
    );
    // No error reply was logged: every message is a header, an acceptance or a session's
    // end (the readiness probe's included), and none reports a 4xx or 5xx reply.
    for (_, m) in log_entries(&log) {
        assert!(
            !m.contains(" -> 4") && !m.contains(" -> 5"),
            "error replies:\n{log}"
        );
        assert!(
            m.starts_with("header: ") || m.starts_with("accepted: ") || m.starts_with("end: "),
            "unexpected log line {m:?}:\n{log}"
        );
    }
    assert_children_gone(server.port, Duration::from_secs(5));
}

/// (5b) smtp-source -d: 5 parallel connections that each send several messages, 100 in all:
/// exactly 5 sessions whose message counts add up to 100.
#[test]
fn smtp_source_parallel_reused_connections() {
    let Some(server) = start(&[ECHO], &[], 20) else {
        return;
    };
    let Some(ran) = smtp_source(&server, &["-d", "-s", "5", "-m", "100", "-l", "1024"]) else {
        return;
    };
    assert_eq!(ran.code, Some(0), "{}{}", ran.stdout, ran.stderr);
    let log = wait_for_log(&server, Duration::from_secs(10), |l| {
        client_ends(l).len() >= 5
    });
    let accepted = accepted_lines(&log).len();
    assert_eq!(accepted, 100, "{log}");
    let ends = client_ends(&log);
    assert_eq!(ends.len(), 5, "{log}");
    let prefix = format!("end: remote 127.0.0.1 helo {HELO} messages ");
    let total: u64 = ends
        .iter()
        .map(|&(_, e)| {
            assert!(like(e, &format!("{prefix}# bytes in # out #: QUIT")), "{e}");
            let n = e.strip_prefix(&prefix).unwrap().split(' ').next().unwrap();
            n.parse::<u64>().unwrap()
        })
        .sum();
    assert_eq!(total, 100, "{log}");
    assert_children_gone(server.port, Duration::from_secs(5));
}

/// (6a) smtpfront-reject without SMTPREJECT execs the rest of its command line: the chain is
/// invisible, the echo front end answers and logs.
#[test]
fn reject_unset_execs_the_chain() {
    let Some(server) = start(&[REJECT, ECHO], &[], 20) else {
        return;
    };
    let Some(ran) = swaks(&server, &["--to", "b@example.com"]) else {
        return;
    };
    let t = ran.all();
    assert_eq!(ran.code, Some(0), "swaks failed:\n{t}");
    let server_lines = swaks_server_lines(&t);
    assert!(
        server_lines.contains(&"250 2.1.5 Recipient <b@example.com> accepted"),
        "{t}"
    );
    swaks_received(&t, 1);
    let log = wait_for_log(&server, Duration::from_secs(5), |l| {
        !client_ends(l).is_empty()
    });
    assert_eq!(client_ends(&log)[0].0, "smtpfront-echo", "{log}");
    assert!(
        log_entries(&log)
            .iter()
            .all(|&(p, _)| p == "smtpfront-echo"),
        "{log}"
    );
    assert!(!log.contains("smtpfront-reject"), "{log}");
}

/// swaks through `smtpfront-reject smtpfront-echo` with SMTPREJECT set to `text`: refused
/// at MAIL (swaks exit 23) with `reply`, logged by smtpfront-reject, nothing accepted.
fn reject_with(text: &str, reply: &str) {
    let Some(server) = start(&[REJECT, ECHO], &[("SMTPREJECT", text)], 20) else {
        return;
    };
    let Some(ran) = swaks(&server, &["--to", "b@example.com"]) else {
        return;
    };
    let t = ran.all();
    assert_eq!(ran.code, Some(23), "swaks should fail at MAIL:\n{t}");
    assert!(
        t.lines().any(|l| l == format!("<** {reply}")),
        "missing {reply:?} in:\n{t}"
    );
    // Every reply line, whole: EHLO is answered normally, MAIL is refused, and no 354 (or
    // anything else) follows. The `Trying 127.0.0.1:PORT` line is no reply and not looked at.
    let greeting = format!("220 {LOCAL} smtpfront ESMTP");
    let ehlo = format!("250-{LOCAL}");
    assert_eq!(
        swaks_server_lines(&t),
        [
            greeting.as_str(),
            &ehlo,
            "250-SIZE 0",
            "250-8BITMIME",
            "250-SMTPUTF8",
            "250-ENHANCEDSTATUSCODES",
            "250 PIPELINING",
            reply,
            "221 2.0.0 Good bye",
        ],
        "{t}"
    );
    assert!(
        !swaks_server_lines(&t).iter().any(|l| l.starts_with("354")),
        "{t}"
    );
    assert_eq!(
        swaks_client_lines(&t),
        [
            format!("EHLO {HELO}").as_str(),
            "MAIL FROM:<a@example.net>",
            "QUIT"
        ],
        "{t}"
    );
    let log = wait_for_log(&server, Duration::from_secs(5), |l| {
        !client_ends(l).is_empty()
    });
    let refused = format!("MAIL FROM:<a@example.net> -> {reply}");
    assert!(
        log_entries(&log)
            .iter()
            .any(|&(p, m)| p == "smtpfront-reject" && m == refused),
        "{log}"
    );
    let ends = client_ends(&log);
    assert_eq!(ends.len(), 1, "{log}");
    let (program, end) = ends[0];
    assert!(
        program == "smtpfront-reject"
            && like(
                end,
                &format!("end: remote 127.0.0.1 helo {HELO} messages 0 bytes in # out #: QUIT")
            ),
        "{end}"
    );
    assert!(
        log_entries(&log)
            .iter()
            .all(|&(p, m)| p == "smtpfront-reject" && !m.contains("accepted: ")),
        "{log}"
    );
    assert!(!log.contains("smtpfront-echo"), "{log}");
}

/// (6b) SMTPREJECT with a leading `-`: permanent.
#[test]
fn reject_permanent() {
    reject_with(
        "-Closed for maintenance",
        "553 5.7.1 Closed for maintenance",
    );
}

/// (6c) SMTPREJECT without `-`: temporary.
#[test]
fn reject_temporary() {
    reject_with("Back soon", "451 4.3.2 Back soon");
}

/// (7a) TIMEOUT=1: a client that reads the greeting and says nothing gets `421 4.4.2` after
/// about a second, then end of file; the log says why.
#[test]
fn idle_client_times_out() {
    let Some(server) = start(&[ECHO], &[("TIMEOUT", "1")], 20) else {
        return;
    };
    let mut c = Client::connect(server.port);
    assert_eq!(
        c.line(Duration::from_secs(5)),
        Got::Line(format!("220 {LOCAL} smtpfront ESMTP"))
    );
    let t0 = Instant::now();
    assert_eq!(
        c.line(Duration::from_secs(5)),
        Got::Line("421 4.4.2 Timeout, closing the connection".into())
    );
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited <= Duration::from_secs(3),
        "421 after {waited:?}"
    );
    assert_eq!(c.line(Duration::from_secs(5)), Got::Eof);
    let log = wait_for_log(&server, Duration::from_secs(5), |l| {
        !ends_with_reason(l, "timeout (TIMEOUT)").is_empty()
    });
    let end = ends_with_reason(&log, "timeout (TIMEOUT)")[0];
    assert!(
        like(
            end,
            "end: remote 127.0.0.1 helo none messages 0 bytes in # out #: timeout (TIMEOUT)"
        ),
        "{end}"
    );
    assert_children_gone(server.port, Duration::from_secs(5));
}

/// (7b) TIMEOUT=1: a client that pipelines 2 MB of NOOP and never reads. The replies fill
/// the socket buffers, the server's write blocks, and after TIMEOUT without progress it
/// must give up and close: the end line says `timeout (TIMEOUT)`, the connection is closed
/// (reset or end of file for the client) and no front end is left running.
#[test]
fn flooding_client_that_never_reads_times_out() {
    let Some(server) = start(&[ECHO], &[("TIMEOUT", "1")], 20) else {
        return;
    };
    let mut c = Client::connect(server.port);
    c.stream
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let chunk = b"NOOP\r\n".repeat(10_000);
    let target = 2 * 1024 * 1024;
    let started = Instant::now();
    let mut written = 0usize;
    let mut off = 0usize;
    let mut stopped_by = "all written";
    while written < target {
        if started.elapsed() > Duration::from_secs(15) {
            stopped_by = "deadline";
            break;
        }
        match c.stream.write(&chunk[off..]) {
            Ok(n) => {
                written += n;
                off = (off + n) % chunk.len();
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                // Reset or broken pipe: the server closed.
                stopped_by = "connection closed";
                break;
            }
        }
    }
    let log = wait_for_log(&server, Duration::from_secs(10), |l| {
        !ends_with_reason(l, "timeout (TIMEOUT)").is_empty()
    });
    let end = ends_with_reason(&log, "timeout (TIMEOUT)")[0];
    eprintln!(
        "flood: {written} bytes written ({stopped_by}) in {:?}; {end}",
        started.elapsed()
    );
    assert!(
        like(
            end,
            "end: remote 127.0.0.1 helo none messages 0 bytes in # out #: timeout (TIMEOUT)"
        ),
        "{end}"
    );
    // The session ended about TIMEOUT after its write blocked: not before a second of no
    // progress, and long before the client's own 15 s deadline.
    let ended = started.elapsed();
    assert!(
        ended >= Duration::from_millis(900) && ended < Duration::from_secs(5),
        "the session ended after {ended:?} (client: {stopped_by}, {written} bytes written)"
    );
    // Whatever was buffered, the connection is closed: reading drains to EOF or a reset.
    let drain_deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match c.line(Duration::from_secs(5)) {
            Got::Line(_) => {}
            Got::Eof | Got::Reset => break,
            Got::Timeout => panic!("the connection is still open after the end line"),
        }
        assert!(Instant::now() < drain_deadline, "still reading replies");
    }
    assert_children_gone(server.port, Duration::from_secs(5));
}

/// (8) SESSION_TIMEOUT=2, TIMEOUT=60: a client sending NOOP every 300 ms is still cut off
/// with `421 4.4.2` about 2 s after it connected.
#[test]
fn session_timeout_despite_activity() {
    let Some(server) = start(&[ECHO], &[("SESSION_TIMEOUT", "2"), ("TIMEOUT", "60")], 20) else {
        return;
    };
    let connected = Instant::now();
    let mut c = Client::connect(server.port);
    assert_eq!(
        c.line(Duration::from_secs(5)),
        Got::Line(format!("220 {LOCAL} smtpfront ESMTP"))
    );
    let mut noops = 0;
    let cut_off = 'session: loop {
        assert!(
            connected.elapsed() < Duration::from_secs(8),
            "no 421 after {noops} NOOPs"
        );
        c.send(b"NOOP\r\n");
        match c.line(Duration::from_secs(3)) {
            Got::Line(l) if l == "250 2.0.0 Ok" => noops += 1,
            Got::Line(l) if l == "421 4.4.2 Timeout, closing the connection" => {
                break 'session connected.elapsed()
            }
            other => panic!("NOOP answered {other:?}"),
        }
        // Wait 300 ms, but listening: the 421 may come meanwhile.
        match c.line(Duration::from_millis(300)) {
            Got::Timeout => {}
            Got::Line(l) if l == "421 4.4.2 Timeout, closing the connection" => {
                break 'session connected.elapsed()
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(noops >= 4, "only {noops} NOOPs were answered");
    assert!(
        cut_off >= Duration::from_millis(1800) && cut_off <= Duration::from_millis(3500),
        "421 after {cut_off:?}"
    );
    assert_eq!(c.line(Duration::from_secs(5)), Got::Eof);
    let log = wait_for_log(&server, Duration::from_secs(5), |l| {
        !ends_with_reason(l, "timeout (SESSION_TIMEOUT)").is_empty()
    });
    let end = ends_with_reason(&log, "timeout (SESSION_TIMEOUT)")[0];
    assert!(
        like(
            end,
            "end: remote 127.0.0.1 helo none messages 0 bytes in # out #: timeout (SESSION_TIMEOUT)"
        ),
        "{end}"
    );
    assert_children_gone(server.port, Duration::from_secs(5));
}

/// Reads lines until end of file (or a reset), at most `limit` in all.
fn read_to_end(c: &mut Client, limit: Duration) -> (Vec<String>, Got) {
    let deadline = Instant::now() + limit;
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match c.line(left) {
            Got::Line(l) => lines.push(l),
            end => return (lines, end),
        }
    }
}

/// (9) A whole session in one write, two messages and QUIT, then the client shuts down
/// its sending side: nothing is lost between the commands and the DATA (SPEC 3
/// pipelining), every reply comes back in order, then end of file.
#[test]
fn whole_session_in_one_write() {
    let Some(server) = start(&[ECHO], &[], 20) else {
        return;
    };
    let mut c = Client::connect(server.port);
    c.send(
        b"EHLO client.test\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n\
          Subject: x\r\n\r\n.hello\r\n.\r\n\
          MAIL FROM:<a@example.net> BODY=8BITMIME\r\nRCPT TO:<c@example.com>\r\n\
          RCPT TO:<d@example.com>\r\nDATA\r\nline\r\n..\r\n.\r\nQUIT\r\n",
    );
    c.stream.shutdown(std::net::Shutdown::Write).unwrap();
    let (lines, end) = read_to_end(&mut c, Duration::from_secs(10));
    assert_eq!(end, Got::Eof, "{lines:#?}");
    let expected = [
        format!("220 {LOCAL} smtpfront ESMTP"),
        format!("250-{LOCAL}"),
        "250-SIZE 0".into(),
        "250-8BITMIME".into(),
        "250-SMTPUTF8".into(),
        "250-ENHANCEDSTATUSCODES".into(),
        "250 PIPELINING".into(),
        "250 2.1.0 Sender <a@example.net> accepted".into(),
        "250 2.1.5 Recipient <b@example.com> accepted".into(),
        "354 End your message with a line holding only a dot".into(),
        // "Subject: x" CRLF, CRLF, "hello" CRLF: the dot is gone.
        "250 2.0.0 Received 21 bytes for 1 recipient(s), queue id ".into(),
        "250 2.1.0 Sender <a@example.net> accepted, parameters: BODY=8BITMIME".into(),
        "250 2.1.5 Recipient <c@example.com> accepted".into(),
        "250 2.1.5 Recipient <d@example.com> accepted".into(),
        "354 End your message with a line holding only a dot".into(),
        // "line" CRLF "." CRLF.
        "250 2.0.0 Received 9 bytes for 2 recipient(s), queue id ".into(),
        "221 2.0.0 Good bye".into(),
    ];
    assert_eq!(lines.len(), expected.len(), "{lines:#?}");
    for (l, e) in lines.iter().zip(&expected) {
        if e.ends_with("queue id ") {
            assert!(like(l, &format!("{e}{QUEUE_ID}")), "{l:?} vs {e:?}");
        } else {
            assert_eq!(l, e);
        }
    }
    let log = wait_for_log(&server, Duration::from_secs(5), |l| {
        !client_ends(l).is_empty()
    });
    let ends = client_ends(&log);
    assert_eq!(ends.len(), 1, "{log}");
    assert!(
        like(
            ends[0].1,
            &format!("end: remote 127.0.0.1 helo {HELO} messages 2 bytes in # out #: QUIT")
        ),
        "{log}"
    );
    assert_eq!(accepted_lines(&log).len(), 2, "{log}");
}

/// (10) TIMEOUT=1 in the middle of DATA: `421 4.4.2`, end of file, nothing accepted, and
/// the end line says timeout.
#[test]
fn timeout_in_the_middle_of_data() {
    let Some(server) = start(&[ECHO], &[("TIMEOUT", "1")], 20) else {
        return;
    };
    let mut c = Client::connect(server.port);
    c.send(
        b"HELO client.test\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n\
          Subject: x\r\n\r\nhalf a li",
    );
    let t0 = Instant::now();
    let (lines, end) = read_to_end(&mut c, Duration::from_secs(5));
    let waited = t0.elapsed();
    assert_eq!(end, Got::Eof, "{lines:#?}");
    assert_eq!(
        lines[lines.len() - 2..],
        [
            "354 End your message with a line holding only a dot",
            "421 4.4.2 Timeout, closing the connection"
        ],
        "{lines:#?}"
    );
    assert!(
        waited >= Duration::from_millis(800) && waited <= Duration::from_secs(3),
        "421 after {waited:?}"
    );
    let log = wait_for_log(&server, Duration::from_secs(5), |l| {
        !client_ends(l).is_empty()
    });
    let ends = client_ends(&log);
    assert_eq!(ends.len(), 1, "{log}");
    assert!(
        like(
            ends[0].1,
            &format!(
                "end: remote 127.0.0.1 helo {HELO} messages 0 bytes in # out #: timeout (TIMEOUT)"
            )
        ),
        "{log}"
    );
    assert!(
        log_entries(&log)
            .iter()
            .all(|(_, m)| !m.contains("accepted: ")),
        "{log}"
    );
}

/// (11) The client goes away in the middle of DATA: nothing accepted, the end line says
/// so, the front end exits.
#[test]
fn client_gone_in_the_middle_of_data() {
    let Some(server) = start(&[ECHO], &[], 20) else {
        return;
    };
    let mut c = Client::connect(server.port);
    c.send(
        b"HELO client.test\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n\
          Subject: x\r\n\r\nhalf a message\r\n",
    );
    // Wait for the 354, then hang up.
    loop {
        match c.line(Duration::from_secs(5)) {
            Got::Line(l) if l.starts_with("354 ") => break,
            Got::Line(_) => {}
            other => panic!("no 354: {other:?}"),
        }
    }
    drop(c);
    let log = wait_for_log(&server, Duration::from_secs(5), |l| {
        !client_ends(l).is_empty()
    });
    let ends = client_ends(&log);
    assert_eq!(ends.len(), 1, "{log}");
    assert!(
        like(
            ends[0].1,
            &format!(
                "end: remote 127.0.0.1 helo {HELO} messages 0 bytes in # out #: client went away during DATA, nothing stored"
            )
        ),
        "{log}"
    );
    assert!(
        log_entries(&log)
            .iter()
            .all(|(_, m)| !m.contains("accepted: ")),
        "{log}"
    );
    assert_children_gone(server.port, Duration::from_secs(5));
}
