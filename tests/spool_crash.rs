//! Crash safety of smtpfront-spool (SPEC 6): sessions of several messages in which the front
//! end is killed with SIGKILL at chosen moments — inside DATA, right after the dot, between
//! messages, at random. Afterwards every file in `new/` is complete and every message whose
//! client saw `250 2.0.0 Ok: queued as ID` is there.
//!
//! Kill moments come from a small seeded generator, so a failure reproduces with the same
//! choices (`SMTPFRONT_CRASH_SEED=n` tries another seed). Where a kill lands is classified by
//! what the client had seen, the only view a real client has.

mod common;
use common::{command, scratch, SPOOL};
use smtpfront::spool::format::Header;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ChildStdin, ChildStdout, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// SPEC-issue: "at least 200 sessions" killed; a few of the timed kills may come after the
/// session already ended, hence some margin.
const SESSIONS: u64 = 240;
const MIN_KILLED: usize = 200;
const DEFAULT_SEED: u64 = 0x5109_c4a5_4f2e_77d1;
/// A trigger that never fires (a bug elsewhere) must not hang the test.
const TRIGGER_WAIT: Duration = Duration::from_secs(5);

/// splitmix64: small, seeded, good enough to spread kill moments and message sizes.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// A fraction in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn seed() -> u64 {
    std::env::var("SMTPFRONT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED)
}

/// Message `m` of session `i`, as sent after `354` (already dot-stuffed, ends with CRLF, no
/// final dot). A third are 100 KB or more, so that kills land inside DATA.
fn message(seed: u64, i: u64, m: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed ^ (i << 20) ^ (m << 4) ^ 0xa5a5);
    let size = match rng.below(3) {
        0 => 200 + rng.below(4_000),
        1 => 4_000 + rng.below(60_000),
        _ => 100_000 + rng.below(150_000),
    } as usize;
    let mut out = format!("Subject: crash {i}.{m}\r\nX-Size: {size}\r\n\r\n").into_bytes();
    let mut line = 0u64;
    while out.len() < size {
        // Every 17th line starts with a dot, stuffed on the wire and in the file.
        if line % 17 == 5 {
            out.extend_from_slice(b"..");
        }
        let len = rng.below(100) as usize;
        out.extend((0..len).map(|k| b'a' + ((k as u64 + line + i) % 26) as u8));
        out.extend_from_slice(b"\r\n");
        line += 1;
    }
    out
}

fn messages_in(seed: u64, i: u64) -> u64 {
    3 + Rng::new(seed ^ i.wrapping_mul(0x1000_0001)).below(4)
}

/// What the client had seen when the kill came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Phase {
    /// Before the first `354`: greeting, EHLO, the first envelope.
    Start,
    /// After a `354`, the message not yet ended by the dot.
    Data,
    /// The dot written, its reply not yet read.
    AfterDot,
    /// A message's reply read; the next `354` not yet seen.
    Between,
    /// QUIT sent: the session was over before the kill.
    Done,
}

/// When the kill comes: after a delay, or when the client reaches a point of message `msg`.
#[derive(Debug, Clone, Copy)]
enum Plan {
    Timer(Duration),
    InData {
        msg: u64,
        at: usize,
    },
    /// `delay` after the dot was written: 0, or long enough to reach into the commit.
    AfterDot {
        msg: u64,
        delay: Duration,
    },
    AfterReply {
        msg: u64,
    },
}

fn plan(seed: u64, i: u64, messages: u64, session: Duration) -> Plan {
    let mut rng = Rng::new(seed ^ i.wrapping_mul(0x9e37_79b9) ^ 0x77);
    let msg = rng.below(messages);
    match i % 4 {
        // Up to 80% of a whole session: nearly all of these land before its end.
        0 => Plan::Timer(session.mul_f64(0.8 * rng.unit())),
        1 => {
            let len = message(seed, i, msg).len();
            Plan::InData {
                msg,
                at: (len as f64 * rng.unit()) as usize,
            }
        }
        2 => Plan::AfterDot {
            msg,
            delay: match rng.below(2) {
                0 => Duration::ZERO,
                _ => session.mul_f64(0.25 * rng.unit()),
            },
        },
        _ => Plan::AfterReply { msg },
    }
}

/// The client's side of the kill: it records its phase (shared with the killer) and, at a
/// planned point, says "now" and waits until the kill is done.
struct Client {
    phase: Arc<Mutex<Phase>>,
    now: mpsc::Sender<()>,
    done: mpsc::Receiver<()>,
}

impl Client {
    fn set(&self, p: Phase) {
        *self.phase.lock().unwrap() = p;
    }
    fn kill_now(&self) {
        if self.now.send(()).is_ok() {
            let _ = self.done.recv();
        }
    }
}

#[derive(Default)]
struct Seen {
    /// (message number, queue id) of every `250 2.0.0 Ok: queued as ID` read.
    acked: Vec<(u64, String)>,
    /// Replies that were not the expected ones while the front end was alive.
    unexpected: Vec<String>,
    /// The message being sent.
    current: u64,
}

/// One reply (the last line of a multi-line one), or `None` at the end of the output.
fn reply(out: &mut BufReader<ChildStdout>) -> Option<String> {
    let mut line = Vec::new();
    loop {
        line.clear();
        out.read_until(b'\n', &mut line).ok()?;
        if !line.ends_with(b"\r\n") {
            return None;
        }
        if line.len() < 6 || line[3] != b'-' {
            return Some(String::from_utf8_lossy(&line[..line.len() - 2]).into_owned());
        }
    }
}

/// Runs session `i` until its end or until the front end dies; every reply read is recorded.
fn session(
    seed: u64,
    i: u64,
    plan: Plan,
    client: Client,
    mut stdin: ChildStdin,
    stdout: ChildStdout,
) -> Seen {
    let mut out = BufReader::new(stdout);
    let mut seen = Seen::default();
    let _ = talk(seed, i, plan, &client, &mut stdin, &mut out, &mut seen);
    // Replies already in the pipe were sent before the kill: they count too.
    drop(stdin);
    while let Some(r) = reply(&mut out) {
        if let Some(id) = r.strip_prefix("250 2.0.0 Ok: queued as ") {
            seen.acked.push((seen.current, id.to_string()));
        }
    }
    seen
}

fn talk(
    seed: u64,
    i: u64,
    plan: Plan,
    client: &Client,
    stdin: &mut ChildStdin,
    out: &mut BufReader<ChildStdout>,
    seen: &mut Seen,
) -> Option<()> {
    fn expect(out: &mut BufReader<ChildStdout>, seen: &mut Seen, code: &str) -> Option<String> {
        let r = reply(out)?;
        if !r.starts_with(code) {
            seen.unexpected.push(r.clone());
        }
        Some(r)
    }
    expect(out, seen, "220 ")?;
    stdin.write_all(b"EHLO crash.example\r\n").ok()?;
    expect(out, seen, "250 ")?;
    for m in 0..messages_in(seed, i) {
        seen.current = m;
        let envelope = format!(
            "MAIL FROM:<crash-{i}-{m}@example.net>\r\nRCPT TO:<rcpt-{i}-{m}@example.com>\r\nDATA\r\n"
        );
        // One command at a time (no PIPELINING), so each reply is seen in its phase.
        for (cmd, code) in envelope
            .split_inclusive("\r\n")
            .zip(["250 ", "250 ", "354 "])
        {
            stdin.write_all(cmd.as_bytes()).ok()?;
            expect(out, seen, code)?;
        }
        client.set(Phase::Data);
        let body = message(seed, i, m);
        let cut = match plan {
            Plan::InData { msg, at } if msg == m => at,
            _ => usize::MAX,
        };
        for (k, chunk) in body.chunks(16 * 1024).enumerate() {
            let start = k * 16 * 1024;
            if (start..start + chunk.len()).contains(&cut) {
                stdin.write_all(&chunk[..cut - start]).ok()?;
                client.kill_now();
                stdin.write_all(&chunk[cut - start..]).ok()?;
            } else {
                stdin.write_all(chunk).ok()?;
            }
        }
        stdin.write_all(b".\r\n").ok()?;
        client.set(Phase::AfterDot);
        if matches!(plan, Plan::AfterDot { msg, .. } if msg == m) {
            client.kill_now();
        }
        let r = expect(out, seen, "250 2.0.0 Ok: queued as ")?;
        if let Some(id) = r.strip_prefix("250 2.0.0 Ok: queued as ") {
            seen.acked.push((m, id.to_string()));
        }
        client.set(Phase::Between);
        if matches!(plan, Plan::AfterReply { msg } if msg == m) {
            client.kill_now();
        }
    }
    client.set(Phase::Done);
    stdin.write_all(b"QUIT\r\n").ok()?;
    expect(out, seen, "221 ")?;
    Some(())
}

/// The outcome of one session, for the checks at the end.
struct Killed {
    session: u64,
    plan: Plan,
    phase: Phase,
    acked: Vec<(u64, String)>,
}

/// Runs session `i` and kills its front end as `plan` says.
fn run(seed: u64, i: u64, plan: Plan, spool: &Path, log: &fs::File) -> Killed {
    let mut child = command(
        SPOOL,
        &[("SPOOLDIR", spool.to_str().unwrap()), ("RELAYCLIENT", "")],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(log.try_clone().unwrap())
    .spawn()
    .expect("spawn smtpfront-spool");
    let (now_tx, now_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let phase = Arc::new(Mutex::new(Phase::Start));
    let client = Client {
        phase: Arc::clone(&phase),
        now: now_tx,
        done: done_rx,
    };
    let (stdin, stdout) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
    let talker = thread::spawn(move || session(seed, i, plan, client, stdin, stdout));
    let wait = match plan {
        Plan::Timer(d) => d,
        _ => TRIGGER_WAIT,
    };
    // Disconnected: the session is over (the client held the only sender).
    match (now_rx.recv_timeout(wait), plan) {
        (Err(RecvTimeoutError::Timeout), Plan::Timer(_)) => {}
        (Err(RecvTimeoutError::Timeout), _) => panic!("session {i}: {plan:?} never reached"),
        (Ok(()), Plan::AfterDot { delay, .. }) => thread::sleep(delay),
        _ => {}
    }
    let seen_phase = {
        // Held across the kill: the client cannot change its phase meanwhile.
        let p = phase.lock().unwrap();
        child.kill().expect("SIGKILL");
        *p
    };
    let status = child.wait().unwrap();
    let _ = done_tx.send(());
    let seen = talker.join().unwrap();
    assert!(
        seen.unexpected.is_empty(),
        "session {i} ({plan:?}): unexpected replies {:?}",
        seen.unexpected
    );
    let phase = match (status.signal(), status.code()) {
        (Some(9), _) => seen_phase,
        (None, Some(0)) if seen_phase == Phase::Done => Phase::Done,
        _ => panic!("session {i}: front end ended with {status:?} in {seen_phase:?}"),
    };
    Killed {
        session: i,
        plan,
        phase,
        acked: seen.acked,
    }
}

fn names(dir: &Path) -> HashSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

/// Every file in `new/` is a complete message exactly as sent; returns (session, message)
/// of each, by queue id.
fn check_new(seed: u64, new: &Path) -> HashMap<String, (u64, u64)> {
    let mut stored = HashMap::new();
    for id in names(new) {
        let path = new.join(&id);
        let bytes = fs::read(&path).unwrap();
        let (header, data) = Header::parse(&bytes)
            .unwrap_or_else(|e| panic!("new/{id} is not a complete message file: {e}"));
        assert!(data.ends_with(b"\r\n.\r\n"), "new/{id}: no dot line");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (i, m) = header
            .sender
            .strip_prefix("crash-")
            .and_then(|s| s.strip_suffix("@example.net"))
            .and_then(|s| s.split_once('-'))
            .map(|(i, m)| (i.parse::<u64>().unwrap(), m.parse::<u64>().unwrap()))
            .unwrap_or_else(|| panic!("new/{id}: sender {:?}", header.sender));
        assert_eq!(header.recipients, [format!("rcpt-{i}-{m}@example.com")]);
        let mut expected = message(seed, i, m);
        expected.extend_from_slice(b".\r\n");
        assert!(
            data.starts_with(b"Received: ") && data.ends_with(&expected),
            "new/{id}: message {i}.{m} is not what was sent ({} bytes stored, {} sent)",
            data.len(),
            expected.len()
        );
        stored.insert(id, (i, m));
    }
    let mut messages: Vec<_> = stored.values().collect();
    let all = messages.len();
    messages.sort();
    messages.dedup();
    assert_eq!(messages.len(), all, "a message was stored twice");
    stored
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_message() {
    let started = Instant::now();
    let seed = seed();
    let dir = scratch("spool-crash");
    let spool = dir.join("spool");
    fs::create_dir(&spool).unwrap();
    let log = fs::File::create(dir.join("log")).unwrap();
    eprintln!(
        "seed {seed} (SMTPFRONT_CRASH_SEED), spool {}",
        spool.display()
    );

    // Whole sessions without a kill, to scale the timed kills to this machine: the shortest
    // of three, so that nearly all timed kills come before the end.
    let mut session_time = Duration::MAX;
    let mut whole = Vec::new();
    for i in SESSIONS..SESSIONS + 3 {
        let t = Instant::now();
        let w = run(seed, i, Plan::Timer(TRIGGER_WAIT), &spool, &log);
        session_time = session_time.min(t.elapsed());
        assert_eq!(w.phase, Phase::Done);
        whole.push(w);
    }

    let mut killed = Vec::new();
    for i in 0..SESSIONS {
        let plan = plan(seed, i, messages_in(seed, i), session_time);
        killed.push(run(seed, i, plan, &spool, &log));
    }

    let stored = check_new(seed, &spool.join("new"));
    let mut acked = 0;
    for k in killed.iter().chain(&whole) {
        let i = k.session;
        for (m, id) in &k.acked {
            let at = stored.get(id).unwrap_or_else(|| {
                panic!(
                    "session {i} ({:?}, {:?}): {id} acknowledged but not in new/",
                    k.plan, k.phase
                )
            });
            assert_eq!(*at, (i, *m), "{id} holds the wrong message");
            acked += 1;
        }
    }
    let tmp = names(&spool.join("tmp"));
    let both: Vec<_> = tmp.iter().filter(|t| stored.contains_key(*t)).collect();
    assert!(both.is_empty(), "in tmp/ and new/ at once: {both:?}");

    let mut phases: HashMap<Phase, usize> = HashMap::new();
    for k in &killed {
        *phases.entry(k.phase).or_default() += 1;
    }
    // Kills right after the dot: how many came after the rename into new/?
    let after_dot_stored = killed
        .iter()
        .filter(|k| match (k.phase, k.plan) {
            (Phase::AfterDot, Plan::AfterDot { msg, .. }) => {
                stored.values().any(|v| *v == (k.session, msg))
            }
            _ => false,
        })
        .count();
    let mut table: Vec<_> = phases.iter().collect();
    table.sort();
    eprintln!(
        "{} sessions in {:.1?} (shortest whole session {session_time:.1?}); kills by what the client \
         had seen: {table:?}; right after the dot and still stored: {after_dot_stored}; \
         {} files in new/, {acked} acknowledged, {} left in tmp/",
        SESSIONS,
        started.elapsed(),
        stored.len(),
        tmp.len()
    );
    let count = |p| phases.get(&p).copied().unwrap_or(0);
    let was_killed = killed.len() - count(Phase::Done);
    assert!(
        was_killed >= MIN_KILLED,
        "only {was_killed} sessions were killed"
    );
    for p in [Phase::Data, Phase::AfterDot, Phase::Between] {
        assert!(count(p) >= 10, "only {} kills in {p:?}", count(p));
    }
    let _ = fs::remove_dir_all(&dir);
}
