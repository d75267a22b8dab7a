//! SMTPUTF8 in the front ends (SPEC 3.2, RFC 6531): Python's smtplib sending UTF-8 mail
//! under tcpserver into smtpfront-spool, raw clients sending what smtplib never would
//! (UTF-8 without the parameter, invalid UTF-8, overlong encodings), smtpfront-echo's
//! replies, and domains compared in A-labels in RCPTHOSTS, mail-rule lists and cdbs made by
//! the real `cdbmake`.

mod common;
use common::spool::stuffed;
use common::{
    assert_lines_like, command, python, reply_lines, run_bounded, run_with_input, scratch, tool,
    Server, ECHO, QUEUE_ID, SPOOL,
};
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

const CLIENT_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtputf8_client.py");

/// `jörg@bücher.example`, `дмитрий@пример.рф` and the A-label forms of their domains.
const JOERG: &str = "j\u{f6}rg@b\u{fc}cher.example";
const BUECHER_A: &str = "xn--bcher-kva.example";
const PRIMER_U: &str = "\u{43f}\u{440}\u{438}\u{43c}\u{435}\u{440}.\u{440}\u{444}";
const PRIMER_A: &str = "xn--e1afmkfd.xn--p1ai";
const DMITRY: &str = "\u{434}\u{43c}\u{438}\u{442}\u{440}\u{438}\u{439}";

/// A message with UTF-8 in its header fields and body (RFC 6532), and a line that needs
/// dot-stuffing.
fn utf8_message() -> Vec<u8> {
    format!(
        "From: J\u{f6}rg <{JOERG}>\r\nTo: {DMITRY} <{DMITRY}@{PRIMER_U}>\r\n\
         Subject: Gr\u{fc}\u{df}e aus K\u{f6}ln\r\n\r\n\u{41f}\u{440}\u{438}\u{432}\u{435}\u{442}!\r\n\
         .a line with a dot\r\n"
    )
    .into_bytes()
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// A spool directory and a text RCPTHOSTS holding one domain in A-labels and one in
/// U-labels; returns (spool dir, RCPTHOSTS path).
fn spool_with_rcpthosts(name: &str) -> (PathBuf, String) {
    let dir = scratch(name);
    fs::create_dir(dir.join("spool")).unwrap();
    let hosts = dir.join("rcpthosts");
    fs::write(
        &hosts,
        format!("# A-label and U-label entries\n{BUECHER_A}\n{PRIMER_U}\n"),
    )
    .unwrap();
    (dir, hosts.to_str().unwrap().to_string())
}

/// smtplib (`mail_options=['SMTPUTF8']`) under tcpserver into smtpfront-spool: the
/// recipients whose domains RCPTHOSTS lists in the other form are accepted, the message is
/// stored byte for byte after a Received header saying UTF8SMTP, and the MAIL line keeps
/// the parameter.
#[test]
fn smtplib_utf8_mail_is_stored_byte_identical_with_the_parameter() {
    let Some(py) = python() else {
        return;
    };
    let (dir, hosts) = spool_with_rcpthosts("utf8-smtplib");
    let spooldir = dir.join("spool");
    let env = [
        ("SPOOLDIR", spooldir.to_str().unwrap()),
        ("RCPTHOSTS", hosts.as_str()),
    ];
    let Some(server) = Server::start(&[SPOOL], &env, 5) else {
        return;
    };
    let message = utf8_message();
    fs::write(dir.join("message"), &message).unwrap();
    let a_label_rcpt = format!("{DMITRY}@{PRIMER_A}");
    let u_label_rcpt = "user@b\u{fc}cher.example";
    let mut c = command(&py, &[]);
    c.arg(CLIENT_PY)
        .arg(server.port.to_string())
        .arg(JOERG)
        .arg(dir.join("message"))
        .args([
            a_label_rcpt.as_str(),
            u_label_rcpt,
            "someone@elsewhere.example",
        ]);
    let ran = run_bounded(c, Duration::from_secs(60));
    assert_eq!(
        ran.stdout.lines().collect::<Vec<_>>(),
        [
            "EHLO\t8bitmime\tenhancedstatuscodes\tetrn\tpipelining\tsize\tsmtputf8",
            "REFUSED\tsomeone@elsewhere.example\t553\t5.7.1 Relaying denied",
            "SENT",
        ],
        "{}",
        ran.stderr
    );
    let files = files_in(&spooldir.join("new"));
    assert_eq!(files.len(), 1, "{files:?}");
    let file = fs::read(&files[0]).unwrap();
    let envelope = format!(
        "HELO client.test\r\nMAIL FROM:<{JOERG}> SMTPUTF8\r\nRCPT TO:<{a_label_rcpt}>\r\n\
         RCPT TO:<{u_label_rcpt}>\r\nDATA\r\n"
    );
    assert!(
        file.starts_with(envelope.as_bytes()),
        "{}",
        String::from_utf8_lossy(&file)
    );
    let rest = String::from_utf8(file[envelope.len()..].to_vec()).unwrap();
    let received: Vec<&str> = rest.split_inclusive("\r\n").take(3).collect();
    assert_lines_like(
        &received,
        &[
            "Received: from client.test ([127.0.0.1])\r\n",
            "\tby localhost ([127.0.0.1])\r\n",
            "\twith UTF8SMTP via TCP; *, # * # #:#:# +0000\r\n",
        ],
    );
    let header_len: usize = received.iter().map(|l| l.len()).sum();
    assert_eq!(&rest.as_bytes()[header_len..], stuffed(&message));
    let _ = fs::remove_dir_all(dir);
}

/// Writes `input` to a session under tcpserver (all at once: pipelining), closes the
/// sending side and returns every reply line.
fn converse(port: u16, input: &[u8]) -> Vec<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(input).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out)
        .expect("the session ends within 30 s");
    let text = String::from_utf8(out).expect("replies are UTF-8");
    reply_lines(&text).iter().map(|l| l.to_string()).collect()
}

/// What smtplib never sends, from a raw client under tcpserver: a UTF-8 address without
/// SMTPUTF8 (`553 5.6.7`, sender and recipient), invalid UTF-8, overlong encodings and a
/// surrogate (`501 5.5.2`). Only the well-formed transaction reaches the spool, and its
/// file is UTF-8 throughout.
#[test]
fn undeclared_and_invalid_utf8_are_refused_under_tcpserver() {
    let (dir, hosts) = spool_with_rcpthosts("utf8-refused");
    let spooldir = dir.join("spool");
    let env = [
        ("SPOOLDIR", spooldir.to_str().unwrap()),
        ("RCPTHOSTS", hosts.as_str()),
    ];
    let Some(server) = Server::start(&[SPOOL], &env, 5) else {
        return;
    };
    let mut input = Vec::new();
    for line in [
        b"EHLO client.test".to_vec(),
        format!("MAIL FROM:<{JOERG}>").into_bytes(),
        b"MAIL FROM:<a@b.example>".to_vec(),
        format!("RCPT TO:<user@{}>", "b\u{fc}cher.example").into_bytes(),
        b"RSET".to_vec(),
        b"MAIL FROM:<j\xf6rg@b.example> SMTPUTF8".to_vec(),
        b"MAIL FROM:<a\xc0\xafb@b.example> SMTPUTF8".to_vec(),
        b"MAIL FROM:<a\xe0\x80\xafb@b.example> SMTPUTF8".to_vec(),
        b"MAIL FROM:<a@b.example> SMTPUTF8=yes".to_vec(),
        b"MAIL FROM:<a@b.example> SMTPUTF8".to_vec(),
        b"RCPT TO:<u\xed\xa0\x80@xn--bcher-kva.example>".to_vec(),
        b"RCPT TO:<u@b\xfccher.example>".to_vec(),
        format!("RCPT TO:<{DMITRY}@{PRIMER_U}>").into_bytes(),
        b"DATA".to_vec(),
        b"Subject: ok\r\n\r\nbody\r\n.".to_vec(),
        b"QUIT".to_vec(),
    ] {
        input.extend_from_slice(&line);
        input.extend_from_slice(b"\r\n");
    }
    let replies = converse(server.port, &input);
    let queued = format!("250 2.0.0 Ok: queued as {QUEUE_ID}");
    assert_lines_like(
        &replies,
        &[
            "220 localhost smtpfront ESMTP",
            "250-localhost",
            "250-SIZE 0",
            "250-8BITMIME",
            "250-SMTPUTF8",
            "250-ENHANCEDSTATUSCODES",
            "250-PIPELINING",
            "250 ETRN",
            "553 5.6.7 Must declare SMTPUTF8 to send a UTF-8 address",
            "250 2.1.0 Sender accepted",
            "553 5.6.7 Must declare SMTPUTF8 to send a UTF-8 address",
            "250 2.0.0 Reset",
            "501 5.5.2 Syntax error in address",
            "501 5.5.2 Syntax error in address",
            "501 5.5.2 Syntax error in address",
            "501 5.5.4 Invalid parameter value",
            "250 2.1.0 Sender accepted",
            "501 5.5.2 Syntax error in address",
            "501 5.5.2 Syntax error in address",
            "250 2.1.5 Recipient accepted",
            "354 End your message with a line holding only a dot",
            &queued,
            "221 2.0.0 Good bye",
        ],
    );
    let files = files_in(&spooldir.join("new"));
    assert_eq!(files.len(), 1, "{files:?}");
    let file = String::from_utf8(fs::read(&files[0]).unwrap()).expect("the file is UTF-8");
    let envelope: Vec<&str> = file.split("\r\n").take(4).collect();
    assert_eq!(
        envelope,
        [
            "HELO client.test",
            "MAIL FROM:<a@b.example> SMTPUTF8",
            &format!("RCPT TO:<{DMITRY}@{PRIMER_U}>"),
            "DATA"
        ]
    );
    // SPEC 8: the refusals are logged with their command, client bytes escaped.
    let log = server.log();
    let refusals: Vec<&str> = common::log_lines_without_prefix(&log)
        .into_iter()
        .filter(|m| m.contains(" -> 553 "))
        .collect();
    assert_eq!(
        refusals,
        [
            "MAIL FROM:<j\\xc3\\xb6rg@b\\xc3\\xbccher.example> -> 553 5.6.7 Must declare SMTPUTF8 to send a UTF-8 address",
            "RCPT TO:<user@b\\xc3\\xbccher.example> -> 553 5.6.7 Must declare SMTPUTF8 to send a UTF-8 address",
        ],
        "{log}"
    );
    drop(server);
    let _ = fs::remove_dir_all(dir);
}

/// smtpfront-echo through pipes: EHLO lists SMTPUTF8, the parameter is echoed with the
/// sender, UTF-8 recipients are echoed as given, and the Received header it would add says
/// UTF8SMTP (ESMTP for the ASCII transaction after it).
#[test]
fn echo_shows_the_parameter_and_the_received_keyword() {
    let input = format!(
        "EHLO client.test\r\nMAIL FROM:<{JOERG}> SMTPUTF8\r\nRCPT TO:<{DMITRY}@{PRIMER_U}>\r\n\
         DATA\r\nSubject: x\r\n\r\n.\r\nMAIL FROM:<a@b.example> BODY=8BITMIME\r\n\
         RCPT TO:<c@d.example>\r\nDATA\r\n.\r\nQUIT\r\n"
    );
    let env = [("PROTO", "TCP"), ("TCPLOCALHOST", "mx.test")];
    let out = run_with_input(ECHO, &env, input.as_bytes());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let queued = format!("250 2.0.0 Received # bytes for 1 recipient(s), queue id {QUEUE_ID}");
    let sender = format!("250 2.1.0 Sender <{JOERG}> accepted, parameters: SMTPUTF8");
    let rcpt = format!("250 2.1.5 Recipient <{DMITRY}@{PRIMER_U}> accepted");
    assert_lines_like(
        &reply_lines(&stdout),
        &[
            "220 mx.test smtpfront ESMTP",
            "250-mx.test",
            "250-SIZE 0",
            "250-8BITMIME",
            "250-SMTPUTF8",
            "250-ENHANCEDSTATUSCODES",
            "250 PIPELINING",
            &sender,
            &rcpt,
            "354 End your message with a line holding only a dot",
            &queued,
            "250 2.1.0 Sender <a@b.example> accepted, parameters: BODY=8BITMIME",
            "250 2.1.5 Recipient <c@d.example> accepted",
            "354 End your message with a line holding only a dot",
            &queued,
            "221 2.0.0 Good bye",
        ],
    );
    let log = String::from_utf8(out.stderr).unwrap();
    let withs: Vec<&str> = common::log_lines_without_prefix(&log)
        .into_iter()
        .filter_map(|m| m.strip_prefix("header: Received: "))
        .filter_map(|m| m.split_once(" with ").map(|(_, with)| with))
        .collect();
    assert_lines_like(&withs, &["UTF8SMTP via TCP; *", "ESMTP via TCP; *"]);
}

/// Builds `dir/name` with the real cdbmake from (key, value) records.
fn cdbmake(dir: &Path, name: &str, keys: &[&str]) -> Option<String> {
    let program = tool("cdbmake")?;
    let mut input = String::new();
    for key in keys {
        input.push_str(&format!("+{},0:{key}->\n", key.len()));
    }
    input.push('\n');
    let out = dir.join(name);
    let mut c = command(program, &[]);
    c.arg(&out).arg(dir.join(format!("{name}.tmp")));
    let mut child = c.stdin(std::process::Stdio::piped()).spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    Some(out.to_str().unwrap().to_string())
}

/// The replies to `lines` (after the greeting) of smtpfront-spool through pipes.
fn spool_replies(dir: &Path, env: &[(&str, &str)], lines: &[String]) -> Vec<String> {
    let spooldir = dir.join("spool");
    let _ = fs::create_dir(&spooldir);
    let mut all = vec![("SPOOLDIR", spooldir.to_str().unwrap())];
    all.extend_from_slice(env);
    let input: String = lines.iter().map(|l| format!("{l}\r\n")).collect();
    let out = run_with_input(SPOOL, &all, input.as_bytes());
    let text = String::from_utf8(out.stdout).unwrap();
    reply_lines(&text)
        .iter()
        .skip(1)
        .map(|l| l.to_string())
        .collect()
}

/// RCPTHOSTS as a cdb made by cdbmake: keys written in U-labels match A-label domains, and
/// keys in A-labels match U-label domains.
#[test]
fn rcpthosts_cdb_keys_in_either_form() {
    let dir = scratch("utf8-rcpthosts-cdb");
    let Some(cdb) = cdbmake(&dir, "rcpthosts.cdb", &["b\u{fc}cher.example", PRIMER_A]) else {
        return;
    };
    let lines: Vec<String> = [
        "MAIL FROM:<a@b.example> SMTPUTF8".to_string(),
        format!("RCPT TO:<u@{BUECHER_A}>"),
        "RCPT TO:<u@B\u{dc}CHER.example>".to_string(),
        format!("RCPT TO:<{DMITRY}@{PRIMER_U}>"),
        format!("RCPT TO:<u@{PRIMER_A}>"),
        "RCPT TO:<u@bucher.example>".to_string(),
        "QUIT".to_string(),
    ]
    .into();
    let replies = spool_replies(&dir, &[("RCPTHOSTS", &cdb)], &lines);
    assert_eq!(
        replies,
        [
            "250 2.1.0 Sender accepted",
            "250 2.1.5 Recipient accepted",
            "250 2.1.5 Recipient accepted",
            "250 2.1.5 Recipient accepted",
            "250 2.1.5 Recipient accepted",
            "553 5.7.1 Relaying denied",
            "221 2.0.0 Good bye",
        ]
    );
    let _ = fs::remove_dir_all(dir);
}

/// Mail rules (SPEC 5) with `[[@file]]`, `[[file]]` and `[[@file.cdb]]` lists: entries and
/// keys in one form match addresses in the other.
#[test]
fn rules_lists_and_cdbs_compare_domains_in_a_labels() {
    let dir = scratch("utf8-rules-lists");
    let Some(cdb) = cdbmake(&dir, "domains.cdb", &[PRIMER_U]) else {
        return;
    };
    let domains = dir.join("domains");
    fs::write(&domains, format!("{BUECHER_A}\n")).unwrap();
    let addresses = dir.join("addresses");
    fs::write(&addresses, "j\u{f6}rg@caf\u{e9}.example\n").unwrap();
    let rules = dir.join("rules");
    fs::write(
        &rules,
        format!(
            ":recipient\nk*:[[@{}]]:Domain listed\nk*:[[@{cdb}]]:Domain in the cdb\n\
             k*:[[{}]]:Address listed\nd*:*:Not here\n",
            domains.display(),
            addresses.display()
        ),
    )
    .unwrap();
    let rcpt = |to: &str| format!("RCPT TO:<{to}>");
    let lines = [
        "MAIL FROM:<a@b.example> SMTPUTF8".to_string(),
        rcpt("u@b\u{fc}cher.example"),
        rcpt("u@xn--bcher-kva.example"),
        rcpt(&format!("{DMITRY}@{PRIMER_A}")),
        rcpt(&format!("{DMITRY}@{PRIMER_U}")),
        rcpt("j\u{f6}rg@xn--caf-dma.example"),
        rcpt("j\u{f6}rg@CAF\u{c9}.example"),
        rcpt("jorg@xn--caf-dma.example"),
        "QUIT".to_string(),
    ];
    let out = run_with_input(
        ECHO,
        &[("MAILRULES", rules.to_str().unwrap())],
        lines
            .iter()
            .map(|l| format!("{l}\r\n"))
            .collect::<String>()
            .as_bytes(),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        reply_lines(&text)[1..],
        [
            "250 2.1.0 Sender <a@b.example> accepted, parameters: SMTPUTF8",
            "250 2.1.5 Domain listed",
            "250 2.1.5 Domain listed",
            "250 2.1.5 Domain in the cdb",
            "250 2.1.5 Domain in the cdb",
            "250 2.1.5 Address listed",
            "250 2.1.5 Address listed",
            "553 5.7.1 Not here",
            "221 2.0.0 Good bye",
        ],
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = fs::remove_dir_all(dir);
}
