//! SMTPUTF8 on the way out (SPEC 3.2): whether a message goes with the parameter, without
//! it, or not at all. RFC 6531 3.4 and what Postfix does (`smtputf8_enable`): a message
//! that came with SMTPUTF8 keeps it when the primary offers the extension; when it does
//! not, a message that does not need it (addresses and header block all ASCII) goes without
//! it, and any other one is bounced with `5.6.7`: no downgrade is attempted (RFC 6530
//! leaves that out of SMTP).
//!
//! Only the header block is looked at, not the body: an 8-bit body is 8BITMIME's business
//! (and forward passes it on as qmail-remote does), not SMTPUTF8's.

use super::queue::Message;
use super::Reason;
use std::io::{self, BufRead};

/// What to do with one message.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// Send it; with the `SMTPUTF8` parameter or without.
    Send { smtputf8: bool },
    /// SPEC 3.2: it needs SMTPUTF8 and the primary does not offer it.
    Bounce(Reason),
    /// The file could not be read to decide: try again later.
    Defer(Reason),
}

/// The decision for `msg`, given whether the primary's EHLO offered SMTPUTF8.
pub fn plan(msg: &Message, offered: bool) -> Plan {
    if !msg.header.smtputf8 {
        return Plan::Send { smtputf8: false };
    }
    if offered {
        return Plan::Send { smtputf8: true };
    }
    let h = &msg.header;
    let addresses_ascii = h.sender.is_ascii() && h.recipients.iter().all(|r| r.is_ascii());
    // The file is read only when the addresses leave the question open.
    let all_ascii = match addresses_ascii {
        true => header_block_is_ascii(msg.data()),
        false => Ok(false),
    };
    match all_ascii {
        Ok(true) => Plan::Send { smtputf8: false },
        Ok(false) => Plan::Bounce(Reason::Local {
            status: "5.6.7",
            text: "the message needs SMTPUTF8 (UTF-8 addresses or headers), \
                   and the primary does not offer it"
                .to_string(),
        }),
        Err(e) => Plan::Defer(Reason::Local {
            status: "4.3.0",
            text: format!("cannot read the message: {e}"),
        }),
    }
}

/// Whether the header block (up to the first empty line, or the end of the message) is
/// all ASCII. Reads the stored message as a stream, whatever its line lengths.
pub fn header_block_is_ascii(mut data: impl BufRead) -> io::Result<bool> {
    // Where the scan is: at the start of a line, or after a CR that started one.
    let (mut line_start, mut lone_cr) = (true, false);
    loop {
        let buf = data.fill_buf()?;
        if buf.is_empty() {
            return Ok(true);
        }
        for &b in buf {
            if !b.is_ascii() {
                return Ok(false);
            }
            match b {
                // An empty line: the header block ends.
                b'\n' if line_start || lone_cr => return Ok(true),
                b'\n' => (line_start, lone_cr) = (true, false),
                b'\r' if line_start => (line_start, lone_cr) = (false, true),
                _ => (line_start, lone_cr) = (false, false),
            }
        }
        let n = buf.len();
        data.consume(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ascii(bytes: &[u8]) -> bool {
        // One byte per read, so the state crosses every boundary.
        let reader = io::BufReader::with_capacity(1, bytes);
        header_block_is_ascii(reader).unwrap()
    }

    #[test]
    fn only_the_header_block_counts() {
        assert!(ascii(b"Subject: hi\r\n\r\nb\xc3\xbcdy\r\n.\r\n"));
        assert!(!ascii(b"Subject: h\xc3\xbc\r\n\r\nbody\r\n.\r\n"));
        assert!(!ascii(b"Subject: hi\r\nTo: j\xc3\xb6rg@b.c\r\n\r\n.\r\n"));
        assert!(ascii(b"Subject: hi\r\n.\r\n"));
        assert!(ascii(b".\r\n"));
        assert!(ascii(b"\r\nb\xc3\xbcdy\r\n.\r\n"));
        assert!(!ascii(b"Subject: hi\r\n \xc3\xbc folded\r\n\r\n.\r\n"));
    }
}
