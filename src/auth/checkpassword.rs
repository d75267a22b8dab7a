//! The qmail checkpassword interface (SPEC 3 AUTH): run `$CHECKPASSWORD` (split on white
//! space) with `true` as the program to run on success, and `user\0password\0timestamp\0`
//! on its fd 3. Exit 0 = good, 1 = bad, anything else (111, a crash, a timeout, a program
//! that cannot be run) = temporary. The password is never logged.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Good,
    Bad,
    /// Why, for the log (never containing the password).
    Temporary(String),
}

/// Runs the checkpassword program for `user` and `password`, killing it after `timeout`.
pub fn check(program: &str, user: &str, password: &[u8], timeout: Duration) -> Verdict {
    let mut words = program.split_whitespace();
    let Some(path) = words.next() else {
        return Verdict::Temporary("CHECKPASSWORD is empty".into());
    };
    let (reader, mut writer) = match std::io::pipe() {
        Ok(p) => p,
        Err(e) => return Verdict::Temporary(format!("pipe: {e}")),
    };
    let mut cmd = Command::new(path);
    cmd.args(words)
        .arg("true")
        .stdin(Stdio::null())
        // Its stdout must never reach the SMTP client, which is our stdout.
        .stdout(Stdio::null())
        // Its own process group, so that a timeout kills whatever it started too (a
        // background child would otherwise hold our log pipe open).
        .process_group(0);
    crate::sys::pass_as_fd3(&mut cmd, reader);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Verdict::Temporary(format!("cannot run {path}: {e}")),
    };
    // Drop our copy of the read end (moved into the command), so the program sees EOF.
    drop(cmd);
    let stamp = format!(
        "<{}.{}@smtpfront>",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    );
    let mut data = Vec::with_capacity(user.len() + password.len() + stamp.len() + 3);
    for part in [user.as_bytes(), password, stamp.as_bytes()] {
        data.extend_from_slice(part);
        data.push(0);
    }
    // A program that does not read fd 3 gets EPIPE on our side: harmless, its exit decides.
    let _ = writer.write_all(&data);
    drop(writer);
    data.fill(0);
    wait(&mut child, path, timeout)
}

fn wait(child: &mut std::process::Child, path: &str, timeout: Duration) -> Verdict {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return match status.code() {
                    Some(0) => Verdict::Good,
                    Some(1) => Verdict::Bad,
                    Some(n) => Verdict::Temporary(format!("{path} exited {n}")),
                    None => Verdict::Temporary(format!("{path} was killed by a signal")),
                }
            }
            Ok(None) if Instant::now() >= deadline => {
                crate::sys::kill_group(child.id());
                let _ = child.kill();
                let _ = child.wait();
                return Verdict::Temporary(format!("{path} timed out after {timeout:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Verdict::Temporary(format!("waiting for {path}: {e}")),
        }
    }
}
