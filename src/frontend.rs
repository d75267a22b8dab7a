//! What every front-end program does before and after the session: settings from the
//! environment, the log, the back end; a `421` and exit 111 when it cannot start (SPEC 9).

use crate::backend::Backend;
use crate::config::Settings;
use crate::log;
use crate::reply::{self, Reply};
use crate::smtp::{server, Session};
use crate::sys;
use crate::ucspi::Conn;

/// Exit status when the program could not start (SPEC 9).
pub const EXIT_CANNOT_START: i32 = 111;

/// Runs one front end: `make_backend` builds the back end from the settings, or says in a
/// log line why it cannot (the client then gets `421`).
///
/// The front ends are `#![no_main]`: their C `main` calls this without Rust's runtime
/// start-up, which every connection would pay for (reading `/proc/self/maps` for a stack
/// guard, an alternate signal stack, a dozen system calls). Of that start-up a session
/// needs one thing, SIGPIPE ignored, which is done here.
pub fn run<B: Backend>(
    program: &str,
    make_backend: impl FnOnce(&Settings) -> Result<B, String>,
) -> i32 {
    sys::ignore_sigpipe();
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            log::init(program, None, None);
            log::line(&e.to_string());
            return refuse(&reply::CONFIG_ERROR);
        }
    };
    log::init(
        program,
        settings.syslog.as_deref(),
        settings.syslog_socket.as_deref(),
    );
    let backend = match make_backend(&settings) {
        Ok(b) => b,
        Err(why) => {
            log::line(&why);
            return refuse(&reply::CONFIG_ERROR);
        }
    };
    let conn = Conn::from_env(settings.proto.as_deref());
    server::serve(Session::new(settings, conn, backend))
}

/// Sends one reply (a `421` that ends the session before it began) and returns 111.
pub fn refuse(answer: &Reply) -> i32 {
    let mut out = Vec::new();
    answer.render(&mut out);
    let _ = sys::write(1, &out);
    EXIT_CANNOT_START
}
