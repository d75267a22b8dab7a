//! One line of a mail rules file to a selector or a rule (SPEC 5).
//!
//! This module owns the line syntax: the prefix character, the colon-separated fields
//! `SENDER:RECIPIENT:RESPONSE:DATABYTES:RELAYCLIENT:ENVIRONMENT`, the `!` negation and the
//! `[[file]]` / `[[@file]]` forms; the fields after the patterns are `tail.rs`'s. It reads no
//! file: list files are opened by `mod.rs`. Errors are plain reasons; the caller adds the file
//! name and line number. Texts are kept as spans of the rules text (see `text.rs`, which also
//! owns the escapes).
//!
//! Choices, with mailfront's `plugin-mailrules.c` as the reference:
//! * the line is trimmed of white space first; empty and `#` lines are comments;
//! * a line starting with any other unknown character is an error (mailfront ignored it
//!   silently, which turns a typo into a missing rule);
//! * fields split at `:` not escaped by `\`; the sixth field (ENVIRONMENT) takes the rest of
//!   the line, colons included, as in mailfront, so `HEADER_ADD=X-Tag: yes` works;
//! * escapes are resolved in every field (`text.rs`); `!` negation is read from the raw field
//!   before escapes, so `\!` is a literal `!`;
//! * the fields after the patterns are checked at load and kept as written: `tail.rs` reads
//!   them again when their rule is applied, which is rare, so that loading makes no strings.

use super::classes::{Classes, Part, Scanned};
use super::pattern::Glob;
use super::swar;
use super::tail;
use super::text::{Span, TextBuilder};

/// What a rule does when it matches. `k` and `K` both accept (SPEC 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Accept,
    Reject,
    Defer,
    Pass,
    Noop,
    And,
}

/// A `:sender` / `:recipient` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Selector {
    Sender,
    Recipient,
}

/// What an address is compared with.
#[derive(Debug)]
pub(crate) enum Body {
    Glob(Glob),
    /// `[[path]]`, or `[[@path]]` when `domain_only`.
    List {
        path: Span,
        domain_only: bool,
    },
}

#[derive(Debug)]
pub(crate) struct PatternSpec {
    pub(crate) negated: bool,
    pub(crate) body: Body,
}

/// A rule line with its fields checked; list files not yet opened.
#[derive(Debug)]
pub(crate) struct RawRule {
    pub(crate) action: Action,
    pub(crate) sender: PatternSpec,
    pub(crate) recipient: PatternSpec,
    /// The recipient pattern is `*`: before any selector, such a rule is a sender rule.
    pub(crate) recipient_is_star: bool,
    /// RESPONSE to ENVIRONMENT as written, checked: read it with [`tail::tail`].
    pub(crate) tail: Span,
}

#[derive(Debug)]
pub(crate) enum Line {
    Selector(Selector),
    Rule(RawRule),
}

/// Parses one line of the file in `text`; `Ok(None)` for blank and comment lines.
pub(crate) fn parse_line<'a>(
    line: &'a str,
    text: &mut TextBuilder<'a>,
) -> Result<Option<Line>, String> {
    parse_classified(line, None, text)
}

/// [`parse_line`], with the classes of the bytes of the line if it has them (`classes.rs`).
#[inline(always)]
pub(crate) fn parse_classified<'a>(
    line: &'a str,
    classes: Option<&Classes>,
    text: &mut TextBuilder<'a>,
) -> Result<Option<Line>, String> {
    // Most lines have nothing to trim: `str::trim` would still look at every end character.
    let (line, classes) = match (line.as_bytes().first(), line.as_bytes().last()) {
        (Some(first), Some(last)) if first.is_ascii_graphic() && last.is_ascii_graphic() => {
            (line, classes)
        }
        _ => (line.trim(), None),
    };
    let Some(prefix) = line.chars().next() else {
        return Ok(None);
    };
    let rest = &line[prefix.len_utf8()..];
    let action = match prefix {
        '#' => return Ok(None),
        ':' => return parse_selector(rest).map(|s| Some(Line::Selector(s))),
        'k' | 'K' => Action::Accept,
        'd' => Action::Reject,
        'z' => Action::Defer,
        'p' => Action::Pass,
        'n' => Action::Noop,
        '&' => Action::And,
        other => {
            return Err(format!(
                "unknown rule type {other:?} (a rule starts with k, K, d, z, p, n or &; \
                 a selector is :sender or :recipient)"
            ))
        }
    };
    parse_rule(action, rest, classes, text).map(|r| Some(Line::Rule(r)))
}

/// Checks that every line of `file` parses to the same rule, or the same error, with the
/// classes of its bytes as without them (`classes.rs`), and that the comments and blank
/// lines that the loader passes over parse to nothing; the first line that does not, and
/// how. The loader reads lines the first way, `reparse` the second: they must agree.
pub(crate) fn classes_agree(file: &str) -> Result<(), String> {
    for line in super::classes::lines(file) {
        let text = line.text;
        let mut with = TextBuilder::new(file);
        let mut without = TextBuilder::new(file);
        let a = format!(
            "{:?}",
            parse_classified(text, line.classes.as_ref(), &mut with)
        );
        let b = format!("{:?}", parse_line(text, &mut without));
        let (c, d) = (with.into_decoded(), without.into_decoded());
        if a != b || c != d {
            return Err(format!(
                "{text:?}: {a} ({c:?}) with classes, {b} ({d:?}) without"
            ));
        }
        if line.passed_over && b != "Ok(None)" {
            return Err(format!("{text:?}: {b}, but the loader passes it over"));
        }
    }
    Ok(())
}

/// `:s`, `:sender`, `:r`, `:recip` ...: any non-empty prefix of the two words.
fn parse_selector(word: &str) -> Result<Selector, String> {
    if !word.is_empty() && "sender".starts_with(word) {
        Ok(Selector::Sender)
    } else if !word.is_empty() && "recipient".starts_with(word) {
        Ok(Selector::Recipient)
    } else {
        Err(format!(
            "unknown selector :{word} (expected :sender or :recipient)"
        ))
    }
}

#[inline(always)]
fn parse_rule<'a>(
    action: Action,
    body: &'a str,
    classes: Option<&Classes>,
    text: &mut TextBuilder<'a>,
) -> Result<RawRule, String> {
    // `classes` are of the line, whose first byte, the prefix, is ASCII: the body is the
    // line from byte 1. A line with escapes or control characters is split the long way.
    let classes = classes.filter(|c| c.special == 0);
    let ([sender, recipient, response, databytes, relayclient, environment], plain) = match classes
    {
        Some(classes) => (classes.fields(1, body), true),
        None => split_fields(body),
    };
    // The classes of a field of the body.
    let of = |field: &str| {
        let from = 1 + field.as_ptr() as usize - body.as_ptr() as usize;
        classes.map(|c| c.part(from, field.len()))
    };
    let (sender, _) = parse_pattern(sender, plain, of(sender), text)
        .map_err(|e| format!("sender pattern: {e}"))?;
    let (recipient, recipient_is_star) = parse_pattern(recipient, plain, of(recipient), text)
        .map_err(|e| format!("recipient pattern: {e}"))?;
    // Checked now, read again when the rule is applied (rarely): nothing to keep but a span.
    tail::check([response, databytes, relayclient, environment], plain)?;
    // The tail starts where RESPONSE does (the end of the line when there is no RESPONSE).
    let tail = &body[response.as_ptr() as usize - body.as_ptr() as usize..];
    Ok(RawRule {
        action,
        sender,
        recipient,
        recipient_is_star,
        tail: text.span_of(tail),
    })
}

/// Splits at unescaped colons into `N` fields, missing ones empty; the last takes the rest
/// of the text. Also says whether the text is plain: without `\` or control characters, so
/// that its fields need no decoding and no check (nearly every line; see `text.rs`).
#[inline(always)]
pub(crate) fn split_fields<const N: usize>(body: &str) -> ([&str; N], bool) {
    let mut fields = [&body[body.len()..]; N];
    let mut count = 0;
    let mut start = 0;
    let mut plain = true;
    // Bytes, not characters: `\`, `:` and control characters are ASCII, and so never part
    // of another character. Tab is found too, and passed over.
    let special = |x: u64| {
        swar::zero_bytes(x ^ swar::splat(b':'))
            | swar::zero_bytes(x ^ swar::splat(b'\\'))
            | swar::bytes_below(x, 0x20)
            | swar::zero_bytes(x ^ swar::splat(0x7f))
    };
    let bytes = body.as_bytes();
    let mut i = 0;
    loop {
        i = swar::find(bytes, i, special, |b| {
            b == b':' || b == b'\\' || b.is_ascii_control()
        });
        match bytes.get(i) {
            None => break,
            Some(b':') if count + 1 < N => {
                fields[count] = &body[start..i];
                count += 1;
                start = i + 1;
            }
            Some(b':' | b'\t') => {}
            Some(b'\\') => {
                plain = false;
                // The escaped character does not split (its first byte, at least).
                i += 1;
            }
            Some(_) => plain = false,
        }
        i += 1;
    }
    fields[count] = &body[start..];
    (fields, plain)
}

/// A SENDER or RECIPIENT field; also says whether the pattern is `*`.
#[inline(always)]
fn parse_pattern<'a>(
    raw: &'a str,
    plain: bool,
    classes: Option<Part<'_>>,
    text: &mut TextBuilder<'a>,
) -> Result<(PatternSpec, bool), String> {
    let bangs = raw.bytes().take_while(|&b| b == b'!').count();
    let negated = bangs % 2 == 1;
    let raw = &raw[bangs..];
    let classes = classes.map(|c| c.skip(bangs));
    let (span, pattern) = match plain {
        true => (text.span_of(raw), raw),
        false => {
            let span = text.field(raw, plain)?;
            (span, text.get(span))
        }
    };
    let is_star = pattern == "*";
    let body = match pattern
        .strip_prefix("[[")
        .and_then(|inner| inner.strip_suffix("]]"))
    {
        Some(inner) => {
            let domain_only = inner.starts_with('@');
            let from = 2 + usize::from(domain_only);
            let to = pattern.len() - 2;
            if from >= to {
                return Err(format!("[[{inner}]] names no list file"));
            }
            Body::List {
                path: span.part(from, to),
                domain_only,
            }
        }
        None => Body::Glob(match classes {
            // Classes are of plain text: `pattern` is `raw`.
            Some(classes) => Glob::scan_with(pattern, span, &classes.pattern())?,
            None => Glob::scan_with(pattern, span, &Scanned)?,
        }),
    };
    Ok((PatternSpec { negated, body }, is_star))
}

#[cfg(test)]
mod tests {
    use super::super::pattern::Address;
    use super::super::tail::{environment, Tail};
    use super::*;
    use std::borrow::Cow;
    use std::num::NonZeroU64;

    /// A parsed line and the rules text its spans refer to.
    struct Parsed {
        line: Result<Option<Line>, String>,
        text: String,
    }

    fn parse(line: &str) -> Parsed {
        let mut builder = TextBuilder::new(line);
        let parsed = parse_line(line, &mut builder);
        let text = format!("{line}{}", builder.into_decoded());
        Parsed { line: parsed, text }
    }

    /// Random lines, parsed with the classes of their bytes and without: the same rules, the
    /// same errors (the loader takes the first way for lines under 64 bytes, `reparse` the
    /// second).
    #[test]
    fn classes_change_no_parse() {
        let actions = ["d", "k", "K", "z", "n", "&", "p", "#", ":", "x", " "];
        let pieces = [
            ":", ":", ":", "!", "*", "*", "?", "[", "]", "[[", "]]", "@", "a", "B", "x@y",
            "\u{e9}", " ", "0", "9", "=", ",", "\"", "-", "s", "r", "@x.org", "A=1", "[a-z]", "[!",
            "*@", "list", "@\u{e9}", "\t",
        ];
        // Rare: each sends the line the long way.
        let rare = ["\\", "\\:", "\\101", "\r", "\u{7f}", "\u{1}"];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as usize % n
        };
        for _ in 0..50_000 {
            let mut line = actions[next(actions.len())].to_string();
            for _ in 0..next(24) {
                line.push_str(match next(40) {
                    0 => rare[next(rare.len())],
                    _ => pieces[next(pieces.len())],
                });
            }
            // What follows the line: classes must stop at its end.
            let file = format!("{line}\n*:[x\\:*\n");
            let first = super::super::classes::lines(&file).next();
            assert_eq!(first.map(|l| l.text), Some(line.as_str()));
            classes_agree(&file).expect("the same parse");
        }
    }

    /// A rule with the texts of its fields.
    struct Rule {
        raw: RawRule,
        text: String,
    }

    impl Rule {
        fn tail(&self) -> Tail<'_> {
            tail::tail(self.raw.tail.get(&self.text)).expect("checked at load")
        }

        fn response(&self) -> Option<String> {
            self.tail().response.map(Cow::into_owned)
        }

        fn databytes(&self) -> Option<u64> {
            self.tail().databytes.map(NonZeroU64::get)
        }

        fn relayclient(&self) -> String {
            self.tail().relayclient.into_owned()
        }

        fn environment(&self) -> Vec<(String, String)> {
            let mut out = Vec::new();
            let raw = self.tail().environment;
            environment(raw, |n, v| out.push((n.to_string(), v.to_string()))).expect("checked");
            out
        }

        fn sender_matches(&self, address: &str) -> bool {
            match &self.raw.sender.body {
                Body::Glob(g) => g.matches(self.text.as_str().into(), &Address::new(address)),
                other => panic!("{other:?}"),
            }
        }

        fn list(&self, spec: &PatternSpec) -> Option<(&str, bool)> {
            match spec.body {
                Body::List { path, domain_only } => Some((path.get(&self.text), domain_only)),
                Body::Glob(_) => None,
            }
        }
    }

    fn rule(line: &str) -> Rule {
        match parse(line) {
            Parsed {
                line: Ok(Some(Line::Rule(raw))),
                text,
            } => Rule { raw, text },
            Parsed { line: other, .. } => panic!("{line:?} gave {other:?}"),
        }
    }

    fn error(line: &str) -> String {
        match parse(line).line {
            Err(e) => e,
            other => panic!("{line:?} should fail, gave {other:?}"),
        }
    }

    #[test]
    fn comments_and_selectors() {
        assert!(parse("").line.expect("ok").is_none());
        assert!(parse("   \t").line.expect("ok").is_none());
        assert!(parse("  # note").line.expect("ok").is_none());
        for (text, want) in [
            (":s", Selector::Sender),
            (":sender", Selector::Sender),
            (":sen", Selector::Sender),
            (":r", Selector::Recipient),
            (":recip", Selector::Recipient),
            (":recipient\r", Selector::Recipient),
        ] {
            match parse(text).line {
                Ok(Some(Line::Selector(s))) => assert_eq!(s, want, "{text}"),
                other => panic!("{text:?} gave {other:?}"),
            }
        }
        for bad in [":", ":senders", ":x", ":recipients"] {
            error(bad);
        }
        assert!(error("x*:*").contains("unknown rule type"));
    }

    #[test]
    fn fields_and_defaults() {
        let r = rule("k");
        assert_eq!(r.raw.action, Action::Accept);
        assert!(!r.raw.recipient_is_star);
        assert_eq!(r.response(), None);
        assert_eq!(r.databytes(), None);
        assert!(r.relayclient().is_empty() && r.environment().is_empty());

        let r = rule("da@b:*: Sorry, go away :1000:@relay:MAXHOPS=1,HEADER_ADD=X-A: b");
        assert_eq!(r.raw.action, Action::Reject);
        assert!(r.raw.recipient_is_star);
        assert_eq!(r.response().as_deref(), Some("Sorry, go away"));
        assert_eq!(r.databytes(), Some(1000));
        assert_eq!(r.relayclient(), "@relay");
        assert_eq!(
            r.environment(),
            vec![
                ("MAXHOPS".to_string(), "1".to_string()),
                ("HEADER_ADD".to_string(), "X-A: b".to_string())
            ]
        );
        assert_eq!(rule("K*:*").raw.action, Action::Accept);
        assert_eq!(rule("z*:*").raw.action, Action::Defer);
        assert_eq!(rule("p*:*").raw.action, Action::Pass);
        assert_eq!(rule("n*:*").raw.action, Action::Noop);
        assert_eq!(rule("&*:*").raw.action, Action::And);
        assert_eq!(rule("k*:*::0").databytes(), None);
        assert_eq!(rule("k*:*: \t ").response(), None);
        assert_eq!(rule(r"k*:*:\040x\040").response().as_deref(), Some("x"));
        assert_eq!(rule(r"k*:*::\061\060").databytes(), Some(10));
    }

    #[test]
    fn escapes() {
        assert_eq!(
            rule(r"k*:*:ONE\nTWO").response().as_deref(),
            Some("ONE\nTWO")
        );
        assert_eq!(
            rule(r"k*:*:ONE\:TWO").response().as_deref(),
            Some("ONE:TWO")
        );
        assert_eq!(
            rule(r"k*:*:ONE\\TWO:").response().as_deref(),
            Some(r"ONE\TWO")
        );
        assert_eq!(rule(r"k*:*:\101\102C").response().as_deref(), Some("ABC"));
        assert_eq!(rule(r"k*:*:\72x").response().as_deref(), Some(":x"));
        assert_eq!(rule(r"k*:*:\1011").response().as_deref(), Some("A1"));
        assert_eq!(rule(r"k*:*:::a\:b").relayclient(), "a:b");
        assert!(error(r"k*:*:\000").contains("control"));
        assert!(error(r"k*:*:\015").contains("control"));
        assert!(error(r"k*:*:\377").contains("ASCII"));
        assert!(error(r"k*:*:abc\").contains("end of the line"));
        assert!(error("k*:*:a\u{7f}").contains("control"));
        // The escaped colon does not split the field.
        let r = rule(r"ka\:b:*");
        assert!(r.sender_matches("a:b") && !r.sender_matches("a"));
        // Escapes are resolved before the glob is read: `\*` is a star.
        assert!(rule(r"ka\*:*").sender_matches("abc"));
    }

    #[test]
    fn patterns_negation_and_lists() {
        let r = rule("k!a@b:!!*");
        assert!(r.raw.sender.negated && !r.raw.recipient.negated && r.raw.recipient_is_star);
        let r = rule(r"k\!a:*");
        assert!(!r.raw.sender.negated && r.sender_matches("!a"));
        let r = rule("k![[@rules/domains]]:[[list.cdb]]");
        assert!(r.raw.sender.negated);
        assert_eq!(r.list(&r.raw.sender), Some(("rules/domains", true)));
        assert_eq!(r.list(&r.raw.recipient), Some(("list.cdb", false)));
        let r = rule(r"k[[a\:b]]:[[\@x]]");
        assert_eq!(r.list(&r.raw.sender), Some(("a:b", false)));
        assert_eq!(r.list(&r.raw.recipient), Some(("x", true)));
        assert!(error("k[[]]:*").contains("names no list file"));
        assert!(error("k[[@]]:*").contains("names no list file"));
        assert!(error("k[abc:*").contains("unclosed"));
    }

    #[test]
    fn tail_errors_name_their_field() {
        assert!(error("k*:*::12a").starts_with("databytes"));
        assert!(error("k*:*:::a\x01").starts_with("relayclient:"));
        assert!(error("n*:*::::A").starts_with("environment:"));
        assert!(
            error("k[:*::12a").starts_with("sender pattern:"),
            "patterns first"
        );
        let r = rule(r#"n*:*::::A="x,y",B=\101"#);
        let pair = |n: &str, v: &str| (n.to_string(), v.to_string());
        assert_eq!(r.environment(), vec![pair("A", "x,y"), pair("B", "A")]);
    }

    /// Random lines over the characters that matter to the syntax: errors, never panics.
    #[test]
    fn random_lines_never_panic() {
        let mut state: u64 = 0x853c_49e6_748f_ea9b;
        let mut next = move |n: usize| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
        };
        let alphabet: Vec<char> = "kKdzpn&:#!\\\"=,[]@*?-0178nAé \t\r".chars().collect();
        for _ in 0..50_000 {
            let line: String = (0..next(24))
                .map(|_| alphabet[next(alphabet.len())])
                .collect();
            let _ = parse(&line);
        }
    }
}
