//! smtpfront-echo: the SMTP front end with the echo back end (SPEC 1). Stores nothing.
//! Started without Rust's runtime (see `frontend::run`).
#![no_main]
use smtpfront::backend::echo::Echo;
use smtpfront::frontend;

#[no_mangle]
extern "C" fn main(_argc: i32, _argv: *const *const u8) -> i32 {
    frontend::run("smtpfront-echo", |_settings| Ok(Echo))
}
