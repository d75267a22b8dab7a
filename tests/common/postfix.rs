//! A private Postfix instance for the tests that need a real MTA on the other side of TLS
//! (issue 10): its own configuration directory, queue and data directories and log file
//! under a scratch directory, every service chroot=n, smtpd on a free loopback port, and
//! nothing of the system's Postfix touched. Started with `postfix -c DIR start`; stopped
//! (and, if that fails, killed by the master's PID) when dropped.
//!
//! Postfix starts as root only (the master binds, the daemons drop to the `postfix`
//! account), as this project's CI runs; `postfix` missing fails the test under CI=true.

use super::{command, free_port, like, python, run_bounded, scratch, tool};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The name Postfix gives itself: in its EHLO, its Received headers, its log.
pub const HOSTNAME: &str = "postfix.test";
/// `syslog_name`: the program prefix of its log lines (`postfix-test/smtp[PID]: ...`).
pub const SYSLOG_NAME: &str = "postfix-test";

/// How long Postfix gets to start, to stop, to deliver: it is given seconds on a loaded
/// 2-core machine, where a run of `postfix-script` alone takes about one.
const LIMIT: Duration = Duration::from_secs(60);

/// The services of master.cf, all with chroot=n (a chroot would need copies of /etc files
/// in the scratch directory). smtpd is added on its own port; `postlog` makes
/// `maillog_file` work.
const SERVICES: &str = "\
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
smtp      unix  - - n -  - smtp
relay     unix  - - n -  - smtp
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
";

/// A running private Postfix; stopped when dropped.
pub struct Postfix {
    pub dir: PathBuf,
    /// Its smtpd's port on 127.0.0.1.
    pub port: u16,
}

impl Postfix {
    /// Starts an instance with `settings` (main.cf lines `name = value`) on top of the
    /// base configuration: no local delivery (`mydestination =`), relaying for 127.0.0.0/8,
    /// TLS log level 1 on both sides. `None` (skipped) without Postfix outside CI.
    pub fn start(name: &str, settings: &[(&str, &str)]) -> Option<Postfix> {
        let postfix = tool("postfix")?;
        let dir = scratch(name);
        for d in ["conf", "queue", "data"] {
            fs::create_dir(dir.join(d)).unwrap();
        }
        // master takes its lock in data_directory, which must belong to the mail owner.
        chown_to_postfix(&dir.join("data"));
        let port = free_port();
        fs::write(dir.join("conf/main.cf"), main_cf(&dir, settings)).unwrap();
        let smtpd = format!("127.0.0.1:{port} inet n - n - - smtpd\n");
        fs::write(dir.join("conf/master.cf"), smtpd + SERVICES).unwrap();
        let pf = Postfix { dir, port };
        let mut cmd = command(postfix, &[]);
        cmd.arg("-c").arg(pf.conf()).arg("start");
        let ran = run_bounded(cmd, LIMIT);
        // Postfix writes its errors to the log (stderr only on a terminal).
        assert_eq!(ran.code, Some(0), "postfix start failed:\n{}", pf.log());
        pf.wait_listening();
        Some(pf)
    }

    fn conf(&self) -> PathBuf {
        self.dir.join("conf")
    }

    /// smtpd's socket is bound by the master, before it starts any daemon.
    fn wait_listening(&self) {
        let deadline = Instant::now() + LIMIT;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "smtpd not listening:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The whole log (`maillog_file`) so far; whole lines only.
    pub fn log(&self) -> String {
        let mut s = fs::read_to_string(self.dir.join("maillog")).unwrap_or_default();
        s.truncate(s.rfind('\n').map_or(0, |i| i + 1));
        s
    }

    /// The messages Postfix's `program` (e.g. `smtp`, `smtpd`) logged: the text after
    /// `HOST postfix-test/PROGRAM[PID]: `, in order.
    pub fn log_of(&self, program: &str) -> Vec<String> {
        let marker = format!(" {SYSLOG_NAME}/{program}[");
        self.log()
            .lines()
            .filter_map(|l| {
                let (_, rest) = l.split_once(&marker)?;
                let (pid, message) = rest.split_once("]: ")?;
                pid.bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| message.to_string())
            })
            .collect()
    }

    /// Waits until `program` logged a line [`like`] `pattern`; returns it.
    pub fn wait_for_log(&self, program: &str, pattern: &str) -> String {
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(l) = self.log_of(program).into_iter().find(|l| like(l, pattern)) {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "no {program} line like {pattern:?} in the Postfix log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends one message to its smtpd with Python's smtplib (in clear); returns smtplib's
    /// reply to the dot, `CODE TEXT`.
    pub fn inject(&self, from: &str, to: &str, message: &[u8]) -> Option<String> {
        let script = r#"
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), local_hostname="client.test", timeout=30)
s.ehlo()
s.mail(sys.argv[2])
s.rcpt(sys.argv[3])
code, text = s.data(open(sys.argv[4], "rb").read())
print(code, text.decode())
s.quit()
"#;
        let input = self.dir.join("inject.eml");
        fs::write(&input, message).unwrap();
        let mut cmd = command(python()?, &[]);
        cmd.args(["-c", script, &self.port.to_string(), from, to])
            .arg(&input);
        let ran = run_bounded(cmd, LIMIT);
        assert_eq!(ran.code, Some(0), "{}", ran.stderr);
        Some(ran.stdout.trim_end().to_string())
    }

    fn master_pid(&self) -> Option<String> {
        let pid = fs::read_to_string(self.dir.join("queue/pid/master.pid")).ok()?;
        let pid = pid.trim().to_string();
        (!pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())).then_some(pid)
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let pid = self.master_pid();
        let _ = command("/usr/sbin/postfix", &[])
            .arg("-c")
            .arg(self.conf())
            .arg("stop")
            .output();
        if let Some(pid) = pid {
            // `postfix stop` only signals the master: wait for it to be gone, and kill it
            // if it is not, so no instance outlives its test.
            let proc = Path::new("/proc").join(&pid);
            let deadline = Instant::now() + Duration::from_secs(10);
            while proc.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if proc.exists() {
                let _ = command("kill", &[]).args(["-KILL", &pid]).status();
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// main.cf: the instance's own directories and log, then `settings`.
fn main_cf(dir: &Path, settings: &[(&str, &str)]) -> String {
    let d = dir.display();
    let mut cf = format!(
        "compatibility_level = 3.6\n\
         queue_directory = {d}/queue\n\
         data_directory = {d}/data\n\
         maillog_file_prefixes = {d}\n\
         maillog_file = {d}/maillog\n\
         syslog_name = {SYSLOG_NAME}\n\
         myhostname = {HOSTNAME}\n\
         mydestination =\n\
         alias_maps =\n\
         alias_database =\n\
         local_recipient_maps =\n\
         inet_interfaces = 127.0.0.1\n\
         inet_protocols = ipv4\n\
         mynetworks = 127.0.0.0/8\n\
         smtpd_peername_lookup = no\n\
         smtp_tls_loglevel = 1\n\
         smtpd_tls_loglevel = 1\n"
    );
    for (name, value) in settings {
        cf.push_str(&format!("{name} = {value}\n"));
    }
    cf
}

/// `chown postfix PATH`: the account Debian's postfix package creates.
fn chown_to_postfix(path: &Path) {
    let status = command("chown", &[])
        .arg("postfix")
        .arg(path)
        .status()
        .expect("run chown");
    assert!(status.success(), "chown postfix {}", path.display());
}
