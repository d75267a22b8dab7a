//! Helpers shared by the fuzz targets: scratch directories, a cdb writer, the wire checks of
//! a reply, and the naive glob matcher the `glob` target compares the rules with. Nothing
//! here is smtpfront code: each helper is an independent statement of what the library
//! must do, so that a target compares two readings of the SPEC rather than one with itself.

use std::path::PathBuf;

pub use libfuzzer_sys::arbitrary::{self, Unstructured};

/// A directory of this process under `$TMPDIR` (fuzz/run points `TMPDIR` at a directory of
/// the run, and removes it afterwards). Created on first use.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("smtpfront-fuzz-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

// ---------------------------------------------------------------------------------------
// cdb

/// The cdb hash (D. J. Bernstein): `h = 5381; h = (h * 33) ^ byte`.
pub fn cdb_hash(key: &[u8]) -> u32 {
    key.iter()
        .fold(5381u32, |h, &c| h.wrapping_mul(33) ^ u32::from(c))
}

/// A constant database holding `records`, laid out as `cdbmake` does.
pub fn make_cdb(records: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![0u8; 2048];
    let mut tables: Vec<Vec<(u32, u32)>> = vec![Vec::new(); 256];
    for (key, data) in records {
        let pos = out.len() as u32;
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(data);
        let h = cdb_hash(key);
        tables[(h & 255) as usize].push((h, pos));
    }
    for (index, list) in tables.iter().enumerate() {
        let slots = list.len() * 2;
        let pos = out.len() as u32;
        let mut table = vec![(0u32, 0u32); slots];
        for &(h, rec) in list {
            let mut slot = (h >> 8) as usize % slots;
            while table[slot].1 != 0 {
                slot = (slot + 1) % slots;
            }
            table[slot] = (h, rec);
        }
        for (h, rec) in table {
            out.extend_from_slice(&h.to_le_bytes());
            out.extend_from_slice(&rec.to_le_bytes());
        }
        out[index * 8..index * 8 + 4].copy_from_slice(&pos.to_le_bytes());
        out[index * 8 + 4..index * 8 + 8].copy_from_slice(&(slots as u32).to_le_bytes());
    }
    out
}

// ---------------------------------------------------------------------------------------
// replies on the wire

/// Checks one rendered reply (SPEC 3, RFC 5321 4.2): lines end with CRLF and hold no other
/// CR or LF; each starts with the same three digits, then `-` on all lines but the last,
/// which has a space; at most `max` bytes. Returns the code.
pub fn check_wire_reply(wire: &[u8], max: usize) -> u16 {
    assert!(!wire.is_empty(), "empty reply");
    assert!(wire.ends_with(b"\r\n"), "reply without CRLF: {wire:?}");
    assert!(
        wire.len() <= max,
        "reply of {} bytes (max {max})",
        wire.len()
    );
    let body = &wire[..wire.len() - 2];
    let lines: Vec<&[u8]> = split_crlf(body);
    let mut code = None;
    for (i, line) in lines.iter().enumerate() {
        assert!(
            !line.contains(&b'\r') && !line.contains(&b'\n'),
            "bare CR or LF in a reply line: {line:?}"
        );
        assert!(line.len() >= 4, "reply line too short: {line:?}");
        assert!(
            line[..3].iter().all(u8::is_ascii_digit),
            "reply line without a code: {line:?}"
        );
        let this = &line[..3];
        match code {
            None => code = Some(this),
            Some(c) => assert_eq!(c, this, "codes differ within one reply"),
        }
        let last = i + 1 == lines.len();
        let sep = if last { b' ' } else { b'-' };
        assert_eq!(line[3], sep, "separator of line {i} in {wire:?}");
    }
    let code = code.expect("a line");
    let n = code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    assert!((200..600).contains(&n), "reply code {n}");
    n
}

fn split_crlf(body: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
        out.push(&rest[..i]);
        rest = &rest[i + 2..];
    }
    out.push(rest);
    out
}

// ---------------------------------------------------------------------------------------
// naive glob (SPEC 5)

/// One token of a glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Star,
    Any,
    Char(char),
    /// Ranges, negated.
    Set(Vec<(char, char)>, bool),
}

/// The tokens of a glob as SPEC 5 and the rules' module doc describe it: `*`, `?`,
/// `[set]`, `[!set]`; in a set, `]` right after `[` or `[!` is a member, `a-z` is a range
/// unless the `-` is last, a reversed range and an unclosed `[` are errors.
pub fn glob_tokens(pattern: &str) -> Option<Vec<Token>> {
    let p: Vec<char> = pattern.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '*' => out.push(Token::Star),
            '?' => out.push(Token::Any),
            '[' => {
                i += 1;
                let negated = p.get(i) == Some(&'!');
                if negated {
                    i += 1;
                }
                let mut ranges = Vec::new();
                let mut first = true;
                loop {
                    let lo = *p.get(i)?;
                    if lo == ']' && !first {
                        break;
                    }
                    first = false;
                    if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&c| c != ']') {
                        let hi = p[i + 2];
                        if hi < lo {
                            return None;
                        }
                        ranges.push((lo, hi));
                        i += 3;
                    } else {
                        ranges.push((lo, lo));
                        i += 1;
                    }
                }
                out.push(Token::Set(ranges, negated));
            }
            c => out.push(Token::Char(c)),
        }
        i += 1;
    }
    Some(out)
}

/// Case-insensitive (ASCII) equality of characters.
fn same(a: char, b: char) -> bool {
    a.eq_ignore_ascii_case(&b)
}

/// Whether some member of `ranges` equals `c` ignoring ASCII case.
fn in_set(ranges: &[(char, char)], c: char) -> bool {
    let (lower, upper) = (c.to_ascii_lowercase(), c.to_ascii_uppercase());
    ranges
        .iter()
        .any(|&(lo, hi)| (lo..=hi).contains(&lower) || (lo..=hi).contains(&upper))
}

/// The obvious recursive matcher: the whole text must match. Exponential in the worst case,
/// which is why the target keeps patterns and texts short.
pub fn naive_glob(tokens: &[Token], text: &[char]) -> bool {
    match tokens.split_first() {
        None => text.is_empty(),
        // `**` means `*`: without folding them, 13 stars against 16 characters took more
        // than libFuzzer's 10 s (a timeout of the harness, not of the library).
        Some((Token::Star, [Token::Star, ..])) => naive_glob(&tokens[1..], text),
        Some((Token::Star, rest)) => (0..=text.len()).any(|skip| naive_glob(rest, &text[skip..])),
        Some((token, rest)) => {
            let Some((&c, more)) = text.split_first() else {
                return false;
            };
            let ok = match token {
                Token::Any => true,
                Token::Char(p) => same(*p, c),
                Token::Set(ranges, negated) => in_set(ranges, c) != *negated,
                Token::Star => unreachable!(),
            };
            ok && naive_glob(rest, more)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        let tokens = glob_tokens(p).expect("valid");
        naive_glob(&tokens, &t.chars().collect::<Vec<_>>())
    }

    #[test]
    fn naive_basics() {
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(m("*@Example.com", "a@example.COM"));
        assert!(m("[a-z]*", "Q"));
        assert!(m("[]]x", "]x"));
        assert!(m("[!]]x", "ax"));
        assert!(m("[a-]", "-"));
        assert!(glob_tokens("[]").is_none());
        assert!(glob_tokens("[z-a]").is_none());
    }
}
