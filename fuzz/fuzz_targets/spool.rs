//! The message file parser that forward uses (`spool::format::Header::parse`, SPEC 6) on
//! arbitrary bytes.
//!
//! Invariants besides "no panic":
//! * what it accepts has at least one recipient, and its message part ends with the dot
//!   line and is a suffix of the file;
//! * re-rendering what it parsed (the writer replaces control characters) and parsing that
//!   again gives the same envelope, with the writer's replacements.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpfront::spool::format::Header;

/// What the writer does to a field (control characters become `?`).
fn cleaned(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fuzz_target!(|file: &[u8]| {
    let Ok((header, data)) = Header::parse(file) else {
        return;
    };
    assert!(!header.recipients.is_empty(), "no recipients accepted");
    assert!(data == b".\r\n" || data.ends_with(b"\r\n.\r\n"));
    assert!(file.ends_with(data));
    let mut again = header.render();
    again.extend_from_slice(data);
    let (reparsed, data2) = match Header::parse(&again) {
        Ok(r) => r,
        Err(e) => panic!("a parsed header, written again, does not parse: {e}\n{header:?}"),
    };
    assert_eq!(data2, data);
    let expect = Header {
        helo: cleaned(&header.helo),
        sender: cleaned(&header.sender),
        body: header.body.as_deref().map(cleaned),
        smtputf8: header.smtputf8,
        recipients: header.recipients.iter().map(|r| cleaned(r)).collect(),
    };
    assert_eq!(reparsed, expect, "the envelope changed on the round trip");
});
