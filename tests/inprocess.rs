//! Transcripts run in process through `smtp::server::converse`: the very loop the programs
//! run on fd 0 / fd 1, with the client's bytes in memory. Fast, and the same input split at
//! every byte must give the same replies (pipelining and DATA across reads).

mod common;

use common::inprocess::echo_session as session;
use smtpfront::smtp::server::converse;

/// The reply lines after the greeting, with queue ids (which name the time) cut off.
fn replies(vars: &[(&str, &str)], pieces: &[&[u8]]) -> Vec<String> {
    let out = converse(session(vars), pieces);
    let text = String::from_utf8(out).expect("replies are UTF-8");
    assert!(text.ends_with("\r\n"), "{text:?}");
    let mut lines: Vec<String> = text.split("\r\n").map(str::to_string).collect();
    lines.pop();
    assert_eq!(lines[0], "220 mx.test smtpfront ESMTP");
    lines
        .into_iter()
        .skip(1)
        .map(|l| match l.split_once(", queue id ") {
            Some((head, id)) if id.bytes().all(|b| b.is_ascii_digit() || b == b'.') => {
                format!("{head}, queue id ID")
            }
            _ => l,
        })
        .collect()
}

/// The same input whole, and split into one read per byte, gives `expected`.
fn check(vars: &[(&str, &str)], input: &[u8], expected: &[&str]) {
    assert_eq!(replies(vars, &[input]), expected, "whole");
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(replies(vars, &bytes), expected, "a byte a read");
}

const EHLO: [&str; 6] = [
    "250-mx.test",
    "250-SIZE 0",
    "250-8BITMIME",
    "250-SMTPUTF8",
    "250-ENHANCEDSTATUSCODES",
    "250 PIPELINING",
];

#[test]
fn pipelined_transactions() {
    let mut want: Vec<&str> = EHLO.to_vec();
    want.extend([
        "250 2.1.0 Sender <a@b.c> accepted",
        "250 2.1.5 Recipient <d@e.f> accepted",
        "354 End your message with a line holding only a dot",
        "250 2.0.0 Received 5 bytes for 1 recipient(s), queue id ID",
        "250 2.0.0 Reset",
        "221 2.0.0 Good bye",
    ]);
    check(
        &[],
        b"EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\n..hi\r\n.\r\nRSET\r\nQUIT\r\n",
        &want,
    );
}

/// SPEC 3: every hidden end of DATA after a CRLF `DATA` is content.
#[test]
fn smuggling_variants_are_content() {
    for (hidden, size) in [
        (&b"\n.\n"[..], 50),
        (b"\r\n.\n", 50),
        (b"\n.\r\n", 50),
        (b"\r\n.\r\r\n", 50),
    ] {
        let mut input = b"MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\nx".to_vec();
        input.extend_from_slice(hidden);
        input.extend_from_slice(b"MAIL FROM:<evil@b.c>\r\nRCPT TO:<victim@e.f>\r\n.\r\nQUIT\r\n");
        let received = format!("250 2.0.0 Received {size} bytes for 1 recipient(s), queue id ID");
        check(
            &[],
            &input,
            &[
                "250 2.1.0 Sender <a@b.c> accepted",
                "250 2.1.5 Recipient <d@e.f> accepted",
                "354 End your message with a line holding only a dot",
                &received,
                "221 2.0.0 Good bye",
            ],
        );
    }
}

#[test]
fn client_gone_in_data_gets_no_reply() {
    check(
        &[],
        b"MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\npart of a message\r\n",
        &[
            "250 2.1.0 Sender <a@b.c> accepted",
            "250 2.1.5 Recipient <d@e.f> accepted",
            "354 End your message with a line holding only a dot",
        ],
    );
}
