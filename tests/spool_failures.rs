//! smtpfront-spool when the spool cannot be written (SPEC 6, 8, 9): a read-only `new/`, the
//! spool directory removed or made unwritable mid-session, a full disk, an unusable spool at
//! start-up. Each failure gives `451 4.3.0`, leaves no partial file, logs its cause, and the
//! session goes on: a later message succeeds once the cause is gone.
//!
//! Tests run as root (CI too); permission tests run the front end as `nobody` through
//! `setpriv`, since root would write through any mode.

mod common;
use common::{command, run_with_input, scratch, tool, SPOOL};
use smtpfront::spool::format::Header;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// An interactive session with a front end through pipes; its log goes to a file.
struct Front {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    log: PathBuf,
}

impl Front {
    fn start(mut cmd: Command, log: &Path) -> Front {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(log).unwrap())
            .spawn()
            .expect("spawn the front end");
        Front {
            stdin: child.stdin.take().unwrap(),
            stdout: BufReader::new(child.stdout.take().unwrap()),
            child,
            log: log.to_path_buf(),
        }
    }

    /// The next reply, all its lines; `None` when the front end closed its output.
    fn try_reply(&mut self) -> Option<String> {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            if self.stdout.read_line(&mut line).unwrap() == 0 {
                return None;
            }
            text.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return Some(text);
            }
        }
    }

    fn reply(&mut self) -> String {
        self.try_reply()
            .unwrap_or_else(|| panic!("the front end closed early; log:\n{}", self.log()))
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stdin.write_all(bytes).unwrap();
    }

    /// Sends one command line; returns its reply.
    fn say(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// One transaction up to DATA's reply: `Err(reply)` when DATA was refused.
    fn envelope(&mut self, n: u32) -> Result<(), String> {
        expect(&self.say(&format!("MAIL FROM:<s{n}@example.net>")), "250 ");
        expect(&self.say(&format!("RCPT TO:<r{n}@example.com>")), "250 ");
        let r = self.say("DATA");
        if r.starts_with("354 ") {
            Ok(())
        } else {
            Err(r)
        }
    }

    /// A whole message (`body` ends with CRLF); returns the reply to the dot.
    fn message(&mut self, n: u32, body: &[u8]) -> String {
        if let Err(r) = self.envelope(n) {
            panic!("DATA refused: {r}; log:\n{}", self.log());
        }
        self.send(body);
        self.send(b".\r\n");
        self.reply()
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// QUIT, then the exit: returns the log. The front end must exit 0, not by a signal.
    fn quit(mut self) -> String {
        expect(&self.say("QUIT"), "221 ");
        drop(self.stdin);
        let status = self.child.wait().unwrap();
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        assert_eq!(status.signal(), None, "killed by a signal; log:\n{log}");
        assert_eq!(status.code(), Some(0), "log:\n{log}");
        log
    }
}

#[track_caller]
fn expect(reply: &str, start: &str) {
    assert!(
        reply.starts_with(start),
        "expected {start:?}, got {reply:?}"
    );
}

fn queued_id(reply: &str) -> String {
    let id = reply
        .strip_prefix("250 2.0.0 Ok: queued as ")
        .and_then(|r| r.strip_suffix("\r\n"))
        .unwrap_or_else(|| panic!("not queued: {reply:?}"));
    assert!(
        common::like(id, common::QUEUE_ID),
        "not a queue id: {reply:?}"
    );
    id.to_string()
}

/// Waits (10 s at most) until the file system of `dir` has `blocks` free blocks.
fn wait_for_room(dir: &Path, blocks: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let out = Command::new("stat")
            .args(["-f", "-c", "%a"])
            .arg(dir)
            .output()
            .expect("run stat");
        let free: u64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        if free >= blocks {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} has {free} free blocks after 10 s",
            dir.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// `new/` holds exactly `ids`, each a complete message; `tmp/` is empty.
#[track_caller]
fn spool_holds(spool: &Path, ids: &[&str]) {
    assert_eq!(names(&spool.join("tmp")), Vec::<String>::new(), "tmp/");
    assert_eq!(names(&spool.join("new")), ids, "new/");
    for id in ids {
        let bytes = fs::read(spool.join("new").join(id)).unwrap();
        let (header, data) = Header::parse(&bytes).unwrap();
        assert_eq!(header.recipients.len(), 1);
        assert!(data.ends_with(b"\r\n.\r\n"));
    }
}

/// The one log line that names `cause`; it comes from this program.
#[track_caller]
fn log_line<'a>(log: &'a str, cause: &str) -> &'a str {
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(cause)).collect();
    assert!(!lines.is_empty(), "no log line says {cause:?}:\n{log}");
    assert_eq!(
        common::split_log_line(lines[0]).map(|(program, _)| program),
        Some("smtpfront-spool"),
        "{}",
        lines[0]
    );
    lines[0]
}

const SMALL: &[u8] = b"Subject: small\r\n\r\nhello\r\n";

fn big(bytes: usize) -> Vec<u8> {
    let mut body = b"Subject: big\r\n\r\n".to_vec();
    while body.len() < bytes {
        body.extend_from_slice(&[b'x'; 78]);
        body.extend_from_slice(b"\r\n");
    }
    body
}

/// The user the permission tests run as: `nobody` (uid, gid).
fn nobody() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let o = Command::new("id").args([flag, "nobody"]).output().unwrap();
        String::from_utf8(o.stdout).unwrap().trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

/// `smtpfront-spool` run as `nobody`, or `None` when setpriv is missing (outside CI).
fn as_nobody(env: &[(&str, &str)]) -> Option<Command> {
    let setpriv = tool("setpriv")?;
    let (uid, gid) = nobody();
    let mut c = command(setpriv, env);
    c.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .args(["--clear-groups", SPOOL]);
    Some(c)
}

/// A spool directory with `tmp/` and `new/`, all owned by `nobody`, mode 0700.
fn nobody_spool(dir: &Path) -> PathBuf {
    let (uid, gid) = nobody();
    let spool = dir.join("spool");
    for d in [spool.clone(), spool.join("tmp"), spool.join("new")] {
        fs::create_dir(&d).unwrap();
        chown(&d, Some(uid), Some(gid)).unwrap();
        chmod(&d, 0o700);
    }
    spool
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn env(spool: &Path) -> Vec<(&str, &str)> {
    vec![
        ("SPOOLDIR", spool.to_str().unwrap()),
        ("RELAYCLIENT", ""),
        ("TIMEOUT", "60"),
    ]
}

#[test]
fn read_only_new_is_451_at_the_dot_and_nothing_is_left() {
    let dir = scratch("spool-ro-new");
    let spool = nobody_spool(&dir);
    let Some(cmd) = as_nobody(&env(&spool)) else {
        return;
    };
    let mut f = Front::start(cmd, &dir.join("log"));
    expect(&f.reply(), "220 ");
    expect(&f.say("EHLO client.example"), "250-");
    // Read-only from now on (at start-up it would be 421: see the test below).
    chmod(&spool.join("new"), 0o500);
    // The file is written in tmp/; the rename into new/ is refused.
    expect(&f.message(1, SMALL), "451 4.3.0 ");
    spool_holds(&spool, &[]);
    expect(&f.say("NOOP"), "250 ");
    chmod(&spool.join("new"), 0o700);
    let id = queued_id(&f.message(2, SMALL));
    spool_holds(&spool, &[&id]);
    let log = f.quit();
    assert!(log_line(&log, "Permission denied").contains("failed to keep the message"));
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn spool_removed_mid_session_is_451_at_data_and_the_session_goes_on() {
    let dir = scratch("spool-removed");
    let spool = dir.join("spool");
    fs::create_dir(&spool).unwrap();
    let mut f = Front::start(command(SPOOL, &env(&spool)), &dir.join("log"));
    expect(&f.reply(), "220 ");
    expect(&f.say("EHLO client.example"), "250-");
    expect(&f.say("MAIL FROM:<s@example.net>"), "250 ");
    expect(&f.say("RCPT TO:<r@example.com>"), "250 ");
    fs::remove_dir_all(&spool).unwrap();
    expect(&f.say("DATA"), "451 4.3.0 ");
    expect(&f.say("NOOP"), "250 ");
    assert!(!spool.exists(), "nothing was written after the 451");
    // The operator puts the spool back: the next transaction is stored.
    for d in [spool.clone(), spool.join("tmp"), spool.join("new")] {
        fs::create_dir(&d).unwrap();
    }
    expect(&f.say("RSET"), "250 ");
    let id = queued_id(&f.message(2, SMALL));
    spool_holds(&spool, &[&id]);
    let log = f.quit();
    assert!(log_line(&log, "No such file or directory").contains("failed to start the message"));
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn spool_removed_during_data_is_451_at_the_dot() {
    let dir = scratch("spool-removed-in-data");
    let spool = dir.join("spool");
    fs::create_dir(&spool).unwrap();
    let mut f = Front::start(command(SPOOL, &env(&spool)), &dir.join("log"));
    expect(&f.reply(), "220 ");
    f.envelope(1).unwrap();
    f.send(&big(200 * 1024));
    // The message file is open in tmp/: the writes go on, the rename into new/ cannot.
    fs::remove_dir_all(&spool).unwrap();
    f.send(SMALL);
    f.send(b".\r\n");
    expect(&f.reply(), "451 4.3.0 ");
    assert!(!spool.exists(), "nothing was recreated");
    expect(&f.say("NOOP"), "250 ");
    let log = f.quit();
    assert!(log_line(&log, "No such file or directory").contains("failed to keep the message"));
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn spool_unwritable_between_messages_is_451_and_nothing_accepted_is_lost() {
    let dir = scratch("spool-unwritable");
    let spool = nobody_spool(&dir);
    let Some(cmd) = as_nobody(&env(&spool)) else {
        return;
    };
    let mut f = Front::start(cmd, &dir.join("log"));
    expect(&f.reply(), "220 ");
    expect(&f.say("HELO client.example"), "250 ");
    let first = queued_id(&f.message(1, SMALL));
    // Files are created in tmp/: a read-only tmp/ refuses the next message at DATA.
    // (A read-only SPOOLDIR alone stops nothing: only tmp/ and new/ are written.)
    chmod(&spool.join("tmp"), 0o500);
    expect(&f.envelope(2).unwrap_err(), "451 4.3.0 ");
    expect(&f.say("RSET"), "250 ");
    chmod(&spool.join("tmp"), 0o700);
    // A spool that cannot even be searched (mode 0000) refuses it too.
    chmod(&spool, 0o000);
    expect(&f.envelope(3).unwrap_err(), "451 4.3.0 ");
    expect(&f.say("RSET"), "250 ");
    chmod(&spool, 0o700);
    spool_holds(&spool, &[&first]);
    let last = queued_id(&f.message(4, SMALL));
    spool_holds(&spool, &[&first, &last]);
    let log = f.quit();
    log_line(&log, "Permission denied");
    let refused = log
        .lines()
        .filter(|l| l.contains("Permission denied"))
        .count();
    assert!(
        refused >= 2,
        "both refusals are logged with their cause:\n{log}"
    );
    let _ = fs::remove_dir_all(dir);
}

/// How the front end gets a small file system of its own.
const PRIVATE_MOUNT: [&[&str]; 2] = [
    // Root (tests and CI run as root): a mount namespace of its own.
    &["--mount", "--propagation", "private"],
    // Without CAP_SYS_ADMIN: a user namespace whose root may mount a tmpfs.
    &[
        "--user",
        "--map-root-user",
        "--mount",
        "--propagation",
        "private",
    ],
];

/// ENOSPC for real: the front end runs in a mount namespace of its own, where `SPOOLDIR` is a
/// 256 KiB tmpfs. The mount is private to that process, so it cannot outlive the test or be
/// seen by anything else even if the test is killed; the test looks at the files through
/// `/proc/PID/root`. If neither way to mount works, the test fails under CI=true (the CI
/// container must allow it; a size limit via `prlimit --fsize` tests EFBIG, not ENOSPC, and
/// is covered in tests/spool.rs) and is skipped elsewhere with a line saying so.
#[test]
fn disk_full_is_451_and_a_small_message_then_succeeds() {
    let Some(unshare) = tool("unshare") else {
        return;
    };
    let dir = scratch("spool-enospc");
    let mountpoint = dir.join("spool");
    fs::create_dir(&mountpoint).unwrap();
    let mut failures = String::new();
    let mut front = None;
    for way in PRIVATE_MOUNT {
        let mut c = command(&unshare, &env(&mountpoint));
        c.args(way).args([
            "sh",
            "-c",
            "mount -t tmpfs -o size=256k,mode=0700 tmpfs \"$SPOOLDIR\" && exec \"$0\"",
            SPOOL,
        ]);
        let mut f = Front::start(c, &dir.join("log"));
        match f.try_reply() {
            Some(greeting) => {
                expect(&greeting, "220 ");
                front = Some(f);
                break;
            }
            None => {
                let _ = f.child.wait();
                failures.push_str(&format!("unshare {}: {}", way.join(" "), f.log()));
            }
        }
    }
    let Some(mut f) = front else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("cannot mount a tmpfs (CI=true: the container must allow it):\n{failures}");
        }
        eprintln!("SKIPPED: cannot mount a tmpfs here:\n{failures}");
        return;
    };
    let pid = f.child.id();
    let mounts = fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let at = format!(" {} ", mountpoint.display());
    assert!(
        mounts
            .lines()
            .any(|l| l.contains(&at) && l.contains(" tmpfs ")),
        "SPOOLDIR is not a tmpfs for the front end:\n{mounts}"
    );
    let spool = PathBuf::from(format!("/proc/{pid}/root{}", mountpoint.display()));

    expect(&f.say("EHLO client.example"), "250-");
    let first = queued_id(&f.message(1, SMALL));
    // Four times the file system: the write fails part way; the rest is read up to the dot.
    expect(&f.message(2, &big(1024 * 1024)), "451 4.3.0 ");
    spool_holds(&spool, &[&first]);
    let last = queued_id(&f.message(3, SMALL));
    spool_holds(&spool, &[&first, &last]);
    // A disk already full: even a small message fails, at the dot (its bytes wait in the
    // write buffer until the commit), and succeeds once there is room again.
    let filler = spool.join("filler");
    let mut fill = fs::File::create(&filler).unwrap();
    while fill.write_all(&[b'f'; 4096]).is_ok() {}
    drop(fill);
    expect(&f.message(4, SMALL), "451 4.3.0 ");
    spool_holds(&spool, &[&first, &last]);
    fs::remove_file(&filler).unwrap();
    // The room comes back when the filler's last reference goes, which may be a moment
    // later: another test's fork can hold a copy of its descriptor until that child execs
    // (seen once in CI: message 5 got ENOSPC).
    wait_for_room(&spool, 8);
    let after = queued_id(&f.message(5, SMALL));
    spool_holds(&spool, &[&first, &last, &after]);
    let mut stored = Vec::new();
    fs::File::open(spool.join("new").join(&first))
        .unwrap()
        .read_to_end(&mut stored)
        .unwrap();
    assert!(
        stored.ends_with(b"\r\nhello\r\n.\r\n"),
        "accepted mail intact"
    );
    let log = f.quit();
    assert!(log_line(&log, "No space left on device").contains("failed while storing"));
    let full = log
        .lines()
        .filter(|l| l.contains("No space left on device"));
    assert_eq!(
        full.count(),
        2,
        "both failures are logged with their cause:\n{log}"
    );
    assert_eq!(
        fs::read_dir(&mountpoint).unwrap().count(),
        0,
        "the mount was private"
    );
    let _ = fs::remove_dir_all(dir);
}

/// SPEC 9: a spool the front end cannot use is `421 4.3.0` and exit 111, with a log line
/// that says what to fix; nothing is accepted.
#[test]
fn spooldir_of_root_mode_0700_is_421_and_111_for_nobody() {
    let dir = scratch("spool-root-0700");
    let spool = dir.join("spool");
    fs::create_dir(&spool).unwrap();
    chmod(&spool, 0o700);
    // With tmp/ and new/ missing (the front end would create them) and already there.
    for existing in [false, true] {
        if existing {
            fs::create_dir(spool.join("tmp")).unwrap();
            fs::create_dir(spool.join("new")).unwrap();
        }
        let Some(mut cmd) = as_nobody(&env(&spool)) else {
            return;
        };
        let o = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                let _ = child.stdin.take().unwrap().write_all(b"EHLO x\r\n");
                child.wait_with_output()
            })
            .unwrap();
        let (out, log) = (
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
        );
        assert_eq!(out, "421 4.3.0 Configuration error, try again later\r\n");
        assert_eq!(o.status.code(), Some(111), "{log}");
        let line = log_line(&log, "Permission denied");
        assert!(line.contains(spool.to_str().unwrap()), "{line}");
        assert!(
            line.contains("owner") && line.contains("mode"),
            "says what to fix: {line}"
        );
    }
    // Root itself can use it: the same spool works when the front end runs as root.
    let o = run_with_input(SPOOL, &env(&spool), b"QUIT\r\n");
    assert_eq!(o.status.code(), Some(0));
    let _ = fs::remove_dir_all(dir);
}

/// SPEC 9 again: `tmp/` or `new/` left owned by root (a front end or forward once run as
/// root created them) make the spool as unusable for `nobody` as a root-owned SPOOLDIR: every
/// message would be deferred, forever. Start-up must say so (`421`, 111, a log line naming
/// the directory) instead of greeting and deferring each message at DATA or at the dot.
#[test]
fn tmp_or_new_of_root_is_421_and_111_for_nobody() {
    for sub in ["tmp", "new"] {
        let dir = scratch("spool-root-sub");
        let spool = nobody_spool(&dir);
        chown(spool.join(sub), Some(0), Some(0)).unwrap();
        let Some(mut cmd) = as_nobody(&env(&spool)) else {
            return;
        };
        let o = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                let _ = child.stdin.take().unwrap().write_all(
                    b"HELO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n",
                );
                child.wait_with_output()
            })
            .unwrap();
        let _ = fs::remove_dir_all(&dir);
        let (out, log) = (
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
        );
        assert_eq!(
            out, "421 4.3.0 Configuration error, try again later\r\n",
            "{sub}/ owned by root, mode 0700; log:\n{log}"
        );
        assert_eq!(o.status.code(), Some(111), "{log}");
        log_line(&log, spool.join(sub).to_str().unwrap());
    }
}
