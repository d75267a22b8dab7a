//! A real MTA relaying internationalised mail into the chain (SPEC 3.2, issue 11): a
//! private Postfix instance (its own configuration, queue and port; `smtputf8_enable =
//! yes`, `relayhost` our tcpserver) takes UTF-8 mail from Python's smtplib with SMTPUTF8
//! and relays it to smtpfront-spool, which must store it with the parameter, the addresses
//! as Postfix sent them, and the message byte for byte behind the two Received headers.
//!
//! Postfix must be started as root (it drops to its `postfix` account); this file keeps its
//! own small helper for that, see [`Postfix`].

mod common;
use common::{command, free_port, python, run_bounded, scratch, tool, Server, SPOOL};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CLIENT_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtputf8_client.py");
const JOERG: &str = "j\u{f6}rg@b\u{fc}cher.example";
const DMITRY: &str = "\u{434}\u{43c}\u{438}\u{442}\u{440}\u{438}\u{439}@\u{43f}\u{440}\u{438}\u{43c}\u{435}\u{440}.\u{440}\u{444}";

/// A private Postfix instance in `dir`, listening on 127.0.0.1:`port` and relaying
/// everything to 127.0.0.1:`relay`; stopped when dropped.
struct Postfix {
    dir: PathBuf,
    port: u16,
    postfix: PathBuf,
}

/// The daemons of the instance: only what relaying needs, none chrooted.
const MASTER_CF: &str = "\
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
";

impl Postfix {
    /// `None` (skipped) when Postfix is missing or we are not root, outside CI; under
    /// CI=true either fails the test.
    fn start(relay: u16) -> Option<Postfix> {
        let postfix = tool("postfix")?;
        let root = std::fs::metadata("/proc/self").map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.uid() == 0
        });
        if !root.unwrap_or(false) {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("a private Postfix must be started as root (CI=true)");
            }
            eprintln!("SKIPPED: a private Postfix must be started as root");
            return None;
        }
        let dir = scratch("postfix-utf8");
        let port = free_port();
        let d = dir.display();
        for sub in ["queue", "data"] {
            fs::create_dir(dir.join(sub)).unwrap();
        }
        let chown = command("chown", &[])
            .arg("postfix")
            .arg(dir.join("data"))
            .status()
            .unwrap();
        assert!(chown.success());
        let main_cf = format!(
            "compatibility_level = 3.6\nqueue_directory = {d}/queue\ndata_directory = {d}/data\n\
             mail_owner = postfix\nsetgid_group = postdrop\nmyhostname = postfix.test\n\
             mydomain = test\nmyorigin = postfix.test\nmydestination =\n\
             inet_interfaces = 127.0.0.1\ninet_protocols = ipv4\nmynetworks = 127.0.0.0/8\n\
             relayhost = [127.0.0.1]:{relay}\nsmtputf8_enable = yes\n\
             smtp_tls_security_level = none\nsmtpd_tls_security_level = none\n\
             smtp_dns_support_level = disabled\nalias_maps =\nalias_database =\n\
             local_recipient_maps =\nsmtpd_relay_restrictions = permit_mynetworks, reject\n\
             biff = no\nmaillog_file_prefixes = {d}\nmaillog_file = {d}/maillog\n"
        );
        fs::write(dir.join("main.cf"), main_cf).unwrap();
        let listener = format!("127.0.0.1:{port} inet n - n - - smtpd\n");
        fs::write(dir.join("master.cf"), listener + MASTER_CF).unwrap();
        let pf = Postfix { dir, port, postfix };
        let started = pf.control("start");
        assert!(started, "postfix start failed:\n{}", pf.maillog());
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "no smtpd:\n{}", pf.maillog());
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(pf)
    }

    fn control(&self, verb: &str) -> bool {
        command(&self.postfix, &[])
            .arg("-c")
            .arg(&self.dir)
            .arg(verb)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn maillog(&self) -> String {
        fs::read_to_string(self.dir.join("maillog")).unwrap_or_default()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        // `stop` waits for the master to go; the queue is empty or the test failed anyway.
        self.control("stop");
        let _ = fs::remove_dir_all(&self.dir);
    }
}

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
    let Some(postfix) = Postfix::start(server.port) else {
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
        format!("{}\n{}", postfix.maillog(), server.log())
    });
    let file = String::from_utf8(fs::read(path).unwrap()).expect("stored as UTF-8");
    let lines: Vec<&str> = file.split("\r\n").collect();
    // Postfix sends the recipients in its own order: compare them as a set.
    assert_eq!(
        lines[..2],
        [
            "HELO postfix.test",
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
            "Received: from client.test (localhost [127.0.0.1])",
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
