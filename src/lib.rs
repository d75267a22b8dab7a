//! smtpfront: small SMTP programs in the qmail tradition.
//!
//! Each program is launched per connection by a UCSPI server (tcpserver, s6-tcpserver,
//! systemd `Accept=yes`, inetd), talks SMTP on fd 0 / fd 1 and takes every setting from the
//! environment. The behaviour is specified in `../shared/SPEC.md`; section numbers in
//! comments ("SPEC 3") refer to it.
//!
//! ```text
//! fd 0 -> linereader -> smtp::command::parse -> smtp::Session::handle -> Reply -> writer -> fd 1
//!         DATA: the server pumps dot-unstuffed lines -> headers::HopCounter -> Backend::data
//!               at the dot the Session picks one verdict: size, hops, back end, else 250
//! ```
//!
//! Module map: [`config`] owns the environment, [`ucspi`] the connection facts a UCSPI server
//! sets, [`linereader`] bounded reading, [`smtp`] the protocol (commands, session state
//! machine, driver), [`address`] RFC 5321 paths, [`reply`] every reply the programs send,
//! [`envelope`] the transaction and the trace headers we add, [`headers`] the scan of the
//! incoming header block, [`backend`] what happens to accepted mail, [`log`] log lines and
//! [`sys`] every system call that needs `unsafe`, [`ucspitls`] the TLS helper of STARTTLS.
#![deny(unsafe_code)]

pub mod address;
pub mod auth;
pub mod backend;
pub mod base64;
pub mod cdb;
pub mod config;
pub mod decimal;
pub mod envelope;
pub mod etrn;
pub mod forward;
pub mod frontend;
pub mod headers;
pub mod idna;
pub mod linereader;
pub mod log;
pub mod policy;
pub mod punycode;
pub mod reject;
pub mod reply;
pub mod rules;
pub mod smtp;
pub mod spool;
pub mod sys;
pub mod ucspi;
pub mod ucspitls;
