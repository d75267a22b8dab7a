//! Hostile clients (SPEC 3, last points): huge lines, huge messages, floods of recipients,
//! NUL bytes, a client that never reads, silence. Each test checks the reply, that the
//! process ended by itself with status 0 (not by a signal), and its peak memory.

mod common;
use common::{assert_lines_like, command, reply_lines, ECHO, QUEUE_ID};
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Set once the front end has exited: a feeding or reading thread that must hold its pipe
/// open until then waits for it, with a deadline, instead of sleeping a fixed time.
#[derive(Clone)]
struct Exited(Arc<AtomicBool>);

impl Exited {
    /// Waits until the process has exited, at most `limit`.
    fn wait(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.0.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Peak resident memory allowed for anything a client can send (issue 2: ≤ 8 MiB).
const MAX_RSS_KIB: i64 = 8 * 1024;

struct Finished {
    stdout: Vec<u8>,
    stderr: String,
    status: i32,
    signalled: bool,
    max_rss_kib: i64,
    elapsed: Duration,
}

/// Runs the echo front end under GNU time (for its own peak RSS: the wait4 figure of a
/// child forked from this big test process would count the parent's pages), feeding `feed`
/// from a thread, reading stdout unless `read_replies` is false. Gives up (kills it) after
/// `limit`.
fn run(
    env: &[(&str, &str)],
    read_replies: bool,
    limit: Duration,
    feed: impl FnOnce(&mut dyn Write, &Exited) + Send + 'static,
) -> Finished {
    let started = Instant::now();
    let time = common::tool("time").expect("GNU time (Debian package time) is needed");
    let report = common::scratch("hostile").join("time");
    let mut child = command(time, env)
        .args(["-f", "%M"])
        .arg("-o")
        .arg(&report)
        .arg(ECHO)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let exited = Exited(Arc::new(AtomicBool::new(false)));
    let exited_w = exited.clone();
    let writer = std::thread::spawn(move || {
        feed(&mut stdin, &exited_w);
    });
    let exited_r = exited.clone();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        if read_replies {
            let _ = stdout.read_to_end(&mut out);
        } else {
            // Hold the pipe open without reading until the process is gone.
            exited_r.wait(Duration::from_secs(30));
            drop(stdout);
        }
        out
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            exited.0.store(true, Ordering::SeqCst);
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = started.elapsed();
    let report = std::fs::read_to_string(&report).unwrap_or_default();
    let max_rss_kib = report
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(i64::MAX);
    let stdout = if read_replies {
        reader.join().unwrap()
    } else {
        Vec::new()
    };
    let _ = writer.join();
    Finished {
        stdout,
        stderr: err_reader.join().unwrap(),
        status: status.code().unwrap_or(-1),
        signalled: status.signal().is_some() || report.contains("signal"),
        max_rss_kib,
        elapsed,
    }
}

fn assert_clean(f: &Finished, what: &str) {
    assert!(
        !f.signalled,
        "{what}: died of a signal; stderr: {}",
        f.stderr
    );
    assert_eq!(f.status, 0, "{what}: exit status; stderr: {}", f.stderr);
    assert!(
        f.max_rss_kib <= MAX_RSS_KIB,
        "{what}: peak RSS {} KiB > {MAX_RSS_KIB} KiB",
        f.max_rss_kib
    );
}

fn text(f: &Finished) -> String {
    String::from_utf8_lossy(&f.stdout).into_owned()
}

#[test]
fn a_100_mib_line_without_newline() {
    let f = run(&[], true, Duration::from_secs(60), |w, _| {
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..100 {
            if w.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    assert_clean(&f, "100 MiB line");
    let out = text(&f);
    assert_eq!(out.matches("500 5.5.2 Line too long").count(), 1, "{out}");
}

#[test]
fn a_100_mib_message_is_streamed() {
    let f = run(&[], true, Duration::from_secs(60), |w, _| {
        let _ = w.write_all(b"MAIL FROM:<a@x.y>\r\nRCPT TO:<b@x.y>\r\nDATA\r\n");
        let mut line = vec![b'm'; 76];
        line.extend_from_slice(b"\r\n");
        let chunk: Vec<u8> = line.iter().copied().cycle().take(78 * 13_443).collect(); // ~1 MiB
        for _ in 0..100 {
            if w.write_all(&chunk).is_err() {
                return;
            }
        }
        let _ = w.write_all(b".\r\nQUIT\r\n");
    });
    assert_clean(&f, "100 MiB message");
    let out = text(&f);
    let size = 78 * 13_443 * 100;
    let received =
        format!("250 2.0.0 Received {size} bytes for 1 recipient(s), queue id {QUEUE_ID}");
    assert_lines_like(
        &reply_lines(&out),
        &[
            "220 * smtpfront ESMTP",
            "250 2.1.0 Sender <a@x.y> accepted",
            "250 2.1.5 Recipient <b@x.y> accepted",
            "354 End your message with a line holding only a dot",
            &received,
            "221 2.0.0 Good bye",
        ],
    );
    assert!(out.ends_with("221 2.0.0 Good bye\r\n"), "{out}");
}

#[test]
fn a_100_mib_line_inside_data_over_databytes() {
    let f = run(
        &[("DATABYTES", "1000000")],
        true,
        Duration::from_secs(60),
        |w, _| {
            let _ = w.write_all(b"MAIL FROM:<a@x.y>\r\nRCPT TO:<b@x.y>\r\nDATA\r\n");
            let chunk = vec![b'z'; 1 << 20];
            for _ in 0..100 {
                if w.write_all(&chunk).is_err() {
                    return;
                }
            }
            let _ = w.write_all(b"\r\n.\r\nNOOP\r\n");
        },
    );
    assert_clean(&f, "over-size line in DATA");
    let out = text(&f);
    assert_lines_like(
        &reply_lines(&out),
        &[
            "220 * smtpfront ESMTP",
            "250 2.1.0 Sender <a@x.y> accepted",
            "250 2.1.5 Recipient <b@x.y> accepted",
            "354 End your message with a line holding only a dot",
            "552 5.3.4 *",
            "250 2.0.0 Ok",
        ],
    );
    assert!(out.ends_with("250 2.0.0 Ok\r\n"), "{out}");
}

#[test]
fn nul_bytes_in_commands_and_data() {
    let f = run(&[], true, Duration::from_secs(20), |w, _| {
        let _ = w.write_all(b"\0\0\0\r\nHELO a\0b\r\nMAIL FROM:<a@x.y>\r\nRCPT TO:<b@x.y>\r\nDATA\r\na\0b\r\n.\r\nQUIT\r\n");
    });
    assert_clean(&f, "NUL bytes");
    let out = text(&f);
    assert_eq!(out.matches("501 5.5.2").count(), 2, "{out}");
    let received = format!("250 2.0.0 Received 5 bytes for 1 recipient(s), queue id {QUEUE_ID}");
    assert_lines_like(
        &reply_lines(&out),
        &[
            "220 * smtpfront ESMTP",
            "501 5.5.2 *",
            "501 5.5.2 *",
            "250 2.1.0 Sender <a@x.y> accepted",
            "250 2.1.5 Recipient <b@x.y> accepted",
            "354 End your message with a line holding only a dot",
            &received,
            "221 2.0.0 Good bye",
        ],
    );
}

#[test]
fn a_hundred_thousand_recipients() {
    let f = run(&[], true, Duration::from_secs(60), |w, _| {
        let mut s = String::from("MAIL FROM:<a@x.y>\r\n");
        for i in 0..100_000 {
            s.push_str(&format!("RCPT TO:<user{i}@example.com>\r\n"));
        }
        s.push_str("DATA\r\nhi\r\n.\r\nQUIT\r\n");
        let _ = w.write_all(s.as_bytes());
    });
    assert_clean(&f, "100,000 RCPT");
    let out = text(&f);
    assert_eq!(out.matches("250 2.1.5").count(), 10_000);
    assert_eq!(out.matches("452 4.5.3").count(), 90_000);
    let lines = reply_lines(&out);
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("250 2.1.5 ")).count(),
        10_000
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("452 4.5.3 ")).count(),
        90_000
    );
    assert_lines_like(
        &lines[lines.len() - 3..],
        &[
            "354 End your message with a line holding only a dot",
            &format!("250 2.0.0 Received 4 bytes for 10000 recipient(s), queue id {QUEUE_ID}"),
            "221 2.0.0 Good bye",
        ],
    );
}

#[test]
fn a_client_that_never_reads_is_dropped_after_timeout() {
    let f = run(
        &[("TIMEOUT", "1")],
        false,
        Duration::from_secs(20),
        |w, _| {
            let flood = b"NOOP\r\n".repeat(400_000);
            let _ = w.write_all(&flood);
        },
    );
    assert_clean(&f, "client never reads");
    assert!(f.elapsed < Duration::from_secs(10), "took {:?}", f.elapsed);
    assert!(f.stderr.contains("timeout (TIMEOUT)"), "{}", f.stderr);
}

#[test]
fn silence_gets_421_after_timeout() {
    let f = run(
        &[("TIMEOUT", "1")],
        true,
        Duration::from_secs(20),
        |w, exited| {
            let _ = w.write_all(b"EHLO x\r\n");
            // Silent, with stdin open, until the front end gives up (or 5 s).
            exited.wait(Duration::from_secs(5));
        },
    );
    assert_clean(&f, "silent client");
    let out = text(&f);
    assert!(
        out.ends_with("421 4.4.2 Timeout, closing the connection\r\n"),
        "{out}"
    );
    assert!(
        reply_lines(&out).contains(&"250 PIPELINING"),
        "replies are flushed before waiting: {out}"
    );
    assert!(
        f.elapsed >= Duration::from_secs(1) && f.elapsed < Duration::from_secs(4),
        "{:?}",
        f.elapsed
    );
}

#[test]
fn silence_in_data_gets_421_and_nothing_is_stored() {
    let f = run(
        &[("TIMEOUT", "1")],
        true,
        Duration::from_secs(20),
        |w, exited| {
            let _ =
                w.write_all(b"MAIL FROM:<a@x.y>\r\nRCPT TO:<b@x.y>\r\nDATA\r\nhalf a message\r\n");
            // Silent, with stdin open, until the front end gives up (or 5 s).
            exited.wait(Duration::from_secs(5));
        },
    );
    assert_clean(&f, "silent in DATA");
    let out = text(&f);
    assert!(out.ends_with("354 End your message with a line holding only a dot\r\n421 4.4.2 Timeout, closing the connection\r\n"), "{out}");
    assert!(!f.stderr.contains("accepted:"), "{}", f.stderr);
}

#[test]
fn session_timeout_ends_a_busy_session() {
    let f = run(
        &[("SESSION_TIMEOUT", "1"), ("TIMEOUT", "60")],
        true,
        Duration::from_secs(20),
        |w, _| {
            for _ in 0..40 {
                if w.write_all(b"NOOP\r\n").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        },
    );
    assert_clean(&f, "session timeout");
    let out = text(&f);
    assert!(
        out.ends_with("421 4.4.2 Timeout, closing the connection\r\n"),
        "{out}"
    );
    assert!(f.elapsed < Duration::from_millis(3000), "{:?}", f.elapsed);
    assert!(
        f.stderr.contains("timeout (SESSION_TIMEOUT)"),
        "{}",
        f.stderr
    );
}
