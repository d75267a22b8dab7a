//! smtpfront-spool: the SMTP front end with the spool back end (SPEC 1, 2, 6): the store
//! half of a backup MX. Started without Rust's runtime (see `frontend::run`).
#![no_main]
use smtpfront::backend::spool::SpoolBackend;
use smtpfront::{frontend, sys};

#[no_mangle]
extern "C" fn main(_argc: i32, _argv: *const *const u8) -> i32 {
    sys::ignore_sigxfsz();
    frontend::run("smtpfront-spool", SpoolBackend::from_settings)
}
