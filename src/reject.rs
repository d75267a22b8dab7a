//! smtpfront-reject: maintenance mode in front of any chain. With `SMTPREJECT` set it
//! speaks just enough SMTP to refuse every MAIL, RCPT, DATA and ETRN with that text
//! (`451 4.3.2`, or `553 5.7.1` when the text starts with `-`), answers
//! HELO/EHLO/RSET/NOOP/QUIT normally, and keeps all the limits and timeouts of a session.
//! Without it, it `exec`s its arguments, leaving the environment and descriptors untouched
//! (the program is invisible).

use crate::backend::{Approval, Backend, EtrnSupport, Queued};
use crate::config::Settings;
use crate::envelope::Envelope;
use crate::etrn::Node;
use crate::frontend;
use crate::log;
use crate::reply::{self, Reply};
use std::ffi::{OsStr, OsString};
use std::io;

/// The back end of a refusing session: every sender is refused with the operator's text.
pub struct Refuse {
    refusal: Reply,
}

impl Refuse {
    /// SPEC 2: a leading `-` means permanent and is stripped.
    pub fn new(text: &str) -> Refuse {
        let refusal = match text.strip_prefix('-') {
            Some(rest) => Reply::new(553, "5.7.1", non_empty(rest)),
            None => Reply::new(451, "4.3.2", non_empty(text)),
        };
        Refuse { refusal }
    }
}

fn non_empty(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        "Mail is not accepted now".to_string()
    } else {
        // A reply line may not hold CR; LF would start a new reply line on purpose only.
        text.replace(['\r', '\0'], " ")
    }
}

impl Backend for Refuse {
    fn sender(&mut self, _envelope: &Envelope) -> Result<Reply, Reply> {
        Err(self.refusal.clone())
    }

    fn recipient(&mut self, _recipient: &str, _approval: Approval) -> Result<Reply, Reply> {
        Err(self.refusal.clone())
    }

    fn data_start(&mut self, _envelope: &Envelope, _trace: &[u8]) -> io::Result<()> {
        Err(io::Error::other("refusing all mail"))
    }

    fn data(&mut self, _bytes: &[u8]) -> io::Result<()> {
        Err(io::Error::other("refusing all mail"))
    }

    fn data_end(&mut self, _envelope: &Envelope, _size: u64) -> io::Result<Queued> {
        Err(io::Error::other("refusing all mail"))
    }

    /// SPEC 2: while it refuses, AUTH is neither offered nor run (like rblsmtpd).
    fn auth_allowed(&self) -> bool {
        false
    }

    /// SPEC 3.3: in front of smtpfront-spool, ETRN is refused like everything else while
    /// the chain refuses (with the operator's text), though not listed in EHLO.
    fn etrn_support(&self) -> EtrnSupport {
        EtrnSupport::Unlisted
    }

    fn etrn(&mut self, _node: &Node, _privileged: bool) -> Reply {
        self.refusal.clone()
    }
}

/// The whole program: returns the exit status, or does not return (exec).
pub fn run(argv: &[OsString]) -> i32 {
    const PROGRAM: &str = "smtpfront-reject";
    // SMTPREJECT is read through the one settings parser like everything else, but a bad
    // value elsewhere must not stop the chain from being exec'd: the next program judges it.
    match std::env::var_os("SMTPREJECT") {
        Some(_) => frontend::run(PROGRAM, |settings: &Settings| {
            let text = settings.smtpreject.clone().unwrap_or_default();
            Ok(Refuse::new(&text))
        }),
        None if argv.is_empty() => {
            log::init(PROGRAM, None, None);
            log::line("SMTPREJECT is unset and there is no program to run: usage: smtpfront-reject program [arg ...]");
            frontend::refuse(&reply::CONFIG_ERROR)
        }
        None => {
            let args: Vec<&OsStr> = argv.iter().map(OsString::as_os_str).collect();
            let err = crate::sys::exec(&args);
            log::init(PROGRAM, None, None);
            log::line(&format!("cannot run {}: {err}", argv[0].to_string_lossy()));
            frontend::refuse(&reply::CONFIG_ERROR)
        }
    }
}
