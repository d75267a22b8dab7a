//! forward (SPEC 7): sends everything in `$SPOOLDIR/new` to one host, in one connection,
//! and removes what the remote accepted. No retry loop of its own: the exit status tells
//! the invoking loop whether to run it again (`until forward mx; do sleep 300; done`).
//!
//! ```text
//! argv -> Command -> Settings -> Spool -> lock -> queue::scan -> Message::load
//!      -> client (EHLO, envelope, data) -> Fate per recipient -> remove / rewrite / bounce
//!      -> Outcome -> exit status (one place: Outcome::exit_code)
//! ```
//!
//! [`client`] is the SMTP client side and knows no spool, [`reply`] its bounded reply
//! reader; [`queue`] reads message files; [`fate`] turns one transaction's replies into a
//! [`Fate`] per recipient; [`run`] is one delivery run (lock, passes over the queue, the
//! file updates); [`link`] opens the connection (STARTTLS and its policy included);
//! [`bounce`] builds and sends RFC 3464 reports ([`intl`]: RFC 6533's types for UTF-8 in
//! them); [`utf8`] decides how a message that came with SMTPUTF8 goes on (SPEC 3.2).
//!
//! **Success is one event** ([`fate::message_fate`]): nothing is removed or counted
//! delivered without a 2xx to the final dot of a transaction whose DATA got 354.
//!
//! A remote out of step is never believed: a reply line of any length is read for its code
//! and cut; lines of one reply with different codes, a reply outside the protocol (250 to
//! DATA) and bytes sent out of turn (two replies to one command, a reply before its command)
//! give the connection up with every message not yet settled kept ([`client`], [`reply`]).
//!
//! Choices where SPEC 7 is silent:
//! * a message's age comes from the time stamp in its name (the spool's names start with
//!   the arrival time in seconds), not the mtime, which a rewrite renews; other names, and
//!   stamps later than the mtime (a message cannot arrive after its file was written),
//!   fall back to the mtime;
//! * `-t` sets one timeout for the connect and every reply, the dot included; without it
//!   the connect and replies get 60 s, the dot 300 s;
//! * `BODY=` is passed on only when the remote offers 8BITMIME, `SIZE=` (the stored size)
//!   only when it offers SIZE; 8-bit mail still goes to a server without 8BITMIME, as
//!   qmail-remote does;
//! * a bounce that sendmail refuses leaves its recipients queued, so a later run tries
//!   them (and the report) again;
//! * mail that arrives during a run goes out on the same connection (up to a few passes);
//! * a file found during sending to hold a lone dot line before its end goes to `bad/`;
//! * `--list` takes no lock: it only reads; it shows at most [`queue::LIST_RECIPIENTS`]
//!   recipients of a message, then `... and N more`;
//! * what is not a regular file in `new/` (a FIFO, a symbolic link, a directory) goes to
//!   `bad/` unopened (a FIFO would block, a link would read some other file);
//! * remote text (and addresses) quoted in a log line is cut at [`MAX_QUOTED`] bytes (SPEC 8).

pub mod bounce;
pub mod channel;
pub mod client;
pub mod fate;
pub mod intl;
pub mod link;
pub mod queue;
pub mod reply;
pub mod run;
pub mod utf8;
pub mod wait;

use crate::config::Settings;
use crate::log;
use crate::spool::Spool;
pub use fate::{Fate, Reason};
use std::time::{Duration, SystemTime};

/// SPEC 8: most bytes of remote or client text one log line quotes (a 100 kB reply text
/// must not become a 100 kB log line); the same cap as the front ends' `log::quote`.
pub use crate::log::MAX_QUOTED;

/// Text (already escaped) as a log line quotes it: cut at [`MAX_QUOTED`] bytes with `…`.
pub fn quote(text: &str) -> String {
    if text.len() <= MAX_QUOTED {
        return text.to_string();
    }
    let mut end = MAX_QUOTED;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

pub const USAGE: &str = "usage: forward [-h helohost] [-t seconds] host[:port]
       forward [-h helohost] [-t seconds] -u
       forward --list
       forward --wait seconds
       forward --help
  -u: send over the connection of a UCSPI client (read fd 6, write fd 7), e.g.
      s6-tcpclient mx 25 s6-ucspitlsc -- forward -u  (STARTTLS through the helper)";

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Deliver(Options),
    List,
    /// `--wait N`: wait up to N seconds for an ETRN (SPEC 3.3).
    Wait(Duration),
    /// `--help`: the usage on stdout, exit 0 (as operators expect of a system program).
    Help,
}

/// Where a delivery run sends (SPEC 7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `host[:port]`: forward connects itself.
    Host { host: String, port: u16 },
    /// `-u`: a UCSPI client (s6-tcpclient, perhaps s6-ucspitlsc) connected and left the
    /// connection on fds 6 (read) and 7 (write): forward only talks.
    Ucspi,
}

/// SPEC 7 `-u`: the UCSPI client's descriptors (s6-tcpclient's convention, which
/// s6-ucspitlsc keeps).
pub const UCSPI_READ_FD: i32 = 6;
pub const UCSPI_WRITE_FD: i32 = 7;

/// The options of a delivery run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub target: Target,
    /// `-h`: overrides HELOHOST.
    pub helohost: Option<String>,
    /// `-t`: one timeout for the connect and every reply, the dot included.
    pub timeout: Option<Duration>,
}

/// A command line that makes no sense (exit 64).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

/// Parses the arguments after the program name.
pub fn parse_args(args: &[String]) -> Result<Command, UsageError> {
    let usage = |s: &str| Err(UsageError(s.to_string()));
    match args {
        [a] if a == "--list" => return Ok(Command::List),
        [a] if a == "--help" => return Ok(Command::Help),
        [a, n] if a == "--wait" => return wait::parse_seconds(n).map(Command::Wait),
        _ => {}
    }
    let (mut helohost, mut timeout, mut ucspi, mut rest) = (None, None, false, args);
    while let Some(opt) = rest.first().filter(|a| a.starts_with('-')) {
        if opt == "--" {
            rest = &rest[1..];
            break;
        }
        if opt == "-u" {
            ucspi = true;
            rest = &rest[1..];
            continue;
        }
        let (flag, value, used) = match (opt.get(..2), opt.get(2..)) {
            (Some(f), Some(v)) if !v.is_empty() => (f, v.to_string(), 1),
            (Some(f), _) => match rest.get(1) {
                Some(v) => (f, v.clone(), 2),
                None => return usage(&format!("{opt} needs a value")),
            },
            _ => return usage(&format!("unknown option {opt}")),
        };
        match flag {
            "-h" if !value.is_empty() && !value.contains(char::is_whitespace) => {
                helohost = Some(value)
            }
            "-t" => match value.parse::<u64>() {
                Ok(n) if n > 0 => timeout = Some(Duration::from_secs(n)),
                _ => return usage(&format!("-t {value:?}: a positive number of seconds")),
            },
            _ => return usage(&format!("unknown option or bad value: {opt} {value:?}")),
        }
        rest = &rest[used..];
    }
    let target = match (ucspi, rest) {
        (true, []) => Target::Ucspi,
        (true, _) => return usage("-u sends over fds 6 and 7: no host with it"),
        (false, [target]) => {
            let (host, port) = parse_target(target).ok_or_else(|| {
                UsageError(format!(
                    "{target:?} is not host, host:port or [address]:port"
                ))
            })?;
            Target::Host { host, port }
        }
        (false, _) => return usage("one host to send to, and nothing else"),
    };
    Ok(Command::Deliver(Options {
        target,
        helohost,
        timeout,
    }))
}

/// `host`, `host:port`, `[v6 address]` or `[v6 address]:port`; the port defaults to 25.
fn parse_target(t: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(v6) = t.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match t.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (t, None),
        }
    };
    let port = match port {
        None => 25,
        Some(p) => p.parse::<u16>().ok().filter(|&p| p > 0)?,
    };
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return None;
    }
    Some((host.to_string(), port))
}

/// How a run ended; [`Outcome::exit_code`] is the one place it becomes an exit status.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing left in the queue (all delivered, or permanently failed and reported).
    QueueEmpty,
    /// Mail remains: deferred recipients, no connection, a failed bounce or rewrite.
    MailRemains,
    /// Another forward holds the lock.
    Locked,
    /// The spool could not be used (a log line said why): try again later.
    SpoolTrouble,
    Usage(UsageError),
    Config(String),
    /// `--help` answered.
    Help,
    /// `--wait` returned: an ETRN, SIGALRM or the time is up (SPEC 3.3).
    Waited,
}

impl Outcome {
    /// SPEC 7 (sysexits): 0, 75 EX_TEMPFAIL, 64 EX_USAGE, 78 EX_CONFIG.
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::QueueEmpty | Outcome::Help | Outcome::Waited => 0,
            Outcome::MailRemains | Outcome::Locked | Outcome::SpoolTrouble => 75,
            Outcome::Usage(_) => 64,
            Outcome::Config(_) => 78,
        }
    }
}

/// The whole program: arguments after the program name in, outcome out.
pub fn main(args: &[String]) -> Outcome {
    let command = match parse_args(args) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            return Outcome::Help;
        }
        Ok(c) => c,
        Err(e) => {
            eprintln!("forward: {}\n{USAGE}", e.0);
            return Outcome::Usage(e);
        }
    };
    if let Err(e) = check_ucspi_fds(&command) {
        eprintln!("forward: {}\n{USAGE}", e.0);
        return Outcome::Usage(e);
    }
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => return config_error(e.to_string()),
    };
    log::init(
        "forward",
        settings.syslog.as_deref(),
        settings.syslog_socket.as_deref(),
    );
    let Some(root) = settings.spooldir.as_deref() else {
        return config_error("SPOOLDIR is not set: set it to the spool directory".into());
    };
    let spool = match Spool::open(root) {
        Ok(s) => s,
        Err(e) => return config_error(e),
    };
    match command {
        Command::Help => Outcome::Help,
        Command::List => {
            let stdout = std::io::stdout();
            match queue::list(&spool, SystemTime::now(), &mut stdout.lock()) {
                Ok(()) => Outcome::QueueEmpty,
                Err(e) => {
                    log::line(&format!("cannot list {}: {e}", root.display()));
                    Outcome::SpoolTrouble
                }
            }
        }
        Command::Deliver(options) => run::deliver(&spool, &settings, &options),
        Command::Wait(timeout) => wait::wait(&spool, timeout),
    }
}

/// `-u` run by hand, without a UCSPI client: fds 6 and 7 are not a connection. Checked
/// before anything is touched (exit 64, as for any command line that cannot work).
fn check_ucspi_fds(command: &Command) -> Result<(), UsageError> {
    let ucspi = matches!(command, Command::Deliver(o) if o.target == Target::Ucspi);
    let open = [UCSPI_READ_FD, UCSPI_WRITE_FD]
        .iter()
        .all(|&fd| crate::sys::fd_is_open(fd));
    match (ucspi, open) {
        (true, false) => Err(UsageError(
            "-u: fds 6 and 7 are not open: run it under a UCSPI client (s6-tcpclient host port forward -u)"
                .into(),
        )),
        _ => Ok(()),
    }
}

/// SPEC 2: the variable and its value go to stderr, and the exit status is 78.
fn config_error(msg: String) -> Outcome {
    eprintln!("forward: {msg}");
    Outcome::Config(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn command_lines() {
        assert_eq!(parse_args(&args(&["--list"])), Ok(Command::List));
        let Ok(Command::Deliver(o)) = parse_args(&args(&["-h", "me.example", "-t5", "mx:2525"]))
        else {
            panic!()
        };
        assert_eq!(o.target, host("mx", 2525));
        assert_eq!(o.helohost.as_deref(), Some("me.example"));
        assert_eq!(o.timeout, Some(Duration::from_secs(5)));
        let Ok(Command::Deliver(o)) = parse_args(&args(&["[::1]:26"])) else {
            panic!()
        };
        assert_eq!(o.target, host("::1", 26));
        let Ok(Command::Deliver(o)) = parse_args(&args(&["--", "mx.example"])) else {
            panic!()
        };
        assert_eq!(o.target, host("mx.example", 25));
        let Ok(Command::Deliver(o)) = parse_args(&args(&["-u", "-t", "9", "-h", "me"])) else {
            panic!()
        };
        assert_eq!(o.target, Target::Ucspi);
        assert_eq!(o.timeout, Some(Duration::from_secs(9)));
    }

    fn host(h: &str, port: u16) -> Target {
        Target::Host {
            host: h.into(),
            port,
        }
    }

    #[test]
    fn bad_command_lines() {
        for a in [
            &[][..],
            &["a", "b"],
            &["-x", "mx"],
            &["-t", "0", "mx"],
            &["-t", "abc", "mx"],
            &["-t"],
            &["mx:0"],
            &["mx:99999"],
            &["--list", "mx"],
            &[":25"],
            &["-u", "mx"],
            &["mx", "-u"],
        ] {
            assert!(parse_args(&args(a)).is_err(), "{a:?}");
        }
    }

    #[test]
    fn quotes_are_cut_at_200_bytes() {
        assert_eq!(quote("short"), "short");
        let at = "a".repeat(MAX_QUOTED);
        assert_eq!(quote(&at), at);
        assert_eq!(
            quote(&"b".repeat(5000)),
            format!("{}…", "b".repeat(MAX_QUOTED))
        );
        let wide = "é".repeat(MAX_QUOTED); // two bytes each: cut on a character boundary
        assert_eq!(quote(&wide), format!("{}…", "é".repeat(MAX_QUOTED / 2)));
    }

    #[test]
    fn a_huge_timeout_is_a_long_one() {
        let Ok(Command::Deliver(o)) = parse_args(&args(&["-t", "18446744073709551615", "mx"]))
        else {
            panic!()
        };
        assert_eq!(o.timeout, Some(Duration::from_secs(u64::MAX)));
        let t = client::Timeouts::all(o.timeout.unwrap());
        assert_eq!(t.dot, reply::MAX_WAIT);
        assert!(reply::deadline(t.dot) > std::time::Instant::now());
    }

    #[test]
    fn exit_codes() {
        assert_eq!(Outcome::QueueEmpty.exit_code(), 0);
        assert_eq!(Outcome::Locked.exit_code(), 75);
        assert_eq!(Outcome::Usage(UsageError(String::new())).exit_code(), 64);
        assert_eq!(Outcome::Config(String::new()).exit_code(), 78);
    }
}
