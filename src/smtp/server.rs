//! The driver (SPEC 3, 8, 9): owns fd 0 and fd 1, the two timeouts, reply buffering and the
//! log line of every error reply. Replies are buffered and flushed only when no complete
//! input is waiting and the reader is about to block ("flush before you block", qmail):
//! that one rule gives correct PIPELINING and one write per batch.
//!
//! The bytes move through a [`Transport`]: the client's descriptors in production, memory in
//! [`converse`], which runs the very same loop in process for table tests and fuzzing.

use crate::backend::Backend;
use crate::linereader::{CommandLine, DataPiece, LineReader};
use crate::log;
use crate::reply::{self, Reply};
use crate::smtp::session::{Session, Step};
use crate::sys::{self, Wait};
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
}

/// The client's descriptors (non-blocking; every wait is a poll with a deadline).
pub struct Fds {
    pub input: RawFd,
    pub output: RawFd,
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
}

/// A client in memory: its input in the pieces it arrives in (each piece is one read, as a
/// client's separate writes would be), everything written collected. Never blocks.
pub struct Script<'a> {
    pieces: std::slice::Iter<'a, &'a [u8]>,
    current: &'a [u8],
    pub output: Vec<u8>,
}

impl<'a> Script<'a> {
    pub fn new(pieces: &'a [&'a [u8]]) -> Script<'a> {
        Script {
            pieces: pieces.iter(),
            current: &[],
            output: Vec::new(),
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
pub fn serve<B: Backend>(session: Session<B>) -> i32 {
    // Nothing may block past a timeout (a silent client, a client that never reads): both
    // descriptors become non-blocking and every wait goes through poll with a deadline.
    // They are often one socket; restoring in reverse order leaves the original flags.
    let saved_in = sys::set_nonblocking(IN, true).ok();
    let saved_out = sys::set_nonblocking(OUT, true).ok();
    let fds = Fds {
        input: IN,
        output: OUT,
    };
    let (status, _) = serve_on(session, fds);
    if let Some(flags) = saved_out {
        sys::restore_flags(OUT, flags);
    }
    if let Some(flags) = saved_in {
        sys::restore_flags(IN, flags);
    }
    status
}

/// Runs one session in process on `input` (the client's writes, one piece a read) and
/// returns everything the server wrote: the same loop as [`serve`], for tests and fuzzing.
pub fn converse<B: Backend>(session: Session<B>, input: &[&[u8]]) -> Vec<u8> {
    serve_on(session, Script::new(input)).1.output
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
        End::ClientGone | End::ClientGoneInData | End::Error => session.abort(),
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
                let shown = reply_of(&step).is_error().then(|| {
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

fn reply_of(step: &Step) -> &Reply {
    match step {
        Step::Reply(r) | Step::StartData(r) | Step::Close(r) => r,
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
