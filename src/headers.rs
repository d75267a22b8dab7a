//! A streaming scan of the incoming header block (up to the first empty line), counting
//! `Received:` and `Delivered-To:` fields for the hop limit (SPEC 2 `MAXHOPS`). It sees each
//! line once, as the DATA pieces pass; it stores nothing.

#[derive(Debug, Default, Clone)]
pub struct HopCounter {
    body: bool,
    mid_line: bool,
    pub received: u64,
    pub delivered_to: u64,
}

impl HopCounter {
    /// Takes the next DATA piece (see [`crate::linereader::DataPiece`]). Only the start of a
    /// line matters; a DATA line handed on in pieces is at least 64 KiB long at its start, so
    /// a field name is never split.
    pub fn piece(&mut self, bytes: &[u8], ends_line: bool) {
        if !self.body && !self.mid_line {
            if bytes.is_empty() && ends_line {
                self.body = true;
            } else if starts_with_ignore_case(bytes, b"received:") {
                self.received += 1;
            } else if starts_with_ignore_case(bytes, b"delivered-to:") {
                self.delivered_to += 1;
            }
        }
        self.mid_line = !ends_line;
    }

    /// SPEC 2: more than `max` of either field is a loop.
    pub fn too_many(&self, max: u64) -> bool {
        self.received > max || self.delivered_to > max
    }
}

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(lines: &[&str]) -> HopCounter {
        let mut h = HopCounter::default();
        for l in lines {
            h.piece(l.as_bytes(), true);
        }
        h
    }

    #[test]
    fn counts_only_the_header_block() {
        let h = count(&[
            "Received: a",
            "\tcontinued",
            "RECEIVED: b",
            "Delivered-To: x",
            "X-Received: not one",
            "",
            "Received: in the body",
        ]);
        assert_eq!((h.received, h.delivered_to), (2, 1));
        assert!(h.too_many(1));
        assert!(!h.too_many(2));
    }

    #[test]
    fn a_split_line_counts_once() {
        let mut h = HopCounter::default();
        h.piece(b"Received: long", false);
        h.piece(b"Received: still the same line", true);
        assert_eq!(h.received, 1);
    }
}
