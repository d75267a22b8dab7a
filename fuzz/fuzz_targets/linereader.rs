//! `LineReader` fed arbitrary bytes in arbitrary chunk sizes (SPEC 3: bounded reading).
//!
//! The input is `[n][sizes; n][stream]`: up to 16 chunk sizes (1..=256 bytes, times 257 for
//! sizes up to ~64 KiB when the high bit is set), used in turn. The consumer mirrors the
//! server: command lines until one is `DATA` (any case), then DATA pieces until the dot
//! line, then command lines again.
//!
//! Invariants:
//! * no command line longer than `MAX_COMMAND` is returned, none holds a LF;
//! * a DATA piece holds an LF only as the CRLF between whole lines (a run of plain lines
//!   passed at once), never before a dot; a piece that does not end its line is never empty;
//! * the buffer never grows: `push` never takes more than `BUF_SIZE` bytes beyond what was
//!   consumed, and the reader never asks for input while its buffer is full;
//! * splitting the input differently gives the same events: commands, too-long marks, DATA
//!   lines (pieces joined up to their line end) and ends, compared with feeding it whole.
//!
//! Not checked here, as the reader cannot know it: SPEC 3's rule that after a `DATA` line
//! ending in CRLF only CRLF `.` CRLF ends the message (the smuggling rule). See the report /
//! fuzz/README.md.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpfront::linereader::{CommandLine, DataPiece, LineReader, BUF_SIZE, MAX_COMMAND};

#[derive(Debug, PartialEq, Eq)]
enum Event {
    Command(Vec<u8>),
    TooLong,
    /// A whole DATA line, pieces joined (`true`: it ended with a line end).
    DataLine(Vec<u8>, bool),
    End,
}

struct Consumer {
    reader: LineReader,
    in_data: bool,
    /// The DATA line being joined from pieces.
    partial: Vec<u8>,
    events: Vec<Event>,
}

impl Consumer {
    fn new() -> Consumer {
        Consumer {
            reader: LineReader::new(),
            in_data: false,
            partial: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Takes every event the buffered input gives.
    fn drain(&mut self) {
        loop {
            if self.in_data {
                match self.reader.data() {
                    None => break,
                    Some(DataPiece::End) => {
                        assert!(self.partial.is_empty(), "end inside a line");
                        self.events.push(Event::End);
                        self.in_data = false;
                    }
                    Some(DataPiece::Text { bytes, ends_line }) => {
                        assert!(ends_line || !bytes.is_empty(), "empty piece mid-line");
                        assert!(bytes.len() <= BUF_SIZE);
                        let mut rest = bytes;
                        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
                            assert!(ends_line, "whole lines in a piece that ends mid-line");
                            assert!(i > 0 && rest[i - 1] == b'\r', "bare LF inside a piece");
                            assert_ne!(rest.get(i + 1), Some(&b'.'), "dot line inside a piece");
                            self.partial.extend_from_slice(&rest[..i - 1]);
                            let line = std::mem::take(&mut self.partial);
                            self.events.push(Event::DataLine(line, true));
                            rest = &rest[i + 1..];
                        }
                        self.partial.extend_from_slice(rest);
                        if ends_line {
                            let line = std::mem::take(&mut self.partial);
                            self.events.push(Event::DataLine(line, true));
                        }
                    }
                }
            } else {
                match self.reader.command() {
                    None => break,
                    Some(CommandLine::TooLong) => self.events.push(Event::TooLong),
                    Some(CommandLine::Line(line)) => {
                        assert!(line.len() <= MAX_COMMAND, "command of {} bytes", line.len());
                        assert!(!line.contains(&b'\n'), "LF inside a command line");
                        let is_data = line.eq_ignore_ascii_case(b"DATA");
                        self.events.push(Event::Command(line.to_vec()));
                        if is_data {
                            self.in_data = true;
                            self.reader.start_data();
                        }
                    }
                }
            }
        }
        // The reader wants more input: it must have room for it.
        let room = self.reader.space().len();
        assert!(room > 0, "the reader asks for input with a full buffer");
        assert!(room <= BUF_SIZE, "the buffer grew");
    }

    /// Feeds `bytes` as the driver would: as much as fits, then the events, again.
    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let n = self.reader.push(bytes);
            assert!(n > 0, "no room although the reader asked for input");
            assert!(n <= BUF_SIZE);
            bytes = &bytes[n..];
            self.drain();
        }
    }

    /// The events, with a DATA line still being joined at the end of input.
    fn finish(mut self) -> Vec<Event> {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.events.push(Event::DataLine(line, false));
        }
        self.events
    }
}

fn chunk_sizes(data: &[u8]) -> (Vec<usize>, &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return (vec![1], data);
    };
    let n = usize::from(n % 16).min(rest.len());
    let sizes = rest[..n]
        .iter()
        .map(|&b| {
            let small = usize::from(b & 0x7f) + 1;
            if b & 0x80 != 0 {
                small * 513
            } else {
                small
            }
        })
        .collect::<Vec<_>>();
    let sizes = if sizes.is_empty() { vec![7] } else { sizes };
    (sizes, &rest[n..])
}

fn events(stream: &[u8], sizes: &[usize]) -> Vec<Event> {
    let mut c = Consumer::new();
    let mut rest = stream;
    let mut i = 0;
    while !rest.is_empty() {
        let take = sizes[i % sizes.len()].min(rest.len());
        c.feed(&rest[..take]);
        rest = &rest[take..];
        i += 1;
    }
    c.finish()
}

/// A partial last DATA line may be cut anywhere by a chunk boundary before the buffer
/// filled: only compare what is complete. Everything else must be equal.
fn complete(mut events: Vec<Event>) -> Vec<Event> {
    if matches!(events.last(), Some(Event::DataLine(_, false))) {
        events.pop();
    }
    events
}

fuzz_target!(|data: &[u8]| {
    let (sizes, stream) = chunk_sizes(data);
    let chunked = events(stream, &sizes);
    let whole = events(stream, &[stream.len().max(1)]);
    let bytewise = if stream.len() <= 4096 {
        Some(events(stream, &[1]))
    } else {
        None
    };
    let (chunked, whole) = (complete(chunked), complete(whole));
    assert_eq!(chunked, whole, "chunk sizes {sizes:?} changed the events");
    if let Some(b) = bytewise {
        assert_eq!(complete(b), whole, "byte by byte changed the events");
    }
});
