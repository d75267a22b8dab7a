//! The driver (SPEC 3, 8, 9): owns fd 0 and fd 1, the two timeouts, reply buffering and the
//! log line of every error reply. Replies are buffered and flushed only when no complete
//! input is waiting and the reader is about to block ("flush before you block", qmail):
//! that one rule gives correct PIPELINING and one write per batch.
//!
//! The bytes move through a [`Transport`]: the client's descriptors in production, memory in
//! [`converse`], which runs the very same loop in process for table tests and fuzzing.
//!
//! STARTTLS (SPEC 3.1) is a change of transport in the middle of the loop: the `220` is
//! flushed, every byte read so far is thrown away (the STARTTLS injection of CVE-2011-0411
//! lives in that buffer), the TLS helper does the handshake, and reading and writing go on
//! over its descriptors with the same timeouts and the same pipelining.

use crate::backend::Backend;
use crate::linereader::{CommandLine, DataPiece, LineReader};
use crate::log;
use crate::reply::{self, Reply};
use crate::smtp::session::{Session, Step};
use crate::sys::{self, Wait};
use crate::ucspitls::{Helper, TlsError, TlsInfo};
use std::io;
use std::os::unix::io::RawFd;
use std::time::{Duration, Instant};

const IN: RawFd = 0;
const OUT: RawFd = 1;

/// Where the session's bytes come from and go to.
pub trait Transport {
    /// Reads what is there; `WouldBlock` when nothing is, `Ok(0)` at end of input.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes what it can; `WouldBlock` when nothing can be written now.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize>;
    /// Waits until reading (or writing) can go on: `Ok(false)` when `deadline` passed first.
    fn wait(&mut self, what: Wait, deadline: Instant) -> io::Result<bool>;
    /// SPEC 3.1: has the TLS helper do the handshake (answer by `deadline`) and moves
    /// reading and writing onto the encrypted channel.
    fn start_tls(&mut self, _deadline: Instant) -> Result<TlsInfo, TlsError> {
        Err(TlsError::NotAvailable)
    }
}

/// The client's descriptors (non-blocking; every wait is a poll with a deadline), and the
/// TLS helper's when there is one.
pub struct Fds {
    pub input: RawFd,
    pub output: RawFd,
    helper: Option<Helper>,
    /// Descriptors made non-blocking and their flags before, restored in reverse order
    /// (input and output are often one socket).
    saved: Vec<(RawFd, libc::c_int)>,
}

impl Fds {
    /// Makes `input` and `output` non-blocking: nothing may block past a timeout (a silent
    /// client, a client that never reads). Their flags come back on drop.
    pub fn new(input: RawFd, output: RawFd, helper: Option<Helper>) -> Fds {
        let mut fds = Fds {
            input,
            output,
            helper,
            saved: Vec::new(),
        };
        fds.nonblocking(input);
        fds.nonblocking(output);
        fds
    }

    /// Whether a TLS helper is there and not used yet (forward asks before STARTTLS).
    pub fn has_helper(&self) -> bool {
        self.helper.is_some()
    }

    fn nonblocking(&mut self, fd: RawFd) {
        if let Ok(flags) = sys::set_nonblocking(fd, true) {
            self.saved.push((fd, flags));
        }
    }

    fn restore(&mut self) {
        while let Some((fd, flags)) = self.saved.pop() {
            sys::restore_flags(fd, flags);
        }
    }
}

impl Drop for Fds {
    fn drop(&mut self) {
        self.restore();
    }
}

impl Transport for Fds {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        sys::read(self.input, buf)
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        sys::write(self.output, buf)
    }

    fn wait(&mut self, what: Wait, deadline: Instant) -> io::Result<bool> {
        let fd = match what {
            Wait::Read => self.input,
            Wait::Write => self.output,
        };
        sys::wait_fd(fd, what, deadline)
    }

    fn start_tls(&mut self, deadline: Instant) -> Result<TlsInfo, TlsError> {
        let helper = self.helper.take().ok_or(TlsError::NotAvailable)?;
        // The socket goes back to the helper as it came: O_NONBLOCK belongs to the open file
        // that the helper shares, and s6-tlsd-io's handshake fails on a non-blocking socket.
        self.restore();
        let info = helper.handshake(deadline)?;
        self.input = helper.read;
        self.output = helper.write;
        self.nonblocking(helper.read);
        self.nonblocking(helper.write);
        Ok(info)
    }
}

/// A client in memory: its input in the pieces it arrives in (each piece is one read, as a
/// client's separate writes would be), everything written collected. Never blocks.
///
/// With a TLS answer (the bytes a UCSPI-TLS helper would write on its control socket) it
/// plays the helper too: after STARTTLS the same pieces go on as the encrypted channel.
pub struct Script<'a> {
    pieces: std::slice::Iter<'a, &'a [u8]>,
    current: &'a [u8],
    tls_answer: Option<&'a [u8]>,
    pub output: Vec<u8>,
}

impl<'a> Script<'a> {
    pub fn new(pieces: &'a [&'a [u8]]) -> Script<'a> {
        Script {
            pieces: pieces.iter(),
            current: &[],
            tls_answer: None,
            output: Vec::new(),
        }
    }

    /// A client whose STARTTLS a helper answers with `answer` (`VAR=value\0...\0\0`).
    pub fn with_tls(pieces: &'a [&'a [u8]], answer: &'a [u8]) -> Script<'a> {
        Script {
            tls_answer: Some(answer),
            ..Script::new(pieces)
        }
    }
}

impl Transport for Script<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.pieces.next() {
                Some(p) => self.current = p,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = &self.current[n..];
        Ok(n)
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn wait(&mut self, _what: Wait, _deadline: Instant) -> io::Result<bool> {
        Ok(true)
    }

    fn start_tls(&mut self, _deadline: Instant) -> Result<TlsInfo, TlsError> {
        let answer = self.tls_answer.take().ok_or(TlsError::NotAvailable)?;
        // Over a socket, clear text still unread would reach the helper as a broken
        // ClientHello.
        if !self.current.is_empty() {
            return Err(TlsError::ClearTextPending);
        }
        crate::ucspitls::parse_answer(answer).ok_or(TlsError::HelperGone)
    }
}

/// Replies are written out once this many bytes are waiting, even mid-batch, so that a
/// client pipelining thousands of commands without reading costs bounded memory.
const MAX_PENDING_OUTPUT: usize = 16 * 1024;

/// Why a session ended, for the last log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Quit,
    Closed,
    ClientGone,
    ClientGoneInData,
    IdleTimeout,
    SessionTimeout,
    /// SPEC 3.1: the handshake failed or the TLS helper went away.
    TlsFailed,
    Error,
}

impl End {
    fn describe(self) -> &'static str {
        match self {
            End::Quit => "QUIT",
            End::Closed => "closed by the server",
            End::ClientGone => "client went away",
            End::ClientGoneInData => "client went away during DATA, nothing stored",
            End::IdleTimeout => "timeout (TIMEOUT)",
            End::SessionTimeout => "timeout (SESSION_TIMEOUT)",
            End::TlsFailed => "TLS failed",
            End::Error => "I/O error",
        }
    }
}

struct Conn<T: Transport> {
    io: T,
    reader: LineReader,
    out: Vec<u8>,
    started: Instant,
    progress: Instant,
    timeout: Option<Duration>,
    session_timeout: Option<Duration>,
    bytes_in: u64,
    bytes_out: u64,
}

impl<T: Transport> Conn<T> {
    /// The earlier of the two limits, or `None` for no limit.
    fn deadline(&self) -> Option<Instant> {
        let idle = self.timeout.and_then(|t| self.progress.checked_add(t));
        let total = self
            .session_timeout
            .and_then(|t| self.started.checked_add(t));
        match (idle, total) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn timed_out(&self) -> End {
        let total = self
            .session_timeout
            .and_then(|t| self.started.checked_add(t));
        match total {
            Some(t) if Instant::now() >= t => End::SessionTimeout,
            _ => End::IdleTimeout,
        }
    }

    fn wait(&mut self, what: Wait) -> Result<(), End> {
        let ready = match self.deadline() {
            Some(d) => self.io.wait(what, d),
            None => loop {
                // No limit: wait in long slices.
                let d = Instant::now() + Duration::from_secs(86400);
                match self.io.wait(what, d) {
                    Ok(false) => continue,
                    other => break other,
                }
            },
        };
        match ready {
            Ok(true) => Ok(()),
            Ok(false) => Err(self.timed_out()),
            Err(_) => Err(End::Error),
        }
    }

    fn send(&mut self, r: &Reply) -> Result<(), End> {
        r.render(&mut self.out);
        if self.out.len() >= MAX_PENDING_OUTPUT {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), End> {
        log::flush();
        let mut done = 0;
        while done < self.out.len() {
            match self.io.write(&self.out[done..]) {
                Ok(n) => {
                    done += n;
                    self.bytes_out += n as u64;
                    self.progress = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait(Wait::Write)?,
                Err(_) => return Err(End::ClientGone),
            }
        }
        self.out.clear();
        Ok(())
    }

    /// Flushes, then reads more input. `Err(ClientGone)` at end of input.
    fn fill(&mut self) -> Result<(), End> {
        self.flush()?;
        loop {
            match self.io.read(self.reader.space()) {
                Ok(0) => return Err(End::ClientGone),
                Ok(n) => {
                    self.reader.filled(n);
                    self.bytes_in += n as u64;
                    self.progress = Instant::now();
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait(Wait::Read)?,
                Err(_) => return Err(End::ClientGone),
            }
        }
    }

    /// Last words on a timeout: a 421 if the client is still listening, never blocking.
    fn say_timeout(&mut self) {
        self.out.clear();
        reply::TIMEOUT.render(&mut self.out);
        let _ = self.io.write(&self.out);
    }
}

/// Runs one SMTP session on fd 0 / fd 1 to its end. Returns the exit status (SPEC 9).
pub fn serve<B: Backend>(mut session: Session<B>) -> i32 {
    let helper = match Helper::from_settings(session.settings()) {
        Ok(h) => h,
        Err(why) => {
            log::line(&why);
            None
        }
    };
    if helper.is_some() {
        session.offer_starttls();
        // The helper shares our socket (fds 0/1) and writes each TLS record as it comes:
        // with Nagle on, the reply after the handshake waits for the client's delayed ACK
        // of the session tickets, 40 ms a session (bench/tls). tcpserver has no option to
        // set TCP_NODELAY; the socket is one for both processes, so set it here. Not a
        // socket (a pipe, inetd's tests): nothing to do.
        let _ = sys::set_tcp_nodelay(OUT);
    } else if session.settings().require_tls {
        // SPEC 2: REQUIRE_TLS applies where STARTTLS is available; say so where it is not.
        log::line(
            "REQUIRE_TLS is set but there is no TLS helper: no STARTTLS, mail accepted in clear",
        );
    }
    let (status, fds) = serve_on(session, Fds::new(IN, OUT, helper));
    drop(fds);
    status
}

/// Runs one session in process on `input` (the client's writes, one piece a read) and
/// returns everything the server wrote: the same loop as [`serve`], for tests and fuzzing.
pub fn converse<B: Backend>(session: Session<B>, input: &[&[u8]]) -> Vec<u8> {
    serve_on(session, Script::new(input)).1.output
}

/// [`converse`] with STARTTLS offered, a TLS helper answering `answer` on its control
/// socket (`SSL_PROTOCOL=...\0SSL_CIPHER=...\0\0`; anything incomplete fails the handshake).
pub fn converse_tls<B: Backend>(
    mut session: Session<B>,
    input: &[&[u8]],
    answer: &[u8],
) -> Vec<u8> {
    session.offer_starttls();
    serve_on(session, Script::with_tls(input, answer)).1.output
}

fn serve_on<B: Backend, T: Transport>(mut session: Session<B>, io: T) -> (i32, T) {
    let settings = session.settings();
    let now = Instant::now();
    let mut conn = Conn {
        io,
        reader: LineReader::new(),
        out: Vec::with_capacity(1024),
        started: now,
        progress: now,
        timeout: settings.timeout,
        session_timeout: settings.session_timeout,
        bytes_in: 0,
        bytes_out: 0,
    };
    log::hold(true);
    let greeting = session.greeting();
    let end = match conn.send(&greeting) {
        Ok(()) => run(&mut session, &mut conn),
        Err(e) => e,
    };
    match end {
        End::IdleTimeout | End::SessionTimeout => {
            session.abort();
            conn.say_timeout();
        }
        End::ClientGone | End::ClientGoneInData | End::TlsFailed | End::Error => session.abort(),
        End::Quit | End::Closed => {
            let _ = conn.flush();
        }
    }
    log::line(&format!(
        "end: remote {} helo {} messages {} bytes in {} out {}: {}",
        session.remote_ip().unwrap_or("unknown"),
        session
            .helo()
            .map(|h| log::quote(h.as_bytes()))
            .unwrap_or_else(|| "none".into()),
        session.messages,
        conn.bytes_in,
        conn.bytes_out,
        end.describe()
    ));
    log::hold(false);
    (0, conn.io)
}

fn run<B: Backend, T: Transport>(session: &mut Session<B>, conn: &mut Conn<T>) -> End {
    loop {
        let (step, shown) = loop {
            if let Some(line) = conn.reader.command() {
                // SPEC 8: an AUTH response (credentials) never reaches the log.
                let secret = session.expects_secret();
                let step = session.command(line);
                let logged = session.take_logged_reply();
                let shown = (reply_of(&step).is_error() && !logged).then(|| {
                    if secret {
                        "(AUTH response)".to_string()
                    } else {
                        describe(line)
                    }
                });
                break (step, shown);
            }
            if let Err(end) = conn.fill() {
                return end;
            }
        };
        if let Some(command) = shown {
            log::line(&format!("{command} -> {}", reply_of(&step).summary()));
        }
        let result = match step {
            Step::Reply(r) => conn.send(&r),
            Step::Close(r) => {
                let end = if r == reply::BYE {
                    End::Quit
                } else {
                    End::Closed
                };
                return conn.send(&r).err().unwrap_or(end);
            }
            Step::StartData(r) => conn.send(&r).and_then(|()| receive(session, conn)),
            Step::StartTls(r) => conn.send(&r).and_then(|()| start_tls(session, conn)),
        };
        if let Err(end) = result {
            return end;
        }
    }
}

/// From the 354 to the reply after the dot.
fn receive<B: Backend, T: Transport>(
    session: &mut Session<B>,
    conn: &mut Conn<T>,
) -> Result<(), End> {
    conn.reader.start_data();
    loop {
        match conn.reader.data() {
            Some(DataPiece::End) => break,
            Some(DataPiece::Text { bytes, ends_line }) => session.data_piece(bytes, ends_line),
            None => conn.fill().map_err(|e| match e {
                End::ClientGone => End::ClientGoneInData,
                other => other,
            })?,
        }
    }
    let answer = session.data_end(conn.reader.bare_lfs());
    if answer.is_error() {
        log::line(&format!("DATA -> {}", answer.summary()));
    }
    conn.send(&answer)
}

/// SPEC 3.1: from the `220 Ready to start TLS` to the first command inside TLS.
fn start_tls<B: Backend, T: Transport>(
    session: &mut Session<B>,
    conn: &mut Conn<T>,
) -> Result<(), End> {
    conn.flush()?;
    // CVE-2011-0411: what the client pipelined behind STARTTLS was sent in clear, before the
    // handshake; executing it inside TLS would credit it with TLS. It is thrown away.
    let dropped = conn.reader.discard();
    if dropped > 0 {
        log::line(&format!(
            "STARTTLS: {dropped} bytes sent before the handshake thrown away"
        ));
    }
    let deadline = conn
        .deadline()
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(86400));
    match conn.io.start_tls(deadline) {
        Ok(info) => {
            conn.progress = Instant::now();
            session.tls_started(info);
            Ok(())
        }
        // No `421` on a timeout either: the client may be half-way into a handshake, and the
        // socket is the helper's again.
        Err(e) => {
            log::line(&format!("STARTTLS: {e}"));
            Err(End::TlsFailed)
        }
    }
}

fn reply_of(step: &Step) -> &Reply {
    match step {
        Step::Reply(r) | Step::StartData(r) | Step::Close(r) | Step::StartTls(r) => r,
    }
}

/// The command as the log shows it: escaped, cut (SPEC 8), and AUTH without its
/// credentials however the line is spaced or cased (` AUTH PLAIN x`, `auth\tplain x`).
fn describe(line: CommandLine<'_>) -> String {
    match line {
        CommandLine::TooLong => "(command line over 4096 bytes)".to_string(),
        CommandLine::Line(l) => match auth_mechanism(l) {
            Some(b"") => "AUTH ...".to_string(),
            Some(mechanism) => format!("AUTH {} ...", log::quote(mechanism)),
            // A long single word of base64 is most likely an AUTH response sent after a
            // refused AUTH by a client that did not wait for the 334: never log it.
            None if looks_like_credentials(l) => "(base64 data)".to_string(),
            None => log::quote(l),
        },
    }
}

/// For a line that starts with the word AUTH, in any case and after any spacing (and
/// whatever byte, a NUL included, follows it): the mechanism when it is a plain name (at
/// most 20 letters, digits, `-`, `_`), else an empty one. `None` for other lines.
fn auth_mechanism(line: &[u8]) -> Option<&[u8]> {
    let start = line.iter().position(|b| !b.is_ascii_whitespace())?;
    let line = &line[start..];
    let (verb, rest) = line.split_at_checked(4)?;
    if !verb.eq_ignore_ascii_case(b"AUTH") || rest.first().is_some_and(u8::is_ascii_alphanumeric) {
        return None;
    }
    let plain = |w: &&[u8]| {
        !w.is_empty()
            && w.len() <= 20
            && w.iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(b))
    };
    let mechanism = rest
        .split(|b| b.is_ascii_whitespace())
        .find(|w| !w.is_empty());
    Some(mechanism.filter(plain).unwrap_or(b""))
}

fn looks_like_credentials(line: &[u8]) -> bool {
    line.len() >= 12
        && line
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
}
