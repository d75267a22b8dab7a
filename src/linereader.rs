//! Bounded reading of client input: command lines (CRLF or bare LF) and DATA lines,
//! dot-unstuffed. The reader is a buffer with two parsers over it; it never grows, so
//! memory stays the same whatever the client sends (SPEC 3, last points). Filling the buffer
//! from a descriptor is the driver's business ([`LineReader::fill`] takes the bytes).

/// Size of the input buffer: large enough that DATA costs one read per 64 KiB, and the
/// largest piece of a DATA line handed on at once.
pub const BUF_SIZE: usize = 64 * 1024;

/// SPEC 3: a command line longer than this (line end excluded) is refused with `500 5.5.2`
/// and discarded; RFC 5321 asks for 512, extensions make lines longer, 4096 covers them.
pub const MAX_COMMAND: usize = 4096;

/// One command line, or the news that one was too long (its bytes are already gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandLine<'a> {
    Line(&'a [u8]),
    TooLong,
}

/// A piece of the message in DATA.
#[derive(Debug, PartialEq, Eq)]
pub enum DataPiece<'a> {
    /// Message bytes without line end, leading dot removed. `ends_line`: a line end
    /// follows (the consumer writes CRLF); otherwise the line goes on in the next piece.
    Text { bytes: &'a [u8], ends_line: bool },
    /// The line holding only a dot.
    End,
}

pub struct LineReader {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// Inside an over-long command line whose rest is being thrown away.
    discarding: bool,
    /// In DATA: the next byte begins a line (so a dot there is special).
    at_line_start: bool,
}

impl Default for LineReader {
    fn default() -> Self {
        LineReader::new()
    }
}

impl LineReader {
    pub fn new() -> LineReader {
        LineReader {
            buf: vec![0; BUF_SIZE].into_boxed_slice(),
            start: 0,
            end: 0,
            discarding: false,
            at_line_start: true,
        }
    }

    /// Space for the next read, after moving unparsed bytes to the front. The parsers
    /// guarantee it is never empty when they ask for more input.
    pub fn space(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }

    /// Records that `n` bytes were read into [`LineReader::space`].
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Appends bytes (tests and fuzzing); returns how many fitted.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        let space = self.space();
        let n = bytes.len().min(space.len());
        space[..n].copy_from_slice(&bytes[..n]);
        self.filled(n);
        n
    }

    /// The next command line, without its line end, or `None` when more input is needed.
    pub fn command(&mut self) -> Option<CommandLine<'_>> {
        loop {
            let avail = &self.buf[self.start..self.end];
            let newline = crate::sys::memchr(b'\n', avail);
            if self.discarding {
                match newline {
                    Some(i) => {
                        self.start += i + 1;
                        self.discarding = false;
                        continue;
                    }
                    None => {
                        self.start = self.end;
                        return None;
                    }
                }
            }
            return match newline {
                Some(i) => {
                    let line_start = self.start;
                    self.start += i + 1;
                    let line = strip_cr(&self.buf[line_start..line_start + i]);
                    if line.len() > MAX_COMMAND {
                        Some(CommandLine::TooLong)
                    } else {
                        Some(CommandLine::Line(line))
                    }
                }
                // +1: the CR of a CRLF may already be here while the LF is not.
                None if avail.len() > MAX_COMMAND + 1 => {
                    self.start = self.end;
                    self.discarding = true;
                    Some(CommandLine::TooLong)
                }
                None => None,
            };
        }
    }

    /// Prepares for DATA: the first byte after the `354` begins a line.
    pub fn start_data(&mut self) {
        self.at_line_start = true;
    }

    /// The next piece of the message, or `None` when more input is needed.
    pub fn data(&mut self) -> Option<DataPiece<'_>> {
        let avail = &self.buf[self.start..self.end];
        let full = self.start == 0 && self.end == self.buf.len();
        match crate::sys::memchr(b'\n', avail) {
            Some(i) => {
                let line_start = self.start;
                self.start += i + 1;
                let mut line = strip_cr(&self.buf[line_start..line_start + i]);
                if self.at_line_start {
                    if line == b"." {
                        return Some(DataPiece::End);
                    }
                    line = line.strip_prefix(b".").unwrap_or(line);
                }
                self.at_line_start = true;
                Some(DataPiece::Text {
                    bytes: line,
                    ends_line: true,
                })
            }
            None => {
                // Without a line end, a line start is decided only once the buffer is
                // full: then the line is longer than any terminator and is passed on in
                // pieces. Mid-line, whatever is here can go, but for a last CR that may
                // be half of a CRLF.
                if self.at_line_start && !full {
                    return None;
                }
                let keep = usize::from(avail.last() == Some(&b'\r'));
                let mut take = &self.buf[self.start..self.end - keep];
                if take.is_empty() {
                    return None;
                }
                if self.at_line_start {
                    take = take.strip_prefix(b".").unwrap_or(take);
                }
                self.start = self.end - keep;
                self.at_line_start = false;
                Some(DataPiece::Text {
                    bytes: take,
                    ends_line: false,
                })
            }
        }
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commands(input: &[u8]) -> Vec<Result<Vec<u8>, ()>> {
        let mut r = LineReader::new();
        let mut out = vec![];
        for chunk in input.chunks(7) {
            let mut rest = chunk;
            while !rest.is_empty() {
                let n = r.push(rest);
                rest = &rest[n..];
                while let Some(c) = r.command() {
                    out.push(match c {
                        CommandLine::Line(l) => Ok(l.to_vec()),
                        CommandLine::TooLong => Err(()),
                    });
                }
            }
        }
        out
    }

    /// Un-stuffed message text with CRLF line ends, and whether the end dot came.
    fn message(input: &[u8], chunk: usize) -> (Vec<u8>, bool, Vec<u8>) {
        let mut r = LineReader::new();
        r.start_data();
        let mut msg = vec![];
        let mut rest = input;
        loop {
            while let Some(p) = r.data() {
                match p {
                    DataPiece::End => {
                        let left = r.buf[r.start..r.end].to_vec();
                        let mut tail = left;
                        tail.extend_from_slice(rest);
                        return (msg, true, tail);
                    }
                    DataPiece::Text { bytes, ends_line } => {
                        msg.extend_from_slice(bytes);
                        if ends_line {
                            msg.extend_from_slice(b"\r\n");
                        }
                    }
                }
            }
            if rest.is_empty() {
                return (msg, false, vec![]);
            }
            let take = rest.len().min(chunk);
            let n = r.push(&rest[..take]);
            assert!(n > 0, "reader asked for input with a full buffer");
            rest = &rest[n..];
        }
    }

    #[test]
    fn crlf_and_bare_lf_commands() {
        assert_eq!(
            commands(b"HELO a\r\nNOOP\nQUIT\r\n"),
            vec![
                Ok(b"HELO a".to_vec()),
                Ok(b"NOOP".to_vec()),
                Ok(b"QUIT".to_vec())
            ]
        );
    }

    #[test]
    fn long_command_is_refused_once_and_discarded() {
        let mut input = vec![b'x'; 100_000];
        input.extend_from_slice(b"\r\nNOOP\r\n");
        assert_eq!(commands(&input), vec![Err(()), Ok(b"NOOP".to_vec())]);
    }

    #[test]
    fn command_at_the_limit_is_accepted() {
        let mut input = vec![b'x'; MAX_COMMAND];
        input.extend_from_slice(b"\r\n");
        let mut over = vec![b'x'; MAX_COMMAND + 1];
        over.extend_from_slice(b"\n");
        assert_eq!(commands(&input), vec![Ok(vec![b'x'; MAX_COMMAND])]);
        assert_eq!(commands(&over), vec![Err(())]);
    }

    #[test]
    fn data_unstuffs_and_normalises() {
        let (msg, ended, tail) = message(b"a\n..b\r\n.c\r\n\r\n.\r\nQUIT\r\n", 3);
        assert!(ended);
        assert_eq!(msg, b"a\r\n.b\r\nc\r\n\r\n");
        assert_eq!(tail, b"QUIT\r\n");
    }

    #[test]
    fn bare_lf_dot_ends_data() {
        let (msg, ended, _) = message(b"x\n.\n", 1);
        assert!(ended);
        assert_eq!(msg, b"x\r\n");
    }

    #[test]
    fn dot_with_trailing_text_is_not_the_end() {
        let (msg, ended, _) = message(b".. \r\n. \r\n", 2);
        assert!(!ended);
        assert_eq!(msg, b". \r\n \r\n");
    }

    #[test]
    fn long_data_line_passes_in_pieces_with_crlf_split() {
        let mut input = vec![b'.'];
        input.extend(std::iter::repeat_n(b'y', 3 * BUF_SIZE));
        input.extend_from_slice(b"\r\n.\r\n");
        for chunk in [BUF_SIZE, 1000, BUF_SIZE - 1] {
            let (msg, ended, _) = message(&input, chunk);
            assert!(ended);
            assert_eq!(msg.len(), 3 * BUF_SIZE + 2);
            assert!(msg.iter().take(3 * BUF_SIZE).all(|&b| b == b'y'));
            assert!(msg.ends_with(b"y\r\n"));
        }
    }

    #[test]
    fn lone_cr_inside_a_line_is_kept() {
        let (msg, ended, _) = message(b"a\rb\r\r\n.\r\n", 1);
        assert!(ended);
        assert_eq!(msg, b"a\rb\r\r\n");
    }
}
