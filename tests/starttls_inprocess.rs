//! STARTTLS (SPEC 3.1) in process through `converse_tls`: the driver's loop with a client in
//! memory and a fake UCSPI-TLS helper whose control socket answers with the given bytes.
//! After the switch the same pieces go on as the "encrypted" channel. Each piece is one
//! client write: bytes after STARTTLS in the same piece are the injection of CVE-2011-0411.
//! The real helper (s6-ucspitlsd) is in tests/starttls.rs.

mod common;

use common::inprocess::echo_session as session;
use smtpfront::smtp::server::{converse, converse_tls};

const ANSWER: &[u8] =
    b"SSL_PROTOCOL=TLSv1.3\0SSL_CIPHER=TLS_AES_256_GCM_SHA384\0SSL_TLS_SNI_SERVERNAME\0\0";

/// The reply lines after the greeting.
fn lines(out: Vec<u8>) -> Vec<String> {
    let text = String::from_utf8(out).expect("replies are UTF-8");
    assert!(text.is_empty() || text.ends_with("\r\n"), "{text:?}");
    let mut lines: Vec<String> = text.split("\r\n").map(str::to_string).collect();
    lines.pop();
    assert_eq!(lines[0], "220 mx.test smtpfront ESMTP");
    lines.split_off(1)
}

fn tls(vars: &[(&str, &str)], pieces: &[&[u8]]) -> Vec<String> {
    lines(converse_tls(session(vars), pieces, ANSWER))
}

const EHLO_CLEAR: [&str; 7] = [
    "250-mx.test",
    "250-SIZE 0",
    "250-8BITMIME",
    "250-SMTPUTF8",
    "250-ENHANCEDSTATUSCODES",
    "250-PIPELINING",
    "250 STARTTLS",
];

const EHLO_TLS: [&str; 6] = [
    "250-mx.test",
    "250-SIZE 0",
    "250-8BITMIME",
    "250-SMTPUTF8",
    "250-ENHANCEDSTATUSCODES",
    "250 PIPELINING",
];

const READY: &str = "220 2.0.0 Ready to start TLS";
const BYE: &str = "221 2.0.0 Good bye";

fn concat(parts: &[&[&str]]) -> Vec<String> {
    parts
        .iter()
        .flat_map(|p| p.iter().map(|s| s.to_string()))
        .collect()
}

#[test]
fn starttls_listed_until_started_then_not() {
    let got = tls(&[], &[b"EHLO a\r\nSTARTTLS\r\n", b"EHLO a\r\nQUIT\r\n"]);
    assert_eq!(got, concat(&[&EHLO_CLEAR, &[READY], &EHLO_TLS, &[BYE]]));
}

#[test]
fn starttls_not_listed_nor_accepted_without_a_helper() {
    let got = lines(converse(session(&[]), &[b"EHLO a\r\nSTARTTLS\r\nQUIT\r\n"]));
    assert_eq!(
        got,
        concat(&[&EHLO_TLS, &["503 5.5.1 STARTTLS not available", BYE]])
    );
}

/// CVE-2011-0411: a MAIL pipelined behind STARTTLS in the same write is never executed,
/// neither before the handshake nor inside TLS.
#[test]
fn starttls_injection_is_discarded() {
    let got = tls(
        &[],
        &[b"STARTTLS\r\nMAIL FROM:<x@y>\r\n", b"NOOP\r\nQUIT\r\n"],
    );
    assert_eq!(got, [READY, "250 2.0.0 Ok", BYE]);
    let got = tls(
        &[],
        &[b"EHLO a\r\nSTARTTLS\r\nMAIL FROM:<x@y>\r\nRCPT TO:<a@b>\r\nDATA\r\n"],
    );
    assert_eq!(got, concat(&[&EHLO_CLEAR, &[READY]]));
}

#[test]
fn starttls_twice_is_refused() {
    let got = tls(&[], &[b"STARTTLS\r\n", b"STARTTLS\r\nQUIT\r\n"]);
    assert_eq!(got, [READY, "503 5.5.1 TLS already started", BYE]);
}

#[test]
fn starttls_with_an_argument_is_refused() {
    let got = tls(&[], &[b"STARTTLS now\r\nstarttls\r\n", b"QUIT\r\n"]);
    assert_eq!(got, ["501 5.5.4 Syntax: STARTTLS", READY, BYE]);
}

/// SPEC 3.1: the transaction begun in clear is forgotten.
#[test]
fn transaction_before_starttls_is_forgotten() {
    let got = tls(
        &[],
        &[
            b"MAIL FROM:<a@b.c>\r\n",
            b"STARTTLS\r\n",
            b"RCPT TO:<d@e.f>\r\nQUIT\r\n",
        ],
    );
    assert_eq!(
        got,
        [
            "250 2.1.0 Sender <a@b.c> accepted",
            READY,
            "503 5.5.1 MAIL first",
            BYE
        ]
    );
}

/// SPEC 3.1: a failed handshake (the helper closes its control socket without a full
/// answer) ends the session after the 220, with nothing more said.
#[test]
fn failed_handshake_ends_the_session() {
    for answer in [&b""[..], b"SSL_PROTOCOL=TLSv1.3\0"] {
        let out = converse_tls(session(&[]), &[b"STARTTLS\r\n", b"NOOP\r\n"], answer);
        assert_eq!(lines(out), [READY]);
    }
}

/// SPEC 3.1: AUTH is offered and accepted only after TLS when STARTTLS is available.
#[test]
fn auth_only_after_tls() {
    let vars = [("CHECKPASSWORD", "/bin/true")];
    let got = tls(
        &vars,
        &[
            b"EHLO a\r\nAUTH PLAIN AGEAYg==\r\nSTARTTLS\r\n",
            b"EHLO a\r\nAUTH PLAIN AGEAYg==\r\nQUIT\r\n",
        ],
    );
    let mut ehlo_tls: Vec<&str> = EHLO_TLS.to_vec();
    ehlo_tls[5] = "250-PIPELINING";
    ehlo_tls.push("250 AUTH PLAIN LOGIN");
    assert_eq!(
        got,
        concat(&[
            &EHLO_CLEAR,
            &["530 5.7.0 Must issue a STARTTLS command first", READY],
            &ehlo_tls,
            &["235 2.7.0 Authentication successful", BYE],
        ])
    );
}

/// SPEC 2 REQUIRE_TLS: MAIL and AUTH refused before TLS, MAIL accepted after.
#[test]
fn require_tls_refuses_mail_and_auth_before_tls() {
    let got = tls(
        &[("REQUIRE_TLS", "1")],
        &[
            b"MAIL FROM:<a@b.c>\r\nAUTH LOGIN\r\nSTARTTLS\r\n",
            b"MAIL FROM:<a@b.c>\r\nQUIT\r\n",
        ],
    );
    assert_eq!(
        got,
        [
            "530 5.7.0 Must issue a STARTTLS command first",
            "530 5.7.0 Must issue a STARTTLS command first",
            READY,
            "250 2.1.0 Sender <a@b.c> accepted",
            BYE
        ]
    );
}
