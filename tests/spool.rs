//! smtpfront-spool (SPEC 2 recipient policy, SPEC 6 spool): transcripts through pipes, the
//! stored files checked byte for byte, write failures, and start-up errors.

mod common;
use common::{command, run_with_input, scratch, SPOOL};
use smtpfront::spool::format::Header;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

struct Run {
    out: String,
    err: String,
    code: i32,
}

fn spool(dir: &Path, env: &[(&str, &str)], input: &str) -> Run {
    let d = dir.to_str().unwrap();
    let mut all = vec![("SPOOLDIR", d)];
    all.extend_from_slice(env);
    let o = run_with_input(SPOOL, &all, input.as_bytes());
    Run {
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
        code: o.status.code().unwrap_or(-1),
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|r| r.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn queued_ids(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.strip_prefix("250 2.0.0 Ok: queued as "))
        .inspect(|id| assert!(common::like(id, common::QUEUE_ID), "queue id {id:?}"))
        .map(str::to_string)
        .collect()
}

fn rcpthosts(dir: &Path, lines: &str) -> String {
    let p = dir.join("rcpthosts");
    fs::write(&p, lines).unwrap();
    p.to_str().unwrap().to_string()
}

const CONN: [(&str, &str); 4] = [
    ("PROTO", "TCP"),
    ("TCPREMOTEIP", "192.0.2.7"),
    ("TCPLOCALHOST", "mx.example"),
    ("TCPLOCALIP", "198.51.100.1"),
];

#[test]
fn a_message_is_stored_byte_for_byte() {
    let dir = scratch("spool-bytes");
    let hosts = rcpthosts(&dir, "example.com\n");
    let mut env = CONN.to_vec();
    env.push(("RCPTHOSTS", &hosts));
    let r = spool(
        &dir,
        &env,
        "EHLO client.example\r\nMAIL FROM:<a@example.net> BODY=8BITMIME\r\n\
         RCPT TO:<r1@example.com>\r\nRCPT TO:<R2@Example.COM>\r\nDATA\r\n\
         Subject: test\r\n\r\n..leading dot\nbare LF line\r\n..\r\n.\r\nQUIT\r\n",
    );
    assert_eq!(r.code, 0, "{}", r.err);
    let ids = queued_ids(&r.out);
    assert_eq!(ids.len(), 1, "{}", r.out);
    let stored = fs::read(dir.join("new").join(&ids[0])).unwrap();
    let text = String::from_utf8(stored).unwrap();
    let (head, received) = text.split_at(text.find("Received:").unwrap());
    assert_eq!(
        head,
        "HELO client.example\r\nMAIL FROM:<a@example.net> BODY=8BITMIME\r\n\
         RCPT TO:<r1@example.com>\r\nRCPT TO:<R2@Example.COM>\r\nDATA\r\n"
    );
    let (trace, body) = received.split_at(received.find("Subject:").unwrap());
    assert!(trace.starts_with(
        "Received: from client.example ([192.0.2.7])\r\n\tby mx.example ([198.51.100.1])\r\n\twith ESMTP via TCP; "
    ), "{trace}");
    assert!(trace.ends_with(" +0000\r\n"), "{trace}");
    // The date, whole: "Wed, 2 Dec 2026 08:38:56 +0000".
    let with = trace.lines().nth(2).unwrap();
    assert!(
        common::like(with, "\twith ESMTP via TCP; *, # * # #:#:# +0000"),
        "{trace}"
    );
    assert_eq!(
        body,
        "Subject: test\r\n\r\n..leading dot\r\nbare LF line\r\n..\r\n.\r\n"
    );
    assert!(files(&dir.join("tmp")).is_empty());
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn modes_names_and_queue_ids() {
    let dir = scratch("spool-modes");
    let r = spool(
        &dir,
        &[("RELAYCLIENT", "")],
        "HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<a@x.y>\r\nDATA\r\n1\r\n.\r\nMAIL FROM:<b@x.y>\r\nRCPT TO:<a@x.y>\r\nDATA\r\n2\r\n.\r\nQUIT\r\n",
    );
    let ids = queued_ids(&r.out);
    assert_eq!(ids.len(), 2, "{}", r.out);
    assert!(ids[0] < ids[1], "names sort by arrival: {ids:?}");
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.join("new")), 0o700);
    assert_eq!(mode(&dir.join("tmp")), 0o700);
    for f in files(&dir.join("new")) {
        assert_eq!(mode(&f), 0o600);
        let bytes = fs::read(&f).unwrap();
        let (h, _) = Header::parse(&bytes).unwrap();
        assert_eq!(h.helo, "c");
    }
    for id in &ids {
        assert!(
            r.err.contains(&format!("accepted: queue id {id} ")),
            "{}",
            r.err
        );
    }
    // The first message has the null sender and no BODY.
    let first = fs::read_to_string(dir.join("new").join(&ids[0])).unwrap();
    assert!(
        first.starts_with("HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<a@x.y>\r\nDATA\r\n"),
        "{first}"
    );
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn helo_is_the_ip_when_the_client_gave_none() {
    let dir = scratch("spool-noip");
    let r = spool(
        &dir,
        &[
            ("RELAYCLIENT", ""),
            ("PROTO", "TCP"),
            ("TCPREMOTEIP", "192.0.2.9"),
        ],
        "MAIL FROM:<a@x.y>\r\nRCPT TO:<b@x.y>\r\nDATA\r\nx\r\n.\r\n",
    );
    let ids = queued_ids(&r.out);
    let text = fs::read_to_string(dir.join("new").join(&ids[0])).unwrap();
    assert!(text.starts_with("HELO [192.0.2.9]\r\n"), "{text}");
    assert!(
        text.contains("Received: from [192.0.2.9] ([192.0.2.9])\r\n"),
        "{text}"
    );
    assert!(text.contains("with SMTP via TCP"), "{text}");
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn rcpthosts_hit_miss_and_subdomain() {
    let dir = scratch("spool-rcpthosts");
    let hosts = rcpthosts(&dir, "# our domains\nexample.com\n.example.org\n\n");
    let r = spool(
        &dir,
        &[("RCPTHOSTS", &hosts)],
        "MAIL FROM:<a@x.y>\r\nRCPT TO:<u@example.com>\r\nRCPT TO:<u@EXAMPLE.com>\r\nRCPT TO:<u@mail.example.com>\r\n\
         RCPT TO:<u@example.org>\r\nRCPT TO:<u@mail.example.org>\r\nRCPT TO:<u@elsewhere.net>\r\nRCPT TO:<postmaster>\r\n",
    );
    let codes: Vec<&str> = r.out.lines().skip(2).map(|l| &l[..9]).collect();
    assert_eq!(
        codes,
        [
            "250 2.1.5",
            "250 2.1.5",
            "553 5.7.1",
            "553 5.7.1",
            "250 2.1.5",
            "553 5.7.1",
            "250 2.1.5"
        ],
        "{}",
        r.out
    );
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn rcpthosts_as_cdb() {
    let Some(cdbmake) = common::tool("cdbmake") else {
        return;
    };
    let dir = scratch("spool-rcpthosts-cdb");
    let input = "+11,0:example.com->\n+12,0:.example.org->\n\n";
    let cdb = dir.join("rcpthosts.cdb");
    let mut c = command(cdbmake, &[]);
    c.arg(&cdb).arg(dir.join("rcpthosts.tmp"));
    let out = {
        use std::io::Write;
        let mut child = c.stdin(std::process::Stdio::piped()).spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait().unwrap()
    };
    assert!(out.success());
    let r = spool(
        &dir,
        &[("RCPTHOSTS", cdb.to_str().unwrap())],
        "MAIL FROM:<a@x.y>\r\nRCPT TO:<u@Example.com>\r\nRCPT TO:<u@a.example.org>\r\nRCPT TO:<u@example.net>\r\n",
    );
    let codes: Vec<&str> = r.out.lines().skip(2).map(|l| &l[..3]).collect();
    assert_eq!(codes, ["250", "250", "553"], "{}", r.out);
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn relayclient_accepts_and_appends() {
    let dir = scratch("spool-relayclient");
    let r = spool(
        &dir,
        &[("RELAYCLIENT", "@smarthost")],
        "MAIL FROM:<a@x.y>\r\nRCPT TO:<u@anywhere.net>\r\nDATA\r\nx\r\n.\r\n",
    );
    let ids = queued_ids(&r.out);
    let text = fs::read_to_string(dir.join("new").join(&ids[0])).unwrap();
    assert!(
        text.contains("RCPT TO:<u@anywhere.net@smarthost>\r\n"),
        "{text}"
    );
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn nothing_configured_defers_and_logs_once() {
    let dir = scratch("spool-unconfigured");
    let r = spool(
        &dir,
        &[],
        "MAIL FROM:<a@x.y>\r\nRCPT TO:<u@example.com>\r\nRCPT TO:<v@example.com>\r\nQUIT\r\n",
    );
    assert_eq!(r.out.matches("451 4.3.5").count(), 2, "{}", r.out);
    assert_eq!(
        common::reply_lines(&r.out)
            .iter()
            .filter(|l| l.starts_with("451 4.3.5 "))
            .count(),
        2,
        "{}",
        r.out
    );
    assert_eq!(r.err.matches("no recipient policy").count(), 1, "{}", r.err);
    assert!(files(&dir.join("new")).is_empty());
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn a_policy_without_a_match_is_relaying_denied() {
    let dir = scratch("spool-checkpassword-only");
    let r = spool(
        &dir,
        &[("CHECKPASSWORD", "/bin/false")],
        "MAIL FROM:<a@x.y>\r\nRCPT TO:<u@example.com>\r\n",
    );
    assert!(r.out.contains("553 5.7.1 Relaying denied"), "{}", r.out);
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn unusable_spooldir_is_421_and_111() {
    let dir = scratch("spool-missing");
    for (env, why) in [
        (
            vec![("SPOOLDIR", dir.join("nope").to_str().unwrap().to_string())],
            "No such file",
        ),
        (vec![], "SPOOLDIR is not set"),
    ] {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let o = run_with_input(SPOOL, &env, b"HELO x\r\n");
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "421 4.3.0 Configuration error, try again later\r\n"
        );
        assert_eq!(o.status.code(), Some(111));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(why),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let file = dir.join("plain-file");
    fs::write(&file, "x").unwrap();
    let o = run_with_input(SPOOL, &[("SPOOLDIR", file.to_str().unwrap())], b"");
    assert_eq!(o.status.code(), Some(111));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not a directory"));
    let o = run_with_input(
        SPOOL,
        &[
            ("SPOOLDIR", dir.to_str().unwrap()),
            ("RCPTHOSTS", "/nonexistent/rcpthosts"),
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(111));
    assert!(String::from_utf8_lossy(&o.stderr).contains("RCPTHOSTS /nonexistent/rcpthosts"));
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn file_size_limit_gives_451_and_leaves_nothing() {
    let Some(prlimit) = common::tool("prlimit") else {
        return;
    };
    let dir = scratch("spool-fsize");
    let big = "y".repeat(76);
    let mut msg = String::from("HELO c\r\nMAIL FROM:<a@x.y>\r\nRCPT TO:<b@x.y>\r\nDATA\r\n");
    for _ in 0..2000 {
        msg.push_str(&big);
        msg.push_str("\r\n");
    }
    msg.push_str(".\r\nMAIL FROM:<a@x.y>\r\nRCPT TO:<b@x.y>\r\nDATA\r\nsmall\r\n.\r\nQUIT\r\n");
    let d = dir.to_str().unwrap();
    let mut c = command(prlimit, &[("SPOOLDIR", d), ("RELAYCLIENT", "")]);
    c.args(["--fsize=20000", SPOOL]);
    let o = {
        use std::io::Write;
        use std::process::Stdio;
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let t = std::thread::spawn(move || stdin.write_all(msg.as_bytes()));
        let o = child.wait_with_output().unwrap();
        let _ = t.join();
        o
    };
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "not killed by SIGXFSZ: {err}");
    assert!(
        common::reply_lines(&out)
            .iter()
            .any(|l| l.starts_with("451 4.3.0 ")),
        "{out}"
    );
    assert_eq!(queued_ids(&out).len(), 1, "the session goes on: {out}");
    assert!(err.contains("File too large"), "the log says why: {err}");
    assert_eq!(files(&dir.join("new")).len(), 1);
    assert!(files(&dir.join("tmp")).is_empty(), "partial file removed");
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn a_k_rule_accepts_without_rcpthosts_and_others_are_relaying_denied() {
    let dir = scratch("spool-rule-k");
    let rules = dir.join("rules");
    fs::write(&rules, "# traps\nk*:*@trap.example:Trapped\n").unwrap();
    let r = spool(
        &dir,
        &[("MAILRULES", rules.to_str().unwrap())],
        "MAIL FROM:<a@x.y>\r\nRCPT TO:<t@trap.example>\r\nRCPT TO:<u@elsewhere.net>\r\nDATA\r\nx\r\n.\r\n",
    );
    let replies: Vec<&str> = r.out.lines().skip(1).collect();
    assert_eq!(replies[1], "250 2.1.5 Trapped", "{}", r.out);
    assert!(replies[2].starts_with("553 5.7.1"), "{}", r.out);
    let ids = queued_ids(&r.out);
    assert_eq!(ids.len(), 1, "{}", r.out);
    let text = fs::read_to_string(dir.join("new").join(&ids[0])).unwrap();
    assert!(
        text.contains("RCPT TO:<t@trap.example>\r\nDATA\r\n"),
        "{text}"
    );
    assert!(!text.contains("elsewhere.net"), "{text}");
    let _ = fs::remove_dir_all(dir);
}
