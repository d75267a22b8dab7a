//! Patterns with a wildcard inside (`a*b`, `?x`, `[a-z]*`): what `pattern.rs` calls general.
//!
//! This module owns the sets (`[set]`, `[!set]`, ranges) and the matching of such patterns.
//! At load, [`General::scan`] checks the pattern and notes a few facts for quick refusals;
//! the pattern is not compiled into tokens (the rules file is loaded in every session, and
//! most patterns are never matched in full): matching reads the text, sets included.
//!
//! Matching is the classic two-pointer algorithm that remembers only the last `*`: time is
//! bounded by pattern length times address length, never exponential (`*a*a*a*a*b`).

use super::classes::Wildcards;
use super::quick::{Address, Needs, Quick};
use super::text::{Span, Text};

/// Any other pattern, with cheap necessary conditions checked before the full match. The
/// lengths saturate: a shorter literal is still a necessary condition. Small, because a
/// large rules file is loaded in every session: every byte here is written 10,000 times.
#[derive(Debug, Clone, Copy)]
pub(crate) struct General {
    pattern: Span,
    /// Bytes of literal text the pattern starts with (none if it starts with a wildcard).
    prefix: u8,
    /// Bytes of literal text the pattern ends with, likewise.
    suffix: u8,
    /// The longest run of literal characters, which must appear somewhere: its offset in
    /// the pattern and its length (none if the offset does not fit).
    longest: (u8, u8),
}

fn saturate8(n: usize) -> u8 {
    u8::try_from(n).unwrap_or(u8::MAX)
}

impl General {
    /// Checks `pattern`, the text of `span`, with `?`, a set, or a `*` inside; notes the
    /// facts above and the conditions that go in a [`Quick`].
    pub(crate) fn scan(
        pattern: &str,
        span: Span,
        wildcards: &impl Wildcards,
    ) -> Result<(Quick, General), String> {
        let bytes = pattern.as_bytes();
        let mut min_len = 0;
        // Runs of literal characters, as byte ranges of `pattern`.
        let mut run_start = 0;
        let mut prefix = None;
        let mut longest = (0, 0);
        // The first and last literal ASCII bytes: the address needs them somewhere.
        let (mut first_ascii, mut last_ascii) = (None, None);
        // Bytes, not characters, for speed: the wildcards are ASCII, and every byte of a
        // literal character is a literal byte (lengths are in bytes).
        let mut i = 0;
        loop {
            let wild = wildcards.next_wildcard(bytes, i);
            min_len += wild - i;
            if let Some((first, last)) = wildcards.ascii_ends(bytes, i, wild) {
                first_ascii.get_or_insert(first);
                last_ascii = Some(last);
            }
            let next = match bytes.get(wild) {
                None => break,
                Some(b'*') => wild + 1,
                Some(b'?') => {
                    min_len += 1;
                    wild + 1
                }
                Some(_) => {
                    min_len += 1;
                    set_at(pattern, wild + 1, None)?.1
                }
            };
            // The wildcard at `wild..next` ends a run.
            prefix.get_or_insert(wild);
            if wild - run_start > longest.1 - longest.0 {
                longest = (run_start, wild);
            }
            run_start = next;
            i = next;
        }
        let end = pattern.len();
        let last_is_char = run_start < end;
        if end - run_start > longest.1 - longest.0 {
            longest = (run_start, end);
        }
        let first_is_char = !matches!(bytes[0], b'*' | b'?' | b'[');
        let needs = |edge: bool, b: u8, ascii: Option<u8>| match (edge, ascii) {
            (true, _) => Needs::Edge(b),
            (false, Some(b)) => Needs::Anywhere(b),
            (false, None) => Needs::Nothing,
        };
        let quick = Quick::new(
            min_len,
            needs(first_is_char, bytes[0], first_ascii),
            needs(last_is_char, bytes[end - 1], last_ascii),
        );
        let longest = match u8::try_from(longest.0) {
            Ok(at) => (at, saturate8(longest.1 - longest.0)),
            Err(_) => (0, 0),
        };
        let general = General {
            pattern: span,
            prefix: saturate8(prefix.unwrap_or(end)),
            suffix: saturate8(end - run_start),
            longest,
        };
        Ok((quick, general))
    }

    /// Whether the whole of `address` matches; `text` is the rules text.
    pub(crate) fn matches(&self, text: Text<'_>, address: &Address) -> bool {
        let pattern = text.get(self.pattern);
        let (s, p) = (address.as_str().as_bytes(), pattern.as_bytes());
        let (prefix, suffix) = (usize::from(self.prefix), usize::from(self.suffix));
        let at = usize::from(self.longest.0);
        let longest = at..at + usize::from(self.longest.1);
        s.len() >= prefix.max(suffix)
            && s[..prefix].eq_ignore_ascii_case(&p[..prefix])
            && s[s.len() - suffix..].eq_ignore_ascii_case(&p[p.len() - suffix..])
            && has_substring(s, &p[longest])
            && general_match(pattern, address.chars())
    }
}

/// Naive substring search, `needle` as written in any case and `hay` lower-case: addresses
/// are short, and a real search costs more to set up than this costs to run.
pub(crate) fn has_substring(hay: &[u8], needle: &[u8]) -> bool {
    match needle.first() {
        None => true,
        Some(first) => {
            let first = first.to_ascii_lowercase();
            hay.windows(needle.len())
                .any(|w| w[0] == first && w.eq_ignore_ascii_case(needle))
        }
    }
}

/// The character at byte `i` of `s` (a character boundary), if any.
fn char_at(s: &str, i: usize) -> Option<char> {
    match s.as_bytes().get(i) {
        Some(&b) if b.is_ascii() => Some(char::from(b)),
        Some(_) => s[i..].chars().next(),
        None => None,
    }
}

/// Reads the set that starts at byte `i`, after its `[`: returns whether it holds `c` (a
/// lower-cased character; `false` without one) and the index after its `]`. The set is
/// tested with both cases of `c`, so `[A-Z]` and `[a-z]` agree. Sets are read again at
/// every match rather than kept: few matches get that far, and keeping them would cost
/// allocations at every load.
fn set_at(pattern: &str, mut i: usize, c: Option<char>) -> Result<(bool, usize), String> {
    let negated = char_at(pattern, i) == Some('!');
    if negated {
        i += 1;
    }
    let mut inside = false;
    let mut first = true;
    loop {
        let Some(lo) = char_at(pattern, i) else {
            return Err("unclosed '[' in pattern (write [[] for a literal '[')".to_string());
        };
        let after_lo = i + lo.len_utf8();
        if lo == ']' && !first {
            return Ok((inside != negated, after_lo));
        }
        first = false;
        // `lo-hi`, unless the `-` is the last member (`[a-]`).
        let (hi, next) = match char_at(pattern, after_lo) {
            Some('-') => match char_at(pattern, after_lo + 1) {
                Some(hi) if hi != ']' => (hi, after_lo + 1 + hi.len_utf8()),
                _ => (lo, after_lo),
            },
            _ => (lo, after_lo),
        };
        if hi < lo {
            return Err(format!("reversed range '{lo}-{hi}' in pattern"));
        }
        if let Some(c) = c {
            let range = lo..=hi;
            inside |= range.contains(&c) || range.contains(&c.to_ascii_uppercase());
        }
        i = next;
    }
}

/// Whether the token at byte `p` of a checked pattern, not a `*`, matches the lower-cased
/// `c`; if so, where the next token starts.
fn step(pattern: &str, p: usize, c: char) -> Option<usize> {
    match char_at(pattern, p)? {
        '?' => Some(p + 1),
        // A checked pattern has no bad set.
        '[' => match set_at(pattern, p + 1, Some(c)) {
            Ok((true, next)) => Some(next),
            _ => None,
        },
        pc => (pc.to_ascii_lowercase() == c).then_some(p + pc.len_utf8()),
    }
}

/// Two-pointer glob matching: on a mismatch, retry from the last `*` with one more character
/// swallowed by it. Earlier stars never need revisiting, so the cost is O(pattern * text).
fn general_match(pattern: &str, text: &[char]) -> bool {
    let bytes = pattern.as_bytes();
    let (mut p, mut t) = (0, 0);
    // After the last `*` seen: the pattern index after it, and the text index it stopped at.
    let mut last_star: Option<(usize, usize)> = None;
    while t < text.len() {
        if bytes.get(p) == Some(&b'*') {
            p += 1;
            last_star = Some((p, t));
            continue;
        }
        if p < bytes.len() {
            if let Some(next) = step(pattern, p, text[t]) {
                p = next;
                t += 1;
                continue;
            }
        }
        match last_star {
            Some((star_p, star_t)) => {
                p = star_p;
                t = star_t + 1;
                last_star = Some((star_p, star_t + 1));
            }
            None => return false,
        }
    }
    bytes[p..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::super::pattern::Glob;
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Glob::scan(pattern, Span::whole(pattern))
            .expect("pattern is good")
            .matches(pattern.into(), &Address::new(text))
    }

    #[test]
    fn no_exponential_backtracking() {
        let text: String = "a".repeat(5000);
        let start = std::time::Instant::now();
        assert!(!m("*a*a*a*a*a*a*a*a*a*a*b", &text));
        assert!(m("*a*a*a*a*a*a*a*a*a*a*", &text));
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }

    /// The obvious recursive matcher, written independently over the pattern text.
    fn naive(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('*') => (0..=t.len()).any(|skip| naive(&p[1..], &t[skip..])),
            Some('?') => !t.is_empty() && naive(&p[1..], &t[1..]),
            Some('[') => {
                let close = p.iter().skip(2).position(|&c| c == ']').map(|i| i + 2);
                let Some(close) = close else { return false };
                let (neg, body) = match p[1] {
                    '!' => (true, &p[2..close]),
                    _ => (false, &p[1..close]),
                };
                let Some(&c) = t.first() else { return false };
                let lc = c.to_ascii_lowercase();
                let mut found = false;
                let mut i = 0;
                while i < body.len() {
                    if i + 2 < body.len() && body[i + 1] == '-' {
                        let (lo, hi) = (
                            body[i].to_ascii_lowercase(),
                            body[i + 2].to_ascii_lowercase(),
                        );
                        found |= lo <= lc && lc <= hi;
                        i += 3;
                    } else {
                        found |= body[i].to_ascii_lowercase() == lc;
                        i += 1;
                    }
                }
                found != neg && naive(&p[close + 1..], &t[1..])
            }
            Some(&c) => !t.is_empty() && c.eq_ignore_ascii_case(&t[0]) && naive(&p[1..], &t[1..]),
        }
    }

    #[test]
    fn agrees_with_naive_matcher() {
        // xorshift64*: deterministic, no crate needed.
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let atoms = [
            "a", "b", "A", "@", "*", "*", "?", "[ab]", "[!a]", "[a-b]", "[B]",
        ];
        let letters = ['a', 'b', 'B', 'c', '@'];
        for _ in 0..30_000 {
            let plen = next() % 7;
            let pattern: String = (0..plen)
                .map(|_| atoms[(next() % atoms.len() as u64) as usize])
                .collect();
            let tlen = next() % 9;
            let text: String = (0..tlen)
                .map(|_| letters[(next() % letters.len() as u64) as usize])
                .collect();
            let p: Vec<char> = pattern.chars().collect();
            let t: Vec<char> = text.chars().collect();
            assert_eq!(
                m(&pattern, &text),
                naive(&p, &t),
                "{text:?} against {pattern:?}"
            );
        }
    }
}
