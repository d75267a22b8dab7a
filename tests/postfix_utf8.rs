//! A real MTA relaying internationalised mail into the chain (SPEC 3.2, issue 11): a
//! private Postfix instance (its own configuration, queue and port; `smtputf8_enable =
//! yes`, `relayhost` our tcpserver) takes UTF-8 mail from Python's smtplib with SMTPUTF8
//! and relays it to smtpfront-spool, which must store it with the parameter, the addresses
//! as Postfix sent them, and the message byte for byte behind the two Received headers.
//! The instance is tests/common/postfix.rs's, as in the STARTTLS tests.

mod common;
use common::postfix::{Postfix, HOSTNAME};
use common::{command, python, run_bounded, scratch, Server, SPOOL};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CLIENT_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtputf8_client.py");
const JOERG: &str = "j\u{f6}rg@b\u{fc}cher.example";
const DMITRY: &str = "\u{434}\u{43c}\u{438}\u{442}\u{440}\u{438}\u{439}@\u{43f}\u{440}\u{438}\u{43c}\u{435}\u{440}.\u{440}\u{444}";

/// Waits up to `limit` for exactly one file in `dir`.
fn one_file(dir: &Path, limit: Duration, why: impl Fn() -> String) -> PathBuf {
    let deadline = Instant::now() + limit;
    loop {
        let files: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        match files.len() {
            1 => return files.into_iter().next().unwrap(),
            0 if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => panic!("{files:?} in {}:\n{}", dir.display(), why()),
        }
    }
}

#[test]
fn postfix_relays_utf8_mail_into_the_spool() {
    let Some(py) = python() else {
        return;
    };
    let dir = scratch("postfix-utf8-chain");
    let spooldir = dir.join("spool");
    fs::create_dir(&spooldir).unwrap();
    let hosts = dir.join("rcpthosts");
    // One domain in U-labels, one in A-labels: Postfix sends the addresses as it got them.
    fs::write(&hosts, "b\u{fc}cher.example\nxn--e1afmkfd.xn--p1ai\n").unwrap();
    let env = [
        ("SPOOLDIR", spooldir.to_str().unwrap()),
        ("RCPTHOSTS", hosts.to_str().unwrap()),
    ];
    let Some(server) = Server::start(&[SPOOL], &env, 5) else {
        return;
    };
    let relayhost = format!("[127.0.0.1]:{}", server.port);
    let settings = [
        ("relayhost", relayhost.as_str()),
        ("smtputf8_enable", "yes"),
        ("smtp_tls_security_level", "none"),
        ("smtpd_tls_security_level", "none"),
    ];
    let Some(postfix) = Postfix::start("postfix-utf8", &settings) else {
        return;
    };
    // Date and Message-ID given, so that Postfix adds nothing but its Received header.
    let message = format!(
        "From: J\u{f6}rg <{JOERG}>\r\nTo: <{DMITRY}>\r\nSubject: Gr\u{fc}\u{df}e\r\n\
         Date: Wed, 2 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@b\u{fc}cher.example>\r\n\r\n\
         \u{41f}\u{440}\u{438}\u{432}\u{435}\u{442}!\r\n"
    );
    fs::write(dir.join("message"), &message).unwrap();
    let mut c = command(&py, &[]);
    c.arg(CLIENT_PY)
        .arg(postfix.port.to_string())
        .arg(JOERG)
        .arg(dir.join("message"))
        .args([DMITRY, "user@xn--bcher-kva.example"]);
    let ran = run_bounded(c, Duration::from_secs(60));
    assert_eq!(ran.stdout.lines().last(), Some("SENT"), "{}", ran.stderr);

    let path = one_file(&spooldir.join("new"), Duration::from_secs(30), || {
        format!("{}\n{}", postfix.log(), server.log())
    });
    let file = String::from_utf8(fs::read(path).unwrap()).expect("stored as UTF-8");
    let lines: Vec<&str> = file.split("\r\n").collect();
    // Postfix sends the recipients in its own order: compare them as a set.
    assert_eq!(
        lines[..2],
        [
            &format!("HELO {HOSTNAME}"),
            &format!("MAIL FROM:<{JOERG}> SMTPUTF8")
        ]
    );
    let mut rcpts = lines[2..4].to_vec();
    rcpts.sort();
    assert_eq!(
        rcpts,
        [
            "RCPT TO:<user@xn--bcher-kva.example>".to_string(),
            format!("RCPT TO:<{DMITRY}>")
        ]
    );
    assert_eq!(lines[4], "DATA");
    common::assert_lines_like(
        &lines[5..11],
        &[
            "Received: from postfix.test ([127.0.0.1])",
            "\tby localhost ([127.0.0.1])",
            "\twith UTF8SMTP via TCP; *, # * # #:#:# +0000",
            "Received: from client.test (* [127.0.0.1])",
            "\tby postfix.test (Postfix) with UTF8SMTP id *;",
            "\t*, * # * # #:#:# +0000 (UTC)",
        ],
    );
    let tail = format!("{message}.\r\n");
    assert!(file.ends_with(&tail), "{file}");
    assert_eq!(
        file.len(),
        lines[..11].iter().map(|l| l.len() + 2).sum::<usize>() + tail.len()
    );
    drop(postfix);
    drop(server);
    let _ = fs::remove_dir_all(dir);
}
