//! Domains compared in A-labels (SPEC 3.2): `user@bücher.example` and
//! `user@xn--bcher-kva.example` are one address to `RCPTHOSTS`, the lists of the mail rules
//! and their cdbs. Each label is converted on its own: an ASCII label is lower-cased (ASCII),
//! a label with non-ASCII characters is lower-cased by Unicode's `to_lowercase` and becomes
//! `xn--` and its Punycode ([`crate::punycode`], RFC 3492).
//!
//! This is IDNA-style, not IDNA2008 or UTS 46: no normalisation (NFC), no mapping (`ß`
//! stays `ß`, the ideographic full stop is no dot), no check of the characters allowed.
//! For comparing the names a client sends with the names an operator lists, that is what
//! matters: both sides go through the same conversion.
//!
//! The conversions borrow their input when nothing changes, so ASCII mail (almost all of
//! it) costs a scan and no allocation.

use crate::punycode;
use std::borrow::Cow;

/// The prefix of an A-label (RFC 5890 2.3.2.1).
const ACE_PREFIX: &str = "xn--";

/// Longest label converted, in characters. A DNS label has at most 63 bytes (RFC 1035
/// 2.3.4), and an A-label is longer than the characters it encodes, so a longer label is
/// no IDN: it is compared as it is (lower-cased). It also bounds the work a hostile address
/// can cause: Punycode costs the square of the label's length.
const MAX_LABEL: usize = 63;

/// `domain` in A-labels, lower-cased. `.example.com` (RCPTHOSTS's sub-domain form) keeps
/// its leading dot, a trailing dot stays.
pub fn to_ascii(domain: &str) -> Cow<'_, str> {
    if domain.is_ascii() {
        return ascii_lowercase(domain);
    }
    let labels: Vec<Cow<'_, str>> = domain.split('.').map(label_to_ascii).collect();
    Cow::Owned(labels.join("."))
}

fn ascii_lowercase(s: &str) -> Cow<'_, str> {
    match s.bytes().any(|b| b.is_ascii_uppercase()) {
        true => Cow::Owned(s.to_ascii_lowercase()),
        false => Cow::Borrowed(s),
    }
}

fn label_to_ascii(label: &str) -> Cow<'_, str> {
    if label.is_ascii() {
        return ascii_lowercase(label);
    }
    let lower = label.to_lowercase();
    if lower.chars().count() > MAX_LABEL {
        return Cow::Owned(lower);
    }
    match punycode::encode(&lower) {
        Some(p) => Cow::Owned(format!("{ACE_PREFIX}{p}")),
        None => Cow::Owned(lower),
    }
}

/// `domain` (already [`to_ascii`]) with each A-label decoded to its U-label: the second key
/// tried in a cdb, whose keys an operator may have written either way. Labels that are not
/// Punycode stay as they are; borrowed when there is no `xn--` label.
pub fn to_unicode(domain: &str) -> Cow<'_, str> {
    if !domain.contains(ACE_PREFIX) {
        return Cow::Borrowed(domain);
    }
    let labels: Vec<Cow<'_, str>> = domain.split('.').map(label_to_unicode).collect();
    Cow::Owned(labels.join("."))
}

fn label_to_unicode(label: &str) -> Cow<'_, str> {
    let decoded = label
        .strip_prefix(ACE_PREFIX)
        .filter(|p| p.len() <= MAX_LABEL)
        .and_then(punycode::decode);
    match decoded {
        Some(u) => Cow::Owned(u.to_lowercase()),
        None => Cow::Borrowed(label),
    }
}

/// An address (or list entry) with its domain in A-labels: what follows the last `@`, or
/// the whole text when there is no `@` (a list entry that names a domain). The local part
/// is left as it is: SMTPUTF8 local parts compare as written (lower-cased ASCII by the
/// callers, as before).
pub fn address_to_ascii(address: &str) -> Cow<'_, str> {
    let Some(at) = address.rfind('@') else {
        return to_ascii(address);
    };
    let (local, domain) = address.split_at(at + 1);
    match to_ascii(domain) {
        // Borrowed: the domain was lower-case ASCII already.
        Cow::Borrowed(_) => Cow::Borrowed(address),
        converted => Cow::Owned(format!("{local}{converted}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u_labels_become_a_labels() {
        assert_eq!(to_ascii("b\u{fc}cher.example"), "xn--bcher-kva.example");
        assert_eq!(to_ascii("B\u{dc}CHER.Example"), "xn--bcher-kva.example");
        assert_eq!(to_ascii(".b\u{fc}cher.example"), ".xn--bcher-kva.example");
        assert_eq!(
            to_ascii("\u{43f}\u{440}\u{438}\u{43c}\u{435}\u{440}.\u{440}\u{444}"),
            "xn--e1afmkfd.xn--p1ai"
        );
        assert_eq!(to_ascii("XN--BCHER-KVA.example"), "xn--bcher-kva.example");
    }

    #[test]
    fn ascii_in_lower_case_is_borrowed() {
        assert!(matches!(to_ascii("example.com"), Cow::Borrowed(_)));
        assert!(matches!(to_unicode("example.com"), Cow::Borrowed(_)));
        assert!(matches!(
            address_to_ascii("Local@example.com"),
            Cow::Borrowed(_)
        ));
        assert_eq!(address_to_ascii("a@Example.COM"), "a@example.com");
    }

    #[test]
    fn a_labels_back_to_u_labels() {
        assert_eq!(to_unicode("xn--bcher-kva.example"), "b\u{fc}cher.example");
        assert_eq!(to_unicode("xn--!!.example"), "xn--!!.example");
        assert_eq!(
            to_unicode("xn--e1afmkfd.xn--p1ai"),
            "\u{43f}\u{440}\u{438}\u{43c}\u{435}\u{440}.\u{440}\u{444}"
        );
    }

    #[test]
    fn addresses_and_list_entries() {
        assert_eq!(
            address_to_ascii("J\u{f6}rg@b\u{fc}cher.example"),
            "J\u{f6}rg@xn--bcher-kva.example"
        );
        assert_eq!(
            address_to_ascii("@b\u{fc}cher.example"),
            "@xn--bcher-kva.example"
        );
        assert_eq!(
            address_to_ascii("b\u{fc}cher.example"),
            "xn--bcher-kva.example"
        );
        assert_eq!(address_to_ascii("postmaster"), "postmaster");
    }

    #[test]
    fn overlong_labels_are_not_converted() {
        let long = "\u{fc}".repeat(64);
        assert_eq!(to_ascii(&long), long);
        let a = format!("xn--{}", "a".repeat(100));
        assert_eq!(to_unicode(&a), a);
    }
}
