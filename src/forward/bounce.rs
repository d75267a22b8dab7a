//! Bounces (SPEC 7): an RFC 3464 delivery status notification, `multipart/report;
//! report-type=delivery-status` with a human-readable part, a `message/delivery-status`
//! part and the original headers as `text/rfc822-headers`, handed to
//! `$SENDMAIL -i -f '' -- sender` on stdin. Never sent to a null sender (the caller checks).

use super::{intl, Fate, Reason};
use crate::envelope::rfc5322_date;
use std::fmt;
use std::io::{self, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Longest diagnostic text in a report field: RFC 5322 2.1.1 limits lines to 998 octets.
const MAX_DIAGNOSTIC: usize = 900;
/// Most bytes of the original header block returned: enough for any real header, and a
/// hostile one does not make the bounce huge.
pub const MAX_RETURNED_HEADERS: usize = 64 * 1024;
/// How long sendmail may take before it is killed and the bounce counts as failed.
const SENDMAIL_WAIT: Duration = Duration::from_secs(300);
/// The pause between looks at a running sendmail.
const POLL: Duration = Duration::from_millis(20);

/// What a report is about: one message and its failed recipients.
pub struct Report<'a> {
    pub queue_id: &'a str,
    pub sender: &'a str,
    pub arrival: SystemTime,
    /// The name forward gives itself (its HELO host): `Reporting-MTA` and `From`.
    pub reporting_mta: &'a str,
    /// The host forward sends to: `Remote-MTA` of the replies it gave.
    pub remote_mta: &'a str,
    /// Each failed recipient with its [`Fate::Bounced`] or [`Fate::Expired`].
    pub failed: Vec<(&'a str, &'a Fate)>,
    /// The original header block (LF line ends).
    pub headers: &'a [u8],
}

/// Why a bounce could not be handed over.
#[derive(Debug)]
pub enum BounceError {
    Spawn(io::Error),
    Failed(ExitStatus),
    Timeout,
    Wait(io::Error),
}

impl fmt::Display for BounceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BounceError::Spawn(e) => write!(f, "cannot run sendmail: {e}"),
            BounceError::Failed(s) => write!(f, "sendmail failed: {s}"),
            BounceError::Timeout => write!(f, "sendmail took over {SENDMAIL_WAIT:?}"),
            BounceError::Wait(e) => write!(f, "waiting for sendmail: {e}"),
        }
    }
}

/// RFC 3463 status of a failed recipient: the remote's enhanced code when it gave one of
/// the right class, else `X.0.0` from the reply code; 4.4.7 (delivery time expired) for a
/// message that waited longer than QUEUELIFETIME.
pub fn status(fate: &Fate) -> String {
    let reason = match fate {
        Fate::Expired(_) => return "4.4.7".to_string(),
        Fate::Bounced(r) | Fate::Deferred(r) => r,
        Fate::Delivered(_) => return "2.0.0".to_string(),
    };
    match reason {
        Reason::Local { status, .. } => status.to_string(),
        Reason::Remote(reply) => {
            let class = reply.code / 100;
            let first = reply.lines.first().map(String::as_str).unwrap_or("");
            let word = first.split(' ').next().unwrap_or("");
            let parts: Vec<&str> = word.split('.').collect();
            let enhanced = parts.len() == 3
                && parts[0] == class.to_string()
                && parts[1..]
                    .iter()
                    .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
            if enhanced {
                word.to_string()
            } else {
                format!("{class}.0.0")
            }
        }
    }
}

fn clip(s: &str) -> &str {
    match s.char_indices().nth(MAX_DIAGNOSTIC) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The notification as sendmail takes it on stdin (LF line ends).
pub fn render(report: &Report, now: SystemTime) -> Vec<u8> {
    let mta = report.reporting_mta;
    let now_secs = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut boundary = format!("{}/{}", now_secs.as_nanos(), report.queue_id);
    // The boundary must not occur in the parts; only the returned headers are not ours.
    while report
        .headers
        .windows(boundary.len())
        .any(|w| w == boundary.as_bytes())
    {
        boundary.push('=');
    }
    let mut human = String::new();
    let mut fields = String::new();
    for (rcpt, fate) in &report.failed {
        let (reason, why) = match fate {
            Fate::Expired(r) => (r, "the message could not be delivered in time; last try"),
            Fate::Bounced(r) | Fate::Deferred(r) => (r, "delivery failed"),
            Fate::Delivered(_) => continue,
        };
        fields.push_str(&format!(
            "\nFinal-Recipient: {}\nAction: failed\nStatus: {}\n",
            intl::final_recipient(rcpt),
            status(fate)
        ));
        match reason {
            Reason::Remote(reply) => {
                let said = clip(&reply.to_string()).to_string();
                human.push_str(&format!(
                    "<{rcpt}>: {why}: {} said: {said}\n",
                    report.remote_mta
                ));
                fields.push_str(&format!(
                    "Remote-MTA: dns; {}\nDiagnostic-Code: smtp; {said}\n",
                    report.remote_mta
                ));
            }
            Reason::Local { text, .. } => {
                let text = clip(text);
                human.push_str(&format!("<{rcpt}>: {why}: {text}\n"));
                fields.push_str(&format!("Diagnostic-Code: X-forward; {text}\n"));
            }
        }
    }
    let arrival = rfc5322_date(report.arrival);
    // RFC 6533: UTF-8 (an address, the remote's text, the sender) changes the types.
    let text_utf8 = !(human.is_ascii() && fields.is_ascii() && report.sender.is_ascii());
    let types = intl::types(text_utf8, !report.headers.is_ascii());
    let mut out = format!(
        "From: Mail Delivery System <MAILER-DAEMON@{mta}>\n\
         To: <{sender}>\n\
         Subject: Undelivered Mail Returned to Sender\n\
         Date: {date}\n\
         Message-ID: <{nanos}.{id}.bounce@{mta}>\n\
         Auto-Submitted: auto-replied\n\
         MIME-Version: 1.0\n\
         Content-Type: multipart/report; report-type=delivery-status;\n\
         \tboundary=\"{boundary}\"\n\
         \n\
         This is a MIME-encapsulated message.\n\
         \n\
         --{boundary}\n\
         Content-Type: text/plain; charset={charset}\n\
         Content-Description: Notification\n\
         \n\
         This is the mail system at {mta} (forward).\n\
         \n\
         Your message, queued here as {id} on {arrival},\n\
         could not be delivered to the recipients below. Its headers are attached.\n\
         \n\
         {human}\
         \n\
         --{boundary}\n\
         Content-Type: {status_type}\n\
         Content-Description: Delivery report\n\
         \n\
         Reporting-MTA: dns; {mta}\n\
         X-Forward-Queue-ID: {id}\n\
         Arrival-Date: {arrival}\n\
         {fields}\
         \n\
         --{boundary}\n\
         Content-Type: {headers_type}\n\
         Content-Description: Undelivered Message Headers\n\
         \n",
        sender = report.sender,
        date = rfc5322_date(now),
        nanos = now_secs.as_nanos(),
        id = report.queue_id,
        charset = types.charset,
        status_type = types.status,
        headers_type = types.headers,
    )
    .into_bytes();
    out.extend_from_slice(report.headers);
    out.extend_from_slice(format!("\n--{boundary}--\n").as_bytes());
    out
}

/// Runs `$SENDMAIL -i -f '' -- sender` (SENDMAIL split on white space) with `dsn` on stdin.
pub fn send(sendmail: &str, sender: &str, dsn: Vec<u8>) -> Result<(), BounceError> {
    let mut words = sendmail.split_whitespace();
    let program = words.next().unwrap_or("/usr/sbin/sendmail");
    let mut child = Command::new(program)
        .args(words)
        .args(["-i", "-f", "", "--", sender])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(BounceError::Spawn)?;
    // From a thread: a sendmail that does not read must not block us past SENDMAIL_WAIT.
    let writer = child.stdin.take().map(|mut stdin| {
        std::thread::spawn(move || {
            let _ = stdin.write_all(&dsn);
        })
    });
    let deadline = Instant::now() + SENDMAIL_WAIT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(BounceError::Timeout);
            }
            Ok(None) => std::thread::sleep(POLL),
            Err(e) => return Err(BounceError::Wait(e)),
        }
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    if status.success() {
        Ok(())
    } else {
        Err(BounceError::Failed(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::reply::RemoteReply;

    fn remote(code: u16, text: &str) -> Reason {
        Reason::Remote(RemoteReply {
            code,
            lines: vec![text.to_string()],
        })
    }

    #[test]
    fn status_comes_from_the_reply() {
        assert_eq!(
            status(&Fate::Bounced(remote(550, "5.1.1 no such user"))),
            "5.1.1"
        );
        assert_eq!(status(&Fate::Bounced(remote(554, "no code here"))), "5.0.0");
        assert_eq!(
            status(&Fate::Bounced(remote(550, "4.1.1 wrong class"))),
            "5.0.0"
        );
        assert_eq!(status(&Fate::Expired(remote(451, "4.3.0 later"))), "4.4.7");
    }

    #[test]
    fn report_structure() {
        let bounced = Fate::Bounced(remote(550, "5.1.1 <x@example.com> unknown"));
        let expired = Fate::Expired(Reason::Local {
            status: "4.4.1",
            text: "connection refused".into(),
        });
        let report = Report {
            queue_id: "1796000000.000001.1.0",
            sender: "s@example.net",
            arrival: UNIX_EPOCH + Duration::from_secs(1_796_000_000),
            reporting_mta: "relay.example",
            remote_mta: "mx.example.com",
            failed: vec![("x@example.com", &bounced), ("y@example.com", &expired)],
            headers: b"Subject: hi\nFrom: s@example.net\n",
        };
        let text = String::from_utf8(render(&report, SystemTime::now())).unwrap();
        assert!(text.contains("report-type=delivery-status"));
        assert!(text
            .contains("Final-Recipient: rfc822; x@example.com\nAction: failed\nStatus: 5.1.1\n"));
        assert!(text.contains("Diagnostic-Code: smtp; 550 5.1.1 <x@example.com> unknown\n"));
        assert!(text
            .contains("Final-Recipient: rfc822; y@example.com\nAction: failed\nStatus: 4.4.7\n"));
        assert!(text.contains("text/rfc822-headers\nContent-Description: Undelivered Message Headers\n\nSubject: hi\n"), "{text}");
        assert!(text.trim_end().ends_with("--"));
    }
}
