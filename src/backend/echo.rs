//! The debugging back end (SPEC 1): stores nothing; every reply echoes what was parsed —
//! the sender and its parameters, each recipient as it would be delivered, and the size of
//! the message. It is also the oracle of the protocol tests.

use super::{queue_id, Approval, Backend, Queued};
use crate::envelope::Envelope;
use crate::log;
use crate::reply::Reply;
use std::io;

#[derive(Default)]
pub struct Echo;

impl Backend for Echo {
    fn sender(&mut self, envelope: &Envelope) -> Result<Reply, Reply> {
        let params = &envelope.params.all;
        let room: usize = params.iter().map(|p| p.len() + 1).sum();
        let mut text = String::with_capacity(envelope.sender.len() + room + 40);
        text.push_str("Sender <");
        text.push_str(&envelope.sender);
        text.push_str("> accepted");
        // One string, no joined copy: every pipelined MAIL of an SMTPUTF8 batch has one.
        for (i, p) in params.iter().enumerate() {
            text.push_str(if i == 0 { ", parameters: " } else { " " });
            text.push_str(p);
        }
        Ok(Reply::new(250, "2.1.0", text))
    }

    fn recipient(&mut self, recipient: &str, _approval: Approval) -> Result<Reply, Reply> {
        Ok(Reply::new(
            250,
            "2.1.5",
            format!("Recipient <{recipient}> accepted"),
        ))
    }

    /// The headers the front end adds go to the log, one line each, so that they can be
    /// seen (as mailfront's echo back end shows them).
    fn data_start(&mut self, _envelope: &Envelope, trace: &[u8]) -> io::Result<()> {
        for line in trace.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            log::line(&format!("header: {}", log::escape(line)));
        }
        Ok(())
    }

    fn data(&mut self, _bytes: &[u8]) -> io::Result<()> {
        Ok(())
    }

    fn data_end(&mut self, envelope: &Envelope, size: u64) -> io::Result<Queued> {
        let id = queue_id();
        let text = format!(
            "Received {size} bytes for {} recipient(s), queue id {id}",
            envelope.recipients.len()
        );
        Ok(Queued {
            id,
            reply: Reply::new(250, "2.0.0", text),
        })
    }
}
