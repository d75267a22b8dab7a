//! floor.rs: bench/floor.c in Rust, the floor of a session for a Rust program (issue 12).
//!
//! The same replies, the same buffering (one read buffer, one write buffer flushed before
//! each read), nothing else; built like the front ends (static, position-independent,
//! `#![no_main]`, std, `panic = abort`). What it costs beyond the C floor is what any Rust
//! program with std pays at exec: more code to map and fault in, and the relocation of a
//! static PIE. Built by bench.py:
//! rustc --edition 2021 -C opt-level=3 -C panic=abort -C target-feature=+crt-static
//!       --target x86_64-unknown-linux-gnu -o floor-rust floor.rs
#![no_main]

use std::io::{Read, Write};

struct Io {
    /// On the heap, as the C floor's is in .bss: pages are faulted in only when read into.
    input: Vec<u8>,
    len: usize,
    pos: usize,
    out: Vec<u8>,
}

impl Io {
    fn flush(&mut self) {
        if std::io::stdout().write_all(&self.out).is_err() {
            std::process::exit(1);
        }
        self.out.clear();
    }

    /// The next line without its line end into `line`; false at the end of input.
    fn next_line(&mut self, line: &mut Vec<u8>) -> bool {
        line.clear();
        loop {
            if self.pos == self.len {
                self.flush();
                match std::io::stdin().read(&mut self.input) {
                    Ok(n) if n > 0 => (self.len, self.pos) = (n, 0),
                    _ => return false,
                }
            }
            let c = self.input[self.pos];
            self.pos += 1;
            if c == b'\n' {
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return true;
            }
            if line.len() < 4095 {
                line.push(c);
            }
        }
    }
}

fn is(line: &[u8], verb: &[u8]) -> bool {
    line.len() >= verb.len() && line[..verb.len()].eq_ignore_ascii_case(verb)
}

#[no_mangle]
pub extern "C" fn main(_argc: i32, _argv: *const *const u8) -> i32 {
    let mut io = Io {
        input: vec![0; 65536],
        len: 0,
        pos: 0,
        out: Vec::with_capacity(8192),
    };
    let mut line = Vec::with_capacity(4096);
    io.out.extend_from_slice(b"220 floor ESMTP\r\n");
    while io.next_line(&mut line) {
        let answer: &[u8] = if is(&line, b"EHLO") {
            b"250-floor\r\n250-SIZE 0\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 PIPELINING\r\n"
        } else if is(&line, b"MAIL") {
            b"250 2.1.0 Sender accepted\r\n"
        } else if is(&line, b"RCPT") {
            b"250 2.1.5 Recipient accepted\r\n"
        } else if is(&line, b"DATA") {
            io.out
                .extend_from_slice(b"354 End your message with a line holding only a dot\r\n");
            while io.next_line(&mut line) && line != b"." {}
            b"250 2.0.0 Ok: message accepted\r\n"
        } else if is(&line, b"QUIT") {
            io.out.extend_from_slice(b"221 2.0.0 Good bye\r\n");
            break;
        } else {
            b"500 5.5.1 Command not recognized\r\n"
        };
        io.out.extend_from_slice(answer);
    }
    io.flush();
    0
}
