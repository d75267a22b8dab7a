//! forward (SPEC 7): sends `$SPOOLDIR/new` to one host, or lists the queue; the exit status
//! tells the invoking loop whether to run it again.
use smtpfront::forward;

fn main() {
    let args: Option<Vec<String>> = std::env::args_os()
        .skip(1)
        .map(|a| a.into_string().ok())
        .collect();
    let outcome = match args {
        Some(args) => forward::main(&args),
        None => {
            eprintln!("forward: an argument is not UTF-8\n{}", forward::USAGE);
            forward::Outcome::Usage(forward::UsageError("not UTF-8".into()))
        }
    };
    std::process::exit(outcome.exit_code());
}
