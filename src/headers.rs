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
    /// Takes the next DATA piece (see [`crate::linereader::DataPiece`]): one line, the part
    /// of one, or whole lines with CRLFs inside. Only the start of a line matters; a DATA
    /// line handed on in pieces is at least 64 KiB long at its start, so a field name is
    /// never split. In the body nothing is looked at.
    pub fn piece(&mut self, bytes: &[u8], ends_line: bool) {
        if self.body {
            return;
        }
        let mut line_start = !self.mid_line;
        self.mid_line = !ends_line;
        let mut rest = bytes;
        // Line ends inside a piece are CRLF; a line itself holds no LF.
        while let Some(i) = crate::sys::memchr(b'\n', rest) {
            let line = &rest[..i];
            if line_start && self.line(line.strip_suffix(b"\r").unwrap_or(line), true) {
                return;
            }
            rest = &rest[i + 1..];
            line_start = true;
        }
        if line_start {
            self.line(rest, ends_line);
        }
    }

    /// The start of a header line; true when it is the empty line that ends the block.
    fn line(&mut self, start: &[u8], ends_line: bool) -> bool {
        if start.is_empty() && ends_line {
            self.body = true;
        } else if starts_with_ignore_case(start, b"received:") {
            self.received += 1;
        } else if starts_with_ignore_case(start, b"delivered-to:") {
            self.delivered_to += 1;
        }
        self.body
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

    #[test]
    fn lines_inside_a_piece_are_counted_up_to_the_body() {
        let mut h = HopCounter::default();
        h.piece(
            b"Received: a\r\nX: y\r\n\tReceived: no\r\nDelivered-To: b",
            true,
        );
        h.piece(
            b"received: c\r\n\r\nReceived: in the body\r\nDelivered-To: x",
            true,
        );
        h.piece(b"Received: body", true);
        assert_eq!((h.received, h.delivered_to), (2, 1));
    }

    #[test]
    fn a_piece_after_a_split_line_starts_mid_line() {
        let mut h = HopCounter::default();
        h.piece(b"X-Long: Received: not a start", false);
        h.piece(b"Received: still not\r\nReceived: a start\r\n", true);
        assert_eq!(h.received, 1);
        assert!(h.body, "the piece ended with an empty line");
    }

    /// Whole lines grouped into pieces in any way count as the lines one by one.
    #[test]
    fn grouping_lines_into_pieces_changes_nothing() {
        let lines = [
            "Received: 1",
            "Delivered-To: a",
            "received: 2",
            "\tcontinued Received: no",
            "Received:3",
            "",
            "Received: body",
            "Delivered-To: body",
        ];
        let one_by_one = count(&lines);
        for mask in 0u32..1 << (lines.len() - 1) {
            // Bit i set: line i+1 goes in the same piece as line i.
            let mut h = HopCounter::default();
            let mut piece = lines[0].to_string();
            for (i, line) in lines.iter().enumerate().skip(1) {
                if mask & 1 << (i - 1) != 0 {
                    piece.push_str("\r\n");
                    piece.push_str(line);
                } else {
                    h.piece(piece.as_bytes(), true);
                    piece = line.to_string();
                }
            }
            h.piece(piece.as_bytes(), true);
            assert_eq!(
                (h.received, h.delivered_to),
                (one_by_one.received, one_by_one.delivered_to)
            );
            assert_eq!((h.received, h.delivered_to), (3, 1), "mask {mask:b}");
        }
    }
}
