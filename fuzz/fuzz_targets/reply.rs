//! forward's reply parser (`forward::reply::ReplyParser`, SPEC 7) fed hostile bytes from the
//! primary: the parser the reader runs over the socket, without the socket.
//!
//! Invariants besides "no panic":
//! * every reply has a code of 200 to 599, at least one and at most `MAX_REPLY_LINES`
//!   lines, each line only printable ASCII (escaped once) and bounded by
//!   `4 * MAX_REPLY_LINE` (the escaping quadruples a byte at most);
//! * at most one reply (or error) per LF of input;
//! * feeding the input in pieces (sizes from the first byte) gives exactly the replies of
//!   feeding it whole: a reply never depends on how the primary's bytes were split;
//! * a reply is positive exactly for 2xx, permanent exactly for 5xx; its one-line form has
//!   no CR or LF.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpfront::forward::reply::{parse_replies, ReplyParser, MAX_REPLY_LINE, MAX_REPLY_LINES};

fuzz_target!(|data: &[u8]| {
    let Some((&piece, input)) = data.split_first() else {
        return;
    };
    let whole = parse_replies(input);
    let newlines = input.iter().filter(|&&b| b == b'\n').count();
    assert!(
        whole.len() <= newlines,
        "{} replies from {newlines} lines",
        whole.len()
    );
    for r in whole.iter().flatten() {
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
    let mut parser = ReplyParser::default();
    let mut pieces = Vec::new();
    for chunk in input.chunks(usize::from(piece) + 1) {
        let mut rest = chunk;
        while !rest.is_empty() {
            let (used, reply) = parser.feed(rest);
            assert!(used > 0 && used <= rest.len(), "no progress");
            rest = &rest[used..];
            pieces.extend(reply);
        }
    }
    assert_eq!(pieces, whole, "the split changed the replies");
});
