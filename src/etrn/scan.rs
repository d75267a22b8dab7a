//! SPEC 3.3 `251`: is any message of `new/` for the node? Asked while the client waits for
//! its answer, over a queue that may hold tens of thousands of files, so it must be cheap:
//! it stops at the first message for the node, reads only the envelope lines at the head of
//! each file (one read of [`HEAD_READ`] bytes in the common case, never more than
//! [`MAX_HEAD`]), never sorts the directory, and gives up after [`BUDGET`] (once it has
//! read [`ALWAYS_READ`] files).
//!
//! Giving up means "waiting": forward sends the whole queue to the one primary anyway, so a
//! run started when the answer is not known in time costs one connection, while a wrong
//! `251` would leave the primary's mail waiting for the next round.

use super::Node;
use crate::spool::format::EnvelopeParser;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// One read: the envelope of an ordinary message (HELO, MAIL, a few RCPTs, DATA) fits.
const HEAD_READ: usize = 4096;
/// Most envelope bytes read from one file. A file may hold 1 MiB of recipients (the front
/// end's limit, SPEC 3); past this bound it counts as waiting, unread: the scan stays cheap
/// and no mail is left behind by a wrong 251.
const MAX_HEAD: usize = 64 * 1024;
/// Longest scan. Opening, reading and closing a file costs a few microseconds of system
/// time, so 10,000 files take some 50 ms on a small virtual machine; a client waits for
/// this answer, and SPEC 3.3 wants it under 50 ms whatever the queue holds.
pub const BUDGET: Duration = Duration::from_millis(25);
/// Files always read before [`BUDGET`] counts (some 7 ms of system time): a small queue
/// gets an exact answer however busy the machine is.
pub const ALWAYS_READ: usize = 1000;

/// What the scan found out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// A message with a recipient the node wants.
    Waiting,
    /// None in the whole of `new/`.
    Nothing,
    /// [`BUDGET`] ran out after this many files: treated as waiting.
    OutOfTime(usize),
}

/// What the head of one file says about the node.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    For,
    NotFor,
    /// Not a message file (forward moves it to `bad/`), or gone meanwhile.
    Skip,
}

/// Whether some message in `new` has a recipient the node wants, found by `deadline`.
pub fn waiting(new: &Path, node: &Node, deadline: Instant) -> io::Result<Found> {
    let mut head = Vec::with_capacity(HEAD_READ);
    for (read, entry) in fs::read_dir(new)?.enumerate() {
        // The clock is a vDSO call, cheaper than the three system calls of one file.
        if read >= ALWAYS_READ && Instant::now() >= deadline {
            return Ok(Found::OutOfTime(read));
        }
        let entry = entry?;
        // readdir's type, no stat: only regular files are messages (SPEC 7 moves the rest).
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        if entry.file_name().as_encoded_bytes().starts_with(b".") {
            continue;
        }
        if examine(&entry.path(), node, &mut head) == Verdict::For {
            return Ok(Found::Waiting);
        }
    }
    Ok(Found::Nothing)
}

/// Reads the envelope of one file, bounded, and matches its recipients.
fn examine(path: &Path, node: &Node, head: &mut Vec<u8>) -> Verdict {
    // O_NONBLOCK: a FIFO put there since readdir never blocks the session; no links.
    let Ok(file) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    else {
        return Verdict::Skip;
    };
    head.clear();
    match read_envelope(file, head) {
        Ok(Some(end)) => matches(&head[..end], node),
        Ok(None) => Verdict::For,
        Err(_) => Verdict::Skip,
    }
}

/// Fills `head` until it holds the `DATA` line: `Some(length of the envelope)`, or `None`
/// when the envelope is longer than [`MAX_HEAD`].
fn read_envelope(mut file: File, head: &mut Vec<u8>) -> io::Result<Option<usize>> {
    let mut searched = 0;
    loop {
        if let Some(end) = envelope_end(head, searched) {
            return Ok(Some(end));
        }
        if head.len() >= MAX_HEAD {
            return Ok(None);
        }
        searched = head.len().saturating_sub(b"\r\nDATA\r\n".len());
        // One read system call per step, each twice the last: 4, 8, 16, 32 KiB.
        let start = head.len();
        let want = (MAX_HEAD - start).min(HEAD_READ.max(start));
        head.resize(start + want, 0);
        let n = file.read(&mut head[start..])?;
        head.truncate(start + n);
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "no DATA line"));
        }
    }
}

/// The end of the `DATA` line that closes the envelope, searching from `from`.
fn envelope_end(head: &[u8], from: usize) -> Option<usize> {
    const DATA: &[u8] = b"\r\nDATA\r\n";
    head.get(from..)?
        .windows(DATA.len())
        .position(|w| w == DATA)
        .map(|i| from + i + DATA.len())
}

/// The envelope through the spool's own parser (one reading of the format, SPEC 6).
fn matches(envelope: &[u8], node: &Node) -> Verdict {
    let mut parser = EnvelopeParser::new(usize::MAX);
    for line in envelope.split(|&b| b == b'\n') {
        let Some(line) = line.strip_suffix(b"\r") else {
            continue; // the empty piece after the last CRLF
        };
        match parser.line(line) {
            Ok(true) => break,
            Ok(false) => {}
            Err(_) => return Verdict::Skip,
        }
    }
    match parser.finish() {
        Ok((header, _)) if header.recipients.iter().any(|r| node.wants(r)) => Verdict::For,
        Ok(_) => Verdict::NotFor,
        Err(_) => Verdict::Skip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, rcpts: &[&str]) {
        let mut s = String::from("HELO h\r\nMAIL FROM:<s@example.net>\r\n");
        for r in rcpts {
            s += &format!("RCPT TO:<{r}>\r\n");
        }
        s += "DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n";
        fs::write(dir.join(name), s).unwrap();
    }

    /// Waiting or not, with all the time it takes.
    fn found(d: &Path, node: &Node) -> bool {
        let far = Instant::now() + Duration::from_secs(3600);
        match waiting(d, node, far).unwrap() {
            Found::Waiting => true,
            Found::Nothing => false,
            Found::OutOfTime(_) => unreachable!(),
        }
    }

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("etrn-scan-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn finds_the_domain_among_others() {
        let d = dir("find");
        let node = Node::parse("example.com").unwrap();
        assert!(!found(&d, &node));
        file(&d, "1", &["a@example.org"]);
        file(&d, ".hidden", &["a@example.com"]);
        assert!(!found(&d, &node));
        file(&d, "2", &["b@example.org", "c@Example.COM"]);
        assert!(found(&d, &node));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn broken_files_do_not_count_and_huge_envelopes_do() {
        let d = dir("bounds");
        let node = Node::parse("example.com").unwrap();
        fs::write(
            d.join("1"),
            "HELO h\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@example.com>\r\n",
        )
        .unwrap();
        fs::write(
            d.join("2"),
            "not a message file\r\nRCPT TO:<x@example.com>\r\n",
        )
        .unwrap();
        fs::create_dir(d.join("3")).unwrap();
        assert!(!found(&d, &node));
        // Recipients elsewhere beyond MAX_HEAD: unread, so it counts.
        let many: Vec<String> = (0..5000).map(|i| format!("r{i}@example.org")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        file(&d, "4", &many);
        assert!(found(&d, &node));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn out_of_time_counts_as_waiting() {
        let d = dir("budget");
        for i in 0..=ALWAYS_READ {
            file(&d, &i.to_string(), &["a@example.org"]);
        }
        let node = Node::parse("example.com").unwrap();
        assert_eq!(
            waiting(&d, &node, Instant::now()).unwrap(),
            Found::OutOfTime(ALWAYS_READ)
        );
        fs::remove_file(d.join("0")).unwrap();
        assert_eq!(
            waiting(&d, &node, Instant::now()).unwrap(),
            Found::Nothing,
            "a queue of ALWAYS_READ files is read whole"
        );
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn envelope_over_several_reads() {
        let d = dir("reads");
        let node = Node::parse("@example.com").unwrap();
        let many: Vec<String> = (0..500).map(|i| format!("r{i}@example.org")).collect();
        let mut rcpts: Vec<&str> = many.iter().map(String::as_str).collect();
        file(&d, "1", &rcpts);
        assert!(!found(&d, &node));
        rcpts.push("last@mx.example.com");
        file(&d, "1", &rcpts);
        assert!(found(&d, &node));
        fs::remove_dir_all(&d).unwrap();
    }
}
