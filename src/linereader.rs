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
    /// The last command line ended in CRLF (not a bare LF).
    command_crlf: bool,
    /// In DATA: only CRLF `.` CRLF ends the message (the DATA line ended in CRLF; SPEC 3).
    strict_end: bool,
    /// In DATA: the line before the current one ended in CRLF.
    after_crlf: bool,
    /// In DATA: lines of this message that ended in a bare LF.
    bare_lfs: u64,
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
            command_crlf: true,
            strict_end: true,
            after_crlf: true,
            bare_lfs: 0,
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

    /// Throws away everything buffered and not yet parsed; returns how many bytes that was.
    /// SPEC 3.1: at the switch to TLS, so that nothing sent in clear is read inside it.
    pub fn discard(&mut self) -> usize {
        let dropped = self.end - self.start;
        self.start = 0;
        self.end = 0;
        self.discarding = false;
        dropped
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
                    let (line, crlf) = strip_cr(&self.buf[line_start..line_start + i]);
                    self.command_crlf = crlf;
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

    /// Prepares for DATA, right after the `DATA` command line was taken: the first byte
    /// after the `354` begins a line. How that line ended decides how the message may end.
    pub fn start_data(&mut self) {
        self.at_line_start = true;
        self.strict_end = self.command_crlf;
        self.after_crlf = self.command_crlf;
        self.bare_lfs = 0;
    }

    /// Lines of the current (or last) message that ended in a bare LF: they were kept as
    /// lines, but a relay in front of us may not have seen them as line ends (SPEC 3).
    pub fn bare_lfs(&self) -> u64 {
        self.bare_lfs
    }

    /// The next piece of the message, or `None` when more input is needed.
    pub fn data(&mut self) -> Option<DataPiece<'_>> {
        let avail = &self.buf[self.start..self.end];
        let full = self.start == 0 && self.end == self.buf.len();
        match crate::sys::memchr(b'\n', avail) {
            Some(i) => {
                let line_start = self.start;
                self.start += i + 1;
                let (mut line, crlf) = strip_cr(&self.buf[line_start..line_start + i]);
                let at_line_start = std::mem::replace(&mut self.at_line_start, true);
                let after_crlf = std::mem::replace(&mut self.after_crlf, crlf);
                if at_line_start && line == b"." {
                    // SPEC 3, SMTP smuggling: a lone dot ends the message only where every
                    // reading of the stream agrees. After a CRLF `DATA` that is CRLF `.`
                    // CRLF; after a bare-LF `DATA` (an old client) any line end will do.
                    if !self.strict_end || (after_crlf && crlf) {
                        return Some(DataPiece::End);
                    }
                    // Not an end: the lone dot is content, kept as it came.
                } else if at_line_start {
                    line = line.strip_prefix(b".").unwrap_or(line);
                }
                self.bare_lfs += u64::from(!crlf);
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

/// The line without a final CR, and whether there was one.
fn strip_cr(line: &[u8]) -> (&[u8], bool) {
    match line.strip_suffix(b"\r") {
        Some(l) => (l, true),
        None => (line, false),
    }
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

    /// Un-stuffed message text with CRLF line ends, and whether the end dot came, after a
    /// `DATA` command that ended in CRLF.
    fn message(input: &[u8], chunk: usize) -> (Vec<u8>, bool, Vec<u8>) {
        message_after(b"DATA\r\n", input, chunk)
    }

    /// The same after the `data` command line (`DATA\r\n` or `DATA\n`).
    fn message_after(data: &[u8], input: &[u8], chunk: usize) -> (Vec<u8>, bool, Vec<u8>) {
        let mut r = LineReader::new();
        r.push(data);
        assert_eq!(r.command(), Some(CommandLine::Line(b"DATA")));
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
    fn bare_lf_dot_ends_data_after_a_bare_lf_data() {
        let (msg, ended, _) = message_after(b"DATA\n", b"x\n.\n", 1);
        assert!(ended);
        assert_eq!(msg, b"x\r\n");
        let (msg, ended, _) = message_after(b"DATA\n", b"x\r\n.\r\n", 1);
        assert!(ended);
        assert_eq!(msg, b"x\r\n");
    }

    /// SPEC 3, SMTP smuggling (CVE-2023-51764 class): after a CRLF `DATA`, only CRLF `.`
    /// CRLF ends the message; the other dot lines are content and the smuggled commands
    /// behind them stay inside the message.
    #[test]
    fn smuggling_dot_lines_are_content_after_a_crlf_data() {
        for (input, content) in [
            (
                &b"a\n.\nMAIL\r\n.\r\nQUIT\r\n"[..],
                &b"a\r\n.\r\nMAIL\r\n"[..],
            ),
            (b"a\r\n.\nMAIL\r\n.\r\nQUIT\r\n", b"a\r\n.\r\nMAIL\r\n"),
            (b"a\n.\r\nMAIL\r\n.\r\nQUIT\r\n", b"a\r\n.\r\nMAIL\r\n"),
            (b".\nMAIL\r\n.\r\nQUIT\r\n", b".\r\nMAIL\r\n"),
            (b"a\r.\r\n.\r\nQUIT\r\n", b"a\r.\r\n"),
        ] {
            for chunk in [1, 2, 3, 64] {
                let (msg, ended, tail) = message(input, chunk);
                assert!(ended, "{input:?}");
                assert_eq!(msg, content, "{input:?} in chunks of {chunk}");
                assert_eq!(tail, b"QUIT\r\n", "{input:?}");
            }
        }
    }

    /// Reads one message after a `DATA` command in `input`; true when its dot came.
    fn read_message(r: &mut LineReader, input: &[u8]) -> bool {
        r.push(input);
        assert_eq!(r.command(), Some(CommandLine::Line(b"DATA")));
        r.start_data();
        while let Some(piece) = r.data() {
            if piece == DataPiece::End {
                return true;
            }
        }
        false
    }

    #[test]
    fn bare_lfs_are_counted_per_message() {
        let mut r = LineReader::new();
        assert!(read_message(&mut r, b"DATA\r\na\nb\r\n.\nc\r\n.\r\n"));
        assert_eq!(r.bare_lfs(), 2);
        assert!(read_message(&mut r, b"DATA\r\nx\r\n.\r\n"));
        assert_eq!(r.bare_lfs(), 0);
        assert!(read_message(&mut r, b"DATA\nx\ny\n.\n"));
        assert_eq!(r.bare_lfs(), 2, "the end line is not counted");
    }

    #[test]
    fn crlf_dot_after_a_long_line_in_pieces_ends_data() {
        let mut input = vec![b'z'; BUF_SIZE + 10];
        input.extend_from_slice(b"\r\n.\r\n");
        let (msg, ended, _) = message(&input, 4096);
        assert!(ended);
        assert_eq!(msg.len(), BUF_SIZE + 12);
        let mut input = vec![b'z'; BUF_SIZE + 10];
        input.extend_from_slice(b"\n.\r\n");
        let (_, ended, _) = message(&input, 4096);
        assert!(
            !ended,
            "a bare LF before the dot line must not end the message"
        );
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
