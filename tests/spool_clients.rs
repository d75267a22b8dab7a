//! smtpfront-spool under a real tcpserver with real clients — swaks (plain, pipelined, raw
//! data with bare LFs) and Python's smtplib (three messages in one session, 8-bit content
//! with BODY=8BITMIME) — and every stored file checked byte for byte (SPEC 3, 6).
//!
//! Between the client and tcpserver sits a tap: a relay on another loopback port that
//! records what the client sent. The expected file is then built from the client's own bytes:
//! the envelope lines, the Received header (its shape checked), and the message exactly as
//! the client sent it between `DATA` and the lone dot, with every line end made CRLF (the
//! stuffing is kept: the file is dot-stuffed like the wire). So the test does not depend on
//! how a given swaks or Python version formats a message, yet checks every byte.

mod common;

use common::{python, scratch, tool, Server, REJECT, SPOOL};
use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// tcpserver's `-l`: the local host name, without a DNS lookup per connection.
const LOCAL: &str = "mx.test";
const HELO: &str = "client.test";

/// A spool directory served by `tcpserver ... smtpfront-reject smtpfront-spool`.
struct Spool {
    dir: PathBuf,
    server: Server,
}

impl Spool {
    fn start(name: &str) -> Option<Spool> {
        let dir = scratch(name);
        fs::create_dir(dir.join("spool")).unwrap();
        fs::write(dir.join("rcpthosts"), "example.com\n.example.com\n").unwrap();
        let spool = dir.join("spool").to_str().unwrap().to_string();
        let hosts = dir.join("rcpthosts").to_str().unwrap().to_string();
        let server = Server::start_with(
            &[REJECT, SPOOL],
            &[("SPOOLDIR", &spool), ("RCPTHOSTS", &hosts)],
            &["-c", "10", "-l", LOCAL],
        )?;
        Some(Spool { dir, server })
    }

    /// The stored messages, oldest first (the names sort by arrival, SPEC 6).
    fn stored(&self) -> Vec<Vec<u8>> {
        let new = self.dir.join("spool/new");
        let mut names: Vec<PathBuf> = fs::read_dir(&new)
            .map(|r| r.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        names.sort();
        names.iter().map(|p| fs::read(p).unwrap()).collect()
    }

    /// Waits until `n` messages are stored (the 250 may reach the client just before the
    /// tap has passed everything on; the file is in new/ before the 250 is sent).
    fn wait_stored(&self, n: usize) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.stored();
            if s.len() >= n {
                assert_eq!(s.len(), n, "log:\n{}", self.server.log());
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} messages stored; log:\n{}",
                s.len(),
                self.server.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A one-connection relay from a loopback port to `target` that records the client's bytes.
struct Tap {
    port: u16,
    sent: Arc<Mutex<Vec<u8>>>,
    thread: Option<JoinHandle<()>>,
}

impl Tap {
    fn start(target: u16) -> Tap {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&sent);
        let thread = std::thread::spawn(move || {
            let Ok((client, _)) = listener.accept() else {
                return;
            };
            let server = TcpStream::connect(("127.0.0.1", target)).unwrap();
            for s in [&client, &server] {
                s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            }
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let up = std::thread::spawn(move || pump(c2, s2, Some(record)));
            pump(server, client, None);
            up.join().unwrap();
        });
        Tap {
            port,
            sent,
            thread: Some(thread),
        }
    }

    /// Everything the client sent, once the connection is over on both sides.
    fn finish(mut self) -> Vec<u8> {
        self.thread.take().unwrap().join().unwrap();
        let sent = self.sent.lock().unwrap();
        sent.clone()
    }
}

/// Copies `from` to `to` until the end of input, recording into `record`.
fn pump(mut from: TcpStream, mut to: TcpStream, record: Option<Arc<Mutex<Vec<u8>>>>) {
    let mut buf = [0u8; 16384];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(r) = &record {
            r.lock().unwrap().extend_from_slice(&buf[..n]);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// The messages in a client's byte stream: for each DATA, the lines up to the lone dot,
/// each with its line end made CRLF, followed by `.\r\n`: what SPEC 6 stores after the
/// trace header.
fn sent_messages(sent: &[u8]) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    for line in sent.split_inclusive(|&b| b == b'\n') {
        let bare = line
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .expect("every line the clients send ends with LF");
        match current.as_mut() {
            None => {
                if bare.eq_ignore_ascii_case(b"DATA") {
                    current = Some(Vec::new());
                }
            }
            Some(m) => {
                m.extend_from_slice(bare);
                m.extend_from_slice(b"\r\n");
                if bare == b"." {
                    messages.push(current.take().unwrap());
                }
            }
        }
    }
    assert!(current.is_none(), "a DATA without its dot");
    messages
}

/// Checks one stored file: `envelope` (HELO ... DATA lines) exactly, then the three lines of
/// the Received header, then `message` exactly.
fn check_stored(stored: &[u8], envelope: &str, message: &[u8]) {
    let shown = String::from_utf8_lossy(stored);
    assert!(
        stored.starts_with(envelope.as_bytes()),
        "envelope: want {envelope:?}\nfile {shown:?}"
    );
    let rest = &stored[envelope.len()..];
    let mut lines = rest.split_inclusive(|&b| b == b'\n');
    let mut take = || {
        let l = lines.next().expect("the Received header is cut short");
        std::str::from_utf8(l).expect("the Received header is ASCII")
    };
    let (l1, l2, l3) = (take(), take(), take());
    // tcpserver -H: no remote host name, so "(REMOTEHOST [IP])" is "([IP])".
    assert_eq!(l1, format!("Received: from {HELO} ([127.0.0.1])\r\n"));
    assert_eq!(l2, format!("\tby {LOCAL} ([127.0.0.1])\r\n"));
    check_with_line(l3);
    let received = l1.len() + l2.len() + l3.len();
    assert_eq!(
        String::from_utf8_lossy(&rest[received..]),
        String::from_utf8_lossy(message),
        "the message as stored (left) and as the client sent it (right)"
    );
    assert_eq!(&rest[received..], message);
}

/// `\twith ESMTP via TCP; Sun, 22 Nov 2026 10:04:00 +0000\r\n`, field by field.
fn check_with_line(line: &str) {
    let date = line
        .strip_prefix("\twith ESMTP via TCP; ")
        .and_then(|l| l.strip_suffix(" +0000\r\n"))
        .unwrap_or_else(|| panic!("{line:?}"));
    let f: Vec<&str> = date.split(' ').collect();
    assert_eq!(f.len(), 5, "{line:?}");
    let days = ["Mon,", "Tue,", "Wed,", "Thu,", "Fri,", "Sat,", "Sun,"];
    assert!(days.contains(&f[0]), "{line:?}");
    let day: u32 = f[1].parse().unwrap();
    assert!((1..=31).contains(&day), "{line:?}");
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    assert!(months.contains(&f[2]), "{line:?}");
    assert!(
        f[3].len() == 4 && f[3].bytes().all(|b| b.is_ascii_digit()),
        "{line:?}"
    );
    let hms: Vec<&str> = f[4].split(':').collect();
    assert_eq!(hms.len(), 3, "{line:?}");
    for (part, max) in hms.iter().zip([23u32, 59, 60]) {
        assert_eq!(part.len(), 2, "{line:?}");
        assert!(part.parse::<u32>().unwrap() <= max, "{line:?}");
    }
}

/// Runs a client to its end, killed after a minute; (exit code, stdout + stderr).
fn run_bounded(mut cmd: Command) -> (Option<i32>, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn client");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let text = format!("{}{}", out.join().unwrap(), err.join().unwrap());
    assert!(status.is_some(), "client killed after a minute:\n{text}");
    (status.and_then(|s| s.code()), text)
}

/// swaks through a tap to the spool; (transcript, the client's bytes).
fn swaks(spool: &Spool, data: &Path, extra: &[&str]) -> Option<(String, Vec<u8>)> {
    let swaks = tool("swaks")?;
    let tap = Tap::start(spool.server.port);
    let mut cmd = common::command(swaks, &[]);
    cmd.args(["--server", &format!("127.0.0.1:{}", tap.port)])
        .args(["--helo", HELO, "--from", "sender@example.net"])
        .args(["--to", "rcpt@example.com", "--timeout", "20"])
        .arg("--data")
        .arg(format!("@{}", data.display()))
        .args(extra);
    let (code, transcript) = run_bounded(cmd);
    assert_eq!(code, Some(0), "{transcript}");
    let queued = format!("250 2.0.0 Ok: queued as {}", common::QUEUE_ID);
    assert!(
        common::swaks_server_lines(&transcript)
            .iter()
            .any(|l| common::like(l, &queued)),
        "{transcript}"
    );
    Some((transcript, tap.finish()))
}

/// A message with leading dots (one of them alone on its line) and lines that end in a bare
/// LF in the data file, no final line end: swaks makes every line end CRLF, stuffs the dots
/// and adds the final dot.
const DOTS: &[u8] = b"Subject: dots and line ends\n\n.leading dot\n..two leading dots\n.\nbare LF line\nCRLF line\r\n...\nlast line";

const ENVELOPE: &str =
    "HELO client.test\r\nMAIL FROM:<sender@example.net>\r\nRCPT TO:<rcpt@example.com>\r\nDATA\r\n";

#[test]
fn swaks_plain_dots_and_line_ends_stored_byte_for_byte() {
    let Some(spool) = Spool::start("clients-swaks") else {
        return;
    };
    let data = spool.dir.join("data");
    fs::write(&data, DOTS).unwrap();
    let Some((_, sent)) = swaks(&spool, &data, &[]) else {
        return;
    };
    let messages = sent_messages(&sent);
    assert_eq!(messages.len(), 1);
    // What swaks sent is what this test is about: stuffed dots, CRLF line ends.
    let m = String::from_utf8(messages[0].clone()).unwrap();
    assert!(
        m.contains("\r\n..leading dot\r\n...two leading dots\r\n..\r\nbare LF line\r\n"),
        "{m:?}"
    );
    assert!(m.ends_with("\r\nlast line\r\n.\r\n"), "{m:?}");
    let stored = spool.wait_stored(1);
    check_stored(&stored[0], ENVELOPE, &messages[0]);
}

#[test]
fn swaks_pipelined_stored_byte_for_byte() {
    let Some(spool) = Spool::start("clients-pipe") else {
        return;
    };
    let data = spool.dir.join("data");
    fs::write(&data, DOTS).unwrap();
    let Some((transcript, sent)) = swaks(&spool, &data, &["--pipeline"]) else {
        return;
    };
    // swaks pipelined: MAIL, RCPT and DATA went out before the reply to MAIL came back.
    // Compared by line number, whole lines: not positions in the text, where the
    // `Trying 127.0.0.1:PORT` line comes first.
    let at = |what: &dyn Fn(&str) -> bool, shown: &str| {
        transcript
            .lines()
            .position(what)
            .unwrap_or_else(|| panic!("{shown:?} not in:\n{transcript}"))
    };
    assert!(
        common::swaks_server_lines(&transcript).contains(&"250-PIPELINING"),
        "{transcript}"
    );
    assert!(
        at(&|l| l == " -> DATA", " -> DATA")
            < at(&|l| l.starts_with("<-  250 2.1.0 "), "<-  250 2.1.0 "),
        "{transcript}"
    );
    let messages = sent_messages(&sent);
    assert_eq!(messages.len(), 1);
    let stored = spool.wait_stored(1);
    check_stored(&stored[0], ENVELOPE, &messages[0]);
}

#[test]
fn swaks_raw_data_with_bare_lf_on_the_wire() {
    let Some(spool) = Spool::start("clients-raw") else {
        return;
    };
    // --no-data-fixup: swaks sends the file as it is, then CRLF; so the file carries its own
    // stuffing and final dot, and the bare LFs reach the server. The dot line follows a CRLF:
    // after a CRLF DATA only CRLF . CRLF ends the message (SPEC 3, SMTP smuggling).
    let raw: &[u8] = b"Subject: raw\n\n..stuffed by the client\nbare LF\r\nCRLF\n...\nend\r\n.";
    let data = spool.dir.join("data");
    fs::write(&data, raw).unwrap();
    let Some((_, sent)) = swaks(&spool, &data, &["--no-data-fixup"]) else {
        return;
    };
    let dot = sent
        .windows(7)
        .position(|w| w == b"DATA\r\nS")
        .expect("DATA in the client's bytes");
    assert!(
        sent[dot..].starts_with(b"DATA\r\nSubject: raw\n\n..stuffed"),
        "the bare LFs were sent as they are: {:?}",
        String::from_utf8_lossy(&sent)
    );
    let messages = sent_messages(&sent);
    assert_eq!(
        messages,
        [b"Subject: raw\r\n\r\n..stuffed by the client\r\nbare LF\r\nCRLF\r\n...\r\nend\r\n.\r\n"
            .to_vec()]
    );
    let stored = spool.wait_stored(1);
    check_stored(&stored[0], ENVELOPE, &messages[0]);
}

/// Three messages in one smtplib session: one through sendmail() (which adds SIZE=), one
/// 8-bit with BODY=8BITMIME and two recipients, one from the null sender with leading dots
/// and bare LFs (smtplib sends bytes as they are, stuffing dots only).
const PYTHON: &str = r#"
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), local_hostname="client.test", timeout=20)
s.ehlo()
assert s.has_extn("8bitmime") and s.has_extn("size"), s.esmtp_features
refused = s.sendmail("alice@example.net", ["bob@example.com"],
                     b"Subject: one\r\n\r\nfirst message\r\n")
assert refused == {}, refused
print("1", "ok")
code, _ = s.mail("carol@example.net", ["BODY=8BITMIME"])
assert code == 250, code
for r in ["dave@example.com", "erin@sub.example.com"]:
    code, _ = s.rcpt(r)
    assert code == 250, (r, code)
code, reply = s.data(b"Subject: caf\xc3\xa9\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     b"Content-Transfer-Encoding: 8bit\r\n\r\nna\xc3\xafve \xe2\x82\xac \xff\x80\r\n")
assert code == 250, (code, reply)
print("2", reply.decode())
code, _ = s.mail("")
assert code == 250, code
code, _ = s.rcpt("postmaster@example.com")
assert code == 250, code
code, reply = s.data(b"Subject: three\n\n.one dot\n..two dots\nbare LF\r\n.\r\nend\r\n")
assert code == 250, (code, reply)
print("3", reply.decode())
s.quit()
"#;

#[test]
fn python_smtplib_three_messages_with_8bitmime() {
    let Some(py) = python() else { return };
    let Some(spool) = Spool::start("clients-python") else {
        return;
    };
    let tap = Tap::start(spool.server.port);
    let mut cmd = common::command(py, &[]);
    cmd.arg("-c").arg(PYTHON).arg(tap.port.to_string());
    let (code, out) = run_bounded(cmd);
    assert_eq!(code, Some(0), "{out}\nlog:\n{}", spool.server.log());
    let sent = tap.finish();
    let messages = sent_messages(&sent);
    assert_eq!(messages.len(), 3);
    // The client's bytes hold what each message is about.
    assert!(
        sent.windows(22).any(|w| w == b"BODY=8BITMIME\r\nrcpt TO"),
        "BODY=8BITMIME sent: {:?}",
        String::from_utf8_lossy(&sent)
    );
    assert!(messages[1].windows(2).any(|w| w == b"\xff\x80"));
    assert!(String::from_utf8_lossy(&sent).contains("\n..one dot\n...two dots\nbare LF\r\n"));

    let stored = spool.wait_stored(3);
    // sendmail() added SIZE=...; only BODY= is recorded (SPEC 6).
    check_stored(
        &stored[0],
        "HELO client.test\r\nMAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n",
        &messages[0],
    );
    check_stored(
        &stored[1],
        "HELO client.test\r\nMAIL FROM:<carol@example.net> BODY=8BITMIME\r\n\
         RCPT TO:<dave@example.com>\r\nRCPT TO:<erin@sub.example.com>\r\nDATA\r\n",
        &messages[1],
    );
    check_stored(
        &stored[2],
        "HELO client.test\r\nMAIL FROM:<>\r\nRCPT TO:<postmaster@example.com>\r\nDATA\r\n",
        &messages[2],
    );
    assert_eq!(
        messages[2],
        b"Subject: three\r\n\r\n..one dot\r\n...two dots\r\nbare LF\r\n..\r\nend\r\n.\r\n"
    );
}
