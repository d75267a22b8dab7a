//! Case-insensitive glob patterns of the mail rules (SPEC 5): `*`, `?`, `[set]`, `[!set]`.
//!
//! This module owns compiling one pattern text (escapes already resolved by `parse`) and
//! matching it against an address. Semantics follow bglibs' `str_case_glob`, which mailfront
//! uses: the whole address must match; `*` matches any run of characters, including none;
//! `?` one character; an empty pattern matches only the empty address; letters match
//! without regard to ASCII case. Two deliberate extensions over bglibs, as in shell globs:
//! `[a-z]` is a range (bglibs would take `a`, `-` and `z`), and a `]` right after `[` or
//! `[!` is a member of the set. An unclosed `[` is a load-time error (bglibs quietly made the
//! pattern match everything).
//!
//! Matching is the classic two-pointer algorithm that remembers only the last `*`: time is
//! bounded by pattern length times address length, never exponential (`*a*a*a*a*b`). Speed
//! for large rule files: the common shapes (`*`, `lit`, `lit*`, `*lit`, `*lit*`) take a fast
//! path; every pattern first checks a few necessary conditions kept inline (length, first
//! and last byte); and a pattern that can match only one address or one domain says so
//! ([`IndexKey`]), so that `table.rs` can find its rule by hashing instead of trying it.

/// An address prepared for matching: lower-cased (ASCII) once per lookup.
pub(crate) struct Address {
    lower: String,
    chars: Vec<char>,
    /// Index of the last `@`: the domain follows it (SPEC 5, as mailfront's `str_findlast`).
    at: Option<usize>,
}

impl Address {
    pub(crate) fn new(address: &str) -> Address {
        let lower = address.to_ascii_lowercase();
        let chars = lower.chars().collect();
        let at = lower.rfind('@');
        Address { lower, chars, at }
    }

    /// The lower-cased address.
    pub(crate) fn as_str(&self) -> &str {
        &self.lower
    }

    /// `("@domain", "domain")`, or `None` for an address without `@`.
    pub(crate) fn domain(&self) -> Option<(&str, &str)> {
        self.at.map(|at| (&self.lower[at..], &self.lower[at + 1..]))
    }
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub(crate) struct Glob {
    /// Necessary conditions kept inline, so that most rules that do not match are refused
    /// without following a pointer (a scan of 10,000 rules is bound by memory, not compares).
    quick: Quick,
    shape: Shape,
}

/// Cheap necessary conditions on the lower-cased address, in bytes.
#[derive(Debug, Clone, Copy)]
struct Quick {
    min_len: u32,
    first: Option<u8>,
    last: Option<u8>,
}

impl Quick {
    fn new(tokens: &[Token]) -> Quick {
        let len: usize = tokens
            .iter()
            .map(|t| match t {
                Token::Char(c) => c.len_utf8(),
                Token::Star => 0,
                Token::One | Token::Set(_) => 1,
            })
            .sum();
        let byte = |token: Option<&Token>, pick: fn(&[u8]) -> Option<&u8>| match token {
            Some(Token::Char(c)) => pick(c.encode_utf8(&mut [0; 4]).as_bytes()).copied(),
            _ => None,
        };
        Quick {
            min_len: u32::try_from(len).unwrap_or(u32::MAX),
            first: byte(tokens.first(), <[u8]>::first),
            last: byte(tokens.last(), <[u8]>::last),
        }
    }

    fn allows(&self, s: &[u8]) -> bool {
        s.len() >= self.min_len as usize
            && self.first.is_none_or(|b| s.first() == Some(&b))
            && self.last.is_none_or(|b| s.last() == Some(&b))
    }
}

#[derive(Debug, Clone)]
enum Shape {
    /// `*`
    Anything,
    /// No wildcard at all (also the empty pattern).
    Exact(String),
    /// `lit*`
    Prefix(String),
    /// `*lit`
    Suffix(String),
    /// `*lit*`
    Contains(String),
    /// Boxed: rules are scanned in order, and a small `Shape` keeps them close together.
    General(Box<General>),
}

/// A pattern that can only match one address, or one domain: rules with such a pattern are
/// found through a hash table instead of being tried one by one (see `table.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndexKey<'a> {
    /// The pattern is this address, with no wildcard.
    Exact(&'a str),
    /// The pattern is `*@domain`, with no wildcard or `@` in the domain: it matches exactly
    /// the addresses whose domain (after the last `@`) is this.
    Domain(&'a str),
}

/// Any other pattern, with cheap necessary conditions checked before the full match.
#[derive(Debug, Clone)]
struct General {
    tokens: Vec<Token>,
    /// Characters the address needs at least: one per token other than `*`.
    min_chars: usize,
    /// The literal characters the pattern starts with (none if it starts with `*`).
    prefix: String,
    /// The literal characters the pattern ends with (none if it ends with `*`).
    suffix: String,
    /// The longest run of literal characters, which must appear somewhere.
    longest: String,
}

impl General {
    fn new(tokens: Vec<Token>) -> General {
        let runs: Vec<String> = tokens
            .split(|t| !matches!(t, Token::Char(_)))
            .map(|run| literal(run).unwrap_or_default())
            .collect();
        let first = runs.first().cloned().unwrap_or_default();
        let last = runs.last().cloned().unwrap_or_default();
        let longest = runs.into_iter().max_by_key(String::len).unwrap_or_default();
        General {
            min_chars: tokens.iter().filter(|t| **t != Token::Star).count(),
            prefix: first,
            suffix: last,
            longest,
            tokens,
        }
    }

    fn matches(&self, text: &Address) -> bool {
        // The emptiness tests matter: an empty `starts_with` still costs a `memcmp` call.
        let s = text.as_str();
        text.chars.len() >= self.min_chars
            && (self.prefix.is_empty() || s.starts_with(self.prefix.as_str()))
            && (self.suffix.is_empty() || s.ends_with(self.suffix.as_str()))
            && has_substring(s.as_bytes(), self.longest.as_bytes())
            && general_match(&self.tokens, &text.chars)
    }
}

/// Naive substring search: addresses are short, and `str::contains` costs more to set up
/// than this costs to run.
fn has_substring(hay: &[u8], needle: &[u8]) -> bool {
    match needle.first() {
        None => true,
        Some(&first) => hay
            .windows(needle.len())
            .any(|w| w[0] == first && w == needle),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A literal, lower-cased.
    Char(char),
    /// `?`
    One,
    /// `*` (runs of stars are merged)
    Star,
    Set(Set),
}

#[derive(Debug, Clone, PartialEq)]
struct Set {
    negated: bool,
    /// Inclusive ranges as written; a single character is `(c, c)`.
    ranges: Vec<(char, char)>,
}

impl Set {
    /// `c` is lower-cased; the set is tested with both cases, so `[A-Z]` and `[a-z]` agree.
    fn contains(&self, c: char) -> bool {
        let upper = c.to_ascii_uppercase();
        let inside = self
            .ranges
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&c) || (lo..=hi).contains(&upper));
        inside != self.negated
    }
}

impl Token {
    fn matches(&self, c: char) -> bool {
        match self {
            Token::Char(p) => *p == c,
            Token::One => true,
            Token::Set(set) => set.contains(c),
            Token::Star => false,
        }
    }
}

/// Parses the set that starts after a `[`; returns it and the index after its `]`.
fn parse_set(chars: &[char], mut i: usize) -> Result<(Set, usize), String> {
    let negated = chars.get(i) == Some(&'!');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err("unclosed '[' in pattern (write [[] for a literal '[')".to_string());
        };
        if c == ']' && !first {
            return Ok((Set { negated, ranges }, i + 1));
        }
        first = false;
        match (chars.get(i + 1), chars.get(i + 2)) {
            (Some('-'), Some(&hi)) if hi != ']' => {
                if hi < c {
                    return Err(format!("reversed range '{c}-{hi}' in pattern"));
                }
                ranges.push((c, hi));
                i += 3;
            }
            _ => {
                ranges.push((c, c));
                i += 1;
            }
        }
    }
}

fn tokenize(pattern: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let token = match chars[i] {
            '*' => {
                i += 1;
                if tokens.last() == Some(&Token::Star) {
                    continue;
                }
                Token::Star
            }
            '?' => {
                i += 1;
                Token::One
            }
            '[' => {
                let (set, next) = parse_set(&chars, i + 1)?;
                i = next;
                Token::Set(set)
            }
            c => {
                i += 1;
                Token::Char(c.to_ascii_lowercase())
            }
        };
        tokens.push(token);
    }
    Ok(tokens)
}

/// The literal text of `tokens` if they are all plain characters.
fn literal(tokens: &[Token]) -> Option<String> {
    tokens
        .iter()
        .map(|t| match t {
            Token::Char(c) => Some(*c),
            _ => None,
        })
        .collect()
}

impl Glob {
    /// Compiles `pattern`; the error names what is wrong with it.
    pub(crate) fn compile(pattern: &str) -> Result<Glob, String> {
        let tokens = tokenize(pattern)?;
        let quick = Quick::new(&tokens);
        let starts = tokens.first() == Some(&Token::Star);
        let ends = tokens.len() > usize::from(starts) && tokens.last() == Some(&Token::Star);
        let inner = &tokens[usize::from(starts)..tokens.len() - usize::from(ends)];
        let shape = match (starts, ends, literal(inner)) {
            (true, false, Some(lit)) if lit.is_empty() => Shape::Anything,
            (false, false, Some(lit)) => Shape::Exact(lit),
            (false, true, Some(lit)) => Shape::Prefix(lit),
            (true, false, Some(lit)) => Shape::Suffix(lit),
            (true, true, Some(lit)) => Shape::Contains(lit),
            _ => Shape::General(Box::new(General::new(tokens))),
        };
        Ok(Glob { quick, shape })
    }

    /// The key under which rules with this pattern can be indexed, if any.
    pub(crate) fn index_key(&self) -> Option<IndexKey<'_>> {
        match &self.shape {
            Shape::Exact(lit) => Some(IndexKey::Exact(lit)),
            Shape::Suffix(lit) => lit
                .strip_prefix('@')
                .filter(|domain| !domain.contains('@'))
                .map(IndexKey::Domain),
            _ => None,
        }
    }

    /// Whether the whole of `text` matches.
    pub(crate) fn matches(&self, text: &Address) -> bool {
        let s = text.as_str();
        if !self.quick.allows(s.as_bytes()) {
            return false;
        }
        match &self.shape {
            Shape::Anything => true,
            Shape::Exact(lit) => s == lit.as_str(),
            Shape::Prefix(lit) => s.starts_with(lit.as_str()),
            Shape::Suffix(lit) => s.ends_with(lit.as_str()),
            Shape::Contains(lit) => s.contains(lit.as_str()),
            Shape::General(general) => general.matches(text),
        }
    }
}

/// Two-pointer glob matching: on a mismatch, retry from the last `*` with one more character
/// swallowed by it. Earlier stars never need revisiting, so the cost is O(pattern * text).
fn general_match(tokens: &[Token], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut last_star: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Token::Star) => {
                last_star = Some((p, t));
                p += 1;
                continue;
            }
            Some(token) if token.matches(text[t]) => {
                p += 1;
                t += 1;
                continue;
            }
            _ => {}
        }
        match last_star {
            Some((star_p, star_t)) => {
                p = star_p + 1;
                t = star_t + 1;
                last_star = Some((star_p, star_t + 1));
            }
            None => return false,
        }
    }
    tokens[p.min(tokens.len())..]
        .iter()
        .all(|token| *token == Token::Star)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Glob::compile(pattern)
            .expect("pattern compiles")
            .matches(&Address::new(text))
    }

    #[test]
    fn bglibs_selftest_cases() {
        // The expectations of bglibs' str/case_glob.c self-test, which mailfront relies on.
        let cases: &[(&str, &str, bool)] = &[
            ("", "", true),
            ("", "*", true),
            ("", "**", true),
            ("", "?", false),
            ("", "[abc]", false),
            ("a", "A", true),
            ("A", "a", true),
            ("a", "[A]", true),
            ("A", "[a]", true),
            ("a", "[!a]", false),
            ("A", "[!a]", false),
            ("a", "[!A]", false),
            ("A", "*a", true),
            ("abc", "", false),
            ("abc", "*", true),
            ("abc", "??", false),
            ("abc", "???", true),
            ("abc", "????", false),
            ("abc", "*abc", true),
            ("abc", "a?c", true),
            ("abc", "[axy][bxy][cxy]", true),
            ("abc", "*a", false),
            ("abc", "*b*", true),
            ("abc", "*b", false),
            ("abc", "*[axy]", false),
            ("abc", "*[cxy]", true),
            ("abc", "[!a]*", false),
            ("abc", "*[!a]", true),
            ("abc", "*[!c]", false),
            ("abc", "?a*", false),
            ("abc", "*?b", false),
            ("abc", "*?c", true),
            ("abc", "*a?*", true),
            ("abc", "*b?", true),
            ("abc", "*c?*", false),
        ];
        for &(text, pattern, want) in cases {
            assert_eq!(m(pattern, text), want, "{text:?} against {pattern:?}");
        }
    }

    #[test]
    fn mail_shapes() {
        assert!(m("*@example.com", "User@Example.COM"));
        assert!(!m("*@example.com", "user@example.com.evil"));
        assert!(m("postmaster@*", "POSTMASTER@x"));
        assert!(m("*!*", "a!b@c"));
        assert!(m("*@*@*", "a@b@c"));
        assert!(!m("*@*@*", "a@b"));
        assert!(m("*%*", "a%b@c"));
        assert!(m("[a-z]*@x", "Q1@x"));
        assert!(!m("[a-z]*@x", "1q@x"));
        assert!(m("[]]x", "]x"));
        assert!(m("[!]]x", "ax"));
        assert!(m("[-a]x", "-x"));
        assert!(m("[a-]x", "-x"));
        assert!(m("[[]x", "[x"));
    }

    #[test]
    fn index_keys() {
        let key = |p: &str| {
            Glob::compile(p)
                .expect("compiles")
                .index_key()
                .map(|k| format!("{k:?}"))
        };
        assert_eq!(
            key("A@Example.com").as_deref(),
            Some("Exact(\"a@example.com\")")
        );
        assert_eq!(key("").as_deref(), Some("Exact(\"\")"));
        assert_eq!(
            key("*@Example.com").as_deref(),
            Some("Domain(\"example.com\")")
        );
        for none in ["*", "*example.com", "*@a@b", "a*", "*@x*", "?@x", "*@[ab]"] {
            assert_eq!(key(none), None, "{none}");
        }
    }

    #[test]
    fn bad_patterns_are_errors() {
        for bad in ["[abc", "x[", "[!", "[]", "[z-a]"] {
            assert!(Glob::compile(bad).is_err(), "{bad:?} should not compile");
        }
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
