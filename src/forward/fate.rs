//! What becomes of each recipient (SPEC 7): one SMTP transaction of a message and the
//! mapping of the remote's replies to a [`Fate`] per recipient. No file is touched here.

use super::client::{Client, ClientError, Envelope, EnvelopeReplies};
use super::queue::Message;
use super::reply::RemoteReply;
use super::utf8::{self, Plan};

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

/// Every recipient with one fate.
fn all(msg: &Message, fate: Fate) -> Vec<Fate> {
    vec![fate; msg.header.recipients.len()]
}

/// One SMTP transaction (RSET first unless it is the first of the connection). A message
/// that cannot go to this primary (SPEC 3.2: SMTPUTF8 needed, not offered) is settled
/// without a word to it.
pub fn transaction(
    client: &mut Client,
    msg: &Message,
    rset: bool,
) -> Result<Vec<Fate>, ClientError> {
    let smtputf8 = match utf8::plan(msg, client.extensions.smtputf8) {
        Plan::Send { smtputf8 } => smtputf8,
        Plan::Bounce(reason) => return Ok(all(msg, Fate::Bounced(reason))),
        Plan::Defer(reason) => return Ok(all(msg, Fate::Deferred(reason))),
    };
    if rset {
        client.rset()?;
    }
    let env = Envelope {
        sender: &msg.header.sender,
        body: msg.header.body.as_deref(),
        size: msg.data_len,
        smtputf8,
        recipients: &msg.header.recipients,
    };
    let replies = client.envelope(&env)?;
    let dot = if replies.go_ahead() && accepted(&replies).next().is_some() {
        Some(client.data(msg.data())?)
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

/// SPEC 7: per recipient, a refused MAIL or RCPT decides (5xx bounced, anything else kept);
/// an accepted recipient takes the fate of the message, [`message_fate`].
pub fn fates(n: usize, replies: &EnvelopeReplies, dot: Option<&RemoteReply>) -> Vec<Fate> {
    let message = message_fate(replies.data.as_ref(), dot);
    (0..n)
        .map(|i| match replies.rcpts.get(i) {
            _ if !replies.mail.is_positive() => refused(&replies.mail),
            Some(r) if !r.is_positive() => refused(r),
            Some(_) => message.clone(),
            None => Fate::Deferred(no_reply("RCPT")), // not sent: MAIL refused one by one
        })
        .collect()
}

/// The one rule of success (SPEC 7; STYLE: "success is one specific event"): nothing is
/// counted delivered (and so removed) without a 2xx to the final dot of a transaction whose
/// DATA got 354. Any other reply to DATA fails the transaction: 4xx kept, 5xx bounced,
/// anything else (2xx, 3xx other than 354) kept. After the 354, the dot decides the same
/// way: 2xx delivered, 5xx bounced, anything else kept; no reply at all is kept.
pub fn message_fate(data: Option<&RemoteReply>, dot: Option<&RemoteReply>) -> Fate {
    match (data, dot) {
        (None, _) => Fate::Deferred(no_reply("DATA")),
        (Some(data), _) if data.code != 354 => refused(data),
        (Some(_), None) => Fate::Deferred(no_reply("the message")),
        (Some(_), Some(dot)) if dot.is_positive() => Fate::Delivered(dot.clone()),
        (Some(_), Some(dot)) => refused(dot),
    }
}

/// A reply that does not accept: 5xx bounced; 4xx, and anything out of place, kept.
fn refused(reply: &RemoteReply) -> Fate {
    match reply.is_permanent() {
        true => Fate::Bounced(Reason::Remote(reply.clone())),
        false => Fate::Deferred(Reason::Remote(reply.clone())),
    }
}

fn no_reply(to: &str) -> Reason {
    Reason::Local {
        status: "4.4.2",
        text: format!("no reply to {to}"),
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

    fn kind(f: &Fate) -> &'static str {
        match f {
            Fate::Delivered(_) => "delivered",
            Fate::Deferred(_) => "deferred",
            Fate::Bounced(_) => "bounced",
            Fate::Expired(_) => "expired",
        }
    }

    #[test]
    fn success_is_354_then_2xx_to_the_dot() {
        let cases: &[(Option<u16>, Option<u16>, &str)] = &[
            (Some(354), Some(250), "delivered"),
            (Some(354), Some(251), "delivered"),
            (Some(354), Some(451), "deferred"),
            (Some(354), Some(554), "bounced"),
            (Some(354), Some(354), "deferred"),
            (Some(354), None, "deferred"),
            // Any other reply to DATA fails the transaction, whatever the dot got.
            (Some(250), None, "deferred"),
            (Some(250), Some(250), "deferred"),
            (Some(200), Some(250), "deferred"),
            (Some(352), Some(250), "deferred"),
            (Some(334), None, "deferred"),
            (Some(451), Some(250), "deferred"),
            (Some(554), Some(250), "bounced"),
            (None, Some(250), "deferred"),
            (None, None, "deferred"),
        ];
        for &(data, dot, want) in cases {
            let (data, dot) = (data.map(r), dot.map(r));
            let got = message_fate(data.as_ref(), dot.as_ref());
            assert_eq!(kind(&got), want, "DATA {data:?}, dot {dot:?}");
        }
        let dot = r(250);
        assert_eq!(
            message_fate(Some(&r(354)), Some(&dot)),
            Fate::Delivered(dot)
        );
    }

    #[test]
    fn fates_follow_spec_7() {
        let replies = EnvelopeReplies {
            mail: r(250),
            rcpts: vec![r(250), r(451), r(550), r(354)],
            data: Some(r(354)),
        };
        let kinds = |dot: Option<u16>| -> Vec<&str> {
            let dot = dot.map(r);
            fates(4, &replies, dot.as_ref()).iter().map(kind).collect()
        };
        assert_eq!(
            kinds(Some(250)),
            ["delivered", "deferred", "bounced", "deferred"]
        );
        assert_eq!(kinds(Some(451))[0], "deferred");
        assert_eq!(kinds(Some(554))[0], "bounced");
        assert_eq!(kinds(None)[0], "deferred");
        let data_250 = EnvelopeReplies {
            data: Some(r(250)),
            ..replies.clone()
        };
        assert_eq!(kind(&fates(4, &data_250, Some(&r(250)))[0]), "deferred");
        let refused = EnvelopeReplies {
            mail: r(553),
            rcpts: vec![],
            data: None,
        };
        assert!(fates(2, &refused, None)
            .iter()
            .all(|f| matches!(f, Fate::Bounced(_))));
        let odd_mail = EnvelopeReplies {
            mail: r(354),
            rcpts: vec![r(250)],
            data: Some(r(354)),
        };
        assert_eq!(kind(&fates(1, &odd_mail, Some(&r(250)))[0]), "deferred");
    }
}
