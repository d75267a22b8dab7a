//! Where the texts of the rules live, and the escapes of SPEC 5.
//!
//! This module owns [`Span`], the place of one text (a pattern, a RESPONSE, an ENVIRONMENT
//! field ...) in the rules text, the decoding of escapes, and finding lines in the text. The
//! rules text ([`Text`]) is the rules file as read, then (spans past its end) the
//! decoded copies of the patterns that had escapes, kept in a string of their own (the other
//! fields are decoded when their rule is applied, see `tail.rs`).
//!
//! Why: a front end loads the rules file in every session (one process per connection), so a
//! 10,000-line file must load in well under a millisecond. A `String` per field, and a
//! `free` per field when the session ends, cost more than that by themselves. So a field
//! without escapes (nearly all of them) is a span of the file; a field with escapes is
//! decoded onto the end of one string; and dropping the rules frees all their texts at once.
//!
//! Escapes, as in mailfront's `plugin-mailrules.c`: `\n` newline, `\` with 1 to 3 octal
//! digits (ASCII only; mailfront turned the others into NUL), any other `\c` is `c` (so `\:`,
//! `\\`, `\,`, `\"`); a `\` at the end of the field is an error. Control characters other
//! than tab and newline are refused, so a rule cannot put a CR or NUL into a reply or header.

use std::borrow::Cow;

/// Spans are 32-bit, which keeps a rule small. The decoded copies are never longer than the
/// fields they come from, so a file under this size keeps the whole text under 4 GiB.
pub(crate) const MAX_FILE_LEN: usize = (u32::MAX / 2) as usize;

/// Bytes `start..start + len` of the rules text; always on character boundaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    len: u32,
}

impl Span {
    #[inline(always)]
    fn new(start: usize, len: usize) -> Span {
        // Within MAX_FILE_LEN * 2 (see above): the conversions lose nothing. Plain casts: a
        // span is made several times for every line of a large file.
        debug_assert!(start + len <= 2 * MAX_FILE_LEN);
        Span {
            start: start as u32,
            len: len as u32,
        }
    }

    pub(crate) fn get(self, text: &str) -> &str {
        let start = self.start as usize;
        &text[start..start + self.len as usize]
    }

    /// All of `text` (tests build patterns alone).
    #[cfg(test)]
    pub(crate) fn whole(text: &str) -> Span {
        Span::new(0, text.len())
    }

    pub(crate) fn start(self) -> u32 {
        self.start
    }

    pub(crate) fn len(self) -> usize {
        self.len as usize
    }

    /// Bytes `from..to` of this span (character boundaries of its text).
    pub(crate) fn part(self, from: usize, to: usize) -> Span {
        debug_assert!(from <= to && to <= self.len());
        Span::new(self.start as usize + from, to - from)
    }
}

/// The rules text as lookups read it: the file, then the decoded copies of the fields with
/// escapes, whose spans start past the end of the file. Two parts, not one string: the file
/// may be a `sys::MappedText`, which cannot grow.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Text<'a> {
    file: &'a str,
    decoded: &'a str,
}

impl<'a> Text<'a> {
    pub(crate) fn new(file: &'a str, decoded: &'a str) -> Text<'a> {
        Text { file, decoded }
    }

    /// The text of `span`.
    #[inline]
    pub(crate) fn get(self, span: Span) -> &'a str {
        match (span.start as usize).checked_sub(self.file.len()) {
            None => span.get(self.file),
            Some(start) => &self.decoded[start..start + span.len()],
        }
    }

    /// The file alone: the tails of the rules, and line numbers, are there.
    pub(crate) fn file(self) -> &'a str {
        self.file
    }
}

/// A text with nothing decoded (tests match patterns alone).
impl<'a> From<&'a str> for Text<'a> {
    fn from(file: &'a str) -> Text<'a> {
        Text::new(file, "")
    }
}

/// The rules text while the file is parsed: spans name bytes of `file`, or of `decoded`
/// placed after it. [`TextBuilder::into_decoded`] gives what to append to the file.
pub(crate) struct TextBuilder<'a> {
    file: &'a str,
    decoded: String,
}

impl<'a> TextBuilder<'a> {
    pub(crate) fn new(file: &'a str) -> TextBuilder<'a> {
        TextBuilder {
            file,
            decoded: String::new(),
        }
    }

    /// The text of `span`.
    #[inline]
    pub(crate) fn get(&self, span: Span) -> &str {
        self.text().get(span)
    }

    /// The text so far.
    pub(crate) fn text(&self) -> Text<'_> {
        Text::new(self.file, &self.decoded)
    }

    /// The span of `part`, which must be a slice of the file (an empty one too: its place
    /// counts, see `Rule::tail`).
    #[inline]
    pub(crate) fn span_of(&self, part: &str) -> Span {
        // Slices of one string: the distance between their addresses is the offset.
        let start = (part.as_ptr() as usize).wrapping_sub(self.file.as_ptr() as usize);
        debug_assert!(
            start + part.len() <= self.file.len(),
            "not a slice of the file"
        );
        Span::new(start, part.len())
    }

    /// A field of the file with its escapes resolved, as [`decode`] does.
    #[inline]
    pub(crate) fn field(&mut self, raw: &'a str, plain: bool) -> Result<Span, String> {
        if plain {
            return Ok(self.span_of(raw));
        }
        match decode_escapes(raw)? {
            Cow::Borrowed(text) => Ok(self.span_of(text)),
            Cow::Owned(text) => {
                let start = self.file.len() + self.decoded.len();
                self.decoded.push_str(&text);
                Ok(Span::new(start, text.len()))
            }
        }
    }

    /// The decoded fields, to append to the file: spans past the file name them.
    pub(crate) fn into_decoded(self) -> String {
        self.decoded
    }
}

/// A field with its escapes resolved; control characters refused. `plain`: the caller found
/// no `\` and no control character in `raw`.
#[inline]
pub(crate) fn decode(raw: &str, plain: bool) -> Result<Cow<'_, str>, String> {
    match plain {
        true => Ok(Cow::Borrowed(raw)),
        false => decode_escapes(raw),
    }
}

/// [`decode`] of a field that may have escapes or control characters: the rare case.
#[cold]
fn decode_escapes(raw: &str) -> Result<Cow<'_, str>, String> {
    if !raw.contains('\\') {
        check_text(raw)?;
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len());
    unescape_into(raw, &mut out)?;
    check_text(&out)?;
    Ok(Cow::Owned(out))
}

/// The line that starts at byte `at` of `file`, without its `\n`; `None` if `at` is not
/// a character boundary of it.
pub(crate) fn line_at(file: &str, at: u32) -> Option<&str> {
    let rest = file.get(at as usize..)?;
    Some(&rest[..line_end(rest.as_bytes())])
}

/// The text from byte `at` of `text` to the end of its line, trimmed at the end as lines are
/// (`at` is a character boundary).
pub(crate) fn rest_of_line(text: &str, at: u32) -> &str {
    let rest = &text[at as usize..];
    rest[..line_end(rest.as_bytes())].trim_end()
}

/// The index of the first `\n` of `bytes`, or its length. glibc's memchr: for the lines that
/// need only their end (comments, blank lines, lines of 64 bytes or more: `classes.rs`), and
/// for rules read again at lookup.
pub(crate) fn line_end(bytes: &[u8]) -> usize {
    crate::sys::memchr(b'\n', bytes).unwrap_or(bytes.len())
}

/// The number of the line (from 1) that byte `at` of `text` is on.
pub(crate) fn line_number(text: &str, at: u32) -> usize {
    let before = &text.as_bytes()[..at as usize];
    before.iter().filter(|&&b| b == b'\n').count() + 1
}

/// Decodes the character at byte `i` of `raw`: returns it and the index of the next one.
fn decode_at(raw: &str, i: usize) -> Result<(char, usize), String> {
    let at = |i: usize| raw.get(i..).and_then(|rest| rest.chars().next());
    let Some(c) = at(i) else {
        return Err("no character to decode".to_string());
    };
    if c != '\\' {
        return Ok((c, i + c.len_utf8()));
    }
    let Some(next) = at(i + 1) else {
        return Err("'\\' at the end of the line".to_string());
    };
    if next == 'n' {
        return Ok(('\n', i + 2));
    }
    let Some(first) = next.to_digit(8) else {
        return Ok((next, i + 1 + next.len_utf8()));
    };
    // Up to three octal digits in all; digits are ASCII, one byte each.
    let mut value = first;
    let mut end = i + 2;
    while end < i + 4 {
        match raw
            .as_bytes()
            .get(end)
            .and_then(|&b| char::from(b).to_digit(8))
        {
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

/// Appends `raw` with its escapes resolved to `out`.
pub(crate) fn unescape_into(raw: &str, out: &mut String) -> Result<(), String> {
    let mut i = 0;
    while i < raw.len() {
        let (c, next) = decode_at(raw, i)?;
        out.push(c);
        i = next;
    }
    Ok(())
}

/// Refuses control characters other than tab and newline.
pub(crate) fn check_text(text: &str) -> Result<(), String> {
    // Control characters are ASCII, and bytes of multi-byte UTF-8 characters never are.
    match text
        .bytes()
        .find(|&b| b.is_ascii_control() && b != b'\t' && b != b'\n')
    {
        Some(b) => Err(format!("control character {:?} not allowed", char::from(b))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_without_escapes_are_spans_of_the_file() {
        let file = "abc:d\\:e\\101:x";
        let mut text = TextBuilder::new(file);
        let plain = text.field(&file[..3], false).expect("plain");
        assert_eq!(plain, Span::new(0, 3));
        let escaped = text.field(&file[4..12], false).expect("escaped");
        assert_eq!(escaped, Span::new(file.len(), 4));
        assert_eq!(text.get(escaped), "d:eA");
        assert_eq!(text.get(escaped.part(1, 3)), ":e");
        let empty = text.field(&file[file.len()..], true).expect("empty");
        assert_eq!(empty, Span::new(file.len(), 0));
        let whole = format!("{file}{}", text.into_decoded());
        assert_eq!((plain.get(&whole), escaped.get(&whole)), ("abc", "d:eA"));
    }

    #[test]
    fn escapes_and_their_errors() {
        let one = |raw: &'static str| {
            let mut text = TextBuilder::new(raw);
            text.field(raw, false)
                .map(|span| text.get(span).to_string())
        };
        assert_eq!(one(r"a\nb\\c\:\,\é").as_deref(), Ok("a\nb\\c:,é"));
        assert_eq!(one(r"\101\1011\72").as_deref(), Ok("AA1:"));
        assert!(one(r"\000").expect_err("NUL").contains("control"));
        assert!(one("a\rb").expect_err("CR").contains("control"));
        assert!(one(r"\377").expect_err("not ASCII").contains("ASCII"));
        assert!(one(r"ab\")
            .expect_err("lone \\")
            .contains("end of the line"));
        assert_eq!(one("tab\there").as_deref(), Ok("tab\there"));
    }
}
