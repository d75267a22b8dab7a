//! One line of a mail rules file to a selector or a rule (SPEC 5).
//!
//! This module owns the line syntax: the prefix character, the colon-separated fields
//! `SENDER:RECIPIENT:RESPONSE:DATABYTES:RELAYCLIENT:ENVIRONMENT`, the escapes, the `!`
//! negation and the `[[file]]` / `[[@file]]` forms. It reads no file: list files are opened
//! by `mod.rs`. Errors are plain reasons; the caller adds the file name and line number.
//!
//! Choices, with mailfront's `plugin-mailrules.c` as the reference:
//! * the line is trimmed of white space first; empty and `#` lines are comments;
//! * a line starting with any other unknown character is an error (mailfront ignored it
//!   silently, which turns a typo into a missing rule);
//! * fields split at `:` not escaped by `\`; the sixth field (ENVIRONMENT) takes the rest of
//!   the line, colons included, as in mailfront, so `HEADER_ADD=X-Tag: yes` works;
//! * escapes: `\n` newline, `\` with 1 to 3 octal digits (ASCII only; mailfront turned them
//!   into NUL), any other `\c` is `c` (so `\:`, `\\`, `\,`, `\"`); a `\` at the end of the
//!   line is an error; control characters other than tab and newline are refused, so a rule
//!   cannot put a CR or NUL into a reply or a header;
//! * `!` negation is read from the raw field before escapes, so `\!` is a literal `!`;
//! * the RESPONSE is trimmed of spaces and tabs at both ends (the classic example
//!   `d*:*!*: Sorry, ...` has a space after the colon);
//! * DATABYTES is empty or decimal digits; `0` means no change, as in mailfront.

use super::pattern::Glob;

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
        path: String,
        domain_only: bool,
    },
}

#[derive(Debug)]
pub(crate) struct PatternSpec {
    pub(crate) negated: bool,
    pub(crate) body: Body,
}

/// A rule line with its fields decoded; list files not yet opened.
#[derive(Debug)]
pub(crate) struct RawRule {
    pub(crate) action: Action,
    pub(crate) sender: PatternSpec,
    pub(crate) recipient: PatternSpec,
    /// The recipient pattern is `*`: before any selector, such a rule is a sender rule.
    pub(crate) recipient_is_star: bool,
    pub(crate) response: Option<String>,
    pub(crate) databytes: Option<u64>,
    pub(crate) relayclient: String,
    pub(crate) environment: Vec<(String, String)>,
}

#[derive(Debug)]
pub(crate) enum Line {
    Selector(Selector),
    Rule(RawRule),
}

/// Parses one line; `Ok(None)` for blank and comment lines.
pub(crate) fn parse_line(line: &str) -> Result<Option<Line>, String> {
    let line = line.trim();
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
    parse_rule(action, rest).map(|r| Some(Line::Rule(r)))
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

fn parse_rule(action: Action, body: &str) -> Result<RawRule, String> {
    let fields = split_fields(body);
    let field = |i: usize| fields.get(i).copied().unwrap_or("");
    let (sender, _) = parse_pattern(field(0)).map_err(|e| format!("sender pattern: {e}"))?;
    let (recipient, recipient_is_star) =
        parse_pattern(field(1)).map_err(|e| format!("recipient pattern: {e}"))?;
    let response = unescape(field(2)).map_err(|e| format!("response: {e}"))?;
    let response = response.trim_matches([' ', '\t']);
    let databytes = parse_databytes(field(3))?;
    let relayclient = unescape(field(4)).map_err(|e| format!("relayclient: {e}"))?;
    let environment = parse_environment(field(5)).map_err(|e| format!("environment: {e}"))?;
    Ok(RawRule {
        action,
        sender,
        recipient,
        recipient_is_star,
        response: (!response.is_empty()).then(|| response.to_string()),
        databytes,
        relayclient,
        environment,
    })
}

/// Splits at unescaped colons into at most six fields; the last takes the rest of the line.
fn split_fields(body: &str) -> Vec<&str> {
    let mut fields = Vec::with_capacity(6);
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ':' && fields.len() < 5 {
            fields.push(&body[start..i]);
            start = i + 1;
        }
    }
    fields.push(&body[start..]);
    fields
}

/// Decodes the character at `chars[i]`: returns it and the index of the next one.
fn decode(chars: &[char], i: usize) -> Result<(char, usize), String> {
    let c = chars[i];
    if c != '\\' {
        return Ok((c, i + 1));
    }
    let Some(&next) = chars.get(i + 1) else {
        return Err("'\\' at the end of the line".to_string());
    };
    if next == 'n' {
        return Ok(('\n', i + 2));
    }
    let Some(first) = next.to_digit(8) else {
        return Ok((next, i + 2));
    };
    let mut value = first;
    let mut end = i + 2;
    while end < i + 4 {
        match chars.get(end).and_then(|c| c.to_digit(8)) {
            Some(digit) => value = value * 8 + digit,
            None => break,
        }
        end += 1;
    }
    match u8::try_from(value) {
        Ok(byte) if byte.is_ascii() => Ok((char::from(byte), end)),
        _ => Err(format!(
            "octal escape \\{value:o} is not an ASCII character"
        )),
    }
}

/// Refuses control characters other than tab and newline.
fn check_text(text: &str) -> Result<(), String> {
    match text
        .chars()
        .find(|&c| c.is_ascii_control() && c != '\t' && c != '\n')
    {
        Some(c) => Err(format!("control character {c:?} not allowed")),
        None => Ok(()),
    }
}

/// Resolves the escapes of a whole field.
fn unescape(raw: &str) -> Result<String, String> {
    let chars: Vec<char> = raw.chars().collect();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < chars.len() {
        let (c, next) = decode(&chars, i)?;
        out.push(c);
        i = next;
    }
    check_text(&out)?;
    Ok(out)
}

/// A SENDER or RECIPIENT field; also says whether the pattern is `*`.
fn parse_pattern(raw: &str) -> Result<(PatternSpec, bool), String> {
    let bangs = raw.len() - raw.trim_start_matches('!').len();
    let negated = bangs % 2 == 1;
    let text = unescape(&raw[bangs..])?;
    let is_star = text == "*";
    let body = match text
        .strip_prefix("[[")
        .and_then(|inner| inner.strip_suffix("]]"))
    {
        Some(inner) => {
            let (path, domain_only) = match inner.strip_prefix('@') {
                Some(path) => (path, true),
                None => (inner, false),
            };
            if path.is_empty() {
                return Err(format!("[[{inner}]] names no list file"));
            }
            Body::List {
                path: path.to_string(),
                domain_only,
            }
        }
        None => Body::Glob(Glob::compile(&text)?),
    };
    Ok((PatternSpec { negated, body }, is_star))
}

fn parse_databytes(raw: &str) -> Result<Option<u64>, String> {
    let text = unescape(raw).map_err(|e| format!("databytes: {e}"))?;
    if text.is_empty() {
        return Ok(None);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("databytes {text:?} is not a decimal number"));
    }
    match text.parse::<u64>() {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(n)),
        Err(_) => Err(format!("databytes {text} is too large")),
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `NAME=VALUE,NAME="VALUE, with comma"`: unescaped commas outside quotes separate items;
/// empty items are skipped (mailfront allowed a trailing comma).
fn parse_environment(raw: &str) -> Result<Vec<(String, String)>, String> {
    let chars: Vec<char> = raw.chars().collect();
    let n = chars.len();
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        if chars[i] == ',' {
            i += 1;
            continue;
        }
        let mut name = String::new();
        while i < n && chars[i] != '=' && chars[i] != ',' {
            let (c, next) = decode(&chars, i)?;
            name.push(c);
            i = next;
        }
        if i >= n || chars[i] != '=' {
            return Err(format!("{name:?} is not NAME=VALUE"));
        }
        if !valid_name(&name) {
            return Err(format!("{name:?} is not a valid variable name"));
        }
        i += 1;
        let mut value = String::new();
        if chars.get(i) == Some(&'"') {
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(format!("unterminated quote in the value of {name}")),
                    Some('"') => break,
                    Some(_) => {
                        let (c, next) = decode(&chars, i)?;
                        value.push(c);
                        i = next;
                    }
                }
            }
            i += 1;
            if i < n && chars[i] != ',' {
                return Err(format!("text after the closing quote of {name}"));
            }
        } else {
            while i < n && chars[i] != ',' {
                let (c, next) = decode(&chars, i)?;
                value.push(c);
                i = next;
            }
        }
        check_text(&value).map_err(|e| format!("{name}: {e}"))?;
        out.push((name, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(line: &str) -> RawRule {
        match parse_line(line) {
            Ok(Some(Line::Rule(rule))) => rule,
            other => panic!("{line:?} gave {other:?}"),
        }
    }

    fn error(line: &str) -> String {
        match parse_line(line) {
            Err(e) => e,
            other => panic!("{line:?} should fail, gave {other:?}"),
        }
    }

    #[test]
    fn comments_and_selectors() {
        assert!(parse_line("").expect("ok").is_none());
        assert!(parse_line("   \t").expect("ok").is_none());
        assert!(parse_line("  # note").expect("ok").is_none());
        for (text, want) in [
            (":s", Selector::Sender),
            (":sender", Selector::Sender),
            (":sen", Selector::Sender),
            (":r", Selector::Recipient),
            (":recip", Selector::Recipient),
            (":recipient\r", Selector::Recipient),
        ] {
            match parse_line(text) {
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
        assert_eq!(r.action, Action::Accept);
        assert!(!r.recipient_is_star);
        assert_eq!(r.response, None);
        assert_eq!(r.databytes, None);
        assert!(r.relayclient.is_empty() && r.environment.is_empty());

        let r = rule("da@b:*: Sorry, go away :1000:@relay:MAXHOPS=1,HEADER_ADD=X-A: b");
        assert_eq!(r.action, Action::Reject);
        assert!(r.recipient_is_star);
        assert_eq!(r.response.as_deref(), Some("Sorry, go away"));
        assert_eq!(r.databytes, Some(1000));
        assert_eq!(r.relayclient, "@relay");
        assert_eq!(
            r.environment,
            vec![
                ("MAXHOPS".to_string(), "1".to_string()),
                ("HEADER_ADD".to_string(), "X-A: b".to_string())
            ]
        );
        assert_eq!(rule("K*:*").action, Action::Accept);
        assert_eq!(rule("z*:*").action, Action::Defer);
        assert_eq!(rule("p*:*").action, Action::Pass);
        assert_eq!(rule("n*:*").action, Action::Noop);
        assert_eq!(rule("&*:*").action, Action::And);
        assert_eq!(rule("k*:*::0").databytes, None);
    }

    #[test]
    fn escapes() {
        assert_eq!(rule(r"k*:*:ONE\nTWO").response.as_deref(), Some("ONE\nTWO"));
        assert_eq!(rule(r"k*:*:ONE\:TWO").response.as_deref(), Some("ONE:TWO"));
        assert_eq!(
            rule(r"k*:*:ONE\\TWO:").response.as_deref(),
            Some(r"ONE\TWO")
        );
        assert_eq!(rule(r"k*:*:\101\102C").response.as_deref(), Some("ABC"));
        assert_eq!(rule(r"k*:*:\72x").response.as_deref(), Some(":x"));
        assert_eq!(rule(r"k*:*:\1011").response.as_deref(), Some("A1"));
        assert!(error(r"k*:*:\000").contains("control"));
        assert!(error(r"k*:*:\015").contains("control"));
        assert!(error(r"k*:*:\377").contains("ASCII"));
        assert!(error(r"k*:*:abc\").contains("end of the line"));
        // The escaped colon does not split the field.
        match rule(r"ka\:b:*").sender.body {
            Body::Glob(g) => assert!(g.matches(&super::super::pattern::Address::new("a:b"))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn patterns_negation_and_lists() {
        let r = rule("k!a@b:!!*");
        assert!(r.sender.negated && !r.recipient.negated && r.recipient_is_star);
        let r = rule(r"k\!a:*");
        assert!(!r.sender.negated);
        let r = rule("k![[@rules/domains]]:[[list.cdb]]");
        assert!(r.sender.negated);
        let sender_list = matches!(r.sender.body, Body::List { ref path, domain_only: true } if path == "rules/domains");
        assert!(sender_list);
        let recipient_list = matches!(r.recipient.body, Body::List { ref path, domain_only: false } if path == "list.cdb");
        assert!(recipient_list);
        assert!(error("k[[]]:*").contains("names no list file"));
        assert!(error("k[[@]]:*").contains("names no list file"));
        assert!(error("k[abc:*").contains("unclosed"));
    }

    #[test]
    fn databytes_must_be_decimal() {
        for bad in [
            "k*:*::12a",
            "k*:*:: 12",
            "k*:*::-1",
            "k*:*::99999999999999999999999",
        ] {
            assert!(error(bad).contains("databytes"), "{bad}");
        }
    }

    #[test]
    fn environment_items() {
        let env = |text: &str| rule(&format!("n*:*::::{text}")).environment;
        let pair = |n: &str, v: &str| (n.to_string(), v.to_string());
        assert_eq!(env(""), vec![]);
        assert_eq!(env("A=1,"), vec![pair("A", "1")]);
        assert_eq!(env("A=,B=x=y"), vec![pair("A", ""), pair("B", "x=y")]);
        assert_eq!(
            env(r#"A="x,y",B=2"#),
            vec![pair("A", "x,y"), pair("B", "2")]
        );
        assert_eq!(env(r"A=x\,y"), vec![pair("A", "x,y")]);
        assert_eq!(env(r#"A="say \"hi\"""#), vec![pair("A", "say \"hi\"")]);
        assert_eq!(
            env(r"HEADER_ADD=X-A: 1\nX-B: 2"),
            vec![pair("HEADER_ADD", "X-A: 1\nX-B: 2")]
        );
        for bad in ["A", "=1", "1A=2", r#"A="x"y"#, r#"A="x"#, "A B=1"] {
            assert!(parse_line(&format!("n*:*::::{bad}")).is_err(), "{bad}");
        }
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
            let _ = parse_line(&line);
        }
    }
}
