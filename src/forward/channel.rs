//! Where forward's bytes go (SPEC 7): a socket it connected itself, or (`-u`) the
//! descriptors a UCSPI client left it, which STARTTLS switches to the TLS helper's. The
//! reply reader reads it through [`TimedRead`]; the client writes through
//! [`Channel::write_all_within`]. Every wait has a deadline.

use super::reply::{self, TimedRead};
use crate::smtp::server::{Fds, Transport};
use crate::sys::Wait;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Where the bytes of the connection go.
pub enum Channel {
    /// A socket forward connected itself (its read and write timeouts do the waiting).
    Tcp(TcpStream),
    /// `-u`: the UCSPI client's descriptors, non-blocking, every wait a poll until
    /// `deadline` (the one [`TimedRead::read_within`] set), and the TLS helper if any.
    Ucspi { fds: Fds, deadline: Instant },
}

impl Read for Channel {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (fds, deadline) = match self {
            Channel::Tcp(s) => return s.read(buf),
            Channel::Ucspi { fds, deadline } => (fds, *deadline),
        };
        loop {
            match fds.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !fds.wait(Wait::Read, deadline)? {
                        return Err(io::ErrorKind::TimedOut.into());
                    }
                }
                r => return r,
            }
        }
    }
}

impl TimedRead for Channel {
    fn read_within(&mut self, limit: Duration) -> io::Result<()> {
        match self {
            Channel::Tcp(s) => s.read_within(limit),
            Channel::Ucspi { deadline, .. } => {
                *deadline = reply::deadline(limit);
                Ok(())
            }
        }
    }

    fn readable_now(&mut self) -> io::Result<bool> {
        match self {
            Channel::Tcp(s) => s.readable_now(),
            Channel::Ucspi { fds, .. } => fds.wait(Wait::Read, Instant::now()),
        }
    }
}

impl Channel {
    /// Writes all of `bytes`; a wait of `limit` without progress is a timeout (as the
    /// socket's write timeout is).
    pub fn write_all_within(&mut self, mut bytes: &[u8], limit: Duration) -> io::Result<()> {
        let fds = match self {
            Channel::Tcp(s) => return s.write_all(bytes),
            Channel::Ucspi { fds, .. } => fds,
        };
        while !bytes.is_empty() {
            match fds.write(bytes) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !fds.wait(Wait::Write, reply::deadline(limit))? {
                        return Err(io::ErrorKind::TimedOut.into());
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
