//! forward and SMTPUTF8 (SPEC 3.2, 7) against aiosmtpd (tests/forward_server.py) with and
//! without `enable_SMTPUTF8`: the parameter is passed on when the primary offers it; when it
//! does not, a message that needs nothing of it goes without it, and any other is bounced
//! with `5.6.7` through $SENDMAIL (a script that saves argv and stdin).

mod common;
use common::spool::{spool_dir, stuffed};
use common::{command, run_bounded, run_with_input, SPOOL};
use smtpfront::spool::format::Header;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

const FORWARD: &str = env!("CARGO_BIN_EXE_forward");
/// Spool file names: arrival time first, so they sort oldest first (late 2026, past).
const FIRST: &str = "1796000000.000001.1.0";
const SECOND: &str = "1796000001.000001.1.0";
const THIRD: &str = "1796000002.000001.1.0";

const JOERG: &str = "j\u{f6}rg@b\u{fc}cher.example";
const DMITRY: &str = "\u{434}\u{43c}\u{438}\u{442}\u{440}\u{438}\u{439}@\u{43f}\u{440}\u{438}\u{43c}\u{435}\u{440}.\u{440}\u{444}";
const WHY: &str =
    "the message needs SMTPUTF8 (UTF-8 addresses or headers), and the primary does not offer it";

/// tests/forward_server.py (aiosmtpd); killed when dropped.
struct Remote {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Remote {
    fn start(smtputf8: bool) -> Option<Remote> {
        let config = format!("\"smtputf8\": {smtputf8}");
        let (child, port, out) = common::start_forward_server(&config, "forward-utf8")?;
        Some(Remote { child, port, out })
    }

    /// Each message received: (envelope lines, exact bytes).
    fn received(&self) -> Vec<(String, Vec<u8>)> {
        let mut names: Vec<String> = fs::read_dir(&self.out)
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().into_string().ok())
            .filter(|n| n.starts_with("msg-") && n.ends_with(".eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|n| {
                let env = self.out.join(n.replace(".eml", ".env"));
                let env = fs::read_to_string(env).unwrap();
                (env, fs::read(self.out.join(n)).unwrap())
            })
            .collect()
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `new/ID` as a message received with SMTPUTF8.
fn put(dir: &Path, id: &str, sender: &str, rcpt: &str, message: &[u8]) {
    let header = Header {
        helo: "client.test".into(),
        sender: sender.into(),
        body: Some("8BITMIME".into()),
        smtputf8: true,
        recipients: vec![rcpt.to_string()],
    };
    let mut file = header.render();
    file.extend_from_slice(&stuffed(message));
    fs::write(dir.join("new").join(id), file).unwrap();
}

/// Runs forward to the remote; (exit code, log lines without the `forward[PID]: ` prefix).
fn forward(dir: &Path, remote: &Remote) -> (Option<i32>, Vec<String>) {
    let d = dir.to_str().unwrap();
    let sendmail = format!("{d}/sendmail");
    let env = [
        ("SPOOLDIR", d),
        ("SENDMAIL", sendmail.as_str()),
        ("HELOHOST", "relay.test"),
    ];
    let mut c = command(FORWARD, &env);
    c.arg(format!("127.0.0.1:{}", remote.port));
    let ran = run_bounded(c, Duration::from_secs(60));
    let lines = common::log_lines_of(&ran.stderr, "forward")
        .into_iter()
        .map(str::to_string)
        .collect();
    (ran.code, lines)
}

/// Client bytes as forward's log shows them (SPEC 8): printable ASCII, else `\xNN`.
fn escaped(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            0x20..=0x7e => char::from(b).to_string(),
            _ => format!("\\x{b:02x}"),
        })
        .collect()
}

fn queue(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir.join("new"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// The whole chain: smtpfront-spool stores a UTF-8 message sent with SMTPUTF8, forward
/// passes it to a primary that offers SMTPUTF8: the parameter goes with MAIL, the
/// addresses arrive as they were given and the message (our Received header and what the
/// client sent) byte for byte. The queue ends empty.
#[test]
fn utf8_message_arrives_byte_identical_with_the_parameter() {
    let Some(remote) = Remote::start(true) else {
        return;
    };
    let dir = spool_dir("fw-utf8-offered");
    let message = format!(
        "From: J\u{f6}rg <{JOERG}>\r\nTo: <{DMITRY}>\r\nSubject: Gr\u{fc}\u{df}e\r\n\r\n\
         \u{41f}\u{440}\u{438}\u{432}\u{435}\u{442}!\r\n..dots\r\n"
    );
    let session = format!(
        "EHLO client.test\r\nMAIL FROM:<{JOERG}> SMTPUTF8\r\nRCPT TO:<{DMITRY}>\r\nDATA\r\n\
         {}.\r\nQUIT\r\n",
        String::from_utf8(stuffed(message.as_bytes()))
            .unwrap()
            .strip_suffix(".\r\n")
            .unwrap()
    );
    let stored = run_with_input(
        SPOOL,
        &[("SPOOLDIR", dir.to_str().unwrap()), ("RELAYCLIENT", "")],
        session.as_bytes(),
    );
    assert!(stored.status.success());
    let ids = queue(&dir);
    assert_eq!(ids.len(), 1, "{}", String::from_utf8_lossy(&stored.stdout));
    let file = fs::read(dir.join("new").join(&ids[0])).unwrap();
    let (header, data) = Header::parse(&file).unwrap();
    assert!(header.smtputf8);
    let (code, log) = forward(&dir, &remote);
    assert_eq!(code, Some(0), "{log:#?}");
    let got = remote.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].0,
        format!(
            "HELO relay.test\nMAIL {JOERG} SIZE={} SMTPUTF8\nRCPT {DMITRY}\n",
            data.len()
        )
    );
    // What the remote got, stuffed again, is the stored message: our Received header and
    // the client's bytes.
    assert_eq!(stuffed(&got[0].1), data);
    assert!(got[0].1.ends_with(message.as_bytes()));
    assert_eq!(
        log,
        [
            format!(
                "{} to <{}>: delivered: 250 2.0.0 Ok: queued",
                ids[0],
                escaped(DMITRY)
            ),
            format!(
                "{} from <{}>: {} bytes, 1 recipients, 0 left: removed",
                ids[0],
                escaped(JOERG),
                data.len()
            ),
        ]
    );
    assert!(queue(&dir).is_empty());
    let _ = fs::remove_dir_all(dir);
}

/// A primary without SMTPUTF8 (aiosmtpd's strict ASCII mode): a message received with
/// SMTPUTF8 but all ASCII in its addresses and header block goes without the parameter (its
/// body may be 8-bit); one with a UTF-8 recipient, and one with a UTF-8 header field, are
/// bounced with 5.6.7 through $SENDMAIL without a word to the primary. The queue ends empty.
#[test]
fn without_smtputf8_ascii_goes_plain_and_utf8_bounces_5_6_7() {
    let Some(remote) = Remote::start(false) else {
        return;
    };
    let dir = spool_dir("fw-utf8-not-offered");
    let plain = b"From: s@example.net\r\nSubject: plain\r\n\r\nb\xc3\xbcdy in UTF-8\r\n".to_vec();
    let utf8_subject = "From: s@example.net\r\nSubject: Gr\u{fc}\u{df}e\r\n\r\nhi\r\n";
    put(&dir, FIRST, "s@example.net", "a@x.test", &plain);
    put(
        &dir,
        SECOND,
        "s@example.net",
        DMITRY,
        b"Subject: to Dmitry\r\n\r\nhi\r\n",
    );
    put(
        &dir,
        THIRD,
        "t@example.net",
        "b@x.test",
        utf8_subject.as_bytes(),
    );
    let (code, log) = forward(&dir, &remote);
    assert_eq!(code, Some(0), "{log:#?}");

    let got = remote.received();
    assert_eq!(got.len(), 1, "only the message that needs no SMTPUTF8");
    let size = stuffed(&plain).len();
    assert_eq!(
        got[0].0,
        format!("HELO relay.test\nMAIL s@example.net SIZE={size} BODY=8BITMIME\nRCPT a@x.test\n")
    );
    assert_eq!(got[0].1, plain);

    let sizes = [
        stuffed(b"Subject: to Dmitry\r\n\r\nhi\r\n").len(),
        stuffed(utf8_subject.as_bytes()).len(),
    ];
    assert_eq!(
        log,
        [
            format!("{FIRST} to <a@x.test>: delivered: 250 2.0.0 Ok: queued"),
            format!("{FIRST} from <s@example.net>: {size} bytes, 1 recipients, 0 left: removed"),
            format!("{SECOND} to <{}>: bounced: {WHY}", escaped(DMITRY)),
            format!("{SECOND}: bounce sent to <s@example.net>"),
            format!(
                "{SECOND} from <s@example.net>: {} bytes, 1 recipients, 0 left: removed",
                sizes[0]
            ),
            format!("{THIRD} to <b@x.test>: bounced: {WHY}"),
            format!("{THIRD}: bounce sent to <t@example.net>"),
            format!(
                "{THIRD} from <t@example.net>: {} bytes, 1 recipients, 0 left: removed",
                sizes[1]
            ),
        ]
    );
    assert!(queue(&dir).is_empty());

    let bounces = bounces(&dir);
    assert_eq!(bounces.len(), 2);
    let to_dmitry = bounces
        .iter()
        .find(|(argv, _)| argv.ends_with("[s@example.net]\n"))
        .expect("a bounce to s@example.net");
    assert_eq!(to_dmitry.0, "[-i]\n[-f]\n[]\n[--]\n[s@example.net]\n");
    for needle in [
        "Content-Type: message/global-delivery-status\n".to_string(),
        format!("Final-Recipient: utf-8; {DMITRY}\nAction: failed\nStatus: 5.6.7\n"),
        format!("Diagnostic-Code: X-forward; {WHY}\n"),
        "Content-Type: text/rfc822-headers\n".to_string(),
        "Subject: to Dmitry\n".to_string(),
    ] {
        assert!(
            to_dmitry.1.contains(&needle),
            "{needle:?} in\n{}",
            to_dmitry.1
        );
    }
    let to_t = bounces
        .iter()
        .find(|(argv, _)| argv.ends_with("[t@example.net]\n"))
        .expect("a bounce to t@example.net");
    for needle in [
        "Content-Type: message/delivery-status\n".to_string(),
        "Final-Recipient: rfc822; b@x.test\nAction: failed\nStatus: 5.6.7\n".to_string(),
        "Content-Type: message/global-headers\n".to_string(),
        "Subject: Gr\u{fc}\u{df}e\n".to_string(),
    ] {
        assert!(to_t.1.contains(&needle), "{needle:?} in\n{}", to_t.1);
    }
    let _ = fs::remove_dir_all(dir);
}

/// Each bounce: (argv, message), in no particular order.
fn bounces(dir: &Path) -> Vec<(String, String)> {
    fs::read_dir(dir.join("bounces"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "msg"))
        .map(|p| {
            let argv = fs::read_to_string(p.with_extension("argv")).unwrap();
            (argv, fs::read_to_string(&p).unwrap())
        })
        .collect()
}
