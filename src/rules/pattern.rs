//! Case-insensitive glob patterns of the mail rules (SPEC 5): `*`, `?`, `[set]`, `[!set]`.
//!
//! This module owns checking one pattern text (escapes already resolved by `parse`) and
//! matching it against an address; patterns with a wildcard inside are `general.rs`'s, the
//! address and the quick conditions `quick.rs`'s. Semantics follow bglibs' `str_case_glob`,
//! which mailfront uses: the whole address must match; `*` matches any run of characters,
//! including none; `?` one character; an empty pattern matches only the empty address;
//! letters match without regard to ASCII case. Two deliberate extensions over bglibs, as in
//! shell globs: `[a-z]` is a range (bglibs would take `a`, `-` and `z`), and a `]` right after
//! `[` or `[!` is a member of the set. An unclosed `[` is a load-time error (bglibs quietly
//! made the pattern match everything).
//!
//! Load time: the rules file is loaded in every session, so a pattern is not compiled into
//! tokens. [`Glob::scan`] walks it once, checks it, and keeps a few facts about it; the
//! pattern itself stays a [`Span`] of the rules text, and matching reads it from there.
//!
//! Speed for large rule files: the common shapes (`*`, `lit`, `lit*`, `*lit`, `*@domain`,
//! `*lit*`) take a fast path; every pattern first checks a few necessary conditions kept
//! inline ([`Quick`]: length, a first and a last byte); and a pattern that can match only one
//! address or one domain says so ([`IndexKey`]), so that `table.rs` can find its rule by
//! hashing instead of trying it.
//! Literals keep the case they were written in: they are compared ignoring ASCII case with
//! the address, which is lower-cased once per lookup.

#[cfg(test)]
use super::classes::Scanned;
use super::classes::Wildcards;
use super::general::{has_substring, General};
pub(crate) use super::quick::Address;
use super::quick::{Needs, Quick};
use super::text::{Span, Text};

/// A checked pattern: what is known of it, and where its text is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Glob {
    /// Necessary conditions kept inline, so that most rules that do not match are refused
    /// without reading their text (a scan of 10,000 rules is bound by memory, not compares).
    quick: Quick,
    shape: Shape,
}

/// The spans are literal text, as written (compared ignoring ASCII case).
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// `*`
    Anything,
    /// No wildcard at all (also the empty pattern).
    Exact(Span),
    /// `lit*`
    Prefix(Span),
    /// `*lit`
    Suffix(Span),
    /// `*@domain`, with no `@` in the domain: the addresses whose domain (after the last
    /// `@`) is this. The commonest shape in large rule files, and an index key.
    Domain(Span),
    /// `*lit*`
    Contains(Span),
    General(General),
    /// `[[file]]` or `[[@file]]`: the list at this index of `Rules::lists`, looked up by
    /// the caller. Never the shape of a [`Glob`], only of a [`Pattern`].
    List {
        list: u32,
        domain_only: bool,
    },
}

/// A SENDER or RECIPIENT pattern as a rule keeps it: a glob or a list, maybe negated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pattern {
    /// Of the glob, before negation (a list's allows everything); and the negation.
    quick: Quick,
    shape: Shape,
}

impl Pattern {
    pub(crate) fn glob(glob: Glob, negated: bool) -> Pattern {
        let Glob { quick, shape } = glob;
        let quick = quick.negated(negated);
        Pattern { quick, shape }
    }

    /// `[[file]]`, or `[[@file]]` when `domain_only`: the list at index `list`.
    pub(crate) fn list(list: u32, domain_only: bool, negated: bool) -> Pattern {
        let quick = Quick::ANY.negated(negated);
        let shape = Shape::List { list, domain_only };
        Pattern { quick, shape }
    }

    /// The key under which rules with this pattern can be indexed, if any.
    pub(crate) fn index_key(&self) -> Option<IndexKey> {
        match (self.quick.is_negated(), self.shape) {
            (false, Shape::Exact(lit)) => Some(IndexKey::Exact(lit)),
            (false, Shape::Domain(domain)) => Some(IndexKey::Domain(domain)),
            _ => None,
        }
    }

    /// Whether `address` matches; `text` is the rules text, and `lookup(list, domain_only)`
    /// answers for a list.
    #[inline(always)]
    pub(crate) fn matches<E>(
        &self,
        text: Text<'_>,
        address: &Address,
        lookup: impl FnOnce(usize, bool) -> Result<bool, E>,
    ) -> Result<bool, E> {
        // Inline, up to the quick conditions: a scan of the rules refuses most of them here.
        let hit = match self.shape {
            Shape::Anything => true,
            Shape::List { list, domain_only } => lookup(list as usize, domain_only)?,
            shape => {
                let quick = self.quick;
                quick.allows(address) && Glob { quick, shape }.matches(text, address)
            }
        };
        Ok(hit != self.quick.is_negated())
    }

    /// Conditions that the address must meet for the rule to match at all (see `table.rs`).
    pub(crate) fn prefilter(&self) -> Quick {
        match self.quick.is_negated() {
            // A negated pattern matches what its glob refuses.
            true => Quick::ANY,
            false => self.quick,
        }
    }
}

/// A pattern that can only match one address, or one domain: rules with such a pattern are
/// found through a hash table instead of being tried one by one (see `table.rs`). The key
/// is as written: compare it ignoring ASCII case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndexKey {
    /// The pattern is this address, with no wildcard.
    Exact(Span),
    /// The pattern is `*@domain`, with no wildcard or `@` in the domain: it matches exactly
    /// the addresses whose domain (after the last `@`) is this.
    Domain(Span),
}

impl Glob {
    /// Checks `pattern`, the text of `span`, and notes what matching needs; the error names
    /// what is wrong with it.
    #[cfg(test)]
    pub(crate) fn scan(pattern: &str, span: Span) -> Result<Glob, String> {
        Glob::scan_with(pattern, span, &Scanned)
    }

    /// [`Glob::scan`], finding the wildcards with `wildcards` (from the classes of the
    /// bytes of the line, or by looking: see `classes.rs`).
    #[inline(always)]
    pub(crate) fn scan_with(
        pattern: &str,
        span: Span,
        wildcards: &impl Wildcards,
    ) -> Result<Glob, String> {
        let bytes = pattern.as_bytes();
        let lead = wildcards.leading_stars(bytes);
        if lead == bytes.len() && lead > 0 {
            let quick = Quick::ANY;
            let shape = Shape::Anything;
            return Ok(Glob { quick, shape });
        }
        // Literal text between optional runs of stars is one of the fast shapes.
        let end = wildcards.next_wildcard(bytes, lead);
        if !wildcards.only_stars(bytes, end) {
            let (quick, general) = General::scan(pattern, span, wildcards)?;
            let shape = Shape::General(general);
            return Ok(Glob { quick, shape });
        }
        let (inner, trail) = (&bytes[lead..end], end < bytes.len());
        let lit = span.part(lead, end);
        let (first, last) = match (inner.first(), inner.last()) {
            (Some(&first), Some(&last)) => (first, last),
            _ => (0, 0),
        };
        let quick = match (lead > 0, trail) {
            _ if inner.is_empty() => Quick::ANY,
            (false, false) => Quick::new(inner.len(), Needs::Edge(first), Needs::Edge(last)),
            (false, true) => Quick::new(inner.len(), Needs::Edge(first), Needs::Nothing),
            (true, false) => Quick::new(inner.len(), Needs::Nothing, Needs::Edge(last)),
            (true, true) => Quick::new(inner.len(), Needs::Anywhere(first), Needs::Anywhere(last)),
        };
        let shape = match (lead > 0, trail) {
            (false, false) => Shape::Exact(lit),
            (false, true) => Shape::Prefix(lit),
            (true, false) => match inner.split_first() {
                Some((b'@', _)) if !wildcards.has_at(bytes, lead + 1) => {
                    Shape::Domain(lit.part(1, lit.len()))
                }
                _ => Shape::Suffix(lit),
            },
            (true, true) => Shape::Contains(lit),
        };
        Ok(Glob { quick, shape })
    }

    /// Whether the whole of `address` matches; `text` is the rules text.
    #[inline(never)]
    pub(crate) fn matches(&self, text: Text<'_>, address: &Address) -> bool {
        let s = address.as_str().as_bytes();
        if !self.quick.allows(address) {
            return false;
        }
        let lit = |span: Span| text.get(span).as_bytes();
        let ends_with = |span: Span| {
            s.len() >= span.len() && s[s.len() - span.len()..].eq_ignore_ascii_case(lit(span))
        };
        match self.shape {
            Shape::Anything => true,
            Shape::Exact(span) => s.eq_ignore_ascii_case(lit(span)),
            Shape::Prefix(span) => {
                s.len() >= span.len() && s[..span.len()].eq_ignore_ascii_case(lit(span))
            }
            Shape::Suffix(span) => ends_with(span),
            Shape::Domain(span) => {
                s.len() > span.len() && ends_with(span) && { s[s.len() - span.len() - 1] == b'@' }
            }
            Shape::Contains(span) => has_substring(s, lit(span)),
            Shape::General(general) => general.matches(text, address),
            Shape::List { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Glob::scan(pattern, Span::whole(pattern))
            .expect("pattern is good")
            .matches(pattern.into(), &Address::new(text))
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
            ("é", "?", true),
            ("éa", "[é]A", true),
            ("aé", "*[!a]", true),
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
            let glob = Glob::scan(p, Span::whole(p)).expect("good pattern");
            Pattern::glob(glob, false).index_key().map(|k| match k {
                IndexKey::Exact(span) => format!("Exact({})", span.get(p)),
                IndexKey::Domain(span) => format!("Domain({})", span.get(p)),
            })
        };
        assert_eq!(
            key("A@Example.com").as_deref(),
            Some("Exact(A@Example.com)")
        );
        assert_eq!(key("").as_deref(), Some("Exact()"));
        assert_eq!(
            key("**@Example.com").as_deref(),
            Some("Domain(Example.com)")
        );
        for none in ["*", "*example.com", "*@a@b", "a*", "*@x*", "?@x", "*@[ab]"] {
            assert_eq!(key(none), None, "{none}");
        }
    }

    #[test]
    fn bad_patterns_are_errors() {
        for bad in ["[abc", "x[", "[!", "[]", "[z-a]", "a*[", "*[é-a]*"] {
            assert!(
                Glob::scan(bad, Span::whole(bad)).is_err(),
                "{bad:?} should not scan"
            );
        }
    }

    #[test]
    fn long_literals_saturate() {
        let long = format!("{}*", "x".repeat(70_000));
        assert!(m(&long, &"X".repeat(70_001)));
        assert!(!m(&long, "x"));
        let long = format!("?{}", "x".repeat(70_000));
        assert!(m(&long, &"x".repeat(70_001)));
        assert!(!m(&long, &"x".repeat(70_000)));
        let long = format!("{0}?{0}*{1}", "a".repeat(300), "b".repeat(400));
        assert!(m(
            &long,
            &format!("{0}x{0}{1}", "a".repeat(300), "b".repeat(400))
        ));
        assert!(!m(
            &long,
            &format!("{0}x{0}{1}", "a".repeat(300), "b".repeat(399))
        ));
        let long = format!("*{}?{}*", "a".repeat(300), "b".repeat(300));
        assert!(m(
            &long,
            &format!("{}x{}", "a".repeat(300), "b".repeat(300))
        ));
    }
}
