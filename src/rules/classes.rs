//! The bytes of a rules line that parsing looks for, found in one pass: bit sets over the
//! line, bit `i` for byte `i`.
//!
//! Why: the rules file is loaded in every session, and most of the time of loading a large
//! one went into looking at every byte several times over: for the end of the line, for the
//! colons between the fields, for escapes and control characters, then for the wildcards of
//! each pattern, each time with the set-up of a scan for a few bytes. Here one pass over the
//! line, sixteen bytes at a time (SSE2, which every x86-64 has), sorts its bytes into the
//! classes below at once; splitting the fields and reading the patterns then read bits
//! (`parse.rs`, `pattern.rs`, `general.rs`). A line of 64 bytes or more, rare in a large
//! file, is read byte by byte as before ([`Scanned`]); both ways give the same rules (a test
//! in `parse.rs` and the `rules` fuzz target check it). Comments and blank lines are not
//! sorted at all: [`lines`], the loader's one way through the file, only finds their end.

use super::swar;
use super::text::line_end;

/// The classes of the bytes of a line shorter than 64 bytes; no bit past its end is set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Classes {
    /// Bytes `\`, DEL, and control characters other than tab: the line is not plain (its
    /// fields need decoding or are refused, see `text.rs`) and is parsed the long way.
    pub(crate) special: u64,
    pub(crate) colon: u64,
    pub(crate) star: u64,
    /// `*`, `?` and `[`.
    pub(crate) wild: u64,
    pub(crate) at: u64,
    /// Bytes of multi-byte characters (bit 7 set): the others are ASCII.
    pub(crate) high: u64,
}

/// The bits of the first `len` bytes (`len` < 64).
fn low(len: usize) -> u64 {
    (1u64 << len) - 1
}

impl Classes {
    /// The classes of the first `len` bytes (`len` < 64).
    fn up_to(self, len: usize) -> Classes {
        let keep = low(len);
        Classes {
            special: self.special & keep,
            colon: self.colon & keep,
            star: self.star & keep,
            wild: self.wild & keep,
            at: self.at & keep,
            high: self.high & keep,
        }
    }

    /// `text`, the bytes of the line from `from` on, split at its first `N - 1` colons, as
    /// `parse::split_fields` splits a plain text.
    #[inline(always)]
    pub(crate) fn fields<'t, const N: usize>(&self, from: usize, text: &'t str) -> [&'t str; N] {
        let mut fields = [&text[text.len()..]; N];
        let mut colons = self.colon >> from;
        let (mut count, mut start) = (0, 0);
        while colons != 0 && count + 1 < N {
            let at = colons.trailing_zeros() as usize;
            fields[count] = &text[start..at];
            (count, start) = (count + 1, at + 1);
            colons &= colons - 1;
        }
        fields[count] = &text[start..];
        fields
    }

    /// The part of the line of `len` bytes from `from` on.
    pub(crate) fn part(&self, from: usize, len: usize) -> Part<'_> {
        Part {
            classes: self,
            from,
            len,
        }
    }
}

/// Some bytes of a line whose classes are known: a field, a pattern. Its bits are taken from
/// the line's when they are asked for: most are never asked for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Part<'c> {
    classes: &'c Classes,
    from: usize,
    len: usize,
}

impl Part<'_> {
    /// The same part without its first `n` bytes.
    pub(crate) fn skip(self, n: usize) -> Self {
        let n = n.min(self.len);
        Part {
            from: self.from + n,
            len: self.len - n,
            ..self
        }
    }

    /// The bits of `class` (one of the fields of [`Classes`]) in this part, bit 0 for its
    /// first byte. Lines are under 64 bytes: the shift is in range.
    fn bits(&self, class: fn(&Classes) -> u64) -> u64 {
        (class(self.classes) >> self.from) & low(self.len)
    }

    /// The classes that reading a pattern needs, of this part as a pattern.
    pub(crate) fn pattern(self) -> PatternClasses {
        PatternClasses {
            star: self.bits(|c| c.star),
            wild: self.bits(|c| c.wild),
            at: self.bits(|c| c.at),
            high: self.bits(|c| c.high),
            all: low(self.len),
        }
    }
}

/// The classes of the bytes of a pattern, bit 0 for its first byte: see [`Wildcards`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct PatternClasses {
    star: u64,
    wild: u64,
    at: u64,
    high: u64,
    /// A bit for each of its bytes.
    all: u64,
}

/// A line of a rules file as the loader reads it.
pub(crate) struct FileLine<'f> {
    /// Where it starts in the file.
    pub(crate) at: usize,
    /// Without its `\n`.
    pub(crate) text: &'f str,
    /// The classes of its bytes, for a line under 64 bytes that is not passed over.
    pub(crate) classes: Option<Classes>,
    /// A comment or a blank line: nothing to parse. Only its end was looked for, which
    /// costs less than sorting its bytes, and comments are many in a real rules file.
    pub(crate) passed_over: bool,
}

/// The lines of `file`, as `str::split('\n')` gives them but for an empty last one.
pub(crate) fn lines(file: &str) -> impl Iterator<Item = FileLine<'_>> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let rest = file.as_bytes().get(at..).filter(|rest| !rest.is_empty())?;
        let passed_over = matches!(rest[0], b'#' | b'\n');
        let (len, classes) = match passed_over {
            true => (line_end(rest), None),
            false => line(rest),
        };
        // `\n` is ASCII: `len` is a character boundary.
        let line = FileLine {
            at,
            text: &file[at..at + len],
            classes,
            passed_over,
        };
        at += len + 1;
        Some(line)
    })
}

/// The line at the start of `rest` (not empty): its length without the `\n`, and the
/// classes of its bytes if it is shorter than 64 bytes.
#[inline(always)]
fn line(rest: &[u8]) -> (usize, Option<Classes>) {
    let (newline, classes) = match rest.first_chunk::<64>() {
        Some(window) => classify(window),
        None => {
            // The last bytes of the file: a copy padded with NULs (past the end: masked).
            let mut window = [0u8; 64];
            window[..rest.len()].copy_from_slice(rest);
            classify(&window)
        }
    };
    let len = match newline {
        0 if rest.len() >= 64 => return (64 + line_end(&rest[64..]), None),
        0 => rest.len(),
        bits => bits.trailing_zeros() as usize,
    };
    (len, Some(classes.up_to(len)))
}

/// The newlines of `window` and the classes of its bytes, up to the first newline at least.
#[inline(always)]
fn classify(window: &[u8; 64]) -> (u64, Classes) {
    let mut newline = 0;
    let mut all = Classes::default();
    for (i, chunk) in window.chunks_exact(16).enumerate() {
        let mut sixteen = [0u8; 16];
        sixteen.copy_from_slice(chunk);
        let (newlines, classes) = classify16(&sixteen);
        let shift = 16 * i;
        let put = |into: &mut u64, bits: u16| *into |= u64::from(bits) << shift;
        put(&mut all.special, classes[0]);
        put(&mut all.colon, classes[1]);
        put(&mut all.star, classes[2]);
        put(&mut all.wild, classes[3]);
        put(&mut all.at, classes[4]);
        put(&mut all.high, classes[5]);
        // Most lines end in the first two chunks: no need to look further.
        if newlines != 0 {
            newline = u64::from(newlines) << shift;
            break;
        }
    }
    (newline, all)
}

/// The newlines of sixteen bytes, and their classes in the order of the fields of
/// [`Classes`].
#[inline(always)]
fn classify16(bytes: &[u8; 16]) -> (u16, [u16; 6]) {
    let x = crate::sys::Bytes16::new(bytes);
    let special = (x.at_most(0x1f) & !x.eq(b'\t')) | x.eq(b'\\') | x.eq(0x7f);
    let star = x.eq(b'*');
    let wild = star | x.eq(b'?') | x.eq(b'[');
    let classes = [special, x.eq(b':'), star, wild, x.eq(b'@'), x.high()];
    (x.eq(b'\n'), classes)
}

/// [`classify16`] a byte at a time: the reference in tests.
#[cfg(test)]
fn classify16_bytes(bytes: &[u8; 16]) -> (u16, [u16; 6]) {
    let mut newline = 0;
    let mut classes = [0u16; 6];
    for (i, &b) in bytes.iter().enumerate() {
        let bit = 1u16 << i;
        let special = (b.is_ascii_control() && b != b'\t') || b == b'\\';
        let tests = [
            special,
            b == b':',
            b == b'*',
            matches!(b, b'*' | b'?' | b'['),
            b == b'@',
            !b.is_ascii(),
        ];
        for (class, hit) in classes.iter_mut().zip(tests) {
            if hit {
                *class |= bit;
            }
        }
        if b == b'\n' {
            newline |= bit;
        }
    }
    (newline, classes)
}

/// What reading a pattern needs to know of where its wildcards are: from the bits of
/// [`Classes`], or by looking at the bytes ([`Scanned`]). `bytes` is the pattern.
pub(crate) trait Wildcards {
    /// The number of `*` it starts with.
    fn leading_stars(&self, bytes: &[u8]) -> usize;
    /// The first `*`, `?` or `[` from `from` on, or the length.
    fn next_wildcard(&self, bytes: &[u8], from: usize) -> usize;
    /// Whether every byte from `from` on is `*`.
    fn only_stars(&self, bytes: &[u8], from: usize) -> bool;
    /// Whether an `@` is at or after `from`.
    fn has_at(&self, bytes: &[u8], from: usize) -> bool;
    /// The first and the last ASCII byte of `bytes[from..to]`, if any.
    fn ascii_ends(&self, bytes: &[u8], from: usize, to: usize) -> Option<(u8, u8)>;
}

/// The bytes of a pattern looked at one by one, or eight at a time.
pub(crate) struct Scanned;

impl Wildcards for Scanned {
    fn leading_stars(&self, bytes: &[u8]) -> usize {
        bytes.iter().take_while(|&&b| b == b'*').count()
    }

    #[inline(always)]
    fn next_wildcard(&self, bytes: &[u8], from: usize) -> usize {
        let wildcards = |x: u64| {
            swar::zero_bytes(x ^ swar::splat(b'*'))
                | swar::zero_bytes(x ^ swar::splat(b'?'))
                | swar::zero_bytes(x ^ swar::splat(b'['))
        };
        swar::find(bytes, from, wildcards, |b| matches!(b, b'*' | b'?' | b'['))
    }

    fn only_stars(&self, bytes: &[u8], from: usize) -> bool {
        bytes[from..].iter().all(|&b| b == b'*')
    }

    fn has_at(&self, bytes: &[u8], from: usize) -> bool {
        bytes[from..].contains(&b'@')
    }

    fn ascii_ends(&self, bytes: &[u8], from: usize, to: usize) -> Option<(u8, u8)> {
        let run = &bytes[from..to];
        let first = *run.iter().find(|b| b.is_ascii())?;
        let last = *run.iter().rev().find(|b| b.is_ascii())?;
        Some((first, last))
    }
}

/// The bits past `from`, as a number of positions from `from` (shifts of 64 give none).
fn past(bits: u64, from: usize) -> u64 {
    bits.checked_shr(from as u32).unwrap_or(0)
}

impl Wildcards for PatternClasses {
    #[inline(always)]
    fn leading_stars(&self, _: &[u8]) -> usize {
        self.star.trailing_ones() as usize
    }

    #[inline(always)]
    fn next_wildcard(&self, bytes: &[u8], from: usize) -> usize {
        match past(self.wild, from) {
            0 => bytes.len(),
            bits => from + bits.trailing_zeros() as usize,
        }
    }

    #[inline(always)]
    fn only_stars(&self, _: &[u8], from: usize) -> bool {
        past(!self.star & self.all, from) == 0
    }

    #[inline(always)]
    fn has_at(&self, _: &[u8], from: usize) -> bool {
        past(self.at, from) != 0
    }

    #[inline(always)]
    fn ascii_ends(&self, bytes: &[u8], from: usize, to: usize) -> Option<(u8, u8)> {
        // `to` is at most the length, under 64.
        let ascii = !self.high & low(to) & !low(from);
        if ascii == 0 {
            return None;
        }
        let first = bytes[ascii.trailing_zeros() as usize];
        let last = bytes[63 - ascii.leading_zeros() as usize];
        Some((first, last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse2_agrees_with_bytes() {
        let alphabet = [
            b'a', b'\n', b':', b'*', b'?', b'[', b'@', b'\\', b'\t', 0, 0x1f, 0x20, 0x7f, 0x80,
            0xc3, 0xff, b'!',
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            let mut bytes = [0u8; 16];
            for b in &mut bytes {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = alphabet[(state % alphabet.len() as u64) as usize];
            }
            assert_eq!(classify16(&bytes), classify16_bytes(&bytes), "{bytes:?}");
        }
    }

    /// The lines of `text` as the loader reads them.
    fn texts(text: &str) -> Vec<&str> {
        lines(text).map(|line| line.text).collect()
    }

    #[test]
    fn lines_split_at_newlines() {
        let text = "a\nbb\r\n\n0123456789abcdef\n\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\ntail";
        let want: Vec<&str> = text.split('\n').collect();
        assert_eq!(texts(text), want);
        assert_eq!(texts("x\n"), ["x"]);
        assert_eq!(texts(""), Vec::<&str>::new());
        for n in [1, 20, 31, 32, 33, 40, 63, 64, 65, 100] {
            let line = "\u{e9}".repeat(n);
            let text = format!("{line}\n{line}\n\n{line}");
            assert_eq!(
                texts(&text),
                [line.as_str(), line.as_str(), "", line.as_str()]
            );
        }
    }

    #[test]
    fn lines_and_their_classes() {
        let all: Vec<FileLine> = lines("d*:a@b\n\nk[x]?:*\u{e9}\n# a: *\nlast").collect();
        let got: Vec<(usize, &str, bool)> =
            all.iter().map(|l| (l.at, l.text, l.passed_over)).collect();
        assert_eq!(
            got,
            [
                (0, "d*:a@b", false),
                (7, "", true),
                (8, "k[x]?:*\u{e9}", false),
                (18, "# a: *", true),
                (25, "last", false)
            ]
        );
        let c = all[0].classes.expect("short line");
        assert_eq!(
            (c.colon, c.star, c.at, c.special),
            (0b100, 0b10, 0b10000, 0)
        );
        assert!(all[1].classes.is_none() && all[3].classes.is_none());
        let c = all[2].classes.expect("short line");
        assert_eq!(
            (c.wild, c.star, c.high),
            (0b101_0010, 0b100_0000, 0b1_1000_0000)
        );
        assert_eq!(all[4].classes.expect("short").colon, 0);
        // 64 bytes and more: no classes; the length still right.
        let one = |text: &str| line(text.as_bytes());
        assert_eq!(one(&format!("{}\ny", "x".repeat(70))), (70, None));
        let sixty_three = one(&format!("{}\n", "x".repeat(63)));
        assert!(sixty_three.0 == 63 && sixty_three.1.is_some());
        assert_eq!(one(&"x".repeat(64)), (64, None));
        assert_eq!(one("\\\u{1}\t\u{7f}").1.expect("short").special, 0b1011);
    }
}
