//! The queue as forward sees it (SPEC 6, 7): the files of `new/` in arrival order, each
//! loaded as its envelope and the position of the message in the file. The message itself is
//! never held in memory: it is streamed from the file when sent or rewritten.

use crate::spool::format::{EnvelopeParser, Header};
use crate::spool::Spool;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest envelope line of a message file. The front end refuses commands over 4096
/// bytes (SPEC 3), so an envelope line longer than twice that is not ours.
const MAX_ENVELOPE_LINE: u64 = 8192;
/// Read buffer of a message file while it is sent.
const READ_BUFFER: usize = 64 * 1024;
/// Recipients `--list` shows of one message; the rest are counted. A file may hold 10,000
/// recipients of 4 KB each (the front end's limits): listing them all would be 40 MB a line.
pub const LIST_RECIPIENTS: usize = 10;

/// One message file of `new/`, open: every later read is of the file that was checked,
/// whatever is renamed over its path meanwhile.
#[derive(Debug)]
pub struct Message {
    /// The file name: the queue id.
    pub id: String,
    pub path: PathBuf,
    pub header: Header,
    file: File,
    /// Where the message (dot-stuffed, ending with the `.` line) starts in the file.
    data_offset: u64,
    /// Its length in bytes, the dot line included.
    pub data_len: u64,
    pub arrival: SystemTime,
}

/// Why a file of `new/` could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// Removed since the directory was read (by an operator): nothing to do.
    Vanished,
    Unreadable(io::Error),
    /// Not a message file, or not a regular file (SPEC 7: moved to `bad/`).
    Malformed(String),
}

/// The names in `new/`, oldest first: names sort by arrival (SPEC 6).
pub fn scan(spool: &Spool) -> io::Result<Vec<String>> {
    let mut names: Vec<String> = fs::read_dir(spool.new_dir())?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    Ok(names)
}

/// A message file opened and its envelope read, with at most `keep` recipients kept.
struct Opened {
    file: File,
    header: Header,
    recipients: u64,
    data_offset: u64,
    data_len: u64,
    arrival: SystemTime,
}

impl Opened {
    fn open(spool: &Spool, id: &str, keep: usize) -> Result<Opened, LoadError> {
        let path = spool.new_dir().join(id);
        let (file, meta) = open_regular(&path)?;
        // The envelope lines up to DATA, each bounded, streamed through the spool's parser.
        let mut reader = BufReader::new(Section::new(&file, 0, meta.len()));
        let mut parser = EnvelopeParser::new(keep);
        let mut line = Vec::new();
        let mut data_offset = 0u64;
        loop {
            line.clear();
            let n = (&mut reader)
                .take(MAX_ENVELOPE_LINE)
                .read_until(b'\n', &mut line)
                .map_err(unreadable)?;
            let Some(text) = line.strip_suffix(b"\r\n") else {
                return Err(malformed("the envelope does not end with DATA"));
            };
            data_offset = data_offset.saturating_add(n as u64);
            if parser.line(text).map_err(|e| LoadError::Malformed(e.0))? {
                break;
            }
        }
        let (header, recipients) = parser.finish().map_err(|e| LoadError::Malformed(e.0))?;
        let data_len = meta.len().saturating_sub(data_offset);
        if !ends_with_dot(&file, meta.len(), data_len).map_err(unreadable)? {
            return Err(malformed("the message does not end with the dot line"));
        }
        Ok(Opened {
            arrival: arrival(id, &meta),
            file,
            header,
            recipients,
            data_offset,
            data_len,
        })
    }
}

fn unreadable(e: io::Error) -> LoadError {
    match e.kind() {
        io::ErrorKind::NotFound => LoadError::Vanished,
        _ => LoadError::Unreadable(e),
    }
}

fn malformed(why: &str) -> LoadError {
    LoadError::Malformed(why.to_string())
}

/// Opens `path` only if it is a regular file (STYLE: "open what you meant to open"): the
/// type is checked before the open (a FIFO would block it, a link would open another file),
/// the open neither follows a link nor blocks, and the type is checked again on what was
/// opened, in case the name was replaced in between.
fn open_regular(path: &Path) -> Result<(File, fs::Metadata), LoadError> {
    let regular = |meta: fs::Metadata| match kind(&meta.file_type()) {
        None => Ok(meta),
        Some(what) => Err(LoadError::Malformed(format!("{what}, not a regular file"))),
    };
    regular(fs::symlink_metadata(path).map_err(unreadable)?)?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => malformed("a symbolic link, not a regular file"),
            _ => unreadable(e),
        })?;
    let meta = regular(file.metadata().map_err(unreadable)?)?;
    Ok((file, meta))
}

/// What a file of `new/` is when it is not a regular file.
fn kind(t: &fs::FileType) -> Option<&'static str> {
    Some(match () {
        _ if t.is_file() => return None,
        _ if t.is_symlink() => "a symbolic link",
        _ if t.is_dir() => "a directory",
        _ if t.is_fifo() => "a FIFO",
        _ if t.is_socket() => "a socket",
        _ if t.is_block_device() || t.is_char_device() => "a device",
        _ => "an unknown kind of file",
    })
}

/// A part of a file, read with `pread`: readers of one file never share an offset.
struct Section<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl<'a> Section<'a> {
    fn new(file: &'a File, start: u64, len: u64) -> Section<'a> {
        Section {
            file,
            pos: start,
            end: start.saturating_add(len),
        }
    }
}

impl Read for Section<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.end.saturating_sub(self.pos)).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos = self.pos.saturating_add(n as u64);
        Ok(n)
    }
}

impl Message {
    pub fn load(spool: &Spool, id: &str) -> Result<Message, LoadError> {
        let o = Opened::open(spool, id, usize::MAX)?;
        Ok(Message {
            id: id.to_string(),
            path: spool.new_dir().join(id),
            header: o.header,
            file: o.file,
            data_offset: o.data_offset,
            data_len: o.data_len,
            arrival: o.arrival,
        })
    }

    /// The message as stored: dot-stuffed, ending with the `.` line.
    pub fn data(&self) -> impl BufRead + '_ {
        let section = Section::new(&self.file, self.data_offset, self.data_len);
        BufReader::with_capacity(READ_BUFFER, section)
    }

    /// The message's header block, un-stuffed, LF line ends, at most `max` bytes (whole
    /// lines), for a bounce (RFC 3464 text/rfc822-headers).
    pub fn headers(&self, max: usize) -> io::Result<Vec<u8>> {
        let mut data = self.data();
        let mut out = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            (&mut data)
                .take((max as u64).saturating_add(1))
                .read_until(b'\n', &mut line)?;
            let text = line.strip_suffix(b"\r\n").unwrap_or(&line);
            if text.is_empty() || text == b"." || !line.ends_with(b"\n") {
                return Ok(out); // the end of the header block (or of the message)
            }
            let text = text.strip_prefix(b".").unwrap_or(text);
            if out.len().saturating_add(text.len()).saturating_add(1) > max {
                return Ok(out);
            }
            out.extend_from_slice(text);
            out.push(b'\n');
        }
    }

    /// The file with only `recipients` left (SPEC 7), written atomically.
    pub fn rewrite(&self, spool: &Spool, recipients: Vec<String>) -> io::Result<()> {
        let header = Header {
            recipients,
            ..self.header.clone()
        };
        let mut data = self.data();
        crate::spool::replace(spool, &self.path, &header.render(), &mut data)
    }

    pub fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.arrival).unwrap_or_default()
    }
}

/// The arrival time a spool file name carries: the seconds before its first dot (SPEC 6:
/// names start with it). `None` for a name of another form or a time out of range
/// (`9223372036854775808.1.1.1`). Pure, for the fuzz target.
pub fn arrival_from_name(id: &str) -> Option<SystemTime> {
    let secs = id.split('.').next()?.parse::<u64>().ok()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// Not in SPEC: the arrival time is the time stamp in the name, because a rewrite after a
/// partial delivery renews the file's mtime and must not extend the message's life. But a
/// message cannot have arrived after its file was written: a stamp later than the mtime (a
/// hand-made name) gives way to the mtime, as does a name of another form.
fn arrival(id: &str, meta: &fs::Metadata) -> SystemTime {
    match (arrival_from_name(id), meta.modified().ok()) {
        (Some(named), Some(written)) => named.min(written),
        (Some(t), None) | (None, Some(t)) => t,
        (None, None) => UNIX_EPOCH,
    }
}

/// The message ends with the `.` line: it is exactly `.\r\n` or ends with `\r\n.\r\n`.
fn ends_with_dot(file: &File, file_len: u64, data_len: u64) -> io::Result<bool> {
    if data_len < 3 {
        return Ok(false);
    }
    let n = data_len.min(5);
    let mut tail = [0u8; 5];
    file.read_exact_at(&mut tail[..n as usize], file_len.saturating_sub(n))?;
    Ok(match n {
        5 => &tail == b"\r\n.\r\n",
        _ => &tail[..3] == b".\r\n" && data_len == 3,
    })
}

/// `--list` (SPEC 7): one line per message (id, age, size, sender, number of recipients, the
/// first [`LIST_RECIPIENTS`] recipients and `... and N more`), then a line with the totals.
/// Memory and output stay bounded whatever a file holds.
pub fn list(spool: &Spool, now: SystemTime, out: &mut dyn Write) -> io::Result<()> {
    let (mut messages, mut bytes, mut recipients, mut unparsable) = (0u64, 0u64, 0u64, 0u64);
    for id in scan(spool)? {
        match Opened::open(spool, &id, LIST_RECIPIENTS) {
            Ok(m) => {
                messages = messages.saturating_add(1);
                bytes = bytes.saturating_add(m.data_len);
                recipients = recipients.saturating_add(m.recipients);
                let age = now.duration_since(m.arrival).unwrap_or_default();
                writeln!(out, "{id} {}", list_line(&m, age))?;
            }
            Err(LoadError::Vanished) => {}
            Err(LoadError::Unreadable(e)) => {
                unparsable = unparsable.saturating_add(1);
                writeln!(out, "{id} unreadable: {e}")?;
            }
            Err(LoadError::Malformed(why)) => {
                unparsable = unparsable.saturating_add(1);
                writeln!(out, "{id} unparsable: {why}")?;
            }
        }
    }
    write!(
        out,
        "{messages} messages, {bytes} bytes, {recipients} recipients"
    )?;
    if unparsable > 0 {
        write!(out, ", {unparsable} unparsable")?;
    }
    writeln!(out)
}

/// `AGE SIZE <sender> N <r1> <r2> ... and M more` (no id).
fn list_line(m: &Opened, age: Duration) -> String {
    let h = &m.header;
    let mut line = format!(
        "{} {} <{}> {}",
        age_text(age),
        m.data_len,
        h.sender,
        m.recipients
    );
    for r in &h.recipients {
        line.push_str(&format!(" <{r}>"));
    }
    let more = m.recipients.saturating_sub(h.recipients.len() as u64);
    if more > 0 {
        line.push_str(&format!(" ... and {more} more"));
    }
    line
}

/// `45s`, `12m05s`, `3h20m`, `2d04h`: the two largest units.
pub fn age_text(age: Duration) -> String {
    let s = age.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrival_comes_from_the_name_when_in_range() {
        let at = |secs| Some(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(
            arrival_from_name("1796000000.000001.1.0"),
            at(1_796_000_000)
        );
        assert_eq!(arrival_from_name("0"), at(0));
        for name in [
            "9223372036854775808.1.1.1",
            "18446744073709551615.1",
            "99999999999999999999.1",
            "abc.1",
            ".1",
            "",
        ] {
            assert_eq!(arrival_from_name(name), None, "{name}");
        }
    }

    #[test]
    fn ages_read_well() {
        assert_eq!(age_text(Duration::from_secs(5)), "5s");
        assert_eq!(age_text(Duration::from_secs(725)), "12m05s");
        assert_eq!(age_text(Duration::from_secs(3 * 3600 + 20 * 60)), "3h20m");
        assert_eq!(age_text(Duration::from_secs(2 * 86400 + 4 * 3600)), "2d04h");
    }
}
