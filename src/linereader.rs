//! Bounded reading of client input: command lines (CRLF or bare LF) and DATA lines,
//! dot-unstuffed. The reader is a buffer with two parsers over it; it never grows, so
//! memory stays the same whatever the client sends (SPEC 3, last points). Filling the buffer
//! from a descriptor is the driver's business ([`LineReader::fill`] takes the bytes).

/// Size of the input buffer: large enough that DATA costs one read per 128 KiB, and the
/// largest piece of a DATA line handed on at once. 128 KiB is what `cat` reads at a time:
/// half the system calls of 64 KiB; bench/run's 100 MiB message went through echo at
/// 0.73-0.74 of cat's rate with 64 KiB and 0.75-0.78 with this, in alternating runs
/// (256 KiB gained nothing more).
pub const BUF_SIZE: usize = 128 * 1024;

/// The first read of a session: a page. The buffer's initialised part doubles after each
/// read that filled it, up to [`BUF_SIZE`], so that a short session zeroes (and faults in)
/// one page, not the whole buffer.
const FIRST_READ: usize = 4096;

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
    /// Message bytes without final line end, leading dot removed. `ends_line`: a line end
    /// follows (the consumer writes CRLF); otherwise the line goes on in the next piece.
    /// A piece may hold several whole lines: their line ends inside it are CRLF, and none
    /// of the lines after the first began with a dot (a run of plain lines passes at once).
    Text { bytes: &'a [u8], ends_line: bool },
    /// The line holding only a dot.
    End,
}

pub struct LineReader {
    /// Capacity [`BUF_SIZE`], never more; its length is the part initialised so far.
    buf: Vec<u8>,
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
            buf: Vec::with_capacity(BUF_SIZE),
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
        let filled_up = self.end == self.buf.len();
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if filled_up && self.buf.len() < BUF_SIZE {
            let len = (2 * self.buf.len()).clamp(FIRST_READ, BUF_SIZE);
            self.buf.resize(len, 0);
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
        let full = self.start == 0 && self.end == BUF_SIZE;
        match crate::sys::memchr(b'\n', avail) {
            Some(i) => {
                let mut text_start = self.start;
                self.start += i + 1;
                let crlf = i > 0 && self.buf[self.start - 2] == b'\r';
                let mut text_end = self.start - 1 - usize::from(crlf);
                let line = &self.buf[text_start..text_end];
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
                } else if at_line_start && line.first() == Some(&b'.') {
                    text_start += 1;
                }
                self.bare_lfs += u64::from(!crlf);
                if crlf {
                    // The plain lines behind a CRLF go with this one, their CRLFs inside:
                    // none starts with a dot or ends in a bare LF, so each would have been
                    // handed on whole and unchanged, and none can be the end (SPEC 3).
                    let w = &self.buf[self.start - 1..self.end];
                    let run = crate::sys::with_avx2(|| plain_run(w));
                    if run > 0 {
                        self.start += run;
                        text_end = self.start - 2;
                    }
                }
                Some(DataPiece::Text {
                    bytes: &self.buf[text_start..text_end],
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

/// Bytes scanned at a time by [`plain_run`]: a block without anything unusual costs no
/// branch per byte, and the compiler turns the loop into vector instructions.
const BLOCK: usize = 512;

/// `w` is a line end (LF) and the input after it. Returns the length after that LF of the
/// longest run of whole lines that each end in CRLF and none of which starts with a dot:
/// lines that [`LineReader::data`] would hand on one by one, unchanged, without an end.
#[inline(always)]
fn plain_run(w: &[u8]) -> usize {
    debug_assert_eq!(w.first(), Some(&b'\n'));
    if w.get(1) == Some(&b'.') {
        return 0;
    }
    // An LF is unusual when the byte before it is not a CR (a bare LF) or the byte after
    // it is a dot (the next line is un-stuffed, or may be the end). The LF at w[0] is
    // judged already. Blocks cover w[1..]; each LF needs its neighbours, so a block at
    // `at` reads w[at - 1..at + BLOCK + 1]. The run stops at the first unusual LF.
    let mut at = 1;
    while let Some(block) = w.get(at - 1..at + BLOCK + 1) {
        if unusual_lfs(block.try_into().expect("BLOCK + 2 bytes")) {
            break;
        }
        at += BLOCK;
    }
    // Line by line through the block with the stop, or the rest shorter than a block.
    let mut last_lf = None;
    let mut from = at;
    while let Some(i) = crate::sys::memchr(b'\n', &w[from..]) {
        let lf = from + i;
        if w[lf - 1] != b'\r' {
            break;
        }
        last_lf = Some(lf);
        if w.get(lf + 1) == Some(&b'.') {
            break;
        }
        from = lf + 1;
    }
    // Else the run ends with the last LF of the blocks that passed (w[0] at worst: none).
    last_lf.unwrap_or_else(|| w[..at].iter().rposition(|&b| b == b'\n').unwrap_or(0))
}

/// Whether `w[1..BLOCK + 1]` holds an LF after a byte other than CR, or before a dot.
#[inline(always)]
fn unusual_lfs(w: &[u8; BLOCK + 2]) -> bool {
    let (prev, cur, next) = (&w[..BLOCK], &w[1..BLOCK + 1], &w[2..]);
    let mut unusual = 0u8;
    for k in 0..BLOCK {
        let lf = cur[k] == b'\n';
        unusual |= u8::from(lf & ((prev[k] != b'\r') | (next[k] == b'.')));
    }
    unusual != 0
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

    /// A small deterministic generator (xorshift64*): no dependency for random tests.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
        }
    }

    /// What the reader gave for one message: its pieces, whether the dot came, the input
    /// left after it, and the count of bare LFs.
    struct Read {
        pieces: Vec<(Vec<u8>, bool)>,
        ended: bool,
        tail: Vec<u8>,
        bare_lfs: u64,
    }

    impl Read {
        /// The message as the consumer writes it: each piece, CRLF where a line ends.
        fn text(&self) -> Vec<u8> {
            let mut msg = vec![];
            for (bytes, ends_line) in &self.pieces {
                msg.extend_from_slice(bytes);
                if *ends_line {
                    msg.extend_from_slice(b"\r\n");
                }
            }
            msg
        }
    }

    /// The message after the `data` command line, fed in reads of the sizes in turn.
    fn read_in(data: &[u8], input: &[u8], sizes: &[usize]) -> Read {
        let mut r = LineReader::new();
        r.push(data);
        assert_eq!(r.command(), Some(CommandLine::Line(b"DATA")));
        r.start_data();
        let mut pieces = vec![];
        let mut rest = input;
        let mut next = 0;
        loop {
            while let Some(p) = r.data() {
                match p {
                    DataPiece::End => {
                        let mut tail = r.buf[r.start..r.end].to_vec();
                        tail.extend_from_slice(rest);
                        let (ended, bare_lfs) = (true, r.bare_lfs());
                        return Read {
                            pieces,
                            ended,
                            tail,
                            bare_lfs,
                        };
                    }
                    DataPiece::Text { bytes, ends_line } => {
                        pieces.push((bytes.to_vec(), ends_line))
                    }
                }
            }
            if rest.is_empty() {
                let (ended, tail, bare_lfs) = (false, vec![], r.bare_lfs());
                return Read {
                    pieces,
                    ended,
                    tail,
                    bare_lfs,
                };
            }
            let take = rest.len().min(sizes[next % sizes.len()]);
            next += 1;
            let n = r.push(&rest[..take]);
            assert!(n > 0, "reader asked for input with a full buffer");
            rest = &rest[n..];
        }
    }

    /// SPEC 3 read line by line, the plain way: the whole lines of the message, un-stuffed,
    /// with CRLF; whether the dot came; what follows it; the bare LFs.
    fn line_by_line(crlf_data: bool, input: &[u8]) -> (Vec<u8>, bool, Vec<u8>, u64) {
        let (mut msg, mut bare_lfs, mut after_crlf) = (vec![], 0, crlf_data);
        let mut pos = 0;
        while let Some(i) = input[pos..].iter().position(|&b| b == b'\n') {
            let (line, crlf) = strip_cr(&input[pos..pos + i]);
            pos += i + 1;
            if line == b"." && (!crlf_data || (after_crlf && crlf)) {
                return (msg, true, input[pos..].to_vec(), bare_lfs);
            }
            let line = match line {
                b"." => line,
                _ => line.strip_prefix(b".").unwrap_or(line),
            };
            msg.extend_from_slice(line);
            msg.extend_from_slice(b"\r\n");
            bare_lfs += u64::from(!crlf);
            after_crlf = crlf;
        }
        (msg, false, vec![], bare_lfs)
    }

    /// Checks what the reader gave against [`line_by_line`], and the form of its pieces.
    fn same_as_line_by_line(read: &Read, crlf_data: bool, input: &[u8], what: &str) {
        let (msg, ended, tail, bare_lfs) = line_by_line(crlf_data, input);
        assert_eq!(read.ended, ended, "{what}");
        let text = read.text();
        if ended {
            assert_eq!(text, msg, "{what}");
            assert_eq!(read.tail, tail, "{what}");
            assert_eq!(read.bare_lfs, bare_lfs, "{what}");
        } else {
            // A last line without its line end may be partly handed on.
            assert!(text.starts_with(&msg), "{what}");
            assert!(!text[msg.len()..].contains(&b'\n'), "{what}");
        }
        for (bytes, ends_line) in &read.pieces {
            assert!(bytes.len() <= BUF_SIZE, "{what}");
            assert!(*ends_line || !bytes.is_empty(), "{what}");
            for (i, _) in bytes.iter().enumerate().filter(|(_, &b)| b == b'\n') {
                assert!(
                    *ends_line,
                    "whole lines in a piece that ends mid-line: {what}"
                );
                assert!(
                    i > 0 && bytes[i - 1] == b'\r',
                    "bare LF inside a piece: {what}"
                );
                assert_ne!(bytes.get(i + 1), Some(&b'.'), "dot line inside: {what}");
            }
        }
    }

    /// Random input from the tokens that matter: dots at line starts, bare LFs and CRs,
    /// the end and its smuggling forms, lines as long as the buffer, plain text.
    fn random_input(rng: &mut Rng) -> Vec<u8> {
        let tokens: [&[u8]; 14] = [
            b"plain text of a line",
            b"\r\n",
            b"\r\n",
            b"\r\n",
            b".",
            b"..",
            b"\n",
            b"\r",
            b"\r\n.\r\n",
            b"\n.\n",
            b"\r\n.\n",
            b"\n.\r\n",
            b"Received: x",
            b"",
        ];
        let mut input = vec![];
        for _ in 0..rng.below(400) {
            match rng.below(40) {
                0 => input.extend(std::iter::repeat_n(b'L', BUF_SIZE - 3 + rng.below(6))),
                1 => input.extend(std::iter::repeat_n(b'l', rng.below(3000))),
                _ => input.extend_from_slice(tokens[rng.below(tokens.len())]),
            }
        }
        input
    }

    fn random_sizes(rng: &mut Rng) -> Vec<usize> {
        let scale = [1, 16, 300, BUF_SIZE / 2, BUF_SIZE][rng.below(5)];
        (0..1 + rng.below(5))
            .map(|_| 1 + rng.below(scale))
            .collect()
    }

    /// The bulk path hands on runs of plain lines at once: joined with their CRLFs, the
    /// pieces are the message SPEC 3 gives line by line, the dot comes at the same place
    /// and the bare LFs are the same, however the input is split into reads.
    #[test]
    fn pieces_joined_are_the_message_line_by_line() {
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        for round in 0..400 {
            let input = random_input(&mut rng);
            let sizes = random_sizes(&mut rng);
            for (data, crlf_data) in [(&b"DATA\r\n"[..], true), (b"DATA\n", false)] {
                let read = read_in(data, &input, &sizes);
                let what =
                    format!("round {round}, reads {sizes:?}, DATA ends in CRLF: {crlf_data}");
                same_as_line_by_line(&read, crlf_data, &input, &what);
            }
        }
    }

    /// Something unusual at every place of a run of plain lines longer than a scan block:
    /// the bulk path notices it wherever it is, at block edges too.
    #[test]
    fn anything_unusual_is_found_at_every_position() {
        let mut rng = Rng(0x0dd_ba11);
        let mut plain = vec![];
        while plain.len() < 3 * BLOCK {
            plain.extend(std::iter::repeat_n(b'p', rng.below(90)));
            plain.extend_from_slice(b"\r\n");
        }
        for at in 0..plain.len() {
            for insert in [&b"\n"[..], b".", b"\r", b"\n.\n", b"\r\n.\r\n"] {
                let mut input = plain[..at].to_vec();
                input.extend_from_slice(insert);
                input.extend_from_slice(&plain[at..]);
                input.extend_from_slice(b".\r\nQUIT\r\n");
                let read = read_in(b"DATA\r\n", &input, &[input.len()]);
                same_as_line_by_line(&read, true, &input, &format!("{insert:?} at {at}"));
            }
        }
    }

    #[test]
    fn plain_lines_pass_in_runs() {
        let line =
            b"9bFlIkpYt5HfavHYMD5hzcS7hsPRxCcQPDRvJLnT/+UKYbWoB9nbISHu8KubpXpZZfb21+mIWXidW\r\n";
        let mut input = line.repeat(5000);
        input.extend_from_slice(b".\r\n");
        let read = read_in(b"DATA\r\n", &input, &[BUF_SIZE]);
        assert!(read.ended);
        assert_eq!(read.text(), input[..input.len() - 3]);
        assert!(read.pieces.len() < 20, "{} pieces", read.pieces.len());
    }

    #[test]
    fn a_run_stops_before_what_is_unusual() {
        for (input, pieces) in [
            (&b"a\r\nb\r\nc\r\n.\r\n"[..], &[&b"a\r\nb\r\nc"[..]][..]),
            (b"a\r\nb\r\n..c\r\nd\r\n.\r\n", &[b"a\r\nb", b".c\r\nd"]),
            (b"a\r\nb\nc\r\nd\r\n.\r\n", &[b"a", b"b", b"c\r\nd"]),
            (b"a\r\n\nc\r\n.\r\n", &[b"a", b"", b"c"]),
            (b"a\r\nb\r\n.\nc\r\n.\r\n", &[b"a\r\nb", b".", b"c"]),
            (b"a\rb\r\r\nc\r\n.\r\n", &[b"a\rb\r\r\nc"]),
        ] {
            let read = read_in(b"DATA\r\n", input, &[input.len()]);
            assert!(read.ended, "{input:?}");
            let got: Vec<&[u8]> = read.pieces.iter().map(|(b, _)| &b[..]).collect();
            assert_eq!(got, pieces, "{input:?}");
            assert!(read.pieces.iter().all(|(_, ends_line)| *ends_line));
        }
    }

    /// A short session initialises one page of the buffer; reads that fill it double it,
    /// up to its capacity, which never changes.
    #[test]
    fn the_buffer_grows_only_as_reads_fill_it() {
        let mut r = LineReader::new();
        assert_eq!(r.space().len(), FIRST_READ);
        r.push(b"EHLO x\r\nDATA\r\n");
        assert_eq!(r.command(), Some(CommandLine::Line(b"EHLO x")));
        assert_eq!(r.command(), Some(CommandLine::Line(b"DATA")));
        assert_eq!(r.space().len(), FIRST_READ);
        r.start_data();
        let mut input = b"line\r\n".repeat(BUF_SIZE);
        let mut sizes = vec![];
        while !input.is_empty() {
            let n = r.push(&input);
            input.drain(..n);
            sizes.push(r.buf.len());
            while r.data().is_some() {}
            assert_eq!(r.buf.capacity(), BUF_SIZE);
        }
        assert_eq!(
            &sizes[..7],
            [4096, 8192, 16384, 32768, 65536, 131_072, 131_072]
        );
    }
}
