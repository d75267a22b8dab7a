//! The store of the backup MX (SPEC 6): each accepted message becomes one SMTP-script file
//! in `$SPOOLDIR`, written under `tmp/`, synced and renamed into `new/` before the `250`.
//! Recipients nobody approved go through the recipient [`Policy`] (SPEC 2).

use super::{queue_id, Approval, Backend, EtrnSupport, Queued};
use crate::config::Settings;
use crate::envelope::Envelope;
use crate::etrn::{self, Node};
use crate::log;
use crate::policy::Policy;
use crate::reply::{self, Reply};
use crate::spool::format::{Header, Stuffer};
use crate::spool::{Draft, Spool};
use std::io;

pub struct SpoolBackend {
    spool: Spool,
    policy: Policy,
    /// The message being written: its id, file and dot-stuffing state.
    draft: Option<(String, Draft, Stuffer)>,
    /// SPEC 2: an unconfigured policy is logged once per session.
    told_unconfigured: bool,
}

impl SpoolBackend {
    /// Opens `$SPOOLDIR` and the recipient policy; the error says what to fix.
    pub fn from_settings(settings: &Settings) -> Result<SpoolBackend, String> {
        let root = settings
            .spooldir
            .as_ref()
            .ok_or("SPOOLDIR is not set: set it to the spool directory (SPEC 6)")?;
        let spool = Spool::open(root)?;
        let policy = Policy::from_settings(settings)?;
        Ok(SpoolBackend {
            spool,
            policy,
            draft: None,
            told_unconfigured: false,
        })
    }
}

impl Backend for SpoolBackend {
    fn recipient(&mut self, recipient: &str, approval: Approval) -> Result<Reply, Reply> {
        if approval == Approval::Unchecked {
            if let Err(refusal) = self.policy.check(recipient) {
                if matches!(self.policy, Policy::Unconfigured) && !self.told_unconfigured {
                    self.told_unconfigured = true;
                    log::line(
                        "no recipient policy: set RCPTHOSTS, MAILRULES or RELAYCLIENT; \
                         recipients are deferred with 451 4.3.5 until then",
                    );
                }
                return Err(refusal);
            }
        }
        Ok(reply::RECIPIENT_OK)
    }

    fn data_start(&mut self, envelope: &Envelope, trace: &[u8]) -> io::Result<()> {
        self.draft = None;
        let id = queue_id();
        let mut draft = self.spool.create(&id)?;
        let header = Header {
            helo: envelope.helo.clone(),
            sender: envelope.sender.clone(),
            body: envelope.params.body.map(|b| b.as_str().to_string()),
            smtputf8: envelope.params.smtputf8,
            recipients: envelope.recipients.clone(),
        };
        draft.write_all(&header.render())?;
        let mut stuffer = Stuffer::default();
        stuffer.stuff(trace, |b| draft.write_all(b))?;
        self.draft = Some((id, draft, stuffer));
        Ok(())
    }

    fn data(&mut self, bytes: &[u8]) -> io::Result<()> {
        let (_, draft, stuffer) = self
            .draft
            .as_mut()
            .ok_or_else(|| io::Error::other("no message file open"))?;
        stuffer.stuff(bytes, |b| draft.write_all(b))
    }

    fn data_end(&mut self, _envelope: &Envelope, _size: u64) -> io::Result<Queued> {
        let (id, mut draft, mut stuffer) = self
            .draft
            .take()
            .ok_or_else(|| io::Error::other("no message file open"))?;
        stuffer.finish(|b| draft.write_all(b))?;
        draft.commit()?;
        let text = format!("Ok: queued as {id}");
        Ok(Queued {
            id,
            reply: Reply::new(250, "2.0.0", text),
        })
    }

    fn data_abort(&mut self) {
        // Dropping the draft removes its file from tmp/.
        self.draft = None;
    }

    /// SPEC 3.3: SPOOLDIR is set (or the session would not have started).
    fn etrn_support(&self) -> EtrnSupport {
        EtrnSupport::Listed
    }

    /// SPEC 3.3: a client that may relay may ask for any node; others for a domain of
    /// `RCPTHOSTS`.
    fn etrn(&mut self, node: &Node, privileged: bool) -> Reply {
        if !privileged {
            match self.policy.lists_domain(node.domain()) {
                Ok(true) => {}
                Ok(false) => return etrn::not_allowed(node),
                Err(refusal) => return refusal,
            }
        }
        etrn::start(&self.spool, node)
    }
}
