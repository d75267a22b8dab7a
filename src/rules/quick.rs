//! The address as matching sees it, and the quick tests that refuse most patterns at once.
//!
//! This module owns [`Address`], an address lower-cased once per lookup, and [`Quick`], the
//! few necessary conditions that a pattern keeps in one word so that a scan of thousands of
//! rules (see `table.rs`) refuses nearly all of them without reading their text: a minimum
//! length, a byte at the start or anywhere, a byte at the end or anywhere. The conditions
//! are only necessary: a pattern that passes is then matched in full (`pattern.rs`).

/// An address prepared for matching: lower-cased (ASCII) once per lookup.
pub(crate) struct Address {
    lower: String,
    chars: Vec<char>,
    /// Index of the last `@`: the domain follows it (SPEC 5, as mailfront's `str_findlast`).
    at: Option<usize>,
    /// Bit `b` set for each ASCII byte `b` of the lower-cased address.
    ascii: u128,
}

impl Address {
    pub(crate) fn new(address: &str) -> Address {
        let lower = address.to_ascii_lowercase();
        let chars = lower.chars().collect();
        let at = lower.rfind('@');
        let ascii = lower
            .bytes()
            .filter(u8::is_ascii)
            .fold(0, |bits, b| bits | 1u128 << b);
        Address {
            lower,
            chars,
            at,
            ascii,
        }
    }

    /// The lower-cased address.
    pub(crate) fn as_str(&self) -> &str {
        &self.lower
    }

    /// Its characters, for the patterns that need them one by one.
    pub(crate) fn chars(&self) -> &[char] {
        &self.chars
    }

    /// `("@domain", "domain")`, or `None` for an address without `@`.
    pub(crate) fn domain(&self) -> Option<(&str, &str)> {
        self.at.map(|at| (&self.lower[at..], &self.lower[at + 1..]))
    }

    /// Whether the ASCII byte `b` is in the address.
    fn has(&self, b: u8) -> bool {
        self.ascii & 1u128.checked_shl(u32::from(b)).unwrap_or(0) != 0
    }
}

/// A byte that a pattern needs in the address, lower-cased (ASCII letters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Needs {
    Nothing,
    /// At its start (for the first byte of [`Quick::new`]), or its end (the second).
    Edge(u8),
    /// Anywhere: an ASCII byte.
    Anywhere(u8),
}

/// Necessary conditions on the lower-cased address, packed in one word by hand: built and
/// copied as one, it costs less at load than a struct of fields (which the compiler moves
/// piecewise), and keeps a rule small. Bits 0-12: the minimum length in bytes (saturating: a
/// smaller minimum is still a necessary condition); 16-23 and 24-31: the first and second
/// byte needed, 0 for none (a pattern holds no NUL: control characters are refused); 13
/// and 14: that byte is needed anywhere, not at the start (end). Bit 15 is for the pattern:
/// it keeps its negation here, where there is room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quick(u32);

const MIN_LEN: u32 = 0x1fff;
const FIRST_ANYWHERE: u32 = 1 << 13;
const SECOND_ANYWHERE: u32 = 1 << 14;
const NEGATED: u32 = 1 << 15;

impl Quick {
    /// No condition.
    pub(crate) const ANY: Quick = Quick(0);

    /// At least `min_len` bytes, and the bytes `first` (at the start or anywhere) and
    /// `second` (at the end or anywhere).
    pub(crate) fn new(min_len: usize, first: Needs, second: Needs) -> Quick {
        let min_len = u32::try_from(min_len).unwrap_or(MIN_LEN).min(MIN_LEN);
        let byte = |needs: Needs, anywhere: u32| match needs {
            Needs::Nothing => (0, 0),
            Needs::Edge(b) => (u32::from(b.to_ascii_lowercase()), 0),
            Needs::Anywhere(b) if b.is_ascii() => (u32::from(b.to_ascii_lowercase()), anywhere),
            Needs::Anywhere(_) => (0, 0),
        };
        let (first, first_anywhere) = byte(first, FIRST_ANYWHERE);
        let (second, second_anywhere) = byte(second, SECOND_ANYWHERE);
        Quick(min_len | first_anywhere | second_anywhere | first << 16 | second << 24)
    }

    pub(crate) fn negated(self, negated: bool) -> Quick {
        Quick(self.0 & !NEGATED | if negated { NEGATED } else { 0 })
    }

    pub(crate) fn is_negated(self) -> bool {
        self.0 & NEGATED != 0
    }

    /// Whether `address` meets the conditions (the negation is not one of them).
    #[inline(always)]
    pub(crate) fn allows(self, address: &Address) -> bool {
        let s = address.as_str().as_bytes();
        let [_, _, first, second] = self.0.to_le_bytes();
        s.len() >= (self.0 & MIN_LEN) as usize
            && (first == 0
                || match self.0 & FIRST_ANYWHERE {
                    0 => s.first() == Some(&first),
                    _ => address.has(first),
                })
            && (second == 0
                || match self.0 & SECOND_ANYWHERE {
                    0 => s.last() == Some(&second),
                    _ => address.has(second),
                })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions() {
        let allows = |q: Quick, a: &str| q.allows(&Address::new(a));
        let q = Quick::new(3, Needs::Edge(b'A'), Needs::Edge(b'z'));
        assert!(allows(q, "abz") && allows(q, "Axyz") && !allows(q, "az") && !allows(q, "bbz"));
        let q = Quick::new(0, Needs::Anywhere(b'+'), Needs::Anywhere(b'7'));
        assert!(allows(q, "a+b7@x") && !allows(q, "a+b@x") && !allows(q, "a7@x"));
        let q = Quick::new(0, Needs::Anywhere(0xc3), Needs::Edge(b'x'));
        assert!(allows(q, "\u{e9}@x") && allows(q, "a@x"));
        assert!(
            allows(Quick::ANY, "") && !allows(Quick::new(1, Needs::Nothing, Needs::Nothing), "")
        );
        let long = Quick::new(100_000, Needs::Nothing, Needs::Nothing);
        assert!(allows(long, &"x".repeat(0x1fff)) && !allows(long, "x"));
        assert!(
            Quick::ANY.negated(true).is_negated()
                && !Quick::ANY.negated(true).negated(false).is_negated()
        );
        assert!(allows(Quick::ANY.negated(true), ""));
        assert!(Address::new("A\u{7f}").has(0x7f) && !Address::new("a").has(0x80));
    }
}
