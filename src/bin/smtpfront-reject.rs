//! smtpfront-reject (SPEC 1, 2 `SMTPREJECT`): while `$SMTPREJECT` is set, refuse every
//! transaction with its text — temporary, or permanent when it starts with `-` — as
//! rblsmtpd does; otherwise become the rest of the command line, environment untouched.
use smtpfront::reject;

fn main() {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    std::process::exit(reject::run(&argv));
}
