//! `forward --wait N` (SPEC 3.3, 7): waits up to N seconds for an ETRN on the FIFO
//! `$SPOOLDIR/trigger` and exits 0, so that `forward mx; forward --wait 300` runs at once on
//! ETRN and every 5 minutes otherwise. SIGALRM (`svc -a`) ends the wait too.
//!
//! It exits 0 only after it waited (a byte, SIGALRM, or the time); any other status means it
//! did not wait, and the calling loop must sleep instead of running forward again at once
//! (service/forward/run does). A name `trigger` that is not a FIFO is a configuration
//! error (78): it is never opened, nor replaced.

use super::{config_error, Outcome, UsageError};
use crate::etrn::trigger::{self, TriggerError, Wake};
use crate::log;
use crate::spool::Spool;
use std::time::Duration;

/// SPEC 2: a decimal, non-negative number of seconds.
pub fn parse_seconds(n: &str) -> Result<Duration, UsageError> {
    match n.parse::<u64>() {
        Ok(s) if n.bytes().all(|b| b.is_ascii_digit()) => Ok(Duration::from_secs(s)),
        _ => Err(UsageError(format!(
            "--wait {n:?}: a non-negative number of seconds"
        ))),
    }
}

/// The wait, its log line (a wake-up is news, a timeout is not) and its exit status.
pub fn wait(spool: &Spool, timeout: Duration) -> Outcome {
    match trigger::wait(spool.root(), timeout) {
        Ok(Wake::Trigger) => {
            log::line("woken by ETRN: the queue is sent now");
            Outcome::Waited
        }
        Ok(Wake::Alarm) => {
            log::line("woken by SIGALRM: the queue is sent now");
            Outcome::Waited
        }
        Ok(Wake::Timeout) => Outcome::Waited,
        Err(e @ TriggerError::NotFifo(_)) => config_error(e.to_string()),
        Err(e) => {
            log::line(&format!("--wait: {e}"));
            Outcome::SpoolTrouble
        }
    }
}
