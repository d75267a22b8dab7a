//! A byte stream through `Session` with the echo back end, in process (SPEC 3).
//!
//! Input: `[flags][chunk][stream]`. `flags` picks the settings (DATABYTES, MAXRCPTS,
//! MAXNOTIMPL, MAXHOPS, RELAYCLIENT, REQUIRE_AUTH, and a fixed MAILRULES file); `chunk` the
//! size of each read; the stream is what the client sends.
//!
//! Invariants, on every reply:
//! * it is well formed on the wire: CRLF line ends and no other CR or LF, three digits and
//!   `-`/space on every line, one code per reply, a code from 200 to 599;
//! * it is bounded: at most `MAX_COMMAND + 1024` bytes (echo replies quote the command);
//! * `354` exactly when the session starts DATA; a line over `MAX_COMMAND` gets `500` (or
//!   the `503` that closes under MAXNOTIMPL), a NUL in a command `501` (or that `503`);
//!   QUIT `221` and close;
//! * after the dot, the echo back end's `250` names exactly the bytes the driver handed on
//!   (pieces plus CRLF per line end);
//! * nothing is answered after a reply that closes the session;
//! * the library's own driver (`smtp::server::converse`, the loop the programs run, over
//!   memory) writes exactly the replies of this reference driver, for the same reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpfront::backend::echo::Echo;
use smtpfront::config::Settings;
use smtpfront::linereader::{CommandLine, DataPiece, LineReader, MAX_COMMAND};
use smtpfront::reply::Reply;
use smtpfront::smtp::server::converse;
use smtpfront::smtp::{Session, Step};
use smtpfront::ucspi::Conn;
use smtpfront_fuzz::{check_wire_reply, scratch};
use std::path::PathBuf;
use std::sync::OnceLock;

/// Longest reply: echo replies quote a command line, plus their own text.
const MAX_REPLY: usize = MAX_COMMAND + 1024;

/// Rules that reach every verdict, multi-line texts, DATABYTES, RELAYCLIENT and
/// ENVIRONMENT (which goes through `Settings::apply` inside the session).
const RULES: &str = "\
# fixture of the session fuzz target
:sender
dspam@*:*:No spam here\\nreally not
zslow@*:*
n*@limit.test:*::100::MAXHOPS=2
n*@bad-env.test:*::::MAXHOPS=x
:recipient
k*:*@local.test:Local\\: ok::+l
d*:*@reject.test
n*:*@env.test::::HEADER_ADD=X-Fuzz: 1,MAXRCPTS=1
p*:*@pass.test::50
&*@a.test:*
k*:*@b.test
z*:!*@*
";

fn rules_file() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let path = scratch("session").join("rules");
        std::fs::write(&path, RULES).expect("write the rules fixture");
        smtpfront::rules::Rules::load(&path).expect("the rules fixture parses");
        path
    })
}

fn settings(flags: u8) -> Settings {
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| vars.push((k.to_string(), v.to_string()));
    if flags & 1 != 0 {
        set("DATABYTES", "200");
    }
    if flags & 2 != 0 {
        set("MAXRCPTS", "2");
    }
    if flags & 4 != 0 {
        set("MAXNOTIMPL", "3");
    }
    if flags & 8 != 0 {
        set("MAXHOPS", "1");
    }
    match (flags >> 4) & 3 {
        1 => set("RELAYCLIENT", ""),
        2 => set("RELAYCLIENT", "+relay"),
        _ => {}
    }
    if flags & 64 != 0 {
        set("REQUIRE_AUTH", "1");
    }
    if flags & 128 != 0 {
        set("MAILRULES", rules_file().to_str().expect("UTF-8 path"));
    }
    Settings::from_vars(vars).expect("fixed settings parse")
}

fn conn() -> Conn {
    let vars = [
        ("TCPLOCALHOST", "mx.test"),
        ("TCPLOCALIP", "192.0.2.25"),
        ("TCPREMOTEIP", "198.51.100.7"),
    ];
    Conn::from_vars(
        Some("TCP"),
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
}

/// What a reply answered.
#[derive(Debug)]
enum Cause {
    Greeting,
    Command {
        too_long: bool,
        nul: bool,
        quit: bool,
    },
    /// The dot, after this many message bytes were handed on.
    Dot(u64),
}

// ========================================================================================
// Reference driver: a plain model of `server::run` and `server::receive` over a byte
// slice (no fds, no timeouts, no flushing) that records what caused each reply. The real
// driver, run through `converse` on the same reads, must write the same bytes.
// ========================================================================================

struct Driver<'a> {
    session: Session<Echo>,
    reader: LineReader,
    input: &'a [u8],
    chunk: usize,
    replies: Vec<(Cause, Step)>,
}

impl Driver<'_> {
    /// Reads more input into the reader; `false` when the client has no more to say.
    fn fill(&mut self) -> bool {
        if self.input.is_empty() {
            return false;
        }
        let take = self.chunk.min(self.input.len());
        let n = self.reader.push(&self.input[..take]);
        assert!(n > 0, "the reader asked for input with a full buffer");
        self.input = &self.input[n..];
        true
    }

    /// `server::run`: commands until the session closes or the input ends.
    fn run(&mut self) {
        let greeting = self.session.greeting();
        self.replies.push((Cause::Greeting, Step::Reply(greeting)));
        loop {
            let (cause, step) = loop {
                if let Some(line) = self.reader.command() {
                    let cause = match line {
                        CommandLine::TooLong => Cause::Command {
                            too_long: true,
                            nul: false,
                            quit: false,
                        },
                        CommandLine::Line(l) => Cause::Command {
                            too_long: false,
                            nul: l.contains(&0),
                            quit: l.eq_ignore_ascii_case(b"QUIT"),
                        },
                    };
                    break (cause, self.session.command(line));
                }
                if !self.fill() {
                    self.session.abort();
                    return;
                }
            };
            let done = matches!(step, Step::Close(_));
            let data = matches!(step, Step::StartData(_));
            self.replies.push((cause, step));
            if done {
                return;
            }
            if data && !self.receive() {
                self.session.abort();
                return;
            }
        }
    }

    /// `server::receive`: the message up to the dot; `false` if the client went away.
    fn receive(&mut self) -> bool {
        self.reader.start_data();
        let mut size = 0u64;
        loop {
            match self.reader.data() {
                Some(DataPiece::End) => break,
                Some(DataPiece::Text { bytes, ends_line }) => {
                    size += bytes.len() as u64 + if ends_line { 2 } else { 0 };
                    self.session.data_piece(bytes, ends_line);
                }
                None => {
                    if !self.fill() {
                        return false;
                    }
                }
            }
        }
        let answer = self.session.data_end(self.reader.bare_lfs());
        self.replies.push((Cause::Dot(size), Step::Reply(answer)));
        true
    }
}

// ======================================================================== end of driver

fn reply_of(step: &Step) -> &Reply {
    match step {
        Step::Reply(r) | Step::StartData(r) | Step::Close(r) | Step::StartTls(r) => r,
    }
}

/// The replies with the echo back end's queue ids (which name the time) blanked.
fn without_queue_ids(wire: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(wire)
        .split("\r\n")
        .map(|l| match l.split_once(", queue id ") {
            Some((head, _)) => format!("{head}, queue id ID"),
            None => l.to_string(),
        })
        .collect()
}

/// The number in `... Received N bytes ...` of the echo back end's reply to the dot.
fn echoed_size(text: &str) -> Option<u64> {
    let rest = text.split_once("Received ")?.1;
    rest.split_once(" bytes")?.0.parse().ok()
}

fuzz_target!(|data: &[u8]| {
    let (flags, chunk, stream) = match data {
        [f, c, rest @ ..] => (*f, usize::from(*c) * 17 + 1, rest),
        _ => return,
    };
    let settings = settings(flags);
    let limited = settings.databytes > 0;
    let session = Session::new(settings.clone(), conn(), Echo);
    let reads: Vec<&[u8]> = stream.chunks(chunk).collect();
    let wire = converse(Session::new(settings, conn(), Echo), &reads);
    let mut driver = Driver {
        session,
        reader: LineReader::new(),
        input: stream,
        chunk,
        replies: Vec::new(),
    };
    driver.run();
    let mut expected = Vec::new();
    for (_, step) in &driver.replies {
        reply_of(step).render(&mut expected);
    }
    assert_eq!(
        without_queue_ids(&wire),
        without_queue_ids(&expected),
        "the library driver answered otherwise"
    );

    let count = driver.replies.len();
    for (i, (cause, step)) in driver.replies.iter().enumerate() {
        let reply = reply_of(step);
        let mut wire = Vec::new();
        reply.render(&mut wire);
        let code = check_wire_reply(&wire, MAX_REPLY);
        assert_eq!(code, reply.code);
        assert_eq!(
            matches!(step, Step::StartData(_)),
            code == 354,
            "354 without DATA, or DATA without 354: {reply:?}"
        );
        if matches!(step, Step::Close(_)) {
            assert_eq!(i + 1, count, "a reply after the session closed");
        }
        match *cause {
            Cause::Greeting => assert_eq!(code, 220),
            Cause::Command { too_long: true, .. } => {
                assert!(code == 500 || code == 503, "over-long line got {reply:?}")
            }
            // 503: syntax errors count toward MAXNOTIMPL too.
            Cause::Command { nul: true, .. } => {
                assert!(code == 501 || code == 503, "NUL got {reply:?}")
            }
            Cause::Command { quit: true, .. } => {
                assert!(matches!(step, Step::Close(_)) && code == 221, "{reply:?}")
            }
            Cause::Command { .. } => {}
            Cause::Dot(size) => {
                if code == 250 {
                    assert_eq!(
                        echoed_size(&reply.text),
                        Some(size),
                        "the back end saw another size: {reply:?}"
                    );
                    assert!(!limited || size <= 200, "over DATABYTES accepted");
                }
            }
        }
    }
});
