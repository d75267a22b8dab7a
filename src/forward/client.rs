//! The client side of SMTP (SPEC 7): connect with a timeout, read replies with a bounded line
//! reader, EHLO (HELO when EHLO is refused), STARTTLS through a UCSPI-TLS helper, the
//! envelope with or without PIPELINING, the message, RSET and QUIT. It knows nothing of the
//! spool: it sends what it is given and returns the remote's replies as data; what they mean
//! for a message is decided by the caller.
//!
//! The bytes move over a [`Channel`]: a socket forward connected itself, or (`-u`) the
//! descriptors a UCSPI client left it, which STARTTLS switches to the TLS helper's.

pub use super::channel::Channel;
use super::reply::{self, RemoteReply, ReplyError, ReplyReader, TimedRead, MAX_WAIT};
use crate::smtp::server::{Fds, Transport};
use crate::ucspitls::{Helper, TlsError, TlsInfo};
use std::fmt;
use std::io::{self, BufRead, Read};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// RCPT commands per pipelined write. RFC 2920 3.1: a client that writes a whole batch
/// before reading may deadlock when both socket buffers fill; groups of this size keep the
/// replies of one write far below any socket buffer.
const PIPELINE_GROUP: usize = 100;
/// Message bytes gathered before one write to the socket.
const WRITE_CHUNK: usize = 64 * 1024;
/// The wait for the reply to QUIT: the mail is settled by then, so no need to linger.
const QUIT_WAIT: Duration = Duration::from_secs(10);

/// The waits of SPEC 7: on connect and on every reply; `dot` for the reply to the final dot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub reply: Duration,
    pub dot: Duration,
}

impl Timeouts {
    /// `-t`: one wait for everything, at most [`MAX_WAIT`].
    pub fn all(t: Duration) -> Timeouts {
        let t = t.min(MAX_WAIT);
        Timeouts {
            connect: t,
            reply: t,
            dot: t,
        }
    }
}

impl Default for Timeouts {
    /// SPEC 7: 300 s for the dot, 60 s otherwise.
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(60),
            reply: Duration::from_secs(60),
            dot: Duration::from_secs(300),
        }
    }
}

/// Why a conversation could not go on. After any of these the connection is unusable.
#[derive(Debug)]
pub enum ClientError {
    /// The host name gave no address.
    Resolve(io::Error),
    Connect(io::Error),
    /// No reply (or no progress writing) within the timeout; names what was awaited.
    Timeout(&'static str),
    /// The remote closed the connection.
    Closed,
    /// A reply that cannot be read as one (see [`ReplyError`]).
    Reply(ReplyError),
    /// The remote sent something no command had asked for yet (two replies to one command,
    /// a reply before the command): its replies and our commands are out of step, so no
    /// later reply can be trusted. The text is what it sent (escaped, cut).
    OutOfTurn(String),
    /// A reply outside the protocol for the command, e.g. 250 to DATA (not 354, 4xx or 5xx):
    /// the remote's state is unknown (it may be reading a message we never send).
    Unexpected {
        command: &'static str,
        reply: RemoteReply,
    },
    Io(io::Error),
    /// The message given to [`Client::data`] holds a lone dot before its end or does not
    /// end with one: sending it would end DATA early and turn the rest into commands.
    BadData,
    /// RSET refused: the session is in a state we do not know.
    RsetRefused(RemoteReply),
    /// STARTTLS answered with something else than 220: the session goes on as it was.
    TlsRefused(RemoteReply),
    /// After the 220 to STARTTLS the TLS helper failed (SPEC 7: a failed handshake).
    Tls(TlsError),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Resolve(e) => write!(f, "cannot resolve the host: {e}"),
            ClientError::Connect(e) => write!(f, "cannot connect: {e}"),
            ClientError::Timeout(what) => write!(f, "timeout waiting for {what}"),
            ClientError::Closed => write!(f, "the remote closed the connection"),
            ClientError::Reply(e) => write!(f, "{e}"),
            ClientError::OutOfTurn(text) => {
                write!(f, "the remote sent \"{text}\" out of turn")
            }
            ClientError::Unexpected { command, reply } => {
                let reply = super::quote(&reply.to_string());
                write!(f, "unexpected reply to {command}: {reply}")
            }
            ClientError::Io(e) => write!(f, "connection error: {e}"),
            ClientError::BadData => write!(f, "the message is not properly dot-stuffed"),
            ClientError::RsetRefused(r) => {
                write!(f, "RSET refused: {}", super::quote(&r.to_string()))
            }
            ClientError::TlsRefused(r) => {
                write!(f, "STARTTLS refused: {}", super::quote(&r.to_string()))
            }
            ClientError::Tls(e) => write!(f, "STARTTLS: {e}"),
        }
    }
}

/// The service extensions of the EHLO reply that forward uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extensions {
    pub pipelining: bool,
    pub size: bool,
    pub eightbitmime: bool,
    pub starttls: bool,
    /// RFC 6531 (SPEC 3.2): the remote takes UTF-8 addresses and headers.
    pub smtputf8: bool,
}

/// What goes into MAIL and RCPT.
#[derive(Clone, Copy, Debug)]
pub struct Envelope<'a> {
    pub sender: &'a str,
    /// The `BODY=` value the client gave; sent only when the remote offers 8BITMIME.
    pub body: Option<&'a str>,
    /// For `SIZE=` (RFC 1870), sent only when the remote offers SIZE.
    pub size: u64,
    /// Send `SMTPUTF8` (the caller decided: the message has it and the remote offers it).
    pub smtputf8: bool,
    pub recipients: &'a [String],
}

/// The replies to the envelope. Without PIPELINING, a refused MAIL leaves `rcpts` empty
/// and `data` unset; `data` is unset too when no recipient was accepted.
#[derive(Clone, Debug)]
pub struct EnvelopeReplies {
    pub mail: RemoteReply,
    pub rcpts: Vec<RemoteReply>,
    pub data: Option<RemoteReply>,
}

impl EnvelopeReplies {
    /// The remote waits for the message (354 to DATA).
    pub fn go_ahead(&self) -> bool {
        self.data.as_ref().is_some_and(|d| d.code == 354)
    }
}

/// One SMTP connection.
pub struct Client {
    channel: Channel,
    replies: ReplyReader,
    timeouts: Timeouts,
    pub extensions: Extensions,
}

impl Client {
    /// Connects to the first address of `host` that answers within the connect timeout.
    pub fn connect(host: &str, port: u16, timeouts: Timeouts) -> Result<Client, ClientError> {
        let addrs: Vec<_> = (host, port)
            .to_socket_addrs()
            .map_err(ClientError::Resolve)?
            .collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, timeouts.connect) {
                Ok(stream) => {
                    stream.set_nodelay(true).map_err(ClientError::Io)?;
                    // A write that blocks this long means the remote stopped reading.
                    stream
                        .set_write_timeout(Some(timeouts.reply))
                        .map_err(ClientError::Io)?;
                    return Ok(Client::over(Channel::Tcp(stream), timeouts));
                }
                Err(e) => last = e,
            }
        }
        Err(ClientError::Connect(last))
    }

    /// SPEC 7 `-u`: the connection a UCSPI client left on `read` and `write` (fds 6 and 7),
    /// with the UCSPI-TLS helper's descriptors when s6-ucspitlsc runs in between.
    pub fn ucspi(read: i32, write: i32, helper: Option<Helper>, timeouts: Timeouts) -> Client {
        let fds = Fds::new(read, write, helper);
        let deadline = reply::deadline(timeouts.reply);
        Client::over(Channel::Ucspi { fds, deadline }, timeouts)
    }

    fn over(channel: Channel, timeouts: Timeouts) -> Client {
        Client {
            channel,
            replies: ReplyReader::default(),
            timeouts,
            extensions: Extensions::default(),
        }
    }

    /// Whether [`Client::start_tls`] can work: a UCSPI-TLS helper is there, unused.
    pub fn has_tls_helper(&self) -> bool {
        matches!(&self.channel, Channel::Ucspi { fds, .. } if fds.has_helper())
    }

    /// SPEC 7: STARTTLS, on 220 the helper's handshake (`Y`), and from then on the helper's
    /// descriptors. The caller sends EHLO again: what the remote offered in clear is
    /// forgotten (RFC 3207 4.2).
    pub fn start_tls(&mut self) -> Result<TlsInfo, ClientError> {
        self.send(b"STARTTLS\r\n")?;
        let reply = self.read_reply(self.timeouts.reply, "the reply to STARTTLS")?;
        if reply.code != 220 {
            return Err(ClientError::TlsRefused(reply));
        }
        // The client side of CVE-2011-0411: bytes after the 220 came in clear and would be
        // taken as replies inside TLS. A remote in step sends none; anything there fails.
        self.ensure_quiet()?;
        let Channel::Ucspi { fds, .. } = &mut self.channel else {
            return Err(ClientError::Tls(TlsError::NotAvailable));
        };
        let info = fds
            .start_tls(reply::deadline(self.timeouts.reply))
            .map_err(ClientError::Tls)?;
        self.replies = ReplyReader::default();
        self.extensions = Extensions::default();
        Ok(info)
    }

    /// The greeting (220 expected; the caller judges it).
    pub fn greeting(&mut self) -> Result<RemoteReply, ClientError> {
        self.read_reply(self.timeouts.reply, "the greeting")
    }

    /// EHLO; when it is refused with 5xx, HELO (SPEC 7). Records the extensions offered.
    pub fn hello(&mut self, helohost: &str) -> Result<RemoteReply, ClientError> {
        self.send(format!("EHLO {helohost}\r\n").as_bytes())?;
        let ehlo = self.read_reply(self.timeouts.reply, "the reply to EHLO")?;
        if ehlo.is_positive() {
            self.extensions = extensions(&ehlo);
            return Ok(ehlo);
        }
        if !ehlo.is_permanent() {
            return Ok(ehlo);
        }
        self.send(format!("HELO {helohost}\r\n").as_bytes())?;
        self.read_reply(self.timeouts.reply, "the reply to HELO")
    }

    /// MAIL, RCPT for every recipient and DATA: in groups of one write each when the remote
    /// offers PIPELINING, else one command at a time, stopping after a refused MAIL and
    /// sending DATA only when a recipient was accepted.
    pub fn envelope(&mut self, env: &Envelope) -> Result<EnvelopeReplies, ClientError> {
        let mail = self.mail_command(env);
        if self.extensions.pipelining {
            self.envelope_pipelined(&mail, env.recipients)
        } else {
            self.envelope_one_by_one(&mail, env.recipients)
        }
    }

    fn mail_command(&self, env: &Envelope) -> Vec<u8> {
        let mut mail = format!("MAIL FROM:<{}>", env.sender);
        if self.extensions.size {
            mail.push_str(&format!(" SIZE={}", env.size));
        }
        if let (Some(body), true) = (env.body, self.extensions.eightbitmime) {
            mail.push_str(&format!(" BODY={body}"));
        }
        if env.smtputf8 {
            mail.push_str(" SMTPUTF8");
        }
        mail.push_str("\r\n");
        mail.into_bytes()
    }

    fn envelope_pipelined(
        &mut self,
        mail: &[u8],
        recipients: &[String],
    ) -> Result<EnvelopeReplies, ClientError> {
        let rcpt_lines = |group: &[String], last: bool| {
            let mut out: Vec<u8> = group
                .iter()
                .flat_map(|r| format!("RCPT TO:<{r}>\r\n").into_bytes())
                .collect();
            if last {
                out.extend_from_slice(b"DATA\r\n");
            }
            out
        };
        let mut groups = recipients.chunks(PIPELINE_GROUP);
        let first = groups.next().unwrap_or(&[]);
        let more: Vec<&[String]> = groups.collect();
        self.send(&[mail, &rcpt_lines(first, more.is_empty())].concat())?;
        let mail = self.read_reply(self.timeouts.reply, "the reply to MAIL")?;
        let mut rcpts = Vec::with_capacity(recipients.len());
        for (i, group) in std::iter::once(first)
            .chain(more.iter().copied())
            .enumerate()
        {
            if i > 0 {
                self.send(&rcpt_lines(group, i == more.len()))?;
            }
            for _ in group {
                rcpts.push(self.read_reply(self.timeouts.reply, "the reply to RCPT")?);
            }
        }
        let data = Some(self.data_reply()?);
        let replies = EnvelopeReplies { mail, rcpts, data };
        let accepted = replies.mail.is_positive() && replies.rcpts.iter().any(|r| r.is_positive());
        if replies.go_ahead() && !accepted {
            // RFC 2920 3.1: DATA accepted although no recipient was: end it with a lone dot.
            self.send(b".\r\n")?;
            self.read_reply(self.timeouts.dot, "the reply to an empty message")?;
        }
        Ok(replies)
    }

    fn envelope_one_by_one(
        &mut self,
        mail: &[u8],
        recipients: &[String],
    ) -> Result<EnvelopeReplies, ClientError> {
        self.send(mail)?;
        let mail = self.read_reply(self.timeouts.reply, "the reply to MAIL")?;
        let mut replies = EnvelopeReplies {
            mail,
            rcpts: Vec::with_capacity(recipients.len()),
            data: None,
        };
        if !replies.mail.is_positive() {
            return Ok(replies);
        }
        for r in recipients {
            self.send(format!("RCPT TO:<{r}>\r\n").as_bytes())?;
            let reply = self.read_reply(self.timeouts.reply, "the reply to RCPT")?;
            replies.rcpts.push(reply);
        }
        if replies.rcpts.iter().any(|r| r.is_positive()) {
            self.send(b"DATA\r\n")?;
            replies.data = Some(self.data_reply()?);
        }
        Ok(replies)
    }

    /// The reply to DATA: 354, or a refusal (4xx, 5xx). Anything else (250, 3xx other than
    /// 354) leaves the remote in a state we do not know: the connection is given up.
    fn data_reply(&mut self) -> Result<RemoteReply, ClientError> {
        let reply = self.read_reply(self.timeouts.reply, "the reply to DATA")?;
        match reply.code {
            354 | 400..=599 => Ok(reply),
            _ => Err(ClientError::Unexpected {
                command: "DATA",
                reply,
            }),
        }
    }

    /// Sends the message, already dot-stuffed and ending with the `.` line (the spool's
    /// form), as it is; returns the reply to the dot. A lone dot line anywhere but at the end
    /// is [`ClientError::BadData`], detected before it is sent.
    pub fn data(&mut self, mut message: impl BufRead) -> Result<RemoteReply, ClientError> {
        let mut out = Vec::with_capacity(2 * WRITE_CHUNK);
        let mut piece = Vec::new();
        let mut at_line_start = true;
        let mut held_dot = false;
        loop {
            piece.clear();
            // Reads one line, or WRITE_CHUNK bytes of a longer one.
            (&mut message)
                .take(WRITE_CHUNK as u64)
                .read_until(b'\n', &mut piece)
                .map_err(ClientError::Io)?;
            if piece.is_empty() {
                break;
            }
            if held_dot {
                return Err(ClientError::BadData);
            }
            if at_line_start && piece == b".\r\n" {
                // The end of the message, unless more follows: hold it until EOF says so.
                held_dot = true;
                continue;
            }
            at_line_start = piece.ends_with(b"\n");
            out.extend_from_slice(&piece);
            if out.len() >= WRITE_CHUNK {
                self.send(&out)?;
                out.clear();
            }
        }
        if !held_dot {
            return Err(ClientError::BadData);
        }
        out.extend_from_slice(b".\r\n");
        self.send(&out)?;
        let reply = self.read_reply(self.timeouts.dot, "the reply to the final dot")?;
        // A second reply already there means the first may have been sent before the dot
        // (a reply out of turn): it is then no reply to the dot. A close is no such doubt.
        match self.ensure_quiet() {
            Ok(()) | Err(ClientError::Closed) => Ok(reply),
            Err(e) => Err(e),
        }
    }

    /// RSET between messages (SPEC 7).
    pub fn rset(&mut self) -> Result<(), ClientError> {
        self.send(b"RSET\r\n")?;
        let reply = self.read_reply(self.timeouts.reply, "the reply to RSET")?;
        match reply.is_positive() {
            true => Ok(()),
            false => Err(ClientError::RsetRefused(reply)),
        }
    }

    /// QUIT, waiting a little for the reply; errors do not matter any more.
    pub fn quit(mut self) {
        if self.send(b"QUIT\r\n").is_ok() {
            let _ = self.read_reply(QUIT_WAIT.min(self.timeouts.reply), "the reply to QUIT");
        }
    }

    fn read_reply(
        &mut self,
        timeout: Duration,
        what: &'static str,
    ) -> Result<RemoteReply, ClientError> {
        self.replies.read(&mut self.channel, timeout, what)
    }

    /// Writes `bytes`, after checking that the remote is waiting for them.
    fn send(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.ensure_quiet()?;
        let limit = self.timeouts.reply;
        (self.channel.write_all_within(bytes, limit)).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                ClientError::Timeout("the remote to read what we send")
            }
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => ClientError::Closed,
            _ => ClientError::Io(e),
        })
    }
}

impl Client {
    /// Before every write, every command sent so far has had its reply: a remote that is in
    /// step has nothing more to say. Anything received (in the buffer, or readable on the
    /// socket now) is out of turn. Best effort for bytes still on the way, which no client
    /// can tell from a reply; what it catches, it catches before a message is counted.
    fn ensure_quiet(&mut self) -> Result<(), ClientError> {
        if !self.replies.has_unread() {
            if !self.channel.readable_now().map_err(ClientError::Io)? {
                return Ok(());
            }
            // Readable: one read does not block; the end of the stream is Closed.
            let deadline = super::reply::deadline(self.timeouts.reply);
            self.replies
                .fill(&mut self.channel, deadline, "the remote")?;
        }
        let unread = self.replies.unread();
        let first = unread.split(|&b| b == b'\n').next().unwrap_or(unread);
        let first = first.strip_suffix(b"\r").unwrap_or(first);
        Err(ClientError::OutOfTurn(super::quote(&crate::log::escape(
            first,
        ))))
    }
}

/// The keywords of an EHLO reply (every line after the first), RFC 1869 4.3.
fn extensions(ehlo: &RemoteReply) -> Extensions {
    let mut ext = Extensions::default();
    for line in ehlo.lines.iter().skip(1) {
        let keyword = line.split_whitespace().next().unwrap_or("");
        match keyword.to_ascii_uppercase().as_str() {
            "PIPELINING" => ext.pipelining = true,
            "SIZE" => ext.size = true,
            "8BITMIME" => ext.eightbitmime = true,
            "STARTTLS" => ext.starttls = true,
            "SMTPUTF8" => ext.smtputf8 = true,
            _ => {}
        }
    }
    ext
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_from_ehlo() {
        let ehlo = RemoteReply {
            code: 250,
            lines: vec![
                "mx.example".into(),
                "SIZE 1000".into(),
                "pipelining".into(),
                "8BITMIME".into(),
                "STARTTLS".into(),
                "smtputf8".into(),
            ],
        };
        let ext = extensions(&ehlo);
        assert!(ext.pipelining && ext.size && ext.eightbitmime && ext.starttls && ext.smtputf8);
        assert_eq!(
            extensions(&RemoteReply {
                code: 250,
                lines: vec!["x".into()]
            }),
            Extensions::default()
        );
    }
}
