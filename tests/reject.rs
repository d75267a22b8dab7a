//! smtpfront-reject through pipes (SPEC 1, 2 `SMTPREJECT`, 9): refuses while SMTPREJECT is
//! set, is invisible otherwise (exec with the environment untouched).

mod common;
use common::{like, log_entries, log_lines_of, reply_lines, ECHO, REJECT};

fn reject(env: &[(&str, &str)], args: &[&str], input: &str) -> (String, String, i32) {
    let mut c = common::command(REJECT, env);
    c.args(args);
    let out = {
        use std::io::Write;
        use std::process::Stdio;
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The program may exit before reading (421 at start): a broken pipe is expected.
        let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
        child.wait_with_output().unwrap()
    };
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

const SESSION: &str =
    "EHLO c\r\nMAIL FROM:<a@x.y>\r\nRCPT TO:<b@x.y>\r\nDATA\r\nRSET\r\nNOOP\r\nQUIT\r\n";

#[test]
fn temporary_refusal() {
    let (out, err, code) = reject(&[("SMTPREJECT", "Down for maintenance")], &[ECHO], SESSION);
    assert_eq!(code, 0);
    assert!(out.ends_with("\r\n"), "{out}");
    // Every reply line, whole. The host name (this machine's) is the greeting's; no 354
    // may come, whatever digits the host name holds.
    let lines = reply_lines(&out);
    let host = lines[0]
        .strip_prefix("220 ")
        .and_then(|l| l.strip_suffix(" smtpfront ESMTP"))
        .unwrap_or_else(|| panic!("greeting: {out}"));
    let greeting = format!("220 {host} smtpfront ESMTP");
    let ehlo = format!("250-{host}");
    assert_eq!(
        lines,
        [
            greeting.as_str(),
            &ehlo,
            "250-SIZE 0",
            "250-8BITMIME",
            "250-SMTPUTF8",
            "250-ENHANCEDSTATUSCODES",
            "250 PIPELINING",
            "451 4.3.2 Down for maintenance",
            "503 5.5.1 MAIL first",
            "503 5.5.1 MAIL first",
            "250 2.0.0 Reset",
            "250 2.0.0 Ok",
            "221 2.0.0 Good bye",
        ],
        "{out}"
    );
    assert!(!lines.iter().any(|l| common::has_code(l, "354")), "{out}");
    assert!(
        log_entries(&err)
            .iter()
            .all(|&(p, _)| p == "smtpfront-reject"),
        "{err}"
    );
    let messages = log_lines_of(&err, "smtpfront-reject");
    assert_eq!(
        messages[..3],
        [
            "MAIL FROM:<a@x.y> -> 451 4.3.2 Down for maintenance",
            "RCPT TO:<b@x.y> -> 503 5.5.1 MAIL first",
            "DATA -> 503 5.5.1 MAIL first",
        ],
        "{err}"
    );
    assert_eq!(messages.len(), 4, "{err}");
    assert!(
        like(
            messages[3],
            "end: remote unknown helo c messages 0 bytes in # out #: QUIT"
        ),
        "{err}"
    );
}

#[test]
fn permanent_refusal_with_dash() {
    let (out, _, code) = reject(&[("SMTPREJECT", "-No mail here")], &[ECHO], SESSION);
    assert_eq!(code, 0);
    assert!(out.contains("\r\n553 5.7.1 No mail here\r\n"), "{out}");
    assert!(
        !reply_lines(&out).iter().any(|l| common::has_code(l, "354")),
        "{out}"
    );
}

#[test]
fn empty_text_still_refuses() {
    let (out, _, _) = reject(&[("SMTPREJECT", "")], &[], SESSION);
    assert!(
        out.contains("\r\n451 4.3.2 Mail is not accepted now\r\n"),
        "{out}"
    );
    let (out, _, _) = reject(&[("SMTPREJECT", "-")], &[], SESSION);
    assert!(
        out.contains("\r\n553 5.7.1 Mail is not accepted now\r\n"),
        "{out}"
    );
}

#[test]
fn unset_execs_the_rest_of_the_chain() {
    let (out, err, code) = reject(
        &[("PROTO", "TCP"), ("TCPLOCALHOST", "mx.test")],
        &[ECHO],
        SESSION,
    );
    assert_eq!(code, 0);
    assert!(out.starts_with("220 mx.test smtpfront ESMTP\r\n"), "{out}");
    assert!(
        reply_lines(&out).contains(&"250 2.1.5 Recipient <b@x.y> accepted"),
        "{out}"
    );
    let entries = log_entries(&err);
    assert!(
        !entries.is_empty() && entries.iter().all(|&(p, _)| p == "smtpfront-echo"),
        "the echo front end ran: {err}"
    );
    assert!(!err.contains("smtpfront-reject["), "{err}");
}

#[test]
fn environment_passes_through_untouched() {
    let env = [("DATABYTES", "not-a-number"), ("ODD_VAR", "x y\tz")];
    let (out, _, code) = reject(&env, &["/usr/bin/env"], "");
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.contains(&"DATABYTES=not-a-number"), "{out}");
    assert!(lines.contains(&"ODD_VAR=x y\tz"), "{out}");
}

#[test]
fn nothing_to_run_is_421_and_111() {
    let (out, err, code) = reject(&[], &[], SESSION);
    assert_eq!(out, "421 4.3.0 Configuration error, try again later\r\n");
    assert_eq!(code, 111);
    assert!(
        err.contains("SMTPREJECT is unset and there is no program to run"),
        "{err}"
    );
}

#[test]
fn a_program_that_does_not_exist_is_421_and_111() {
    let (out, err, code) = reject(&[], &["/nonexistent/smtpfront-spool"], SESSION);
    assert_eq!(out, "421 4.3.0 Configuration error, try again later\r\n");
    assert_eq!(code, 111);
    assert!(
        err.contains("cannot run /nonexistent/smtpfront-spool"),
        "{err}"
    );
}

#[test]
fn reject_honours_bad_settings_like_any_front_end() {
    let (out, _, code) = reject(&[("SMTPREJECT", "x"), ("TIMEOUT", "soon")], &[], SESSION);
    assert_eq!(out, "421 4.3.0 Configuration error, try again later\r\n");
    assert_eq!(code, 111);
}
