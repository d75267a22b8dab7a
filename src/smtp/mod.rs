//! The SMTP protocol of the front ends (SPEC 3): [`command`] turns one line into a
//! [`command::Command`], [`session`] is the state machine that answers it (no I/O),
//! [`server`] drives a session over fd 0 / fd 1 with timeouts and pipelining.
//! [`utf8`] holds the session's part of SMTPUTF8 (SPEC 3.2).

pub mod command;
pub mod server;
pub mod session;
pub mod utf8;

pub use session::{Session, Step};
