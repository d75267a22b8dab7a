//! smtpfront-echo: the SMTP front end with the echo back end (SPEC 1). Stores nothing.
use smtpfront::backend::echo::Echo;
use smtpfront::frontend;

fn main() {
    std::process::exit(frontend::run("smtpfront-echo", |_settings| Ok(Echo)));
}
