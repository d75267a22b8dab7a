//! The debugging back end (SPEC 1): stores nothing; every reply echoes what was parsed —
//! the sender and its parameters, each recipient as it would be delivered, and the size of
//! the message. It is also the oracle of the protocol tests.

use super::{queue_id, Approval, Backend, Queued};
use crate::decimal;
use crate::envelope::Envelope;
use crate::log;
use crate::reply::Reply;
use std::io;

#[derive(Default)]
pub struct Echo;

impl Backend for Echo {
    fn sender(&mut self, envelope: &Envelope) -> Result<Reply, Reply> {
        let params = envelope.params.all.as_str();
        let mut text = String::with_capacity(envelope.sender.len() + params.len() + 40);
        text.push_str("Sender <");
        text.push_str(&envelope.sender);
        text.push_str("> accepted");
        if !params.is_empty() {
            text.push_str(", parameters: ");
            text.push_str(params);
        }
        Ok(Reply::new(250, "2.1.0", text))
    }

    fn recipient(&mut self, recipient: &str, _approval: Approval) -> Result<Reply, Reply> {
        let mut text = String::with_capacity(recipient.len() + 24);
        text.push_str("Recipient <");
        text.push_str(recipient);
        text.push_str("> accepted");
        Ok(Reply::new(250, "2.1.5", text))
    }

    /// The headers the front end adds go to the log, one `header:` line per field, so that
    /// they can be seen (as mailfront's echo back end shows them). A folded field is
    /// logged unfolded, its folding white space (CRLF and the tab) as one space: the
    /// continuation tab is ours, not client text, and was logged as `\x09`.
    fn data_start(&mut self, _envelope: &Envelope, trace: &[u8]) -> io::Result<()> {
        for field in unfold(trace) {
            let mut line = String::from("header: ");
            line.push_str(&log::escape(&field));
            log::line(&line);
        }
        Ok(())
    }

    fn data(&mut self, _bytes: &[u8]) -> io::Result<()> {
        Ok(())
    }

    fn data_end(&mut self, envelope: &Envelope, size: u64) -> io::Result<Queued> {
        let id = queue_id();
        // "Received {size} bytes for {n} recipient(s), queue id {id}", without format!:
        // one per pipelined message.
        let mut text = String::with_capacity(96);
        text.push_str("Received ");
        decimal::push(&mut text, size);
        text.push_str(" bytes for ");
        decimal::push(&mut text, envelope.recipients.len() as u64);
        text.push_str(" recipient(s), queue id ");
        text.push_str(&id);
        Ok(Queued {
            id,
            reply: Reply::new(250, "2.0.0", text),
        })
    }
}

/// The header fields of `block` (CRLF line ends), each on one line: a line that starts with
/// white space continues the field before it (RFC 5322 2.2.3) and is joined with one space.
fn unfold(block: &[u8]) -> Vec<Vec<u8>> {
    let mut fields: Vec<Vec<u8>> = Vec::new();
    for line in block.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match (line.first(), fields.last_mut()) {
            (Some(b' ' | b'\t'), Some(field)) => {
                let rest = line.iter().position(|&b| b != b' ' && b != b'\t');
                field.push(b' ');
                field.extend_from_slice(&line[rest.unwrap_or(line.len())..]);
            }
            _ => fields.push(line.to_vec()),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::unfold;

    #[test]
    fn folded_fields_are_logged_on_one_line() {
        let block = b"Received: from a ([192.0.2.1])\r\n\tby mx ([192.0.2.2])\r\n\twith ESMTP; d\r\nX-A: 1\r\n";
        assert_eq!(
            unfold(block),
            [
                b"Received: from a ([192.0.2.1]) by mx ([192.0.2.2]) with ESMTP; d".to_vec(),
                b"X-A: 1".to_vec()
            ]
        );
    }
}
