//! The connection of a run (SPEC 7): opened when the first message is ready to go — connect
//! (or take the UCSPI client's fds 6 and 7), greeting, EHLO/HELO, and STARTTLS through the
//! UCSPI-TLS helper when there is one — or down, with the reason every message waits for.
//!
//! TLS policy (SPEC 7, TLS bullet), where SPEC 7 is silent written down here:
//! * STARTTLS is sent when a helper is there (`-u` under s6-ucspitlsc) and the primary's
//!   EHLO offers it; then EHLO again inside TLS. The protocol and cipher are logged once.
//! * `REQUIRE_TLS`: no helper (also `forward host`, which has none) means no connection at
//!   all; a primary that does not offer STARTTLS, refuses it, or a failed handshake, is a
//!   temporary failure (`4.7.0`): every message kept, one log line saying why.
//! * Without `REQUIRE_TLS`: no STARTTLS offered, or STARTTLS refused, and the mail goes in
//!   clear (logged when a helper was there to use); a failed handshake leaves a connection
//!   in no known state, so the run ends there (everything kept).

use super::client::{Client, ClientError, Timeouts};
use super::reply::RemoteReply;
use super::{quote, Reason, Target, UCSPI_READ_FD, UCSPI_WRITE_FD};
use crate::config::Settings;
use crate::log;
use crate::ucspitls::Helper;

/// Why a run with REQUIRE_TLS and no helper sends nothing.
const NO_HELPER: &str =
    "REQUIRE_TLS is set, and there is no UCSPI-TLS helper (run forward -u under s6-ucspitlsc)";

/// The connection of a run.
pub enum Link {
    NotOpened,
    Open {
        client: Client,
        sent: usize,
    },
    /// No (more) delivery in this run: why every message waits (or expires), and the cause
    /// as the run's one log line about it says it (SPEC 8: one line for the run, logged by
    /// the run with the count of what it kept).
    Down {
        reason: Reason,
        said: String,
    },
}

/// What opening needs to know.
pub struct Opener<'a> {
    pub target: &'a Target,
    /// `host:port`, or the UCSPI client's remote address and port: the log lines' prefix.
    pub peer: &'a str,
    pub settings: &'a Settings,
    pub helohost: &'a str,
    pub timeouts: Timeouts,
}

/// Opening failed: why, the log text, and whether the session is in step for a QUIT.
struct Failed {
    reason: Reason,
    said: String,
    quit: bool,
}

impl Failed {
    fn down(self) -> Link {
        Link::Down {
            reason: self.reason,
            said: self.said,
        }
    }
}

impl Opener<'_> {
    pub fn open(&self) -> Link {
        let helper = self.helper();
        if self.settings.require_tls && helper.is_none() {
            // Nothing may go in clear: not even a connection is worth opening.
            return self.down("4.7.0", &NO_HELPER).down();
        }
        let mut client = match self.target {
            Target::Host { host, port } => match Client::connect(host, *port, self.timeouts) {
                Ok(c) => c,
                Err(e) => return self.down("4.4.1", &e).down(),
            },
            Target::Ucspi => Client::ucspi(UCSPI_READ_FD, UCSPI_WRITE_FD, helper, self.timeouts),
        };
        match self.start(&mut client) {
            Ok(()) => Link::Open { client, sent: 0 },
            Err(failed) => {
                if failed.quit {
                    client.quit();
                }
                failed.down()
            }
        }
    }

    /// SPEC 3.1 descriptors, as the front ends check them: only with `-u`.
    fn helper(&self) -> Option<Helper> {
        if *self.target != Target::Ucspi {
            return None;
        }
        Helper::from_settings(self.settings).unwrap_or_else(|why| {
            log::line(&format!("{}: {why}", self.peer));
            None
        })
    }

    /// Greeting, EHLO, and STARTTLS when there is a helper.
    fn start(&self, client: &mut Client) -> Result<(), Failed> {
        match client.greeting() {
            Ok(r) if r.is_positive() => {}
            Ok(r) => return Err(self.refused("greeting", r)),
            Err(e) => return Err(self.down("4.4.2", &e)),
        }
        self.hello(client)?;
        if client.has_tls_helper() {
            self.secure(client)?;
        }
        Ok(())
    }

    fn hello(&self, client: &mut Client) -> Result<(), Failed> {
        match client.hello(self.helohost) {
            Ok(r) if r.is_positive() => Ok(()),
            Ok(r) => Err(self.refused("HELO", r)),
            Err(e) => Err(self.down("4.4.2", &e)),
        }
    }

    /// SPEC 7 TLS: STARTTLS, the handshake, EHLO again; or the policy of the module doc.
    fn secure(&self, client: &mut Client) -> Result<(), Failed> {
        let required = self.settings.require_tls;
        if !client.extensions.starttls {
            if required {
                let why = "no STARTTLS offered, and REQUIRE_TLS is set";
                return Err(Failed {
                    quit: true,
                    ..self.down("4.7.0", &why)
                });
            }
            log::line(&format!(
                "{}: no STARTTLS offered: sending in clear",
                self.peer
            ));
            return Ok(());
        }
        match client.start_tls() {
            Ok(info) => {
                let (protocol, cipher) = (&info.protocol, &info.cipher);
                log::line(&format!("{}: TLS {protocol} {cipher}", self.peer));
                self.hello(client)
            }
            Err(ClientError::TlsRefused(r)) if !required => {
                let said = quote(&r.to_string());
                log::line(&format!(
                    "{}: STARTTLS refused: {said}: sending in clear",
                    self.peer
                ));
                Ok(())
            }
            Err(ClientError::TlsRefused(r)) => {
                let said = quote(&r.to_string());
                let why = format!("STARTTLS refused: {said}, and REQUIRE_TLS is set");
                Err(Failed {
                    quit: true,
                    ..self.down("4.7.0", &why)
                })
            }
            Err(e @ ClientError::Tls(_)) => Err(self.down("4.7.0", &e)),
            Err(e) => Err(self.down("4.4.2", &e)),
        }
    }

    /// The remote refused (greeting, HELO): its reply is the reason; QUIT is in order.
    fn refused(&self, what: &str, reply: RemoteReply) -> Failed {
        let said = format!("{}: {what}: {}", self.peer, quote(&reply.to_string()));
        Failed {
            reason: Reason::Remote(reply),
            said,
            quit: true,
        }
    }

    /// No connection, or one that broke: the reason every message is kept for. No QUIT
    /// into a connection in an unknown state (callers that know better set `quit`).
    fn down(&self, status: &'static str, e: &dyn std::fmt::Display) -> Failed {
        let text = format!("{}: {e}", self.peer);
        Failed {
            said: text.clone(),
            reason: Reason::Local { status, text },
            quit: false,
        }
    }
}
