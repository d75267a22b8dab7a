//! What becomes of each recipient (SPEC 7): one SMTP transaction of a message and the
//! mapping of the remote's replies to a [`Fate`] per recipient. No file is touched here.

use super::client::{Client, ClientError, Envelope, EnvelopeReplies};
use super::queue::Message;
use super::reply::RemoteReply;

/// Why a recipient is not (yet) delivered: the remote's reply, or something on our side
/// or on the way, with its RFC 3463 status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    Remote(RemoteReply),
    Local { status: &'static str, text: String },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Remote(r) => write!(f, "{r}"),
            Reason::Local { text, .. } => write!(f, "{text}"),
        }
    }
}

/// What became of one recipient in this run (SPEC 7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// 2xx to RCPT and to the final dot.
    Delivered(RemoteReply),
    /// 4xx (or no answer): kept for the next run.
    Deferred(Reason),
    /// 5xx: reported to the sender, removed.
    Bounced(Reason),
    /// Deferred, but older than QUEUELIFETIME: reported to the sender, removed.
    Expired(Reason),
}

/// Every recipient kept for later, for `reason`.
pub fn deferred(msg: &Message, reason: &Reason) -> Vec<Fate> {
    msg.header
        .recipients
        .iter()
        .map(|_| Fate::Deferred(reason.clone()))
        .collect()
}

/// One SMTP transaction (RSET first unless it is the first of the connection).
pub fn transaction(
    client: &mut Client,
    msg: &Message,
    rset: bool,
) -> Result<Vec<Fate>, ClientError> {
    if rset {
        client.rset()?;
    }
    let env = Envelope {
        sender: &msg.header.sender,
        body: msg.header.body.as_deref(),
        size: msg.data_len,
        recipients: &msg.header.recipients,
    };
    let replies = client.envelope(&env)?;
    let dot = if replies.go_ahead() && accepted(&replies).next().is_some() {
        let data = msg.data().map_err(ClientError::Io)?;
        Some(client.data(data)?)
    } else {
        None
    };
    Ok(fates(msg.header.recipients.len(), &replies, dot.as_ref()))
}

fn accepted(replies: &EnvelopeReplies) -> impl Iterator<Item = &RemoteReply> {
    let mail_ok = replies.mail.is_positive();
    replies
        .rcpts
        .iter()
        .filter(move |r| mail_ok && r.is_positive())
}

/// SPEC 7: per recipient 2xx done, 4xx kept, 5xx bounced; an accepted recipient then
/// takes the verdict of DATA and of the final dot. A refused MAIL decides for all.
fn fates(n: usize, replies: &EnvelopeReplies, dot: Option<&RemoteReply>) -> Vec<Fate> {
    (0..n)
        .map(|i| {
            let decisive = if !replies.mail.is_positive() {
                &replies.mail
            } else {
                match replies.rcpts.get(i) {
                    Some(r) if !r.is_positive() => r,
                    None => &replies.mail, // unreachable: one reply per RCPT
                    Some(_) => match (&replies.data, dot) {
                        (Some(d), _) if d.code != 354 => d,
                        (Some(_), Some(dot)) => dot,
                        _ => return Fate::Deferred(no_reply()),
                    },
                }
            };
            verdict(decisive)
        })
        .collect()
}

fn no_reply() -> Reason {
    Reason::Local {
        status: "4.4.2",
        text: "no reply to the message".into(),
    }
}

fn verdict(reply: &RemoteReply) -> Fate {
    match reply.code / 100 {
        2 => Fate::Delivered(reply.clone()),
        5 => Fate::Bounced(Reason::Remote(reply.clone())),
        _ => Fate::Deferred(Reason::Remote(reply.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(code: u16) -> RemoteReply {
        RemoteReply {
            code,
            lines: vec![format!("{code} text")],
        }
    }

    #[test]
    fn fates_follow_spec_7() {
        let replies = EnvelopeReplies {
            mail: r(250),
            rcpts: vec![r(250), r(451), r(550)],
            data: Some(r(354)),
        };
        let f = fates(3, &replies, Some(&r(250)));
        assert!(matches!(f[0], Fate::Delivered(_)));
        assert!(matches!(f[1], Fate::Deferred(_)));
        assert!(matches!(f[2], Fate::Bounced(_)));
        let f = fates(3, &replies, Some(&r(451)));
        assert!(matches!(f[0], Fate::Deferred(_)));
        let f = fates(3, &replies, Some(&r(554)));
        assert!(matches!(f[0], Fate::Bounced(_)));
        let refused = EnvelopeReplies {
            mail: r(553),
            rcpts: vec![],
            data: None,
        };
        assert!(fates(2, &refused, None)
            .iter()
            .all(|f| matches!(f, Fate::Bounced(_))));
    }
}
