//! The debugging back end (SPEC 1): stores nothing; every reply echoes what was parsed —
//! the sender and its parameters, each recipient as it would be delivered, and the size of
//! the message. It is also the oracle of the protocol tests.

use super::{queue_id, Approval, Backend};
use crate::envelope::Envelope;
use crate::reply::Reply;
use std::io;

#[derive(Default)]
pub struct Echo;

impl Backend for Echo {
    fn sender(&mut self, envelope: &Envelope) -> Result<Reply, Reply> {
        let mut text = format!("Sender <{}> accepted", envelope.sender);
        if !envelope.params.all.is_empty() {
            text.push_str(", parameters: ");
            text.push_str(&envelope.params.all.join(" "));
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

    fn data_start(&mut self, _envelope: &Envelope, _trace: &[u8]) -> io::Result<()> {
        Ok(())
    }

    fn data(&mut self, _bytes: &[u8]) -> io::Result<()> {
        Ok(())
    }

    fn data_end(&mut self, envelope: &Envelope, size: u64) -> io::Result<Reply> {
        Ok(Reply::new(
            250,
            "2.0.0",
            format!(
                "Received {size} bytes for {} recipient(s), queue id {}",
                envelope.recipients.len(),
                queue_id()
            ),
        ))
    }
}
