//! smtpfront-reject (SPEC 1, 2 `SMTPREJECT`): while `$SMTPREJECT` is set, refuse every
//! transaction with its text — temporary, or permanent when it starts with `-` — as
//! rblsmtpd does; otherwise become the rest of the command line, environment untouched.
//! Started without Rust's runtime (see `frontend::run`): when it only execs the next
//! program, it costs that program next to nothing, and leaves SIGPIPE as it found it.
#![no_main]
use smtpfront::reject;

#[no_mangle]
extern "C" fn main(_argc: i32, _argv: *const *const u8) -> i32 {
    // std::env reads the arguments glibc hands to .init_array, also without std's main.
    let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    reject::run(&argv)
}
