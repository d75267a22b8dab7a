//! RFC 5321 paths as MAIL and RCPT carry them (SPEC 3): `<>`, `<local@domain>`, quoted
//! local parts, backslash escapes, source routes (accepted and dropped) and the bare
//! `<postmaster>`. Parsing yields the address as it will be delivered, or an error; nothing
//! acts on an unchecked path.

/// Why a path was refused (all map to `501 5.5.2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    NoOpeningBracket,
    NoClosingBracket,
    BadRoute,
    BadLocalPart,
    BadDomain,
    NoDomain,
}

/// A parsed path: the address (empty for the null path) and how many bytes of the input it
/// took, brackets included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    pub address: String,
    pub consumed: usize,
}

/// Characters of an RFC 5322 atom, besides letters and digits.
const ATEXT: &[u8] = b"!#$%&'*+-/=?^_`{|}~";

/// Parses a path at the start of `s`. `postmaster` without a domain is returned as is; the
/// caller decides where it is allowed (RCPT only, RFC 5321 4.5.1).
pub fn parse_path(s: &str) -> Result<Path, PathError> {
    let b = s.as_bytes();
    if b.first() != Some(&b'<') {
        return Err(PathError::NoOpeningBracket);
    }
    let mut i = 1;
    if b.get(i) == Some(&b'@') {
        i = skip_route(b, i)?;
    }
    let local_start = i;
    i = scan_local_part(b, i)?;
    let local = &s[local_start..i];
    let address = match b.get(i) {
        Some(b'>') if local.is_empty() && local_start == 1 => String::new(),
        Some(b'>') if local.eq_ignore_ascii_case("postmaster") => local.to_string(),
        Some(b'>') if local.is_empty() => return Err(PathError::BadLocalPart),
        Some(b'>') => return Err(PathError::NoDomain),
        Some(b'@') => {
            if local.is_empty() {
                return Err(PathError::BadLocalPart);
            }
            let domain_start = i + 1;
            i = scan_domain(b, domain_start)?;
            if b.get(i) != Some(&b'>') {
                return Err(PathError::NoClosingBracket);
            }
            s[local_start..i].to_string()
        }
        _ => return Err(PathError::NoClosingBracket),
    };
    // Valid UTF-8 may still hold C1 controls (U+0080..U+009F) in a quoted local part
    // (`"a\xc2\x85b"@b.c`): the spool would have to rewrite them, and a bounce would go to
    // another address. Refused instead (SPEC 3: fields are stored as received or not at all).
    if has_c1_control(&address) {
        return Err(PathError::BadLocalPart);
    }
    Ok(Path {
        address,
        consumed: i + 1,
    })
}

/// Whether `s` holds a C1 control (U+0080..U+009F: `\xc2\x80`..`\xc2\x9f` in UTF-8). The
/// scanners let no ASCII control through, so these are the only controls (`char::is_control`)
/// left to find; a byte scan, since every SMTPUTF8 address passes here (SPEC 3.2).
fn has_c1_control(s: &str) -> bool {
    // Most addresses, UTF-8 ones too, hold no 0xc2 at all: one memchr says so.
    let b = s.as_bytes();
    b.contains(&0xc2)
        && b.windows(2)
            .any(|w| w[0] == 0xc2 && (0x80..0xa0).contains(&w[1]))
}

/// `@a,@b:` — each hop a domain; returns the index after the colon.
fn skip_route(b: &[u8], mut i: usize) -> Result<usize, PathError> {
    loop {
        if b.get(i) != Some(&b'@') {
            return Err(PathError::BadRoute);
        }
        i = scan_domain(b, i + 1).map_err(|_| PathError::BadRoute)?;
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b':') => return Ok(i + 1),
            _ => return Err(PathError::BadRoute),
        }
    }
}

/// A dot-string (atoms, dots, backslash escapes) or a quoted string.
fn scan_local_part(b: &[u8], mut i: usize) -> Result<usize, PathError> {
    if b.get(i) == Some(&b'"') {
        i += 1;
        loop {
            match b.get(i) {
                None => return Err(PathError::BadLocalPart),
                Some(b'"') => return Ok(i + 1),
                Some(b'\\') => {
                    if b.get(i + 1).is_none_or(|c| !(0x20..0x7f).contains(c)) {
                        return Err(PathError::BadLocalPart);
                    }
                    i += 2;
                }
                Some(&c) if c >= 0x20 && c != 0x7f => i += 1,
                Some(_) => return Err(PathError::BadLocalPart),
            }
        }
    }
    while let Some(&c) = b.get(i) {
        if c == b'\\' {
            if b.get(i + 1).is_none_or(|c| !(0x20..0x7f).contains(c)) {
                return Err(PathError::BadLocalPart);
            }
            i += 2;
        } else if c.is_ascii_alphanumeric() || c >= 0x80 || c == b'.' || ATEXT.contains(&c) {
            // UTF-8 (SPEC 3.2) before the search of ATEXT: one test per byte, not a scan.
            i += 1;
        } else {
            break;
        }
    }
    Ok(i)
}

/// A domain name (letters, digits, `-`, `_`, dots) or an address literal `[...]`.
fn scan_domain(b: &[u8], start: usize) -> Result<usize, PathError> {
    let mut i = start;
    if b.get(i) == Some(&b'[') {
        while let Some(&c) = b.get(i + 1) {
            i += 1;
            if c == b']' {
                return if i > start + 1 {
                    Ok(i + 1)
                } else {
                    Err(PathError::BadDomain)
                };
            }
            if !(c.is_ascii_alphanumeric() || b".:-".contains(&c)) {
                return Err(PathError::BadDomain);
            }
        }
        return Err(PathError::BadDomain);
    }
    let mut label = 0;
    while let Some(&c) = b.get(i) {
        if c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c >= 0x80 {
            label += 1;
        } else if c == b'.' && label > 0 {
            label = 0;
        } else if c == b'.' {
            return Err(PathError::BadDomain);
        } else {
            break;
        }
        i += 1;
    }
    // A trailing dot (`example.com.`) is tolerated; an empty domain is not.
    if i == start {
        return Err(PathError::BadDomain);
    }
    Ok(i)
}

/// The address as mail rules match it (SPEC 5), like mailfront: the local part without its
/// quotes and backslash escapes (`"a b"@x` -> `a b@x`, `a\>b@x` -> `a>b@x`). Stored, echoed
/// and forwarded addresses keep the RFC 5321 form; this is for matching only.
pub fn unquoted(address: &str) -> std::borrow::Cow<'_, str> {
    // A domain holds no `@`, so the local part ends at the last one.
    let (local, domain) = address.split_at(address.rfind('@').unwrap_or(address.len()));
    if !local.contains(['"', '\\']) {
        return std::borrow::Cow::Borrowed(address);
    }
    let mut out = String::with_capacity(address.len());
    let mut chars = local.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {}
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out.push_str(domain);
    std::borrow::Cow::Owned(out)
}

/// The domain of an address (after the last `@`), if any.
pub fn domain(address: &str) -> Option<&str> {
    address.rsplit_once('@').map(|(_, d)| d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Result<String, PathError> {
        parse_path(s).map(|p| p.address)
    }

    #[test]
    fn plain_and_null() {
        assert_eq!(addr("<a@example.com>").unwrap(), "a@example.com");
        assert_eq!(addr("<>").unwrap(), "");
        assert_eq!(parse_path("<a@b.c> SIZE=1").unwrap().consumed, 7);
    }

    #[test]
    fn quoted_local_part_keeps_its_quotes() {
        assert_eq!(
            addr("<\"a b\"@example.net>").unwrap(),
            "\"a b\"@example.net"
        );
        assert_eq!(addr("<\"a>\\\"b\"@x.y>").unwrap(), "\"a>\\\"b\"@x.y");
    }

    #[test]
    fn source_route_is_dropped() {
        assert_eq!(addr("<@a,@b.c:u@example.com>").unwrap(), "u@example.com");
        assert!(addr("<@a:b@c,@d:u@e>").is_err());
    }

    #[test]
    fn postmaster_and_literals() {
        assert_eq!(addr("<PostMaster>").unwrap(), "PostMaster");
        assert_eq!(addr("<u@[192.0.2.1]>").unwrap(), "u@[192.0.2.1]");
        assert_eq!(
            addr("<u@[IPv6:2001:db8::1]>").unwrap(),
            "u@[IPv6:2001:db8::1]"
        );
    }

    #[test]
    fn malformed_paths() {
        for bad in [
            "a@b", "<a@b", "<a@>", "<@b>", "<a>", "<a@b..c>", "<a b@c>", "<a@b c>", "<\"ab@c>",
            "<a@[]>", "<@:a@b>", "<a@b>>", "<a\\",
        ] {
            let r = parse_path(bad);
            let complete = r.as_ref().map(|p| p.consumed == bad.len()).unwrap_or(false);
            assert!(r.is_err() || !complete, "{bad} parsed as {r:?}");
        }
    }

    #[test]
    fn control_characters_are_refused_not_rewritten() {
        assert_eq!(addr("<\"a\u{85}b\"@b.c>"), Err(PathError::BadLocalPart));
        assert_eq!(addr("<a\u{9f}b@b.c>"), Err(PathError::BadLocalPart));
        assert_eq!(addr("<ab@b\u{80}.c>"), Err(PathError::BadLocalPart));
        assert_eq!(addr("<\"a\u{e9}b\"@b.c>").unwrap(), "\"a\u{e9}b\"@b.c");
    }

    #[test]
    fn unquoted_for_rules() {
        assert_eq!(unquoted("\"a b\"@x"), "a b@x");
        assert_eq!(unquoted("a\\ b@x"), "a b@x");
        assert_eq!(unquoted("q\\\"x@y"), "q\"x@y");
        assert_eq!(unquoted("a\\>b@host"), "a>b@host");
        assert_eq!(unquoted("\"a\\\"b@c\"@d"), "a\"b@c@d");
        assert_eq!(unquoted("plain@x"), "plain@x");
        assert_eq!(unquoted(""), "");
        assert_eq!(unquoted("Postmaster"), "Postmaster");
    }

    #[test]
    fn domain_of() {
        assert_eq!(domain("a@b.c"), Some("b.c"));
        assert_eq!(domain("postmaster"), None);
    }
}
