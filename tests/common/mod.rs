//! Shared helpers of the integration tests: find the real tools (a missing tool fails the
//! test under CI=true and skips it elsewhere, with a line saying so), run a front end through
//! pipes, and start one under a real `tcpserver` on a free loopback port.
#![allow(dead_code)]

pub mod inprocess;
pub mod postfix;
pub mod spool;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The front ends under test: the ones `make build` links statically (what `make install`
/// installs) when test.sh names them at compile time, else cargo's own build of them.
pub const ECHO: &str = installed(
    option_env!("SMTPFRONT_TEST_ECHO"),
    env!("CARGO_BIN_EXE_smtpfront-echo"),
);
pub const REJECT: &str = installed(
    option_env!("SMTPFRONT_TEST_REJECT"),
    env!("CARGO_BIN_EXE_smtpfront-reject"),
);
pub const SPOOL: &str = installed(
    option_env!("SMTPFRONT_TEST_SPOOL"),
    env!("CARGO_BIN_EXE_smtpfront-spool"),
);

const fn installed(named: Option<&'static str>, built: &'static str) -> &'static str {
    match named {
        Some(path) => path,
        None => built,
    }
}

/// The path of an external tool, or `None` (test skipped) when it is missing outside CI.
/// Under `CI=true` a missing tool panics: CI must never pass by skipping.
pub fn tool(name: &str) -> Option<PathBuf> {
    let candidates = [
        format!("/usr/bin/{name}"),
        format!("/usr/sbin/{name}"),
        format!("/bin/{name}"),
        format!("/usr/local/bin/{name}"),
    ];
    if let Some(p) = candidates.iter().map(PathBuf::from).find(|p| p.exists()) {
        return Some(p);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("required tool {name} is missing (CI=true: .ci/run must install it)");
    }
    eprintln!("SKIPPED: {name} is not installed");
    None
}

/// Debian's python3 (with python3-aiosmtpd), not another interpreter that PATH may find.
pub fn python() -> Option<PathBuf> {
    tool("python3").map(|_| PathBuf::from("/usr/bin/python3"))
}

/// A command with an empty environment but PATH, plus `env`.
pub fn command(program: impl AsRef<Path>, env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(program.as_ref());
    c.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// Runs `program` with `input` on stdin (written all at once, then closed).
pub fn run_with_input(program: &str, env: &[(&str, &str)], input: &[u8]) -> Output {
    let mut child = command(program, env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // Write from a thread: the program's replies must be read while we write.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().unwrap();
    out
}

/// Runs the echo front end on an SMTP script; returns (stdout, stderr, exit code).
pub fn echo(env: &[(&str, &str)], input: &str) -> (String, String, i32) {
    let out = run_with_input(ECHO, env, input.as_bytes());
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// The reply lines of a transcript, without the greeting line.
pub fn replies(stdout: &str) -> Vec<&str> {
    stdout.lines().skip(1).collect()
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A tcpserver running `argv` on 127.0.0.1:port; killed when dropped.
pub struct Server {
    pub port: u16,
    child: Child,
    pub log: PathBuf,
}

impl Server {
    /// Starts `tcpserver -q -R -H -c max -l localhost 127.0.0.1 PORT argv...` with `env`, its
    /// stderr (the front ends' log) in a file, and waits until the port accepts connections.
    /// `-l localhost`: without it tcpserver looks the local IP up in DNS in every child,
    /// and a lost resolver packet stalls a session for 3 s.
    pub fn start(argv: &[&str], env: &[(&str, &str)], max: u32) -> Option<Server> {
        Server::start_with(argv, env, &["-c", &max.to_string(), "-l", "localhost"])
    }

    pub fn start_with(argv: &[&str], env: &[(&str, &str)], opts: &[&str]) -> Option<Server> {
        let tcpserver = tool("tcpserver")?;
        let port = free_port();
        let log =
            std::env::temp_dir().join(format!("smtpfront-test-{}-{port}.log", std::process::id()));
        let mut c = command(tcpserver, env);
        c.args(["-q", "-R", "-H"])
            .args(opts)
            .arg("127.0.0.1")
            .arg(port.to_string());
        c.args(argv);
        c.stdin(Stdio::null()).stdout(Stdio::null());
        c.stderr(std::fs::File::create(&log).unwrap());
        let child = c.spawn().expect("spawn tcpserver");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tcpserver did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Server { port, child, log })
    }

    /// What the front ends logged so far: whole lines only (a line being written while
    /// the file is read is left for the next read).
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        let whole = s.rfind('\n').map_or(0, |i| i + 1);
        s.truncate(whole);
        s
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A unique scratch directory, in the one directory of this test process
/// ([`scratch_root`]), which is removed when the process exits.
pub fn scratch(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let d = scratch_root().join(format!("{name}-{nanos}"));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The directory of [`scratch_root`], made at the first call of [`scratch`].
static SCRATCH_ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Whether a test of this process panicked: then its scratch files stay for a look.
static FAILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `$TMPDIR/smtpfront-tests-PID`: the scratch directories of this test process. A test
/// keeps its paths as long as it likes (servers, spools, certificates shared through
/// statics), so they are removed together at exit, not one by one: before this, most of
/// them stayed after every run of the suite (2,049, 832 MB, had piled up in the temp dir of
/// the development machine). When a test failed (any panic), the directory stays and its
/// path is printed.
fn scratch_root() -> &'static Path {
    SCRATCH_ROOT.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("smtpfront-tests-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            FAILED.store(true, std::sync::atomic::Ordering::SeqCst);
            report(info)
        }));
        // SAFETY: registers a plain function with no arguments, which atexit requires.
        let registered = unsafe { libc::atexit(remove_scratch_root) };
        assert_eq!(registered, 0, "atexit");
        root
    })
}

/// Run by `exit`, which the test harness reaches whether its tests passed or not.
extern "C" fn remove_scratch_root() {
    let Some(root) = SCRATCH_ROOT.get() else {
        return;
    };
    if FAILED.load(std::sync::atomic::Ordering::SeqCst) {
        eprintln!("test files kept in {}", root.display());
    } else {
        let _ = std::fs::remove_dir_all(root);
    }
}

/// A child process that is killed (and reaped) when dropped, e.g. when an assertion fails.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a client program did.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// stdout and stderr together (swaks writes its transcript to both).
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `cmd` (stdin closed) to its end; kills it and fails the test after `limit`.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Ran {
    let started = Instant::now();
    let mut child = Guard(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn client"),
    );
    let mut out = child.0.stdout.take().unwrap();
    let mut err = child.0.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("try_wait") {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.0.kill();
            let _ = child.0.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let ran = Ran {
        code: status.and_then(|s| s.code()),
        stdout: String::from_utf8_lossy(&out.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err.join().unwrap()).into_owned(),
    };
    assert!(
        status.is_some(),
        "client killed after {limit:?}\nstdout:\n{}\nstderr:\n{}",
        ran.stdout,
        ran.stderr
    );
    ran
}

/// Runs a daemontools `log/run` script (multilog) in a scratch directory, as `nobody` when
/// root (the scripts switch to LOGUSER), feeds it `lines`, and checks that `main/current`
/// holds each line behind a TAI64N label, owned by the log user.
pub fn check_log_run(script: &Path, lines: &[&str]) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = scratch("log-run");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(dir.join("env")).unwrap();
    std::fs::create_dir(dir.join("main")).unwrap();
    // /proc/self belongs to the process's effective user.
    let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
    let nobody = root
        .then(|| command("id", &[]).args(["-u", "nobody"]).output().ok())
        .flatten()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse::<u32>().ok());
    if nobody.is_some() {
        // As root the script switches to LOGUSER, who must own ./main.
        std::fs::write(dir.join("env/LOGUSER"), "nobody\n").unwrap();
        let chown = command("chown", &[])
            .args(["nobody", dir.join("main").to_str().unwrap()])
            .status()
            .unwrap();
        assert!(chown.success());
    }
    let mut child = command(script, &[])
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    // multilog writes what it read and exits at the end of its input.
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "multilog did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{err}");
    let current = dir.join("main/current");
    let text = std::fs::read_to_string(&current).unwrap();
    let got: Vec<&str> = text.lines().collect();
    assert_eq!(got.len(), lines.len(), "{text}");
    for (line, want) in got.iter().zip(lines) {
        // A TAI64N label: '@', 24 hexadecimal digits (the seconds start 4000...), a space.
        let (label, rest) = line.split_at(25);
        assert!(label.starts_with("@4000"), "{line}");
        assert!(label[1..].bytes().all(|b| b.is_ascii_hexdigit()), "{line}");
        assert_eq!(rest, format!(" {want}"));
    }
    if let Some(uid) = nobody {
        assert_eq!(std::fs::metadata(&current).unwrap().uid(), uid);
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// The lines of a raw SMTP transcript, split on CRLF (a reply line never holds a bare LF:
/// such a line fails the test).
pub fn reply_lines(transcript: &str) -> Vec<&str> {
    let lines: Vec<&str> = transcript.split_terminator("\r\n").collect();
    for l in &lines {
        assert!(
            !l.contains('\n'),
            "a bare LF in reply line {l:?}:\n{transcript}"
        );
    }
    lines
}

/// Whether a reply line has code `code`: it is `code` alone, or `code` then ' ' or '-'.
/// Only the start of the line counts, never a port, a PID or a byte count inside it.
pub fn has_code(line: &str, code: &str) -> bool {
    assert!(code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()));
    line.strip_prefix(code)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '-']))
}

/// Whether any reply line of a raw transcript has code `code`.
pub fn any_reply_code(transcript: &str, code: &str) -> bool {
    reply_lines(transcript).iter().any(|l| has_code(l, code))
}

/// The server's lines in a swaks transcript: the text after `<-  ` (a reply) or `<** `
/// (an error reply), in order. `Trying 127.0.0.1:PORT...` and the client's ` -> ` lines
/// are left out.
pub fn swaks_server_lines(transcript: &str) -> Vec<&str> {
    transcript
        .lines()
        .filter_map(|l| l.strip_prefix("<-  ").or_else(|| l.strip_prefix("<** ")))
        .collect()
}

/// The client's lines in a swaks transcript: the text after ` -> `.
pub fn swaks_client_lines(transcript: &str) -> Vec<&str> {
    transcript
        .lines()
        .filter_map(|l| l.strip_prefix(" -> "))
        .collect()
}

/// A log line `PROGRAM[PID]: MESSAGE` split into the program and the message; `None` when
/// the line does not have that form (the PID must be digits).
pub fn split_log_line(line: &str) -> Option<(&str, &str)> {
    let (head, message) = line.split_once("]: ")?;
    let (program, pid) = head.split_once('[')?;
    (!program.is_empty()
        && !program.contains(' ')
        && !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit()))
    .then_some((program, message))
}

/// The (program, message) pairs of a log; a line that is not `PROGRAM[PID]: ...` fails the
/// test.
pub fn log_entries(log: &str) -> Vec<(&str, &str)> {
    log.lines()
        .map(|l| split_log_line(l).unwrap_or_else(|| panic!("not a log line: {l:?}\n{log}")))
        .collect()
}

/// The messages of a log, without their `PROGRAM[PID]: ` prefix (every line must have one).
pub fn log_lines_without_prefix(log: &str) -> Vec<&str> {
    log_entries(log).into_iter().map(|(_, m)| m).collect()
}

/// The messages that `program` logged, without the prefix.
pub fn log_lines_of<'a>(log: &'a str, program: &str) -> Vec<&'a str> {
    log_entries(log)
        .into_iter()
        .filter(|&(p, _)| p == program)
        .map(|(_, m)| m)
        .collect()
}

/// Whether the whole of `line` matches `pattern`, where `#` stands for one or more ASCII
/// digits and `*` for any text (possibly empty); every other character stands for itself.
/// E.g. `like(l, "250 2.0.0 Received 21 bytes for 1 recipient(s), queue id #.#.#.#")`.
pub fn like(line: &str, pattern: &str) -> bool {
    fn go(s: &[u8], p: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'*', rest)) => (0..=s.len()).any(|i| go(&s[i..], rest)),
            Some((b'#', rest)) => {
                let n = s.iter().take_while(|b| b.is_ascii_digit()).count();
                (1..=n).any(|i| go(&s[i..], rest))
            }
            Some((c, rest)) => s.first() == Some(c) && go(&s[1..], rest),
        }
    }
    go(line.as_bytes(), pattern.as_bytes())
}

/// Asserts that `lines` and `patterns` have the same length and each line is [`like`] its
/// pattern.
#[track_caller]
pub fn assert_lines_like<S: AsRef<str>>(lines: &[S], patterns: &[&str]) {
    let got: Vec<&str> = lines.iter().map(|l| l.as_ref()).collect();
    assert!(
        got.len() == patterns.len() && got.iter().zip(patterns).all(|(l, p)| like(l, p)),
        "lines do not match.\ngot:\n{got:#?}\nexpected (# = digits, * = anything):\n{patterns:#?}"
    );
}

/// The queue id of the front ends' back ends, as a [`like`] pattern: seconds,
/// microseconds, PID, counter.
pub const QUEUE_ID: &str = "#.#.#.#";

/// The test SMTP server (aiosmtpd, or raw asyncio) that forward delivers to.
pub const FORWARD_SERVER_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/forward_server.py");

/// Starts `tests/forward_server.py` with `config` (extra JSON members, e.g.
/// `"mode": "raw"`) and an output directory; returns the process, its port and the directory
/// where it writes what it received.
pub fn start_forward_server(config: &str, name: &str) -> Option<(Child, u16, PathBuf)> {
    use std::io::{BufRead, BufReader};
    let py = python()?;
    let out = scratch(name);
    let sep = if config.is_empty() { "" } else { ", " };
    let json = format!("{{\"outdir\": {:?}{sep}{config}}}", out.to_str().unwrap());
    let mut child = command(py, &[])
        .arg(FORWARD_SERVER_PY)
        .arg(json)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start forward_server.py");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("PORT ")
        .unwrap_or_else(|| panic!("forward_server.py said {line:?}"))
        .parse()
        .unwrap();
    Some((child, port, out))
}

/// The bin directory of s6-networking (s6-ucspitlsd, s6-tlsd-io: the UCSPI-TLS helper of
/// STARTTLS, SPEC 3.1), built once into `target/peers` by `../shared/peers/build-s6-networking`.
/// `None` (skipped) when it cannot be built outside CI; under CI=true that fails the test.
pub fn s6_networking() -> Option<PathBuf> {
    static BUILT: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
            let dest = repo.join("target/peers");
            let bin = dest.join("bin");
            if bin.join("s6-ucspitlsd").exists() {
                return Some(bin);
            }
            let script = repo.join("../shared/peers/build-s6-networking");
            let out = command("/bin/sh", &[])
                .arg(&script)
                .arg(&dest)
                .output()
                .expect("run build-s6-networking");
            if out.status.success() && bin.join("s6-ucspitlsd").exists() {
                return Some(bin);
            }
            let why = String::from_utf8_lossy(&out.stderr).into_owned();
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "could not build s6-networking with {}:\n{why}",
                    script.display()
                );
            }
            eprintln!("SKIPPED: s6-networking could not be built:\n{why}");
            None
        })
        .clone()
}

/// A self-signed certificate for `mx.test` and its key, made once with openssl:
/// (CERTFILE, KEYFILE).
pub fn test_certificate() -> Option<(PathBuf, PathBuf)> {
    static MADE: std::sync::OnceLock<Option<(PathBuf, PathBuf)>> = std::sync::OnceLock::new();
    MADE.get_or_init(|| {
        let openssl = tool("openssl")?;
        let dir = scratch("cert");
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let out = command(openssl, &[])
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=mx.test", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("run openssl req");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some((cert, key))
    })
    .clone()
}
