//! The forward service in `service/forward/` run for real (SPEC 7): the daemontools run
//! script (envdir -> sh -> [setuidgid ->] the loop -> forward) against
//! tests/forward_server.py (aiosmtpd) and Postfix's smtp-sink, with a spool stored by the
//! real smtpfront-spool; its signals (ALRM sends now, TERM stops); the errors it logs; the
//! log script with the real multilog.
//!
//! Each test lays out a service directory the way the README (Deploy, step 6) says (a copy of
//! `service/forward/run`, an env/ directory, a spool) and runs the script there, as
//! supervise does, in a process group of its own that is killed when its guard drops. When
//! the tests run as root (as in CI) the loop runs as `nobody`, which owns the spool: the
//! script's setuidgid is exercised, and the copy of forward in the directory is one that
//! `nobody` can run wherever the checkout is.

mod common;

use common::{command, free_port, run_with_input, scratch, tool, SPOOL};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const FORWARD: &str = env!("CARGO_BIN_EXE_forward");
/// How long anything the loop should do may take (it polls every INTERVAL=1 s).
const LIMIT: Duration = Duration::from_secs(30);

/// The repository's `service/` directory.
fn service(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("service")
        .join(rel)
}

fn running_as_root() -> bool {
    // /proc/self belongs to the process's effective user.
    fs::metadata("/proc/self").unwrap().uid() == 0
}

/// The uid of an account, from `id -u`.
fn uid_of(account: &str) -> Option<u32> {
    let out = command("id", &[]).args(["-u", account]).output().ok()?;
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

/// The tools every loop test needs; `None` (skipped) when one is missing outside CI.
fn tools() -> Option<()> {
    for t in ["envdir", "setuidgid"] {
        tool(t)?;
    }
    Some(())
}

/// How many lines of `log` are `PROGRAM[PID]: MESSAGE` with `program` and a message that
/// starts with `start` (a port or a status in `start` cannot match a longer one or a PID).
fn count_lines(log: &str, program: &str, start: &str) -> usize {
    log.lines()
        .filter_map(common::split_log_line)
        .filter(|&(p, m)| p == program && m.starts_with(start))
        .count()
}

/// Polls `done` until it holds; panics with `what` and the log after `LIMIT`.
fn wait_until(what: &str, log: impl Fn() -> String, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: timed out\n{}", log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ------------------------------------------------------------------------ the directory

/// A service directory as an operator lays it out: `run` (a copy of the repository's),
/// `env/`, `bin/forward` and `spool/`. As root, the spool belongs to `nobody` and the loop
/// runs as `nobody` (SMTPFRONT_USER).
struct Dir {
    root: PathBuf,
    /// `Some(uid)` when the loop runs as `nobody`.
    nobody: Option<u32>,
}

impl Dir {
    /// `env` adds or replaces env/ files; an empty value writes an empty file, which makes
    /// envdir unset the variable.
    fn new(name: &str, env: &[(&str, &str)]) -> Dir {
        let root = scratch(name);
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        for d in ["env", "bin", "spool"] {
            fs::create_dir(root.join(d)).unwrap();
        }
        fs::set_permissions(root.join("spool"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::copy(service("forward/run"), root.join("run")).unwrap();
        fs::copy(FORWARD, root.join("bin/forward")).unwrap();
        for f in ["run", "bin/forward"] {
            fs::set_permissions(root.join(f), fs::Permissions::from_mode(0o755)).unwrap();
        }
        let nobody = running_as_root().then(|| uid_of("nobody")).flatten();
        let spool = root.join("spool").to_str().unwrap().to_string();
        let mut files: Vec<(&str, &str)> = vec![
            ("SPOOLDIR", &spool),
            ("HELOHOST", "backup.test"),
            ("INTERVAL", "1"),
            (
                "SMTPFRONT_USER",
                if nobody.is_some() { "nobody" } else { "root" },
            ),
            // A bounce would be a test failure: none is expected here.
            ("SENDMAIL", "/bin/false"),
        ];
        for (k, v) in env {
            files.retain(|(name, _)| name != k);
            files.push((k, v));
        }
        for (k, v) in files {
            let text = if v.is_empty() {
                String::new()
            } else {
                format!("{v}\n")
            };
            fs::write(root.join("env").join(k), text).unwrap();
        }
        let dir = Dir { root, nobody };
        dir.chown_spool();
        dir
    }

    fn spool(&self) -> PathBuf {
        self.root.join("spool")
    }

    /// PATH for the loop: the directory's bin/ (where forward is), then the system's tools.
    fn path(&self) -> String {
        format!(
            "{}:/usr/sbin:/usr/bin:/sbin:/bin",
            self.root.join("bin").display()
        )
    }

    /// As root: gives the spool (and everything in it) to `nobody`, the loop's account.
    fn chown_spool(&self) {
        if self.nobody.is_some() {
            let ok = command("chown", &[])
                .args(["-R", "nobody", self.spool().to_str().unwrap()])
                .status()
                .unwrap();
            assert!(ok.success());
        }
    }

    /// Stores `n` messages with the real smtpfront-spool (one session through pipes);
    /// their subjects are `TAG i`.
    fn store(&self, n: usize, tag: &str) {
        let mut session = String::from("EHLO client.test\r\n");
        for i in 0..n {
            session += &format!(
                "MAIL FROM:<a@example.net>\r\nRCPT TO:<r{i}@example.com>\r\nDATA\r\n\
                 Subject: {tag} {i}\r\n\r\nHello from the backup MX.\r\n.\r\n"
            );
        }
        session += "QUIT\r\n";
        let spool = self.spool().to_str().unwrap().to_string();
        let env = [("SPOOLDIR", spool.as_str()), ("RELAYCLIENT", "")];
        let out = run_with_input(SPOOL, &env, session.as_bytes());
        let text = String::from_utf8_lossy(&out.stdout);
        let queued = format!("250 2.0.0 Ok: queued as {}", common::QUEUE_ID);
        assert_eq!(
            common::reply_lines(&text)
                .iter()
                .filter(|l| common::like(l, &queued))
                .count(),
            n,
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.chown_spool();
    }

    /// How many messages wait in the spool's new/.
    fn queued(&self) -> usize {
        fs::read_dir(self.spool().join("new"))
            .map(|r| r.count())
            .unwrap_or(0)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

// ------------------------------------------------------------------------ the loop

/// The copied `run` running in its directory, in a process group of its own; the whole
/// group is killed when this drops.
struct Loop {
    child: Child,
    log: PathBuf,
}

impl Loop {
    /// Starts `./run` as supervise would: in the service directory, stdout and stderr to a
    /// log file, PATH with the directory's bin/ (where forward is) and the system's tools.
    fn start(dir: &Dir) -> Loop {
        Loop::start_as(dir, command(dir.root.join("run"), &[("PATH", &dir.path())]))
    }

    /// Starts `cmd` (the loop, started some other way) like [`Loop::start`].
    fn start_as(dir: &Dir, mut cmd: std::process::Command) -> Loop {
        let log = dir.root.join("run.log");
        let out = fs::File::create(&log).unwrap();
        let child = cmd
            .current_dir(&dir.root)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn ./run");
        Loop { child, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.pid() as i32, sig) }, 0);
    }

    /// Waits until the loop waits: its `forward --wait INTERVAL` child exists (not the
    /// `forward --wait 0` that makes the FIFO), so the run before is over.
    fn wait_sleeping(&self) {
        let pid = self.pid();
        wait_until(
            "the loop never waited",
            || self.log(),
            || {
                group_members(pid)
                    .iter()
                    .any(|&(p, ppid, _)| ppid == pid && waits(p))
            },
        );
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group that process_group(0) made for our child.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// The live (not zombie) processes of process group `pgid`: (pid, parent pid, command).
fn group_members(pgid: u32) -> Vec<(u32, u32, String)> {
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ...": the comm may hold spaces, so split at the ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let (state, ppid, pgrp) = (rest[0], rest[1], rest[2]);
        if state != "Z" && pgrp == pgid.to_string() {
            found.push((pid, ppid.parse().unwrap(), comm));
        }
    }
    found
}

/// Whether process `pid` is `forward --wait N` with N other than 0 (from /proc/PID/cmdline).
fn waits(pid: u32) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    matches!(args.as_slice(), [prog, b"--wait", n, b""] if prog.ends_with(b"forward") && *n != b"0")
}

/// The real uid of a process ("Uid:" line of /proc/PID/status).
fn process_uid(pid: u32) -> u32 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

// ------------------------------------------------------------------------ the primaries

/// tests/forward_server.py (aiosmtpd) on a free port; killed when dropped.
struct Remote {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Remote {
    fn start() -> Option<Remote> {
        Remote::start_with("")
    }

    /// `config`: extra JSON members of tests/forward_server.py, e.g. `"tls": {...}`.
    fn start_with(config: &str) -> Option<Remote> {
        let (child, port, out) = common::start_forward_server(config, "svcfw-remote")?;
        Some(Remote { child, port, out })
    }

    fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// (envelope, message) of every message accepted, in arrival order.
    fn received(&self) -> Vec<(String, String)> {
        let mut names: Vec<String> = fs::read_dir(&self.out)
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().into_string().ok())
            .filter(|n| n.starts_with("msg-") && n.ends_with(".eml"))
            .collect();
        names.sort();
        names
            .iter()
            .filter_map(|n| {
                let base = n.strip_suffix(".eml").unwrap();
                // The .env file is renamed into place after the .eml: wait for both.
                let env = fs::read_to_string(self.out.join(format!("{base}.env"))).ok()?;
                let eml = fs::read(self.out.join(n)).ok()?;
                Some((env, String::from_utf8_lossy(&eml).into_owned()))
            })
            .collect()
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.out);
    }
}

/// Postfix's smtp-sink on 127.0.0.1:port; killed when dropped.
struct Sink(Child);

impl Sink {
    fn start(port: u16) -> Option<Sink> {
        let sink = tool("smtp-sink")?;
        let mut cmd = command(sink, &[]);
        if running_as_root() {
            cmd.args(["-u", "nobody"]); // smtp-sink refuses to run as root without it
        }
        let child = cmd
            .args([&format!("127.0.0.1:{port}"), "10"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let s = Sink(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "smtp-sink did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(s)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ------------------------------------------------------------------------ the tests

/// The loop sends what smtpfront-spool stored, empties the spool, and keeps polling: mail
/// stored later goes out at the next round. forward gets the envdir's settings (HELOHOST)
/// and, as root, runs as SMTPFRONT_USER.
#[test]
fn loop_sends_the_spool_and_keeps_polling() {
    let (Some(()), Some(remote)) = (tools(), Remote::start()) else {
        return;
    };
    let dir = Dir::new("svcfw-loop", &[("PRIMARY", &remote.target())]);
    dir.store(2, "first");
    assert_eq!(dir.queued(), 2);
    let run = Loop::start(&dir);
    wait_until(
        "the first two messages",
        || run.log(),
        || remote.received().len() == 2 && dir.queued() == 0,
    );
    let got = remote.received();
    for (i, (envelope, message)) in got.iter().enumerate() {
        let lines: Vec<&str> = envelope.lines().collect();
        assert_eq!(lines.len(), 3, "{envelope}");
        assert_eq!(lines[0], "HELO backup.test", "HELOHOST from env/");
        assert!(lines[1].starts_with("MAIL a@example.net"), "{envelope}");
        assert_eq!(lines[2], format!("RCPT r{i}@example.com"));
        assert!(
            message.starts_with("Received: from client.test"),
            "{message}"
        );
        assert!(
            message.contains(&format!("\r\nSubject: first {i}\r\n")),
            "{message}"
        );
    }
    if let Some(uid) = dir.nobody {
        assert_eq!(process_uid(run.pid()), uid, "the loop must run as nobody");
        let lock = fs::metadata(dir.spool().join("lock")).unwrap();
        assert_eq!(lock.uid(), uid, "forward must run as nobody");
    }

    dir.store(1, "second");
    wait_until(
        "the message stored later",
        || run.log(),
        || remote.received().len() == 3 && dir.queued() == 0,
    );
    assert!(remote.received()[2].1.contains("\r\nSubject: second 0\r\n"));
    let log = run.log();
    assert_eq!(log.matches(": delivered: 250").count(), 3, "{log}");
    assert!(!log.contains("forward-loop["), "nothing to report: {log}");
}

/// ALRM (svc -a) ends the sleep: the queue goes out now, not after INTERVAL. TERM (svc -t,
/// svc -d) ends the loop and its sleep, with status 0.
#[test]
fn alarm_sends_now_and_term_stops_the_loop() {
    let (Some(()), Some(remote)) = (tools(), Remote::start()) else {
        return;
    };
    let dir = Dir::new(
        "svcfw-signals",
        &[("PRIMARY", &remote.target()), ("INTERVAL", "3600")],
    );
    let mut run = Loop::start(&dir);
    run.wait_sleeping(); // the first run found nothing
    dir.store(1, "alarm");
    run.signal(libc::SIGALRM);
    wait_until(
        "the message after ALRM",
        || run.log(),
        || remote.received().len() == 1 && dir.queued() == 0,
    );
    run.wait_sleeping();
    assert!(
        run.child.try_wait().unwrap().is_none(),
        "ALRM ended the loop"
    );

    run.signal(libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = run.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "TERM did not end the loop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{}", run.log());
    wait_until(
        "the sleep left behind",
        || run.log(),
        || group_members(run.pid()).is_empty(),
    );
}

/// The primary is down: forward exits 75 (mail remains) and the loop just tries again;
/// when the primary is back, the spool empties. smtp-sink plays the primary.
#[test]
fn primary_down_then_back() {
    let (Some(()), Some(_)) = (tools(), tool("smtp-sink")) else {
        return;
    };
    let port = free_port();
    let target = format!("127.0.0.1:{port}");
    let dir = Dir::new("svcfw-down", &[("PRIMARY", &target)]);
    dir.store(2, "down");
    let run = Loop::start(&dir);
    // Two failed rounds: forward's own line about the connection, twice.
    wait_until(
        "two refused connections",
        || run.log(),
        || count_lines(&run.log(), "forward", &format!("{target}: ")) >= 2,
    );
    assert_eq!(dir.queued(), 2);
    assert!(
        !run.log().contains("forward-loop["),
        "75 is no news: {}",
        run.log()
    );
    let Some(_sink) = Sink::start(port) else {
        return;
    };
    wait_until("the spool to empty", || run.log(), || dir.queued() == 0);
    let log = run.log();
    assert_eq!(log.matches(": delivered: 250").count(), 2, "{log}");
}

/// Settings that cannot work are logged, each with what to fix, and never make the loop
/// spin: a missing PRIMARY or a bad INTERVAL (the script's own), a PRIMARY forward refuses
/// (exit 64) and a missing spool (exit 78) are reported again at every round.
#[test]
fn bad_settings_are_logged() {
    let Some(()) = tools() else {
        return;
    };
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("PRIMARY", "")], "PRIMARY is not set: put the primary MX"),
        (
            &[("PRIMARY", "mx.test"), ("INTERVAL", "5m")],
            "INTERVAL=5m is not a number of seconds",
        ),
        (&[("PRIMARY", "mx.test:0")], "forward exited 64"),
        (
            &[("PRIMARY", "mx.test"), ("SPOOLDIR", "/nonexistent/spool")],
            "forward exited 78",
        ),
    ];
    for (env, want) in cases {
        let dir = Dir::new("svcfw-bad", env);
        let run = Loop::start(&dir);
        let said = || count_lines(&run.log(), "forward-loop", want);
        wait_until(want, || run.log(), || said() >= 1);
        if want.starts_with("forward exited") {
            // Logged once per round: the loop goes on (INTERVAL=1).
            wait_until(want, || run.log(), || said() >= 2);
        } else {
            // The script waits a minute before it exits: no restart every second.
            std::thread::sleep(Duration::from_millis(500));
            let mut run = run;
            assert!(run.child.try_wait().unwrap().is_none(), "{}", run.log());
        }
    }
}

#[test]
fn scripts_are_executable_shell_and_env_matches_the_front_end() {
    for script in ["forward/run", "forward/log/run"] {
        let path = service(script);
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "{script} must be executable");
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("#!/bin/sh\n"), "{script}");
        let out = command("/bin/sh", &[])
            .arg("-n")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let value = |f: &str| fs::read_to_string(service(f)).unwrap().trim().to_string();
    // The loop must read the spool the front end writes, as the same account.
    for var in ["SPOOLDIR", "SMTPFRONT_USER"] {
        assert_eq!(
            value(&format!("forward/env/{var}")),
            value(&format!("smtpfront/env/{var}")),
            "{var}"
        );
    }
    assert_eq!(value("forward/env/INTERVAL"), "300");
    assert_eq!(value("forward/env/QUEUELIFETIME"), "604800");
    assert_eq!(
        value("forward/log/env/LOGUSER"),
        value("smtpfront/log/env/LOGUSER")
    );
}

#[test]
fn log_script_stamps_lines_into_main_current() {
    let (Some(_), Some(_), Some(_)) = (tool("multilog"), tool("setuidgid"), tool("envdir")) else {
        return;
    };
    common::check_log_run(
        &service("forward/log/run"),
        &[
            "forward[42]: 1796000000.000001.1.0 to <b@example.com>: delivered: 250 2.0.0 Ok",
            "forward-loop[41]: forward exited 78: usage or configuration error (see above)",
        ],
    );
}

// ------------------------------------------------------------------------ ETRN

/// SPEC 3.3 end to end: mail waits for a primary that is down; the primary comes up and says
/// `ETRN example.com` (Python's smtplib) to smtpfront-spool under tcpserver; the loop, waiting
/// in `forward --wait 300`, sends the mail within two seconds instead of five minutes.
#[test]
fn etrn_from_the_primary_sends_the_mail_at_once() {
    let (Some(()), Some(_), Some(py)) = (tools(), tool("smtp-sink"), common::python()) else {
        return;
    };
    let port = free_port();
    let target = format!("127.0.0.1:{port}");
    let dir = Dir::new("svcfw-etrn", &[("PRIMARY", &target), ("INTERVAL", "300")]);
    dir.store(2, "etrn");
    let run = Loop::start(&dir);
    wait_until(
        "a refused connection",
        || run.log(),
        || count_lines(&run.log(), "forward", &format!("{target}: ")) >= 1,
    );
    run.wait_sleeping();
    assert_eq!(dir.queued(), 2);
    // The loop itself holds the FIFO open (for an ETRN during a run), as its comment says.
    let fifo = dir.spool().join("trigger");
    let held = fs::read_dir(format!("/proc/{}/fd", run.pid()))
        .unwrap()
        .flatten()
        .any(|fd| fs::read_link(fd.path()).is_ok_and(|p| p == fifo));
    assert!(held, "the loop does not hold {}", fifo.display());
    let Some(_sink) = Sink::start(port) else {
        return;
    };
    // The backup MX's front end, as the README deploys it: RCPTHOSTS names the primary's
    // domain, so the primary may ask without RELAYCLIENT.
    let rcpthosts = dir.root.join("rcpthosts");
    fs::write(&rcpthosts, "example.com\n").unwrap();
    let spool = dir.spool().to_str().unwrap().to_string();
    let env = [
        ("SPOOLDIR", spool.as_str()),
        ("RCPTHOSTS", rcpthosts.to_str().unwrap()),
    ];
    let Some(front) = common::Server::start(&[SPOOL], &env, 5) else {
        return;
    };
    let script = format!(
        "import smtplib\n\
         s = smtplib.SMTP('127.0.0.1', {}, local_hostname='primary.test')\n\
         s.ehlo()\n\
         print('etrn' in s.esmtp_features)\n\
         print(s.docmd('ETRN', 'example.com'))\n\
         s.quit()\n",
        front.port
    );
    let mut client = command(py, &[]);
    client.args(["-c", &script]);
    let said = common::run_bounded(client, LIMIT);
    let asked = Instant::now();
    assert_eq!(
        said.stdout,
        "True\n(250, b'2.0.0 Queuing for node example.com started')\n",
        "{}{}",
        said.stderr,
        front.log()
    );
    let deadline = asked + Duration::from_secs(2);
    while !(dir.queued() == 0 && run.log().matches(": delivered: 250").count() == 2) {
        assert!(
            Instant::now() < deadline,
            "the mail did not go within 2 s of the ETRN\n{}",
            run.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        count_lines(
            &run.log(),
            "forward",
            "woken by ETRN: the queue is sent now"
        ),
        1,
        "{}",
        run.log()
    );
    let front_log = front.log();
    assert_eq!(
        common::log_lines_of(&front_log, "smtpfront-spool")
            .iter()
            .filter(|l| l.starts_with("ETRN "))
            .collect::<Vec<_>>(),
        [&"ETRN example.com from 127.0.0.1 helo primary.test: 250 2.0.0 Queuing for node example.com started"],
        "{front_log}"
    );
    // The run is over and the loop waits again, with nothing to report.
    run.wait_sleeping();
    assert!(!run.log().contains("forward-loop["), "{}", run.log());
}

// ------------------------------------------------------------------------ TLS

/// A service directory set up for TLS as the README says: env/CAFILE (a copy of the test
/// certificate, readable by the loop's account), env/TLSNAME, and s6-networking's
/// s6-tcpclient, s6-ucspitlsc and s6-tlsc-io in bin/.
fn tls_dir(name: &str, primary: &str, extra: &[(&str, &str)]) -> Option<Dir> {
    let s6 = common::s6_networking()?;
    let (cert, _) = common::test_certificate()?;
    let root_ca = scratch(&format!("{name}-ca")).join("ca.pem");
    fs::copy(&cert, &root_ca).unwrap();
    fs::set_permissions(&root_ca, fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(root_ca.parent().unwrap(), fs::Permissions::from_mode(0o755)).unwrap();
    let ca = root_ca.to_str().unwrap().to_string();
    let mut env = vec![
        ("PRIMARY", primary),
        ("CAFILE", &ca),
        ("TLSNAME", "mx.test"),
    ];
    env.extend_from_slice(extra);
    let dir = Dir::new(name, &env);
    for prog in ["s6-tcpclient", "s6-ucspitlsc", "s6-tlsc-io"] {
        let to = dir.root.join("bin").join(prog);
        fs::copy(s6.join(prog), &to).unwrap();
        fs::set_permissions(&to, fs::Permissions::from_mode(0o755)).unwrap();
    }
    Some(dir)
}

/// SPEC 7 TLS through the service: with env/CAFILE the loop runs
/// `s6-tcpclient HOST PORT s6-ucspitlsc -k TLSNAME -- forward -u`; the mail arrives inside
/// TLS (the primary saw it), and forward logs the protocol and cipher once.
#[test]
fn tls_loop_sends_inside_tls() {
    let Some(()) = tools() else {
        return;
    };
    let Some((cert, key)) = common::test_certificate() else {
        return;
    };
    let tls = format!(r#""tls": {{"cert": {cert:?}, "key": {key:?}}}"#);
    let Some(remote) = Remote::start_with(&tls) else {
        return;
    };
    let Some(dir) = tls_dir("svcfw-tls", &remote.target(), &[("REQUIRE_TLS", "1")]) else {
        return;
    };
    dir.store(2, "tls");
    let run = Loop::start(&dir);
    wait_until(
        "the two messages inside TLS",
        || run.log(),
        || remote.received().len() == 2 && dir.queued() == 0,
    );
    for n in 1..=2 {
        let seen = fs::read_to_string(remote.out.join(format!("msg-{n:04}.tls")));
        assert!(seen.is_ok_and(|t| t.starts_with("TLSv1.")), "{}", run.log());
    }
    let tls_line = format!("{}: TLS TLSv1.", remote.target());
    assert_eq!(
        count_lines(&run.log(), "forward", &tls_line),
        1,
        "{}",
        run.log()
    );
    assert!(!run.log().contains("forward-loop["), "{}", run.log());
}

/// With TLS configured and the primary down, s6-tcpclient cannot connect: the loop says
/// so, and forward still runs (without a connection, nothing in clear) so that old mail
/// would expire; the mail stays queued.
#[test]
fn tls_loop_with_the_primary_down_keeps_the_mail() {
    let Some(()) = tools() else {
        return;
    };
    let port = free_port();
    let target = format!("127.0.0.1:{port}");
    let Some(dir) = tls_dir("svcfw-tls-down", &target, &[]) else {
        return;
    };
    dir.store(1, "down");
    let run = Loop::start(&dir);
    let said = format!(
        "no connection to 127.0.0.1 port {port}; forward runs without one to expire old mail"
    );
    wait_until(
        "a round without a connection",
        || run.log(),
        || {
            count_lines(
                &run.log(),
                "forward",
                &format!("{target}: REQUIRE_TLS is set"),
            ) >= 1
        },
    );
    assert!(
        count_lines(&run.log(), "forward-loop", &said) >= 1,
        "{}",
        run.log()
    );
    assert_eq!(dir.queued(), 1);
}

/// Issue 13: svc -t (TERM) while the script waits after a setting it cannot use (here no
/// PRIMARY) ends the wait at once and leaves no `sleep` behind: the wait is the script
/// itself, exec'd into sleep.
#[test]
fn term_during_the_configuration_wait_leaves_no_sleep() {
    let Some(()) = tools() else {
        return;
    };
    let dir = Dir::new("svcfw-term-wait", &[("PRIMARY", "")]);
    let mut run = Loop::start(&dir);
    let said = || count_lines(&run.log(), "forward-loop", "PRIMARY is not set: ");
    wait_until("the complaint", || run.log(), || said() == 1);
    let pid = run.pid();
    wait_until(
        "the script to become the sleep",
        || run.log(),
        || fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep"),
    );
    assert_eq!(group_members(pid).len(), 1, "{:?}", group_members(pid));
    run.signal(libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while run.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "TERM did not end the wait");
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_until(
        "the group to be empty",
        || run.log(),
        || group_members(pid).is_empty(),
    );
}

/// The `Key=value` settings of a shipped systemd environment file (comments left out).
fn env_file(name: &str) -> Vec<(String, String)> {
    fs::read_to_string(service(&format!("systemd/{name}")))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("{l:?}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// The `ExecStart=` and `Environment=` lines of smtpfront-forward.service.
fn forward_unit() -> (String, Vec<(String, String)>) {
    let text = fs::read_to_string(service("systemd/smtpfront-forward.service")).unwrap();
    let mut exec = None;
    let mut env = Vec::new();
    for line in text.lines() {
        if let Some(e) = line.strip_prefix("ExecStart=") {
            exec = Some(e.to_string());
        } else if let Some(kv) = line.strip_prefix("Environment=") {
            let (k, v) = kv.split_once('=').unwrap();
            env.push((k.to_string(), v.to_string()));
        }
    }
    (exec.expect("ExecStart="), env)
}

/// Issue 13: smtpfront-forward.service drains the spool. Its ExecStart runs the repository's
/// service/forward/run as the loop, with the settings of forward.env.example (PRIMARY,
/// SPOOLDIR and INTERVAL pointed at the test) and the unit's Environment= lines, as
/// systemd would: the mail stored by smtpfront-spool reaches the primary. Without PRIMARY
/// the loop names the file systemd read, not an env/ directory.
#[test]
fn systemd_forward_unit_drains_the_spool() {
    let (Some(()), Some(remote)) = (tools(), Remote::start()) else {
        return;
    };
    let (exec, unit_env) = forward_unit();
    let installed = "/bin/sh /usr/local/lib/smtpfront/forward-run loop";
    assert_eq!(exec, installed);
    let settings_file = unit_env
        .iter()
        .find(|(k, _)| k == "SETTINGS_FILE")
        .map(|(_, v)| v.clone())
        .expect("SETTINGS_FILE");
    assert_eq!(settings_file, "/etc/smtpfront/forward.env");
    let start = |dir: &Dir, primary: &str| {
        let mut vars = env_file("forward.env.example");
        let spool = dir.spool().to_str().unwrap().to_string();
        for (k, v) in [
            ("PRIMARY", primary),
            ("SPOOLDIR", spool.as_str()),
            ("INTERVAL", "1"),
            ("SENDMAIL", "/bin/false"),
        ] {
            vars.retain(|(name, _)| name != k);
            vars.push((k.to_string(), v.to_string()));
        }
        vars.retain(|(_, v)| !v.is_empty());
        vars.extend(unit_env.iter().cloned());
        vars.retain(|(k, _)| k != "PATH");
        let path = dir.path();
        let mut env: Vec<(&str, &str)> =
            vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        env.push(("PATH", &path));
        let mut cmd = command("/bin/sh", &env);
        cmd.arg(dir.root.join("run")).arg("loop");
        Loop::start_as(dir, cmd)
    };

    let dir = Dir::new("svcfw-systemd", &[]);
    dir.store(3, "systemd");
    let run = start(&dir, &remote.target());
    wait_until(
        "the three messages",
        || run.log(),
        || remote.received().len() == 3 && dir.queued() == 0,
    );
    assert_eq!(count_lines(&run.log(), "forward", ""), 6, "{}", run.log());
    drop(run);

    let dir = Dir::new("svcfw-systemd-bad", &[]);
    let run = start(&dir, "");
    let want = "PRIMARY is not set: put the primary MX (host or host:port) in /etc/smtpfront/forward.env (PRIMARY=...)";
    wait_until(
        "the complaint",
        || run.log(),
        || count_lines(&run.log(), "forward-loop", want) == 1,
    );
}
