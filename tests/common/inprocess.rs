//! In-process sessions (no process, no socket): the echo back end behind the library's
//! driver, `smtp::server::converse`, as the fuzz target drives it.

use smtpfront::backend::echo::Echo;
use smtpfront::config::Settings;
use smtpfront::smtp::Session;
use smtpfront::ucspi::Conn;

/// An echo session with `vars` as its environment, on a connection to `mx.test`.
pub fn echo_session(vars: &[(&str, &str)]) -> Session<Echo> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let settings = Settings::from_vars(vars).expect("settings");
    let conn = Conn::from_vars(Some("TCP"), [("TCPLOCALHOST".into(), "mx.test".into())]);
    Session::new(settings, conn, Echo)
}
