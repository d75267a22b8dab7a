//! The SMTP state machine (SPEC 3). It takes one parsed line at a time and returns what to
//! answer; it never touches a file descriptor (the driver, [`super::server`], owns fd 0/1,
//! timeouts and flushing), so the whole protocol is testable with byte strings.
//!
//! States carry their data: a recipient list exists only inside [`Phase::Mail`], the DATA
//! counters only inside [`Phase::Data`]. Every command is a check step (which may refuse)
//! followed by a proceed step (which changes the phase).

use crate::auth::{self, checkpassword, Dialogue, Next};
use crate::backend::{Approval, Backend, EtrnSupport};
use crate::config::Settings;
use crate::decimal;
use crate::envelope::{Envelope, Protocol, Trace};
use crate::etrn::{self, Node};
use crate::headers::HopCounter;
use crate::linereader::CommandLine;
use crate::log;
use crate::policy::{self, MailRules};
use crate::reply::{self, Reply};
use crate::rules::{Outcome, Verdict};
use crate::smtp::command::{self, Command};
use crate::smtp::utf8;
use crate::ucspi::Conn;
use crate::ucspitls::TlsInfo;
use std::time::{Duration, SystemTime};

/// Recipients per transaction when `MAXRCPTS` is unset: keeps memory bounded against a
/// client sending a million RCPTs (SPEC 3), and is ten times Postfix's default of 1000.
pub const HARD_MAX_RCPTS: usize = 10_000;

/// SPEC 3: the recipients of one transaction take at most this many bytes. Without it
/// 10,000 recipients of 4,000 bytes held 40 MB (and three times that in copies) for one
/// unauthenticated client; Postfix's 1,000 recipients of 512 bytes fit twice over.
pub const MAX_ENVELOPE_BYTES: usize = 1 << 20;

/// What the driver does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send the reply and read the next command.
    Reply(Reply),
    /// Send the reply (354) and read the message.
    StartData(Reply),
    /// Send the reply and close the connection.
    Close(Reply),
    /// SPEC 3.1: send the reply (220), flush, throw away every byte read so far, have the
    /// TLS helper do the handshake, then call [`Session::tls_started`].
    StartTls(Reply),
}

/// SPEC 3.1: where the session stands with TLS. The data of the handshake exists only once
/// it is done.
enum Tls {
    /// No UCSPI-TLS helper: STARTTLS is neither listed nor accepted.
    Unavailable,
    /// Listed in EHLO; AUTH waits for it.
    Offered,
    On(TlsInfo),
}

/// The counters of a message being received.
struct Incoming {
    envelope: Envelope,
    hops: HopCounter,
    size: u64,
    too_big: bool,
    failed: Option<std::io::Error>,
}

enum Phase {
    Idle,
    Mail(Envelope),
    Data(Incoming),
}

pub struct Session<B: Backend> {
    settings: Settings,
    conn: Conn,
    local: String,
    backend: B,
    helo: Option<String>,
    /// How the client greeted: SMTP (HELO or none) or ESMTP (EHLO).
    protocol: Protocol,
    tls: Tls,
    phase: Phase,
    rules: MailRules,
    unknown_commands: u64,
    /// The user name once AUTH succeeded.
    user: Option<String>,
    /// An AUTH dialogue waiting for the client's next line.
    dialogue: Option<Dialogue>,
    auth_failures: u32,
    /// The last command's reply is already in the log, with more than the driver's
    /// `COMMAND -> REPLY` line would say (ETRN: the client too, SPEC 3.3).
    logged_reply: bool,
    pub messages: u64,
}

/// SPEC 3 AUTH: more failed attempts than this and the client is disconnected.
pub const MAX_AUTH_FAILURES: u32 = 3;

/// Longest wait for the checkpassword program (also bounded by TIMEOUT).
pub const CHECKPASSWORD_TIMEOUT: Duration = Duration::from_secs(30);

impl<B: Backend> Session<B> {
    pub fn new(settings: Settings, conn: Conn, backend: B) -> Session<B> {
        let local = conn.local_name();
        // SPEC 5: the rules file is read once per session.
        let rules = MailRules::load(settings.mailrules.as_deref());
        Session {
            rules,
            settings,
            conn,
            local,
            backend,
            helo: None,
            protocol: Protocol::Smtp,
            tls: Tls::Unavailable,
            phase: Phase::Idle,
            unknown_commands: 0,
            user: None,
            dialogue: None,
            auth_failures: 0,
            logged_reply: false,
            messages: 0,
        }
    }

    /// SPEC 3.1: the driver found a UCSPI-TLS helper: list and accept STARTTLS.
    pub fn offer_starttls(&mut self) {
        if matches!(self.tls, Tls::Unavailable) {
            self.tls = Tls::Offered;
        }
    }

    /// SPEC 3.1: the handshake is done. Everything learnt in clear is forgotten (HELO name,
    /// transaction, AUTH): an attacker in the middle may have said it. STARTTLS is no longer
    /// listed, and AUTH is now offered.
    pub fn tls_started(&mut self, info: TlsInfo) {
        log::line(&format!("TLS started: {} {}", info.protocol, info.cipher));
        self.reset();
        self.helo = None;
        self.protocol = Protocol::Smtp;
        self.user = None;
        self.dialogue = None;
        self.tls = Tls::On(info);
    }

    pub fn helo(&self) -> Option<&str> {
        self.helo.as_deref()
    }

    pub fn remote_ip(&self) -> Option<&str> {
        self.conn.remoteip.as_deref()
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// `220 $SMTPGREETING ESMTP` (SPEC 2).
    pub fn greeting(&self) -> Reply {
        // An empty SMTPGREETING is taken as unset: "220  ESMTP" helps nobody.
        let text = match self
            .settings
            .greeting
            .as_deref()
            .filter(|g| !g.trim().is_empty())
        {
            Some(g) => format!("{g} ESMTP"),
            None => format!("{} smtpfront ESMTP", self.local),
        };
        Reply::new(220, "", text)
    }

    /// Whether the reply to the last command was logged by the session itself (then the
    /// driver does not log it again); reading it clears it.
    pub fn take_logged_reply(&mut self) -> bool {
        std::mem::take(&mut self.logged_reply)
    }

    /// True while the next line is an AUTH response (the driver must not log it).
    pub fn expects_secret(&self) -> bool {
        self.dialogue.is_some()
    }

    /// Answers one command line.
    pub fn command(&mut self, line: CommandLine<'_>) -> Step {
        if let Some(dialogue) = self.dialogue.take() {
            let next = match line {
                CommandLine::Line(l) => auth::respond(dialogue, l),
                CommandLine::TooLong => Next::Fail(auth::BAD_BASE64),
            };
            return self.auth_next(next);
        }
        let parsed = match line {
            CommandLine::TooLong => return self.unknown(reply::LINE_TOO_LONG),
            CommandLine::Line(l) => command::parse(l),
        };
        match parsed {
            Err(e) => self.unknown(e.reply()),
            Ok(c) => self.dispatch(c),
        }
    }

    /// SPEC 2 `MAXNOTIMPL`: past the limit of commands answered `500` (or `501`: a client
    /// repeating syntax errors is no better than one sending unknown verbs), `503 5.5.0`
    /// and close.
    fn unknown(&mut self, answer: Reply) -> Step {
        self.unknown_commands += 1;
        let max = self.settings.maxnotimpl;
        if max > 0 && self.unknown_commands > max {
            Step::Close(reply::TOO_MANY_UNKNOWN)
        } else {
            Step::Reply(answer)
        }
    }

    fn dispatch(&mut self, c: Command) -> Step {
        match c {
            Command::Helo(name) => self.hello(name, Protocol::Smtp),
            Command::Ehlo(name) => self.hello(name, Protocol::Esmtp),
            Command::Mail { sender, params } => Step::Reply(self.mail(sender, params)),
            Command::Rcpt { recipient, .. } => Step::Reply(self.rcpt(recipient)),
            Command::Data => self.data(),
            Command::Rset => {
                self.reset();
                Step::Reply(reply::RESET_OK)
            }
            Command::Noop => Step::Reply(reply::OK),
            Command::Quit => Step::Close(reply::BYE),
            Command::Vrfy => Step::Reply(reply::VRFY),
            Command::Help => Step::Reply(reply::HELP),
            Command::Auth(arg) => self.auth(&arg),
            Command::StartTls { argument } => self.starttls(argument),
            Command::Etrn(arg) => self.etrn(&arg),
        }
    }

    /// SPEC 3.3 ETRN: the protocol checks here, the node and the run in the back end.
    fn etrn(&mut self, arg: &str) -> Step {
        if self.backend.etrn_support() == EtrnSupport::Unknown {
            return self.unknown(reply::NOT_IMPLEMENTED);
        }
        let answer = match (&self.phase, Node::parse(arg)) {
            (Phase::Idle, Ok(node)) => {
                let privileged = self.settings.relayclient.is_some() || self.user.is_some();
                self.backend.etrn(&node, privileged)
            }
            (Phase::Idle, Err(bad)) => bad,
            _ => etrn::IN_TRANSACTION,
        };
        etrn::log(arg, self.conn.remoteip.as_deref(), self.helo(), &answer);
        self.logged_reply = true;
        match answer {
            // SPEC 2 MAXNOTIMPL: syntax errors count, as for every command.
            bad if bad == etrn::BAD_NODE => self.unknown(bad),
            answer => Step::Reply(answer),
        }
    }

    /// SPEC 3.1 STARTTLS: check, then let the driver switch.
    fn starttls(&mut self, argument: bool) -> Step {
        if argument {
            return Step::Reply(reply::STARTTLS_ARGUMENT);
        }
        match self.tls {
            Tls::Unavailable => Step::Reply(reply::STARTTLS_NOT_OFFERED),
            Tls::On(_) => Step::Reply(reply::TLS_ALREADY),
            Tls::Offered => Step::StartTls(reply::STARTTLS_READY),
        }
    }

    /// SPEC 3.1: STARTTLS is available and not done yet, so passwords and (with
    /// `REQUIRE_TLS`) mail must wait.
    fn before_tls(&self) -> bool {
        matches!(self.tls, Tls::Offered)
    }

    /// `with` of the Received header (RFC 3848): the greeting, AUTH and TLS together.
    fn received_protocol(&self) -> Protocol {
        match (&self.tls, &self.user, self.protocol) {
            (Tls::On(_), Some(_), _) => Protocol::Esmtpsa,
            (Tls::On(_), None, _) => Protocol::Esmtps,
            (_, Some(_), _) => Protocol::Esmtpa,
            (_, None, p) => p,
        }
    }

    /// SPEC 3 AUTH: check, then begin a PLAIN or LOGIN dialogue.
    fn auth(&mut self, arg: &str) -> Step {
        // SPEC 3.1: no password in clear where TLS could protect it.
        if (self.auth_configured() || self.settings.require_tls) && self.before_tls() {
            return Step::Reply(reply::TLS_FIRST);
        }
        if !self.auth_offered() {
            return Step::Reply(auth::NOT_OFFERED);
        }
        if self.user.is_some() {
            return Step::Reply(auth::ALREADY);
        }
        if !matches!(self.phase, Phase::Idle) {
            return Step::Reply(auth::IN_TRANSACTION);
        }
        self.auth_next(auth::begin(arg))
    }

    /// SPEC 3 AUTH: with `CHECKPASSWORD`, unless the back end refuses all mail.
    fn auth_configured(&self) -> bool {
        self.settings.checkpassword.is_some() && self.backend.auth_allowed()
    }

    /// SPEC 3.1: and, when STARTTLS is available, only after it.
    fn auth_offered(&self) -> bool {
        self.auth_configured() && !self.before_tls()
    }

    fn auth_next(&mut self, next: Next) -> Step {
        match next {
            Next::Ask(dialogue, challenge) => {
                self.dialogue = Some(dialogue);
                Step::Reply(challenge)
            }
            Next::Fail(r) if r == auth::FAILED => self.auth_failed(None),
            Next::Fail(r) => Step::Reply(r),
            Next::Check { user, password } => self.auth_check(user, password),
        }
    }

    fn auth_check(&mut self, user: String, mut password: Vec<u8>) -> Step {
        let program = self.settings.checkpassword.clone().unwrap_or_default();
        let timeout = match self.settings.timeout {
            Some(t) => t.min(CHECKPASSWORD_TIMEOUT),
            None => CHECKPASSWORD_TIMEOUT,
        };
        let verdict = checkpassword::check(&program, &user, &password, timeout);
        password.fill(0);
        match verdict {
            checkpassword::Verdict::Good => {
                log::line(&format!(
                    "AUTH accepted for user {}",
                    log::quote(user.as_bytes())
                ));
                self.user = Some(user);
                Step::Reply(auth::SUCCEEDED)
            }
            checkpassword::Verdict::Bad => self.auth_failed(Some(&user)),
            checkpassword::Verdict::Temporary(why) => {
                log::line(&format!("AUTH could not be checked: {why}"));
                Step::Reply(auth::TEMPORARY)
            }
        }
    }

    fn auth_failed(&mut self, user: Option<&str>) -> Step {
        self.auth_failures += 1;
        if let Some(u) = user {
            log::line(&format!(
                "AUTH refused for user {}",
                log::quote(u.as_bytes())
            ));
        }
        if self.auth_failures > MAX_AUTH_FAILURES {
            Step::Close(auth::TOO_MANY_FAILURES)
        } else {
            Step::Reply(auth::FAILED)
        }
    }

    fn reset(&mut self) {
        if matches!(self.phase, Phase::Data(_)) {
            self.backend.data_abort();
        }
        self.phase = Phase::Idle;
    }

    /// HELO and EHLO: one function, two protocols (SPEC 3: both reset the transaction).
    fn hello(&mut self, name: String, protocol: Protocol) -> Step {
        self.reset();
        self.helo = Some(name);
        self.protocol = protocol;
        if protocol == Protocol::Smtp {
            return Step::Reply(Reply::new(250, "", self.local.clone()));
        }
        let mut lines = vec![
            self.local.clone(),
            format!("SIZE {}", self.settings.databytes),
            "8BITMIME".into(),
            utf8::KEYWORD.into(),
            "ENHANCEDSTATUSCODES".into(),
            "PIPELINING".into(),
        ];
        if self.backend.etrn_support() == EtrnSupport::Listed {
            lines.push("ETRN".into());
        }
        if matches!(self.tls, Tls::Offered) {
            lines.push("STARTTLS".into());
        }
        if self.auth_offered() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        Step::Reply(Reply::new(250, "", lines.join("\n")))
    }

    /// A rule outcome, its ENVIRONMENT applied, or the refusal to answer. ENVIRONMENT changes
    /// the session's settings from here on (SPEC 5); a value start-up would refuse is refused
    /// here too.
    fn rule_verdict(&mut self, asked: Result<Outcome, Reply>) -> Result<Outcome, Reply> {
        let outcome = asked?;
        if !outcome.environment.is_empty() {
            self.settings
                .apply(outcome.environment.iter().cloned())
                .map_err(|e| {
                    log::line(&format!("mail rule ENVIRONMENT refused: {e}"));
                    reply::RULES_FAILED
                })?;
        }
        match policy::refusal(&outcome) {
            Some(r) => Err(r),
            None => Ok(outcome),
        }
    }

    fn mail(&mut self, sender: String, params: command::MailParams) -> Reply {
        // Check: protocol, then mail rules (SPEC 5), then size.
        if !matches!(self.phase, Phase::Idle) {
            return reply::NESTED_MAIL;
        }
        // SPEC 2 REQUIRE_TLS: not before STARTTLS, when it is available.
        if self.settings.require_tls && self.before_tls() {
            return reply::TLS_FIRST;
        }
        // SPEC 2 REQUIRE_AUTH: not before AUTH, unless the client may relay anyway.
        if self.settings.require_auth && self.user.is_none() && self.settings.relayclient.is_none()
        {
            return auth::REQUIRED;
        }
        if let Err(r) = utf8::check_address(&sender, params.smtputf8) {
            return r;
        }
        let asked = self.rules.sender(&sender);
        let outcome = match self.rule_verdict(asked) {
            Ok(o) => o,
            Err(r) => return r,
        };
        // SPEC 5: a rule's DATABYTES lowers the limit of this message only.
        let databytes = lower_limit(self.settings.databytes, outcome.databytes);
        if let Some(size) = params.size {
            if databytes > 0 && size > databytes {
                return reply::TOO_BIG;
            }
        }
        let helo = match (&self.helo, &self.conn.remoteip) {
            (Some(h), _) => h.clone(),
            // SPEC 6; RFC 5321 4.1.3: `[IPv6:...]` for an IPv6 client.
            (None, Some(ip)) => crate::ucspi::address_literal(ip),
            (None, None) => "unknown".to_string(),
        };
        let envelope = Envelope {
            helo,
            sender,
            params,
            recipients: Vec::new(),
            recipient_bytes: 0,
            databytes,
        };
        // Proceed.
        match self.backend.sender(&envelope) {
            Ok(answer) => {
                self.phase = Phase::Mail(envelope);
                policy::acceptance(&outcome, answer)
            }
            Err(refusal) => refusal,
        }
    }

    fn rcpt(&mut self, recipient: String) -> Reply {
        let Phase::Mail(envelope) = &self.phase else {
            return reply::NEED_MAIL;
        };
        // SPEC 3: a null sender gets one recipient.
        if envelope.sender.is_empty() && !envelope.recipients.is_empty() {
            return reply::NULL_SENDER_ONE_RCPT;
        }
        if let Err(r) = utf8::check_address(&recipient, envelope.params.smtputf8) {
            return r;
        }
        let max = match self.settings.maxrcpts {
            0 => HARD_MAX_RCPTS,
            n => usize::try_from(n).unwrap_or(usize::MAX).min(HARD_MAX_RCPTS),
        };
        if envelope.recipients.len() >= max
            || envelope.recipient_bytes + recipient.len() > MAX_ENVELOPE_BYTES
        {
            return reply::TOO_MANY_RCPTS;
        }
        // SPEC 5: mail rules come before RELAYCLIENT and the back end.
        let asked = self.rules.recipient(&envelope.sender, &recipient);
        let outcome = match self.rule_verdict(asked) {
            Ok(o) => o,
            Err(r) => return r,
        };
        let mut address = recipient;
        if let Some(suffix) = &outcome.relayclient {
            address.push_str(suffix);
        }
        // SPEC 2: RELAYCLIENT is appended to every recipient the rules did not refuse,
        // those a `k` rule accepted included.
        if let Some(suffix) = &self.settings.relayclient {
            address.push_str(suffix);
        }
        // SPEC 3 AUTH: an authenticated client relays like RELAYCLIENT, without suffix.
        let approved = outcome.verdict == Verdict::Accept
            || self.settings.relayclient.is_some()
            || self.user.is_some();
        let approval = if approved {
            Approval::Approved
        } else {
            Approval::Unchecked
        };
        let Phase::Mail(envelope) = &mut self.phase else {
            unreachable!("checked above")
        };
        envelope.databytes = lower_limit(envelope.databytes, outcome.databytes);
        match self.backend.recipient(&address, approval) {
            Ok(answer) => {
                envelope.recipient_bytes += address.len();
                envelope.recipients.push(address);
                policy::acceptance(&outcome, answer)
            }
            Err(refusal) => refusal,
        }
    }

    fn data(&mut self) -> Step {
        let envelope = match &self.phase {
            Phase::Mail(e) if e.recipients.is_empty() => return Step::Reply(reply::NO_VALID_RCPT),
            Phase::Mail(e) => e,
            _ => return Step::Reply(reply::NEED_MAIL),
        };
        let trace = Trace {
            helo: self.helo.as_deref(),
            conn: &self.conn,
            local: &self.local,
            protocol: utf8::received(self.received_protocol(), envelope.params.smtputf8),
            tls: match &self.tls {
                Tls::On(info) => Some(info),
                _ => None,
            },
            fixup_host: self.settings.fixup_received_host.as_deref(),
            fixup_ip: self.settings.fixup_received_ip.as_deref(),
            header_add: self.settings.header_add.as_deref(),
        }
        .headers(SystemTime::now());
        if let Err(e) = self.backend.data_start(envelope, &trace) {
            log::line(&format!("back end failed to start the message: {e}"));
            return Step::Reply(reply::BACKEND_FAILED);
        }
        let Phase::Mail(envelope) = std::mem::replace(&mut self.phase, Phase::Idle) else {
            unreachable!("checked above")
        };
        self.phase = Phase::Data(Incoming {
            envelope,
            hops: HopCounter::default(),
            size: 0,
            too_big: false,
            failed: None,
        });
        Step::StartData(reply::START_DATA)
    }

    /// One piece of the message (see [`crate::linereader::DataPiece`]).
    pub fn data_piece(&mut self, bytes: &[u8], ends_line: bool) {
        let Phase::Data(m) = &mut self.phase else {
            return;
        };
        m.hops.piece(bytes, ends_line);
        m.size += bytes.len() as u64 + if ends_line { 2 } else { 0 };
        if m.too_big || m.failed.is_some() {
            return;
        }
        // SPEC 3: over-size data is read and thrown away up to the dot, never buffered.
        if m.envelope.databytes > 0 && m.size > m.envelope.databytes {
            m.too_big = true;
            self.backend.data_abort();
            return;
        }
        let mut result = self.backend.data(bytes);
        if ends_line && result.is_ok() {
            result = self.backend.data(b"\r\n");
        }
        if let Err(e) = result {
            m.failed = Some(e);
            self.backend.data_abort();
        }
    }

    /// The final dot: one verdict, in SPEC 3's order. `bare_lfs`: lines of the message
    /// that ended in a bare LF, for the log (SPEC 3, SMTP smuggling).
    pub fn data_end(&mut self, bare_lfs: u64) -> Reply {
        let Phase::Data(m) = std::mem::replace(&mut self.phase, Phase::Idle) else {
            return reply::NEED_MAIL;
        };
        if m.too_big {
            return reply::TOO_BIG;
        }
        if m.hops.too_many(self.settings.maxhops) {
            self.backend.data_abort();
            return reply::TOO_MANY_HOPS;
        }
        if let Some(e) = m.failed {
            log::line(&format!("back end failed while storing the message: {e}"));
            return reply::BACKEND_FAILED;
        }
        match self.backend.data_end(&m.envelope, m.size) {
            Ok(queued) => {
                self.messages += 1;
                // "accepted: queue id {id} from <{sender}> to {n} recipient(s), {size}
                // bytes[, {bare} bare LF]", without format!: one per pipelined message.
                let mut line = Vec::with_capacity(160);
                line.extend_from_slice(b"accepted: queue id ");
                line.extend_from_slice(queued.id.as_bytes());
                line.extend_from_slice(b" from <");
                log::push_quoted(&mut line, m.envelope.sender.as_bytes());
                line.extend_from_slice(b"> to ");
                decimal::push_bytes(&mut line, m.envelope.recipients.len() as u64);
                line.extend_from_slice(b" recipient(s), ");
                decimal::push_bytes(&mut line, m.size);
                line.extend_from_slice(b" bytes");
                if bare_lfs > 0 {
                    line.extend_from_slice(b", ");
                    decimal::push_bytes(&mut line, bare_lfs);
                    line.extend_from_slice(b" bare LF");
                }
                log::line_bytes(&line);
                queued.reply
            }
            Err(e) => {
                log::line(&format!("back end failed to keep the message: {e}"));
                self.backend.data_abort();
                reply::BACKEND_FAILED
            }
        }
    }

    /// The client went away or timed out: nothing half-received is kept.
    pub fn abort(&mut self) {
        self.reset();
    }
}

/// A limit where 0 means none, lowered by a rule's DATABYTES (0 or absent: no change).
fn lower_limit(current: u64, rule: Option<u64>) -> u64 {
    match rule {
        Some(n) if n > 0 && (current == 0 || n < current) => n,
        _ => current,
    }
}
