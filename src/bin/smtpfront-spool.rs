//! smtpfront-spool: the SMTP front end with the spool back end (SPEC 1, 2, 6): the store
//! half of a backup MX.
use smtpfront::backend::spool::SpoolBackend;
use smtpfront::{frontend, sys};

fn main() {
    sys::ignore_sigxfsz();
    std::process::exit(frontend::run(
        "smtpfront-spool",
        SpoolBackend::from_settings,
    ));
}
