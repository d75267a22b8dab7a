//! The mail rules parser and matcher (SPEC 5) on arbitrary rule text.
//!
//! Invariants besides "no panic":
//! * an error names a line of the text (1 ..= number of lines) and says why;
//! * a rules file that parses answers every sender and recipient without panicking, and
//!   what it answers is sane: a RESPONSE only with a rule that decided, a DATABYTES above
//!   0, no CR or NUL in any text that reaches a reply, a header or the spool, and
//!   ENVIRONMENT names that are variable names;
//! * parsing is deterministic: the same text gives the same answers;
//! * every line parses alike with the classes of its bytes (the loader's way for lines under
//!   64 bytes) and without them (the way of longer lines, and of rules read again at lookup).
//!
//! List files: the target runs in a scratch directory holding a text list `list`, a cdb
//! `list.cdb` and a corrupt `bad.cdb`; texts that could name a file elsewhere (a `/`, or
//! the octal escapes of one) are skipped, so the fuzzer cannot make the rules read
//! `/dev/zero`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpfront::rules::{lines_parse_alike, Outcome, Rules, Verdict};
use smtpfront_fuzz::{make_cdb, scratch};
use std::path::Path;
use std::sync::Once;

fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let dir = scratch("rules");
        std::fs::write(
            dir.join("list"),
            "# a list\nlisted@example.com\n@listed.test\nCase@Example.NET\n",
        )
        .expect("write list");
        let records: Vec<(Vec<u8>, Vec<u8>)> = ["cdb@example.com", "@cdb.test", "example.org"]
            .iter()
            .map(|k| (k.as_bytes().to_vec(), Vec::new()))
            .collect();
        std::fs::write(dir.join("list.cdb"), make_cdb(&records)).expect("write cdb");
        std::fs::write(dir.join("bad.cdb"), b"not a cdb").expect("write bad cdb");
        std::env::set_current_dir(&dir).expect("chdir to the scratch directory");
    });
}

const ADDRESSES: &[&str] = &[
    "",
    "postmaster",
    "a@b",
    "listed@example.com",
    "x@listed.test",
    "case@example.net",
    "cdb@example.com",
    "y@cdb.test",
    "z@Example.ORG",
    "\"q u\"@example.com",
    "a\\ b@x",
    "@@",
    "é@ü.test",
];

fn sane(o: &Outcome) {
    if o.text.is_some() {
        assert!(
            o.verdict != Verdict::NoMatch,
            "a text without a verdict: {o:?}"
        );
    }
    for text in o.text.iter().chain(o.relayclient.iter()) {
        assert!(!text.contains(['\r', '\0']), "CR or NUL in {o:?}");
    }
    if let Some(n) = o.databytes {
        assert!(n > 0, "DATABYTES 0 kept: {o:?}");
    }
    for (name, value) in &o.environment {
        assert!(
            !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !name.as_bytes()[0].is_ascii_digit(),
            "bad variable name {name:?}"
        );
        assert!(
            !value.contains(['\r', '\0']),
            "CR or NUL in {name}={value:?}"
        );
    }
}

fn answers(rules: &Rules, extra: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for &sender in ADDRESSES.iter().chain(extra) {
        let s = rules.sender(sender);
        if let Ok(o) = &s {
            sane(o);
        }
        out.push(format!("{s:?}"));
        for &rcpt in ADDRESSES.iter().chain(extra).take(6) {
            let r = rules.recipient(sender, rcpt);
            if let Ok(o) = &r {
                sane(o);
            }
            out.push(format!("{r:?}"));
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Parsing alone opens no list file: any text will do.
    if let Err(e) = lines_parse_alike(text) {
        panic!("the two ways of parsing a line disagree: {e}");
    }
    // Only names inside the scratch directory (see the module doc).
    if text.contains('/') || text.contains("\\57") || text.contains("\\057") {
        return;
    }
    setup();
    let origin = Path::new("fuzz.rules");
    let lines = text.split('\n').count() - usize::from(text.ends_with('\n'));
    match Rules::parse(text, origin) {
        Err(e) => {
            assert!(
                e.line >= 1 && e.line <= lines.max(1),
                "error names line {} of {lines}: {e}",
                e.line
            );
            assert!(!e.reason.is_empty());
            assert!(e
                .to_string()
                .starts_with(&format!("fuzz.rules:{}: ", e.line)));
        }
        Ok(rules) => {
            // Addresses from the text itself, so that its patterns get to match.
            let words: Vec<&str> = text
                .split(|c: char| c == ':' || c.is_whitespace())
                .filter(|w| w.len() < 64)
                .take(4)
                .collect();
            let first = answers(&rules, &words);
            let again = Rules::parse(text, origin).expect("parsed once, parses again");
            assert_eq!(
                answers(&again, &words),
                first,
                "two parses answer differently"
            );
        }
    }
});
