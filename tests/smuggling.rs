//! SMTP smuggling (SPEC 3 "End of DATA and SMTP smuggling", CVE-2023-51764/51765/51766):
//! after a `DATA` sent with CRLF, `LF.LF`, `CRLF.LF` and `LF.CRLF` are message content. A
//! forged transaction hidden behind them must never run: not in process, not through pipes,
//! not under tcpserver, and not through the whole chain into the primary.

mod common;
use common::{command, scratch, start_forward_server, Guard, Server, ECHO, REJECT, SPOOL};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const FORWARD: &str = env!("CARGO_BIN_EXE_forward");

/// The hidden end of DATA each case uses, as the body of the first message holds it.
const HIDDEN_ENDS: [&[u8]; 3] = [b"\n.\n", b"\r\n.\n", b"\n.\r\n"];

/// One session: a genuine message whose body hides `end` followed by a forged transaction.
fn smuggling_session(end: &[u8]) -> Vec<u8> {
    let mut s = b"EHLO attacker.test\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.com>\r\n\
DATA\r\nSubject: x\r\n\r\nhello"
        .to_vec();
    s.extend_from_slice(end);
    s.extend_from_slice(
        b"MAIL FROM:<admin@bank.example>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n\r\n\
forged\r\n.\r\nQUIT\r\n",
    );
    s
}

/// What the genuine message holds, un-stuffed with CRLF line ends: the forged commands are
/// its text, and the transaction ends at the only CRLF `.` CRLF.
fn genuine_content() -> &'static [u8] {
    b"Subject: x\r\n\r\nhello\r\n.\r\nMAIL FROM:<admin@bank.example>\r\n\
RCPT TO:<victim@example.com>\r\nDATA\r\n\r\nforged\r\n"
}

/// The message as the spool file stores it: dot-stuffed.
fn genuine_stuffed() -> &'static [u8] {
    b"Subject: x\r\n\r\nhello\r\n..\r\nMAIL FROM:<admin@bank.example>\r\n\
RCPT TO:<victim@example.com>\r\nDATA\r\n\r\nforged\r\n.\r\n"
}

/// The replies after the greeting: one transaction, then QUIT. `ehlo_tail`: the EHLO lines
/// after ENHANCEDSTATUSCODES, `envelope`: the replies to MAIL and RCPT; both differ between
/// back ends (smtpfront-spool lists ETRN, SPEC 3.3).
fn expect_one_transaction(
    replies: &[String],
    ehlo_tail: &[&str],
    envelope: [&str; 2],
    accepted: &str,
) {
    let mut want_ehlo = vec![
        "250-",
        "250-SIZE 0",
        "250-8BITMIME",
        "250-SMTPUTF8",
        "250-ENHANCEDSTATUSCODES",
    ];
    want_ehlo.extend_from_slice(ehlo_tail);
    let n = want_ehlo.len();
    assert_eq!(replies.len(), n + 5, "{replies:#?}");
    for (got, want) in replies.iter().zip(&want_ehlo) {
        assert!(got.starts_with(want), "{got:?} should start with {want:?}");
    }
    assert_eq!(replies[n..n + 2], envelope);
    assert_eq!(
        replies[n + 2],
        "354 End your message with a line holding only a dot"
    );
    assert!(
        replies[n + 3].starts_with(accepted),
        "{:?} should start with {accepted:?}",
        replies[n + 3]
    );
    assert_eq!(replies[n + 4], "221 2.0.0 Good bye");
}

fn lines(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out)
        .split("\r\n")
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn smuggled_transaction_is_content_through_pipes() {
    for end in HIDDEN_ENDS {
        let out = common::run_with_input(ECHO, &[], &smuggling_session(end));
        let size = genuine_content().len();
        expect_one_transaction(
            &lines(&out.stdout),
            &["250 PIPELINING"],
            [
                "250 2.1.0 Sender <a@example.net> accepted",
                "250 2.1.5 Recipient <b@example.com> accepted",
            ],
            &format!("250 2.0.0 Received {size} bytes for 1 recipient(s), queue id "),
        );
        let log = String::from_utf8_lossy(&out.stderr);
        let accepted: Vec<&str> = log
            .lines()
            .filter_map(|l| l.split_once("]: accepted: ").map(|(_, r)| r))
            .collect();
        assert_eq!(accepted.len(), 1, "{log}");
        let bare = end.iter().filter(|&&b| b == b'\n').count()
            - end.windows(2).filter(|w| w == b"\r\n").count();
        assert!(
            accepted[0].ends_with(&format!(
                " from <a@example.net> to 1 recipient(s), {size} bytes, {bare} bare LF"
            )),
            "{log}"
        );
    }
}

#[test]
fn bare_lf_data_may_end_with_bare_lf_dot() {
    let out = common::run_with_input(
        ECHO,
        &[],
        b"MAIL FROM:<a@b.c>\nRCPT TO:<d@e.f>\nDATA\nhi\n.\nQUIT\n",
    );
    assert_eq!(
        lines(&out.stdout)[..3],
        [
            "250 2.1.0 Sender <a@b.c> accepted",
            "250 2.1.5 Recipient <d@e.f> accepted",
            "354 End your message with a line holding only a dot",
        ]
    );
    let end = &lines(&out.stdout)[3..];
    assert_eq!(end.len(), 2, "{end:?}");
    assert!(end[0].starts_with("250 2.0.0 Received 4 bytes for 1 recipient(s), queue id "));
    assert_eq!(end[1], "221 2.0.0 Good bye");
}

/// A spool directory with the chain `smtpfront-reject smtpfront-spool` in front of it.
fn chain(spool: &Path) -> Option<Server> {
    Server::start(
        &[REJECT, SPOOL],
        &[("SPOOLDIR", spool.to_str().unwrap()), ("RELAYCLIENT", "")],
        5,
    )
}

/// Sends `input` in one write and reads everything until the server closes.
fn talk(port: u16, input: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(input).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    out
}

fn spooled(spool: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(spool.join("new"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn smuggled_transaction_never_reaches_the_spool_or_the_primary() {
    let Some((server, port, received)) = start_forward_server("", "smuggling-primary") else {
        return;
    };
    let _primary = Guard(server);
    let spool = scratch("smuggling-spool");
    let Some(front) = chain(&spool) else {
        return;
    };
    for end in HIDDEN_ENDS {
        let out = talk(front.port, &smuggling_session(end));
        expect_one_transaction(
            &lines(&out),
            &["250-PIPELINING", "250 ETRN"],
            ["250 2.1.0 Sender accepted", "250 2.1.5 Recipient accepted"],
            "250 2.0.0 Ok: queued as ",
        );
    }
    let files = spooled(&spool);
    assert_eq!(files.len(), HIDDEN_ENDS.len(), "{files:?}");
    for f in &files {
        let stored = std::fs::read(f).unwrap();
        let (head, message) = split_after_data(&stored);
        assert_eq!(
            head,
            "HELO attacker.test\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
        );
        assert!(message.starts_with(b"Received: "), "{f:?}");
        assert!(message.ends_with(genuine_stuffed()), "{f:?}");
    }
    let ran = common::run_bounded(
        {
            let mut c = command(FORWARD, &[("SPOOLDIR", spool.to_str().unwrap())]);
            c.arg(format!("127.0.0.1:{port}"));
            c
        },
        Duration::from_secs(60),
    );
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut envs = envelopes(&received);
    while envs.len() < HIDDEN_ENDS.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        envs = envelopes(&received);
    }
    assert_eq!(envs.len(), HIDDEN_ENDS.len(), "{envs:?}");
    for (env, eml) in envs {
        let env = std::fs::read_to_string(env).unwrap();
        let rcpts: Vec<&str> = env.lines().filter(|l| l.starts_with("RCPT ")).collect();
        assert_eq!(rcpts, ["RCPT b@example.com"], "{env}");
        let eml = std::fs::read(eml).unwrap();
        assert!(
            eml.ends_with(genuine_content()),
            "{}",
            String::from_utf8_lossy(&eml)
        );
    }
    assert!(spooled(&spool).is_empty());
    let _ = std::fs::remove_dir_all(&spool);
}

/// The envelope line block of a spool file, and the message after `DATA`.
fn split_after_data(file: &[u8]) -> (String, &[u8]) {
    let at = file
        .windows(8)
        .position(|w| w == b"\r\nDATA\r\n")
        .expect("DATA line")
        + 8;
    (
        String::from_utf8_lossy(&file[..at]).into_owned(),
        &file[at..],
    )
}

/// (msg-N.env, msg-N.eml) pairs the test primary wrote.
fn envelopes(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut v: Vec<(PathBuf, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "env").then(|| (p.clone(), p.with_extension("eml")))
        })
        .filter(|(_, eml)| eml.exists())
        .collect();
    v.sort();
    v
}
