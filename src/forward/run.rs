//! One delivery run (SPEC 7): the lock, the stale `tmp/` files, the queue oldest first over
//! one connection, and for each message its recipients' fates applied to the file: removed
//! when all are settled, rewritten with those left otherwise, a bounce for those that failed.
//! Nothing is removed before the remote's 2xx to the final dot.
//!
//! SPEC 8, quiet while the primary is down: a message that meets no connection (it could
//! not be opened, or was given up earlier in the run) and is not expired is kept without a
//! line of its own; the run logs one line with the cause and how many messages and
//! recipients it kept that way. Per-recipient lines are for the remote's real answers,
//! expiries and bounces: 70,000 queued messages must not rotate the log away.

use super::bounce::{self, Report};
use super::client::{ClientError, Timeouts};
use super::fate::{deferred, transaction};
use super::link::{Link, Opener};
use super::queue::{self, LoadError, Message};
use super::{quote, Fate, Options, Outcome, Reason, Target};
use crate::config::Settings;
use crate::log;
use crate::spool::{self, Spool};
use std::cell::Cell;
use std::collections::HashSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::time::SystemTime;

/// Passes over `new/` in one run: mail that arrives while forward sends goes out on the same
/// connection, but a steady stream of arrivals cannot keep one run going for ever.
const MAX_PASSES: usize = 8;

/// The fixed facts of a run.
struct Run<'a> {
    spool: &'a Spool,
    settings: &'a Settings,
    options: &'a Options,
    helohost: String,
    /// The remote's name in reasons and bounces (`Remote-MTA`): the host, or under `-u`
    /// the address the UCSPI client connected to.
    remote: String,
    /// `remote:port`: the prefix of the run's connection log lines.
    peer: String,
    timeouts: Timeouts,
    now: SystemTime,
    /// Messages and recipients kept without an attempt: no connection (SPEC 8).
    held: Cell<(usize, usize)>,
}

/// The remote's name and `name:port`; under `-u` from the UCSPI client's `TCPREMOTEIP`
/// and `TCPREMOTEPORT` (SPEC 2), `unknown` when it set none.
fn names(target: &Target, settings: &Settings) -> (String, String) {
    match target {
        Target::Host { host, port } => (host.clone(), format!("{host}:{port}")),
        Target::Ucspi => {
            let conn = crate::ucspi::Conn::from_env(settings.proto.as_deref());
            let ip = conn.remoteip.unwrap_or_else(|| "unknown".into());
            let port = conn.remoteport.unwrap_or_else(|| "unknown".into());
            let peer = format!("{ip}:{port}");
            (ip, peer)
        }
    }
}

/// The lock of SPEC 7 on `$SPOOLDIR/lock`, held while the returned file is open.
fn lock(spool: &Spool) -> Result<Option<File>, std::io::Error> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(spool.root().join("lock"))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// One run: everything in `new/` to `options.target`.
pub fn deliver(spool: &Spool, settings: &Settings, options: &Options) -> Outcome {
    let _lock = match lock(spool) {
        Ok(Some(f)) => f,
        Ok(None) => {
            log::line("another forward is running (the spool is locked): exit 75");
            return Outcome::Locked;
        }
        Err(e) => {
            log::line(&format!("cannot lock {}/lock: {e}", spool.root().display()));
            return Outcome::SpoolTrouble;
        }
    };
    let now = SystemTime::now();
    match spool::remove_stale_tmp(spool, now) {
        Ok(removed) => {
            for p in removed {
                log::line(&format!("removed stale {}", p.display()));
            }
        }
        Err(e) => log::line(&format!("cannot clean {}: {e}", spool.tmp_dir().display())),
    }
    let timeouts = options
        .timeout
        .map_or_else(Timeouts::default, Timeouts::all);
    let (remote, peer) = names(&options.target, settings);
    let run = Run {
        spool,
        settings,
        options,
        helohost: (options.helohost.clone())
            .or_else(|| settings.helohost.clone())
            .unwrap_or_else(crate::sys::hostname),
        remote,
        peer,
        timeouts,
        now,
        held: Cell::new((0, 0)),
    };
    run.all()
}

impl Run<'_> {
    fn all(&self) -> Outcome {
        let mut link = Link::NotOpened;
        let mut seen = HashSet::new();
        let mut remains = false;
        for _ in 0..MAX_PASSES {
            let names = match queue::scan(self.spool) {
                Ok(names) => names,
                Err(e) => {
                    log::line(&format!(
                        "cannot read {}: {e}",
                        self.spool.new_dir().display()
                    ));
                    return Outcome::SpoolTrouble;
                }
            };
            let fresh: Vec<String> = names.into_iter().filter(|n| !seen.contains(n)).collect();
            if fresh.is_empty() {
                break;
            }
            for id in fresh {
                remains |= self.one(&id, &mut link);
                seen.insert(id);
            }
            if matches!(link, Link::Down { .. }) {
                break;
            }
        }
        match link {
            Link::Open { client, .. } => client.quit(),
            Link::Down { said, .. } => {
                // SPEC 8: the one line for what waits for the connection. With nothing
                // held, the cause is already in the lines of the messages it touched
                // (given up, expired).
                let (messages, recipients) = self.held.get();
                if messages > 0 {
                    log::line(&format!(
                        "{said}: {messages} messages, {recipients} recipients kept"
                    ));
                }
            }
            Link::NotOpened => {}
        }
        // The removals of this run become durable together (see spool::remove).
        if let Err(e) = spool::sync_dir(self.spool.new_dir()) {
            log::line(&format!(
                "cannot sync {}: {e}",
                self.spool.new_dir().display()
            ));
        }
        // Anything not seen (still arriving after the last pass) waits for the next run.
        let unseen = queue::scan(self.spool)
            .map(|n| n.iter().any(|n| !seen.contains(n)))
            .unwrap_or(true);
        if remains || unseen {
            Outcome::MailRemains
        } else {
            Outcome::QueueEmpty
        }
    }

    /// One message file; returns whether it (or a part of it) is still in the queue.
    fn one(&self, id: &str, link: &mut Link) -> bool {
        let msg = match Message::load(self.spool, id) {
            Ok(m) => m,
            Err(LoadError::Vanished) => return false,
            Err(LoadError::Unreadable(e)) => {
                log::line(&format!("{id}: cannot read: {e}"));
                return true;
            }
            Err(LoadError::Malformed(why)) => return self.quarantine(id, &why),
        };
        if matches!(link, Link::NotOpened) {
            *link = self.open(); // never NotOpened again
        }
        if matches!(link, Link::Down { .. }) && !self.expired(&msg) {
            return self.hold(&msg);
        }
        match self.attempt(&msg, link) {
            Some(fates) => self.settle(&msg, fates),
            None => self.quarantine(id, "a lone dot line inside the message"),
        }
    }

    /// SPEC 7: a file that does not parse goes to bad/, with a log line. Returns whether
    /// it is still in the queue.
    fn quarantine(&self, id: &str, why: &str) -> bool {
        match spool::quarantine(self.spool, &self.spool.new_dir().join(id)) {
            Ok(to) => {
                log::line(&format!(
                    "{id}: unparsable ({why}): moved to {}",
                    to.display()
                ));
                false
            }
            Err(e) => {
                log::line(&format!(
                    "{id}: unparsable ({why}), cannot move to bad/: {e}"
                ));
                true
            }
        }
    }

    /// Sends one message over the link (opening it first if need be). `None`: the file
    /// turned out not to be a proper message while it was sent.
    fn attempt(&self, msg: &Message, link: &mut Link) -> Option<Vec<Fate>> {
        let (client, sent) = match link {
            Link::Open { client, sent } => (client, sent),
            Link::Down { reason, .. } => return Some(deferred(msg, reason)),
            Link::NotOpened => {
                *link = self.open(); // never NotOpened again
                return self.attempt(msg, link);
            }
        };
        let result = transaction(client, msg, *sent > 0);
        *sent = sent.saturating_add(1);
        let e = match result {
            Ok(fates) => return Some(fates),
            Err(e) => e,
        };
        // The connection is in a state we cannot trust (or mid-DATA): give it up.
        log::line(&format!("{}: {e}: connection given up", msg.id));
        let reason = Reason::Local {
            status: "4.4.2",
            text: format!("{}: {e}", self.remote),
        };
        let fates = deferred(msg, &reason);
        let said = format!("{}: connection given up", self.peer);
        *link = Link::Down { reason, said };
        match e {
            ClientError::BadData => None,
            _ => Some(fates),
        }
    }

    fn open(&self) -> Link {
        Opener {
            target: &self.options.target,
            peer: &self.peer,
            settings: self.settings,
            helohost: &self.helohost,
            timeouts: self.timeouts,
        }
        .open()
    }

    /// SPEC 7: a message older than QUEUELIFETIME that cannot be delivered now is bounced.
    fn expired(&self, msg: &Message) -> bool {
        msg.age(self.now) > self.settings.queuelifetime
    }

    /// No connection: the message stays as it is, counted for the run's one line (SPEC 8).
    /// Returns true: it is still in the queue.
    fn hold(&self, msg: &Message) -> bool {
        let (messages, recipients) = self.held.get();
        let rcpts = msg.header.recipients.len();
        self.held
            .set((messages + 1, recipients.saturating_add(rcpts)));
        true
    }

    /// Applies the fates to the file: expiry, log lines, the bounce, then remove or rewrite.
    /// Returns whether the message is still in the queue.
    fn settle(&self, msg: &Message, mut fates: Vec<Fate>) -> bool {
        let age = msg.age(self.now);
        if self.expired(msg) {
            for f in fates.iter_mut() {
                if let Fate::Deferred(r) = f {
                    *f = Fate::Expired(r.clone());
                }
            }
        }
        let rcpts = &msg.header.recipients;
        for (r, fate) in rcpts.iter().zip(&fates) {
            let (what, why) = match fate {
                Fate::Delivered(reply) => ("delivered", reply.to_string()),
                Fate::Deferred(reason) => ("deferred", reason.to_string()),
                Fate::Bounced(reason) => ("bounced", reason.to_string()),
                Fate::Expired(reason) => {
                    ("expired", format!("queued {}s: {reason}", age.as_secs()))
                }
            };
            log::line(&format!(
                "{} to <{}>: {what}: {}",
                msg.id,
                quote(&log::escape(r.as_bytes())),
                quote(&why)
            ));
        }
        let failed: Vec<(&str, &Fate)> = rcpts
            .iter()
            .zip(&fates)
            .filter(|(_, f)| matches!(f, Fate::Bounced(_) | Fate::Expired(_)))
            .map(|(r, f)| (r.as_str(), f))
            .collect();
        let bounced = failed.is_empty() || self.bounce(msg, failed);
        // Those still to try: deferred ones, and failed ones whose bounce could not be sent.
        let left: Vec<String> = rcpts
            .iter()
            .zip(&fates)
            .filter(|(_, f)| match f {
                Fate::Delivered(_) => false,
                Fate::Deferred(_) => true,
                Fate::Bounced(_) | Fate::Expired(_) => !bounced,
            })
            .map(|(r, _)| r.clone())
            .collect();
        let summary = format!(
            "{} from <{}>: {} bytes, {} recipients, {} left",
            msg.id,
            quote(&log::escape(msg.header.sender.as_bytes())),
            msg.data_len,
            rcpts.len(),
            left.len()
        );
        let result = if left.is_empty() {
            spool::remove(&msg.path).map(|()| "removed")
        } else if left.len() < rcpts.len() {
            msg.rewrite(self.spool, left.clone()).map(|()| "rewritten")
        } else {
            Ok("kept")
        };
        match &result {
            Ok(done) => log::line(&format!("{summary}: {done}")),
            Err(e) => log::line(&format!("{summary}: cannot update the file: {e}")),
        }
        // A failed remove leaves a file whose delivered recipients would get it again:
        // the run reports mail left, and the log line above says why.
        !left.is_empty() || result.is_err()
    }

    /// Sends the report for `failed`; false when it could not be handed to sendmail.
    fn bounce(&self, msg: &Message, failed: Vec<(&str, &Fate)>) -> bool {
        let sender = &msg.header.sender;
        if sender.is_empty() {
            // SPEC 7: never to a null sender (a bounce of a bounce).
            log::line(&format!("{}: null sender: no bounce sent", msg.id));
            return true;
        }
        let headers = match msg.headers(bounce::MAX_RETURNED_HEADERS) {
            Ok(h) => h,
            Err(e) => {
                log::line(&format!(
                    "{}: cannot read the headers for the bounce: {e}",
                    msg.id
                ));
                return false;
            }
        };
        let report = Report {
            queue_id: &msg.id,
            sender,
            arrival: msg.arrival,
            reporting_mta: &self.helohost,
            remote_mta: &self.remote,
            failed,
            headers: &headers,
        };
        let dsn = bounce::render(&report, SystemTime::now());
        let to = quote(&log::escape(sender.as_bytes()));
        match bounce::send(&self.settings.sendmail, sender, dsn) {
            Ok(()) => {
                log::line(&format!("{}: bounce sent to <{to}>", msg.id));
                true
            }
            Err(e) => {
                log::line(&format!("{}: bounce to <{to}> not sent: {e}", msg.id));
                false
            }
        }
    }
}
