//! The fields of a rule after its patterns: RESPONSE, DATABYTES, RELAYCLIENT and ENVIRONMENT
//! (SPEC 5).
//!
//! This module owns their syntax. They are checked when the rules are loaded, and kept as
//! written (a span of the rules text); [`tail`] reads them again when their rule is applied,
//! which is rare, so that loading makes no strings. Choices, with mailfront's
//! `plugin-mailrules.c` as the reference:
//! * escapes are resolved in every field (`text.rs`);
//! * the RESPONSE is trimmed of spaces and tabs at both ends (the classic example
//!   `d*:*!*: Sorry, ...` has a space after the colon);
//! * DATABYTES is empty or decimal digits; `0` means no change, as in mailfront;
//! * ENVIRONMENT is `NAME=VALUE,NAME="VALUE, with comma"` ([`environment`]).

use std::borrow::Cow;
use std::num::NonZeroU64;

use super::parse::split_fields;
use super::text::{check_text, decode, unescape_into};

/// The fields after the patterns: RESPONSE, DATABYTES, RELAYCLIENT and ENVIRONMENT.
#[derive(Debug)]
pub(crate) struct Tail<'t> {
    /// Escapes resolved and trimmed; `None` when the rule gives none.
    pub(crate) response: Option<Cow<'t, str>>,
    /// `0` means no change (SPEC 5), as no DATABYTES.
    pub(crate) databytes: Option<NonZeroU64>,
    /// Escapes resolved.
    pub(crate) relayclient: Cow<'t, str>,
    /// As written: read it with [`environment`].
    pub(crate) environment: &'t str,
}

/// Reads the fields after the patterns, as kept by `RawRule::tail`.
pub(crate) fn tail(raw: &str) -> Result<Tail<'_>, String> {
    let (fields, plain) = split_fields(raw);
    tail_of(fields, plain)
}

/// [`tail_of`] at load, keeping nothing.
#[inline(always)]
pub(crate) fn check(fields: [&str; 4], plain: bool) -> Result<(), String> {
    if !plain {
        return tail_of(fields, plain).map(drop);
    }
    // Plain text needs no decoding: only DATABYTES and ENVIRONMENT can be wrong.
    let [_, databytes, _, environment] = fields;
    parse_databytes(databytes, plain)?;
    if !environment.is_empty() {
        self::environment(environment, |_, _| {}).map_err(|e| format!("environment: {e}"))?;
    }
    Ok(())
}

/// [`tail`] of its fields, split; `plain` as [`split_fields`] says.
fn tail_of(fields: [&str; 4], plain: bool) -> Result<Tail<'_>, String> {
    let [response, databytes, relayclient, environment] = fields;
    let response = decode(response, plain).map_err(|e| format!("response: {e}"))?;
    let response = match response {
        Cow::Borrowed(text) => Cow::Borrowed(text.trim_matches([' ', '\t'])),
        Cow::Owned(text) => Cow::Owned(text.trim_matches([' ', '\t']).to_string()),
    };
    let databytes = parse_databytes(databytes, plain)?;
    let relayclient = decode(relayclient, plain).map_err(|e| format!("relayclient: {e}"))?;
    if !environment.is_empty() {
        self::environment(environment, |_, _| {}).map_err(|e| format!("environment: {e}"))?;
    }
    Ok(Tail {
        response: (!response.is_empty()).then_some(response),
        databytes,
        relayclient,
        environment,
    })
}

#[inline(always)]
fn parse_databytes(raw: &str, plain: bool) -> Result<Option<NonZeroU64>, String> {
    if raw.is_empty() {
        return Ok(None);
    }
    let digits = decode(raw, plain).map_err(|e| format!("databytes: {e}"))?;
    if digits.is_empty() {
        return Ok(None);
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("databytes {digits:?} is not a decimal number"));
    }
    match digits.parse::<u64>() {
        Ok(n) => Ok(NonZeroU64::new(n)),
        Err(_) => Err(format!("databytes {digits} is too large")),
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Reads from byte `i` of `raw` up to its first unescaped byte in `stops`, or its end:
/// returns that text with its escapes resolved (in `buf`, only if it had any) and the index
/// where it stopped.
fn piece<'r>(
    raw: &'r str,
    i: usize,
    stops: &[u8],
    buf: &'r mut String,
) -> Result<(&'r str, usize), String> {
    let bytes = raw.as_bytes();
    let mut end = i;
    let mut escapes = false;
    while end < bytes.len() && !stops.contains(&bytes[end]) {
        // The escaped character is never a stop: skip it (its first byte, at least).
        let escape = bytes[end] == b'\\';
        escapes |= escape;
        end += 1 + usize::from(escape);
    }
    let end = end.min(bytes.len());
    let text = &raw[i..end];
    if !escapes {
        return Ok((text, end));
    }
    buf.clear();
    unescape_into(text, buf)?;
    Ok((buf.as_str(), end))
}

/// ENVIRONMENT `raw`, as written: `NAME=VALUE,NAME="VALUE, with comma"`, with each pair
/// given to `item` in order. Unescaped commas outside quotes separate items; empty items are
/// skipped (mailfront allowed a trailing comma).
pub(crate) fn environment(raw: &str, mut item: impl FnMut(&str, &str)) -> Result<(), String> {
    let bytes = raw.as_bytes();
    let (mut name_buf, mut value_buf) = (String::new(), String::new());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b',' {
            i += 1;
            continue;
        }
        let (name, at) = piece(raw, i, b"=,", &mut name_buf)?;
        if bytes.get(at) != Some(&b'=') {
            return Err(format!("{name:?} is not NAME=VALUE"));
        }
        if !valid_name(name) {
            return Err(format!("{name:?} is not a valid variable name"));
        }
        let (value, end) = if bytes.get(at + 1) == Some(&b'"') {
            let (value, close) = piece(raw, at + 2, b"\"", &mut value_buf)?;
            if close >= bytes.len() {
                return Err(format!("unterminated quote in the value of {name}"));
            }
            if bytes.get(close + 1).is_some_and(|&b| b != b',') {
                return Err(format!("text after the closing quote of {name}"));
            }
            (value, close + 1)
        } else {
            piece(raw, at + 1, b",", &mut value_buf)?
        };
        check_text(value).map_err(|e| format!("{name}: {e}"))?;
        item(name, value);
        i = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(raw: &str) -> Result<Vec<(String, String)>, String> {
        let tail = tail(raw)?;
        let mut out = Vec::new();
        environment(tail.environment, |n, v| {
            out.push((n.to_string(), v.to_string()))
        })?;
        Ok(out)
    }

    #[test]
    fn response_and_relayclient() {
        let escaped = tail(" ONE\\nTWO\\: \t :: x\\101y").expect("good");
        assert_eq!(escaped.response.as_deref(), Some("ONE\nTWO:"));
        assert!(matches!(escaped.response, Some(Cow::Owned(_))));
        assert_eq!(escaped.relayclient, " xAy", "RELAYCLIENT is not trimmed");
        let plain = tail(" Sorry, no  :").expect("good");
        assert!(matches!(plain.response, Some(Cow::Borrowed("Sorry, no"))));
        assert!(tail("  :0").expect("good").response.is_none());
        assert!(tail("a\\").expect_err("lone \\").starts_with("response:"));
        assert!(tail(":::A")
            .expect_err("not NAME=VALUE")
            .starts_with("environment:"));
        assert!(tail("::a\x01")
            .expect_err("control")
            .starts_with("relayclient:"));
    }

    #[test]
    fn databytes_must_be_decimal() {
        let databytes = |raw: &str| tail(raw).map(|t| t.databytes.map(NonZeroU64::get));
        assert_eq!(databytes(":100"), Ok(Some(100)));
        assert_eq!(databytes(":0"), Ok(None));
        assert_eq!(databytes(":"), Ok(None));
        assert_eq!(databytes(r":\061\060"), Ok(Some(10)));
        for bad in [":12a", ": 12", ":-1", ":99999999999999999999999", r":\377"] {
            assert!(
                databytes(bad).expect_err(bad).contains("databytes"),
                "{bad}"
            );
        }
    }

    #[test]
    fn environment_items() {
        let pair = |n: &str, v: &str| (n.to_string(), v.to_string());
        let items = |text: &str| env(&format!(":::{text}")).expect(text);
        assert_eq!(items(""), vec![]);
        assert_eq!(items("A=1,"), vec![pair("A", "1")]);
        assert_eq!(items("A=,B=x=y"), vec![pair("A", ""), pair("B", "x=y")]);
        assert_eq!(
            items(r#"A="x,y",B=2"#),
            vec![pair("A", "x,y"), pair("B", "2")]
        );
        assert_eq!(items(r"A=x\,y"), vec![pair("A", "x,y")]);
        assert_eq!(items(r#"A="say \"hi\"""#), vec![pair("A", "say \"hi\"")]);
        assert_eq!(items(r"\101B=\1011"), vec![pair("AB", "A1")]);
        assert_eq!(items("B=a:b:c"), vec![pair("B", "a:b:c")]);
        assert_eq!(
            items(r"HEADER_ADD=X-A: 1\nX-B: 2"),
            vec![pair("HEADER_ADD", "X-A: 1\nX-B: 2")]
        );
        for bad in [
            "A",
            "=1",
            "1A=2",
            r#"A="x"y"#,
            r#"A="x"#,
            "A B=1",
            r#"A="x\"#,
            r"A=\015",
        ] {
            let line = format!(":::{bad}");
            let [a, b, c, d] = split_fields(&line).0;
            assert!(check([a, b, c, d], false).is_err(), "{bad}");
            assert!(env(&line).is_err(), "{bad}");
        }
        let line = r#":::A="x\"#;
        assert!(check(split_fields(line).0, false)
            .expect_err("bad")
            .contains("end of the line"));
    }
}
