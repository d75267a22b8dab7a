//! What happens to the mail a session accepts: the [`Backend`] trait (mailfront's hooks,
//! ripgrep's Sink) and its implementations. The session calls it in protocol order:
//! sender, recipients, data start, data pieces, data end (or abort), reset.

pub mod echo;
pub mod spool;

use crate::decimal;
use crate::envelope::Envelope;
use crate::etrn::Node;
use crate::reply::{self, Reply};
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// SPEC 3.3: how a back end takes ETRN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtrnSupport {
    /// Not at all: ETRN is an unknown command (smtpfront-echo).
    Unknown,
    /// Answered by [`Backend::etrn`], not listed in EHLO (smtpfront-reject while it refuses).
    Unlisted,
    /// Listed in EHLO and answered (smtpfront-spool).
    Listed,
}

/// Whether a recipient still needs the back end's own validation (SPEC 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    /// A mail rule, `RELAYCLIENT` or AUTH already accepted it.
    Approved,
    /// The back end decides (smtpfront-spool: `RCPTHOSTS`).
    Unchecked,
}

pub trait Backend {
    /// MAIL passed the protocol checks; the back end may still refuse it.
    fn sender(&mut self, envelope: &Envelope) -> Result<Reply, Reply> {
        let _ = envelope;
        Ok(reply::SENDER_OK)
    }

    /// RCPT passed the protocol checks and the mail rules; `recipient` is as it will be
    /// delivered.
    fn recipient(&mut self, recipient: &str, approval: Approval) -> Result<Reply, Reply>;

    /// DATA is about to be accepted; `trace` is the headers the front end prepends.
    fn data_start(&mut self, envelope: &Envelope, trace: &[u8]) -> io::Result<()>;

    /// The next bytes of the message (CRLF line ends, un-stuffed).
    fn data(&mut self, bytes: &[u8]) -> io::Result<()>;

    /// The final dot, with no verdict against the message: make it durable and return its
    /// queue id and `250`. `size` counts the message bytes without the trace headers.
    fn data_end(&mut self, envelope: &Envelope, size: u64) -> io::Result<Queued>;

    /// The message will not be accepted (too big, looping, client gone): drop what was kept.
    fn data_abort(&mut self) {}

    /// Whether AUTH may be offered and run (when `CHECKPASSWORD` is set). A back end that
    /// refuses all mail says no: checkpassword must not become a password oracle (SPEC 2
    /// `SMTPREJECT`).
    fn auth_allowed(&self) -> bool {
        true
    }

    /// SPEC 3.3: whether ETRN is listed in EHLO and answered.
    fn etrn_support(&self) -> EtrnSupport {
        EtrnSupport::Unknown
    }

    /// SPEC 3.3: answers a well-formed ETRN outside a transaction. `privileged`: the client
    /// has `RELAYCLIENT` or authenticated, so any node is allowed.
    fn etrn(&mut self, node: &Node, privileged: bool) -> Reply {
        let _ = (node, privileged);
        reply::NOT_IMPLEMENTED
    }
}

/// A message the back end has kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub id: String,
    /// The `250 2.0.0` reply, which names the id.
    pub reply: Reply,
}

/// A queue id that is unique on this host and sorts by arrival time:
/// seconds, microseconds, process id, and a counter for messages of one session.
pub fn queue_id() -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    // "{secs}.{micros:06}.{pid}.{seq}", built by hand: one per pipelined message.
    let mut id = String::with_capacity(40);
    decimal::push(&mut id, now.as_secs());
    id.push('.');
    decimal::push_padded(&mut id, u64::from(now.subsec_micros()), 6);
    id.push('.');
    decimal::push(&mut id, u64::from(*PID.get_or_init(std::process::id)));
    id.push('.');
    decimal::push(&mut id, u64::from(SEQ.fetch_add(1, Ordering::Relaxed)));
    id
}
