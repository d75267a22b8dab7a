//! ETRN (SPEC 3.3, RFC 1985): the primary of a backup MX, back up, asks for its mail now.
//!
//! ```text
//! smtpfront-spool: ETRN node -> Node::parse -> allowed? (RELAYCLIENT, AUTH, RCPTHOSTS)
//!     -> scan: anything in new/ for the node? (bounded head reads) -> 251 when nothing
//!     -> trigger::pull: one byte into the FIFO $SPOOLDIR/trigger -> 250, or 458
//! forward --wait N: trigger::wait -> a byte (or ALRM, or N seconds) -> exit 0 -> the loop
//!     runs forward now
//! ```
//!
//! This module owns the node syntax, the replies and the answer; [`scan`] reads the queue,
//! [`trigger`] owns both ends of the FIFO. The session only checks the protocol state and
//! passes the node to the back end ([`crate::backend::Backend::etrn`]).
//!
//! Choices where SPEC 3.3 is silent:
//! * forward sends the whole queue to its one primary: the node selects nothing to send; it
//!   decides whether the client may ask and whether to answer 250 or 251;
//! * `example.com` matches recipients in that domain, `@example.com` that domain and its
//!   sub-domains (RFC 1985 section 5.3), `#queue` every queued message (there is one queue);
//! * a node is allowed without RELAYCLIENT or AUTH when its domain (for `#name`, the name) is
//!   in `RCPTHOSTS` itself or through a `.parent` entry, as a recipient domain would be;
//! * nothing waiting: 251 and no byte written (no run is started for nothing), also when
//!   no forward waits; a message whose envelope cannot be read within the bound counts as
//!   waiting, and so does the queue when the scan runs out of time ([`scan::BUDGET`]): one
//!   run too many costs less than mail left waiting;
//! * a node is ASCII letters, digits, `-`, `.` (and `_` in a queue name), at most 255
//!   bytes, a trailing dot allowed: anything else, or nothing, is `501 5.5.4`.

pub mod scan;
pub mod trigger;

use crate::reply::Reply;
use crate::spool::Spool;
use scan::Found;
use std::fmt;

/// RFC 1035: a domain name is at most 255 bytes; a queue name gets the same room.
pub const MAX_NODE: usize = 255;

/// SPEC 3.3 `501`: RFC 3463 X.5.4, invalid command arguments (as HELO without a domain).
pub const BAD_NODE: Reply = Reply::fixed(
    501,
    "5.5.4",
    "Syntax: ETRN domain, ETRN @domain or ETRN #queue",
);
/// SPEC 3.3 `503`: ETRN between MAIL and the end of the transaction.
pub const IN_TRANSACTION: Reply = Reply::fixed(
    503,
    "5.5.1",
    "ETRN is not allowed inside a mail transaction",
);

/// What ETRN names (RFC 1985 section 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// `example.com`: mail for that domain.
    Domain(String),
    /// `@example.com`: mail for that domain and its sub-domains.
    Subdomains(String),
    /// `#name`: a queue; this host has one.
    Queue(String),
}

impl Node {
    /// The argument of ETRN, trimmed. `Err(BAD_NODE)` when missing or malformed.
    pub fn parse(arg: &str) -> Result<Node, Reply> {
        let (make, name): (fn(String) -> Node, &str) = match arg.as_bytes().first() {
            Some(b'@') => (Node::Subdomains, &arg[1..]),
            Some(b'#') => (Node::Queue, &arg[1..]),
            _ => (Node::Domain, arg),
        };
        let queue = arg.starts_with('#');
        // A U-label domain is asked for in its A-label, as RCPTHOSTS and the queue are
        // compared (SPEC 3.2); what does not convert to letters, digits and `-` stays 501.
        let converted = crate::idna::to_ascii(name);
        let name = if queue { name } else { &converted };
        let bare = name.strip_suffix('.').unwrap_or(name);
        let well_formed = !bare.is_empty()
            && name.len() <= MAX_NODE
            && bare.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || (queue && b == b'_'))
            });
        if !well_formed {
            return Err(BAD_NODE);
        }
        Ok(make(bare.to_ascii_lowercase()))
    }

    /// The name looked up in `RCPTHOSTS` to allow the node without RELAYCLIENT or AUTH.
    pub fn domain(&self) -> &str {
        match self {
            Node::Domain(d) | Node::Subdomains(d) | Node::Queue(d) => d,
        }
    }

    /// Whether mail to `recipient` is mail for this node.
    pub fn wants(&self, recipient: &str) -> bool {
        let Some(domain) = crate::address::domain(recipient) else {
            return matches!(self, Node::Queue(_));
        };
        let domain = crate::idna::to_ascii(domain);
        let domain = domain.strip_suffix('.').unwrap_or(&domain);
        match self {
            Node::Queue(_) => true,
            Node::Domain(d) => domain.eq_ignore_ascii_case(d),
            Node::Subdomains(d) => {
                domain.eq_ignore_ascii_case(d)
                    || domain.len() > d.len()
                        && domain.as_bytes()[domain.len() - d.len() - 1] == b'.'
                        && domain[domain.len() - d.len()..].eq_ignore_ascii_case(d)
            }
        }
    }
}

/// As RFC 1985 writes it (lower case: the reply never echoes client bytes back).
impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Domain(d) => write!(f, "{d}"),
            Node::Subdomains(d) => write!(f, "@{d}"),
            Node::Queue(q) => write!(f, "#{q}"),
        }
    }
}

/// RFC 1985 `250`: a run was asked for.
pub fn started(node: &Node) -> Reply {
    Reply::new(250, "2.0.0", format!("Queuing for node {node} started"))
}

/// RFC 1985 `251`: nothing waits for the node.
pub fn nothing_waiting(node: &Node) -> Reply {
    Reply::new(251, "2.0.0", format!("No messages waiting for node {node}"))
}

/// RFC 1985 `458`: no FIFO, or no forward waiting on it.
pub fn unable(node: &Node) -> Reply {
    Reply::new(
        458,
        "4.3.0",
        format!("Unable to queue messages for node {node}"),
    )
}

/// RFC 1985 `459`: the client may not ask for this node. 4.7.1: delivery not authorised.
pub fn not_allowed(node: &Node) -> Reply {
    Reply::new(
        459,
        "4.7.1",
        format!("Node {node} not allowed: not a domain this host is a backup MX for"),
    )
}

/// SPEC 3.3, 8: every ETRN is logged with the node as given, the client and the answer.
pub fn log(arg: &str, ip: Option<&str>, helo: Option<&str>, answer: &Reply) {
    let helo = helo.map_or_else(|| "none".into(), |h| crate::log::quote(h.as_bytes()));
    crate::log::line(&format!(
        "ETRN {} from {} helo {helo}: {}",
        match arg {
            "" => "(no node)".into(),
            node => crate::log::quote(node.as_bytes()),
        },
        ip.unwrap_or("unknown"),
        answer.summary()
    ));
}

/// The answer to an allowed ETRN: 251 when nothing waits for the node, else a byte into the
/// trigger FIFO and 250, or 458 when nobody can take it. Why a 458 is logged here.
pub fn start(spool: &Spool, node: &Node) -> Reply {
    let deadline = std::time::Instant::now() + scan::BUDGET;
    match scan::waiting(spool.new_dir(), node, deadline) {
        Ok(Found::Nothing) => return nothing_waiting(node),
        Ok(Found::Waiting) => {}
        Ok(Found::OutOfTime(files)) => crate::log::line(&format!(
            "ETRN: {files} files of {} read in {} ms, none for {node} yet: counted as waiting",
            spool.new_dir().display(),
            scan::BUDGET.as_millis()
        )),
        // The queue could not be read: ask for a run anyway, forward will say more.
        Err(e) => crate::log::line(&format!(
            "ETRN: cannot read {}: {e}",
            spool.new_dir().display()
        )),
    }
    match trigger::pull(spool.root()) {
        Ok(()) => started(node),
        Err(e) => {
            crate::log::line(&format!("ETRN: {e}"));
            unable(node)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_forms() {
        assert_eq!(
            Node::parse("Example.COM"),
            Ok(Node::Domain("example.com".into()))
        );
        assert_eq!(
            Node::parse("@example.com."),
            Ok(Node::Subdomains("example.com".into()))
        );
        assert_eq!(Node::parse("#my_queue"), Ok(Node::Queue("my_queue".into())));
        assert_eq!(Node::parse("@x.y").unwrap().to_string(), "@x.y");
        assert_eq!(Node::parse("#q").unwrap().to_string(), "#q");
    }

    #[test]
    fn malformed_nodes() {
        let long = "a".repeat(MAX_NODE + 1);
        for bad in [
            "",
            "@",
            "#",
            ".",
            "a..b",
            ".a",
            "a b",
            "a_b",
            "[192.0.2.1]",
            "u@x",
            "@@x",
            "#a b",
            "#b\u{fc}cher",
            "b\u{fc}cher..example",
            &long,
        ] {
            assert_eq!(Node::parse(bad), Err(BAD_NODE), "{bad:?}");
        }
        assert!(Node::parse(&"a".repeat(MAX_NODE)).is_ok());
    }

    #[test]
    fn which_recipients_a_node_wants() {
        let d = Node::parse("example.com").unwrap();
        assert!(d.wants("a@EXAMPLE.com"));
        assert!(d.wants("a@example.com."));
        assert!(!d.wants("a@mail.example.com"));
        assert!(!d.wants("a@notexample.com"));
        assert!(!d.wants("postmaster"));
        let s = Node::parse("@example.com").unwrap();
        assert!(s.wants("a@example.com"));
        assert!(s.wants("a@mail.Example.com"));
        assert!(!s.wants("a@notexample.com"));
        assert!(!s.wants("a@com"));
        let u = Node::parse("b\u{fc}cher.example").unwrap();
        assert_eq!(u.to_string(), "xn--bcher-kva.example");
        assert!(u.wants("a@B\u{dc}cher.example") && u.wants("a@xn--bcher-kva.example"));
        assert_eq!(
            Node::parse("@xn--bcher-kva.example"),
            Ok(Node::Subdomains(u.to_string()))
        );
        let q = Node::parse("#all").unwrap();
        assert!(q.wants("a@anything.example") && q.wants("postmaster"));
    }
}
