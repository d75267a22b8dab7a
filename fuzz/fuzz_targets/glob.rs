//! The glob matcher of the mail rules (SPEC 5: case-insensitive `*`, `?`, `[set]`,
//! `[!set]`, leading `!` negates) against a naive recursive matcher written here
//! (`smtpfront_fuzz::naive_glob`).
//!
//! Input: `[n]` then up to 8 patterns and one address, separated by `0xff` bytes, each byte
//! mapped onto a small alphabet that holds every glob character, both cases, `@`, `.` and a
//! non-ASCII letter. The patterns become sender rules `k<pattern>:*:R<i>` of one rules file,
//! so the whole path is tested: load-time checks, the quick pre-checks, the shape fast
//! paths, the hash index and the order of the rules. Expected: the file loads exactly when
//! every pattern is valid for the naive reader, and the sender answer is `R<i>` for the
//! first pattern that matches, else no match.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpfront::rules::{Rules, Verdict};
use smtpfront_fuzz::{glob_tokens, naive_glob};
use std::path::Path;

const ALPHABET: &[char] = &[
    'a', 'b', 'A', 'B', 'z', 'Z', '@', '.', '*', '?', '[', ']', '!', '-', 'é', 'É', '0', '_', '^',
    '`', 'x', 'X', '@', '*',
];

fn text_of(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| ALPHABET[usize::from(b) % ALPHABET.len()])
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let mut parts: Vec<String> = data.split(|&b| b == 0xff).map(text_of).collect();
    let Some(address) = parts.pop() else { return };
    if parts.is_empty() || parts.len() > 8 || address.chars().count() > 24 {
        return;
    }
    let mut rules = String::new();
    let mut expected: Option<Option<usize>> = Some(None);
    for (i, raw) in parts.iter().enumerate() {
        if raw.chars().count() > 16 {
            return;
        }
        let bangs = raw.chars().take_while(|&c| c == '!').count();
        let pattern = &raw[bangs..];
        if pattern
            .strip_prefix("[[")
            .and_then(|inner| inner.strip_suffix("]]"))
            .is_some()
        {
            return; // a list file, not a glob
        }
        rules.push_str(&format!("k{raw}:*:R{i}\n"));
        match glob_tokens(pattern) {
            None => expected = None,
            Some(tokens) => {
                let text: Vec<char> = address.chars().collect();
                let hit = naive_glob(&tokens, &text) != (bangs % 2 == 1);
                if let Some(None) = expected {
                    if hit {
                        expected = Some(Some(i));
                    }
                }
            }
        }
    }
    let parsed = Rules::parse(&rules, Path::new("glob.rules"));
    let Some(expected) = expected else {
        assert!(parsed.is_err(), "invalid pattern accepted:\n{rules}");
        return;
    };
    let r = match parsed {
        Ok(r) => r,
        Err(e) => panic!("valid patterns refused: {e}\n{rules}"),
    };
    let outcome = r.sender(&address).expect("no lists, no lookup errors");
    match expected {
        Some(i) => {
            assert_eq!(
                outcome.verdict,
                Verdict::Accept,
                "{address:?} against\n{rules}"
            );
            assert_eq!(
                outcome.text.as_deref(),
                Some(format!("R{i}").as_str()),
                "{address:?} against\n{rules}"
            );
        }
        None => assert_eq!(
            outcome.verdict,
            Verdict::NoMatch,
            "{address:?} matched {:?} in\n{rules}",
            outcome.text
        ),
    }
});
