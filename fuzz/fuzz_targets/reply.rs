//! forward's reply reader (`forward::reply::ReplyReader`, SPEC 7) fed hostile bytes from
//! the primary.
//!
//! `ReplyReader::read` reads from a `TcpStream` today. TODO: when the forward engineer's
//! change lands, switch to the byte-slice / `impl Read` form of `ReplyReader::read` and drop
//! the socket pair below. Until then the real function is driven through a real loopback
//! connection: the input is written to one end, which is then shut down, and replies are
//! read from the other until the reader says why it stopped.
//!
//! Invariants besides "no panic":
//! * every reply has a code of 200 to 599, at least one and at most `MAX_REPLY_LINES`
//!   lines, each line only printable ASCII (escaped once) and bounded by
//!   `4 * MAX_REPLY_LINE` (the escaping quadruples a byte at most);
//! * the reader makes progress: at most one reply per LF of input, then an error (the
//!   connection is closed at the end of the input, so `Closed` at the latest);
//! * a reply is positive exactly for 2xx, permanent exactly for 5xx.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpfront::forward::client::ClientError;
use smtpfront::forward::reply::{ReplyReader, MAX_REPLY_LINE, MAX_REPLY_LINES};
use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

fn listener() -> &'static TcpListener {
    static L: OnceLock<TcpListener> = OnceLock::new();
    L.get_or_init(|| TcpListener::bind("127.0.0.1:0").expect("a loopback port"))
}

/// A connected pair: (what the primary writes to, what forward reads from).
fn pair() -> (TcpStream, TcpStream) {
    let l = listener();
    let ours = TcpStream::connect(l.local_addr().expect("address")).expect("connect");
    let (theirs, _) = l.accept().expect("accept");
    (theirs, ours)
}

fuzz_target!(|data: &[u8]| {
    let (mut primary, mut stream) = pair();
    // Inputs are small (libFuzzer's -max_len): they fit in the socket buffers.
    primary.write_all(data).expect("write");
    primary.shutdown(Shutdown::Write).expect("shutdown");
    let newlines = data.iter().filter(|&&b| b == b'\n').count();
    let mut reader = ReplyReader::default();
    let mut replies = 0;
    let end = loop {
        match reader.read(&mut stream, Duration::from_secs(10), "fuzz") {
            Ok(r) => {
                replies += 1;
                assert!(
                    replies <= newlines,
                    "{replies} replies from {newlines} lines"
                );
                assert!((200..600).contains(&r.code), "code {}", r.code);
                assert!(!r.lines.is_empty() && r.lines.len() <= MAX_REPLY_LINES);
                for l in &r.lines {
                    assert!(l.len() <= 4 * MAX_REPLY_LINE, "line of {} bytes", l.len());
                    assert!(l.bytes().all(|b| (0x20..0x7f).contains(&b)), "{l:?}");
                }
                assert_eq!(r.is_positive(), r.code / 100 == 2);
                assert_eq!(r.is_permanent(), r.code / 100 == 5);
                let shown = r.to_string();
                assert!(!shown.contains(['\r', '\n']), "{shown:?}");
            }
            Err(e) => break e,
        }
    };
    assert!(
        matches!(
            end,
            ClientError::Closed
                | ClientError::LineTooLong
                | ClientError::TooManyLines
                | ClientError::Malformed(_)
        ),
        "unexpected end: {end}"
    );
});
