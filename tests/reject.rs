//! smtpfront-reject through pipes (SPEC 1, 2 `SMTPREJECT`, 9): refuses while SMTPREJECT is
//! set, is invisible otherwise (exec with the environment untouched).

mod common;
use common::{ECHO, REJECT};

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
    assert!(out.starts_with("220 "), "{out}");
    assert!(
        out.contains("\r\n451 4.3.2 Down for maintenance\r\n"),
        "{out}"
    );
    assert!(out.contains("\r\n503 5.5.1 MAIL first\r\n"), "{out}");
    assert!(
        out.ends_with("250 2.0.0 Reset\r\n250 2.0.0 Ok\r\n221 2.0.0 Good bye\r\n"),
        "{out}"
    );
    assert!(!out.contains("354"), "{out}");
    assert!(err.contains("smtpfront-reject["), "{err}");
    assert!(
        err.contains("MAIL FROM:<a@x.y> -> 451 4.3.2 Down for maintenance"),
        "{err}"
    );
}

#[test]
fn permanent_refusal_with_dash() {
    let (out, _, code) = reject(&[("SMTPREJECT", "-No mail here")], &[ECHO], SESSION);
    assert_eq!(code, 0);
    assert!(out.contains("\r\n553 5.7.1 No mail here\r\n"), "{out}");
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
        out.contains("250 2.1.5 Recipient <b@x.y> accepted"),
        "{out}"
    );
    assert!(
        err.contains("smtpfront-echo["),
        "the echo front end ran: {err}"
    );
    assert!(!err.contains("smtpfront-reject["), "{err}");
}

#[test]
fn environment_passes_through_untouched() {
    let env = [("DATABYTES", "not-a-number"), ("ODD_VAR", "x y\tz")];
    let (out, _, code) = reject(&env, &["/usr/bin/env"], "");
    assert_eq!(code, 0);
    assert!(out.contains("DATABYTES=not-a-number\n"), "{out}");
    assert!(out.contains("ODD_VAR=x y\tz\n"), "{out}");
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
