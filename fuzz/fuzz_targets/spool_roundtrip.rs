//! Structured spool round trip (SPEC 6, and "what you store, you must read back"): an
//! envelope built from the fuzz input as the front end builds one (HELO name, sender,
//! `BODY=`, recipients; the trace headers of `envelope::Trace` with a `HEADER_ADD` that
//! `config` accepted; message pieces as the line reader hands them on) is written with the
//! front end's writer (`Header::render` and `Stuffer`, as `backend::spool` does) and parsed
//! with forward's reader (`Header::parse`).
//!
//! Invariants:
//! * the file parses; the envelope comes back equal, but for control characters the writer
//!   replaced with `?` (it refuses nothing);
//! * the message comes back: un-stuffing the data and dropping the dot line gives the trace
//!   headers and the pieces, each line with CRLF;
//! * no line of the stored message before the final one is a lone dot (it would end DATA
//!   early when forward sends it: SMTP smuggling within our own chain).
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpfront::config::Settings;
use smtpfront::envelope::{Protocol, Trace};
use smtpfront::spool::format::{Header, Stuffer};
use smtpfront::ucspi::Conn;
use smtpfront_fuzz::arbitrary::{self, Arbitrary};
use smtpfront_fuzz::Unstructured;
use std::convert::Infallible;
use std::time::{Duration, UNIX_EPOCH};

fn cleaned(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// A short string: arbitrary characters, often from the characters that matter here.
fn field(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    let n = u.int_in_range(0..=24u8)?;
    let mut s = String::new();
    for _ in 0..n {
        let c = match u.int_in_range(0..=3u8)? {
            0 => char::arbitrary(u)?,
            _ => *u.choose(&[
                'a', '@', '>', '<', ' ', '\r', '\n', '\0', '.', ':', 'é', '\u{85}',
            ])?,
        };
        s.push(c);
    }
    Ok(s)
}

fn run(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let helo = field(u)?;
    let sender = field(u)?;
    let body = *u.choose(&[None, Some("7BIT"), Some("8BITMIME")])?;
    let smtputf8 = bool::arbitrary(u)?;
    let mut recipients = vec![field(u)?];
    for _ in 0..u.int_in_range(0..=4u8)? {
        recipients.push(field(u)?);
    }
    let header = Header {
        helo: helo.clone(),
        sender: sender.clone(),
        body: body.map(str::to_string),
        smtputf8,
        recipients: recipients.clone(),
    };

    // The trace, with settings as config would accept them.
    let header_add = field(u)?;
    let settings = Settings::from_vars(vec![("HEADER_ADD".to_string(), header_add)]);
    let header_add = settings.ok().and_then(|s| s.header_add);
    let conn = Conn {
        remoteip: Some(field(u)?),
        remotehost: bool::arbitrary(u)?.then(|| field(u)).transpose()?,
        localip: Some(field(u)?),
        proto: Some("TCP".into()),
        ..Conn::default()
    };
    let fixup_host = field(u)?;
    let fixup_ip = field(u)?;
    let local = field(u)?;
    let trace = Trace {
        helo: Some(&helo),
        conn: &conn,
        local: &local,
        protocol: Protocol::Esmtp,
        tls: None,
        fixup_host: Some(&fixup_host),
        fixup_ip: Some(&fixup_ip),
        header_add: header_add.as_deref(),
    }
    .headers(UNIX_EPOCH + Duration::from_secs(u64::from(u32::arbitrary(u)?)));

    // Pieces as the line reader hands them on: no LF inside, maybe ending the line.
    let mut pieces: Vec<(Vec<u8>, bool)> = Vec::new();
    for _ in 0..u.int_in_range(0..=12u8)? {
        let len = u.int_in_range(0..=8u8)?;
        let mut bytes = Vec::new();
        for _ in 0..len {
            bytes.push(*u.choose(b"..\r x\0\xff")?);
        }
        pieces.push((bytes, bool::arbitrary(u)?));
    }

    // The writer, as backend::spool does it.
    let mut file = header.render();
    let mut stuffer = Stuffer::default();
    let mut write = |b: &[u8]| -> Result<(), Infallible> {
        file.extend_from_slice(b);
        Ok(())
    };
    stuffer.stuff(&trace, &mut write).unwrap();
    let mut expected = trace.clone();
    for (bytes, ends_line) in &pieces {
        stuffer.stuff(bytes, &mut write).unwrap();
        expected.extend_from_slice(bytes);
        if *ends_line {
            stuffer.stuff(b"\r\n", &mut write).unwrap();
            expected.extend_from_slice(b"\r\n");
        }
    }
    stuffer.finish(&mut write).unwrap();
    if !(expected.is_empty() || expected.ends_with(b"\n")) {
        expected.extend_from_slice(b"\r\n");
    }

    // The reader, as forward does it.
    let (parsed, data) = match Header::parse(&file) {
        Ok(p) => p,
        Err(e) => panic!("what the front end wrote does not parse: {e}\n{header:?}"),
    };
    let want = Header {
        helo: cleaned(&helo),
        sender: cleaned(&sender),
        body: body.map(str::to_string),
        smtputf8,
        recipients: recipients.iter().map(|r| cleaned(r)).collect(),
    };
    assert_eq!(
        parsed, want,
        "the envelope changed on the way through the file"
    );

    // The message: no early lone dot; un-stuffed, it is what was written.
    let lines: Vec<&[u8]> = data.split_inclusive(|&b| b == b'\n').collect();
    let (last, body_lines) = lines.split_last().expect("the dot line");
    assert_eq!(*last, b".\r\n");
    let mut unstuffed = Vec::new();
    for line in body_lines {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        assert!(text != b".", "a lone dot line inside the stored message");
        unstuffed.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    assert_eq!(
        unstuffed, expected,
        "the message changed on the way through the file"
    );
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
