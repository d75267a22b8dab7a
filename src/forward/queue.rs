//! The queue as forward sees it (SPEC 6, 7): the files of `new/` in arrival order, each
//! loaded as its envelope and the position of the message in the file. The message itself is
//! never held in memory: it is streamed from the file when sent or rewritten.

use crate::spool::format::Header;
use crate::spool::Spool;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest envelope line of a message file. The front end refuses commands over 4096
/// bytes (SPEC 3), so an envelope line longer than twice that is not ours.
const MAX_ENVELOPE_LINE: u64 = 8192;
/// Read buffer of a message file while it is sent.
const READ_BUFFER: usize = 64 * 1024;

/// One message file of `new/`.
#[derive(Debug)]
pub struct Message {
    /// The file name: the queue id.
    pub id: String,
    pub path: PathBuf,
    pub header: Header,
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
    /// Not a message file (SPEC 7: moved to `bad/`).
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

impl Message {
    pub fn load(spool: &Spool, id: &str) -> Result<Message, LoadError> {
        let path = spool.new_dir().join(id);
        let unreadable = |e: io::Error| match e.kind() {
            io::ErrorKind::NotFound => LoadError::Vanished,
            _ => LoadError::Unreadable(e),
        };
        let malformed = |why: &str| LoadError::Malformed(why.to_string());
        let file = File::open(&path).map_err(unreadable)?;
        let meta = file.metadata().map_err(unreadable)?;
        if !meta.is_file() {
            return Err(malformed("not a regular file"));
        }
        let mut reader = BufReader::new(file);
        // The envelope lines up to DATA, each bounded; then the header parser of the spool
        // (which wants a whole file: the empty message stands in for the real one).
        let mut head = Vec::new();
        loop {
            let start = head.len();
            let n = (&mut reader)
                .take(MAX_ENVELOPE_LINE)
                .read_until(b'\n', &mut head)
                .map_err(unreadable)?;
            if n == 0 || !head.ends_with(b"\r\n") {
                return Err(malformed("the envelope does not end with DATA"));
            }
            if &head[start..] == b"DATA\r\n" {
                break;
            }
        }
        let data_offset = head.len() as u64;
        head.extend_from_slice(b".\r\n");
        let (header, _) = Header::parse(&head).map_err(|e| LoadError::Malformed(e.0))?;
        let fields = [&header.helo, &header.sender]
            .into_iter()
            .chain(header.body.iter())
            .chain(header.recipients.iter());
        if fields.into_iter().any(|f| f.contains(char::is_control)) {
            return Err(malformed("a control character in the envelope"));
        }
        let data_len = meta.len().saturating_sub(data_offset);
        let mut file = reader.into_inner();
        if !ends_with_dot(&mut file, data_len).map_err(unreadable)? {
            return Err(malformed("the message does not end with the dot line"));
        }
        Ok(Message {
            id: id.to_string(),
            arrival: arrival(id, &meta),
            path,
            header,
            data_offset,
            data_len,
        })
    }

    /// The message as stored: dot-stuffed, ending with the `.` line.
    pub fn data(&self) -> io::Result<impl BufRead> {
        let mut file = File::open(&self.path)?;
        file.seek(SeekFrom::Start(self.data_offset))?;
        Ok(BufReader::with_capacity(
            READ_BUFFER,
            file.take(self.data_len),
        ))
    }

    /// The message's header block, un-stuffed, LF line ends, at most `max` bytes (whole
    /// lines), for a bounce (RFC 3464 text/rfc822-headers).
    pub fn headers(&self, max: usize) -> io::Result<Vec<u8>> {
        let mut data = self.data()?;
        let mut out = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            (&mut data)
                .take(max as u64 + 1)
                .read_until(b'\n', &mut line)?;
            let text = line.strip_suffix(b"\r\n").unwrap_or(&line);
            if text.is_empty() || text == b"." || !line.ends_with(b"\n") {
                return Ok(out); // the end of the header block (or of the message)
            }
            let text = text.strip_prefix(b".").unwrap_or(text);
            if out.len() + text.len() + 1 > max {
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
        let mut data = self.data()?;
        crate::spool::replace(spool, &self.path, &header.render(), &mut data)
    }

    pub fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.arrival).unwrap_or_default()
    }
}

/// Not in SPEC: the arrival time is the time stamp in the name (seconds before the first
/// dot, as the spool names files), because a rewrite after a partial delivery renews the
/// file's mtime and must not extend the message's life. Names of another form (a file put
/// there by hand) fall back to the mtime.
fn arrival(id: &str, meta: &fs::Metadata) -> SystemTime {
    match id.split('.').next().and_then(|s| s.parse::<u64>().ok()) {
        Some(secs) => UNIX_EPOCH + Duration::from_secs(secs),
        None => meta.modified().unwrap_or(UNIX_EPOCH),
    }
}

/// The message ends with the `.` line: it is exactly `.\r\n` or ends with `\r\n.\r\n`.
fn ends_with_dot(file: &mut File, data_len: u64) -> io::Result<bool> {
    if data_len < 3 {
        return Ok(false);
    }
    let n = data_len.min(5);
    file.seek(SeekFrom::End(-(n as i64)))?;
    let mut tail = [0u8; 5];
    file.read_exact(&mut tail[..n as usize])?;
    Ok(match n {
        5 => &tail == b"\r\n.\r\n",
        _ => &tail[..3] == b".\r\n" && data_len == 3,
    })
}

/// `--list` (SPEC 7): one line per message (id, age, size, sender, number of recipients, the
/// recipients), then a line with the totals.
pub fn list(spool: &Spool, now: SystemTime, out: &mut dyn Write) -> io::Result<()> {
    let (mut messages, mut bytes, mut recipients, mut unparsable) = (0u64, 0u64, 0u64, 0u64);
    for id in scan(spool)? {
        match Message::load(spool, &id) {
            Ok(m) => {
                messages += 1;
                bytes += m.data_len;
                recipients += m.header.recipients.len() as u64;
                let rcpts: Vec<String> = m
                    .header
                    .recipients
                    .iter()
                    .map(|r| format!("<{r}>"))
                    .collect();
                writeln!(
                    out,
                    "{id} {} {} <{}> {} {}",
                    age_text(m.age(now)),
                    m.data_len,
                    m.header.sender,
                    m.header.recipients.len(),
                    rcpts.join(" ")
                )?;
            }
            Err(LoadError::Vanished) => {}
            Err(LoadError::Unreadable(e)) => {
                unparsable += 1;
                writeln!(out, "{id} unreadable: {e}")?;
            }
            Err(LoadError::Malformed(why)) => {
                unparsable += 1;
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
    fn ages_read_well() {
        assert_eq!(age_text(Duration::from_secs(5)), "5s");
        assert_eq!(age_text(Duration::from_secs(725)), "12m05s");
        assert_eq!(age_text(Duration::from_secs(3 * 3600 + 20 * 60)), "3h20m");
        assert_eq!(age_text(Duration::from_secs(2 * 86400 + 4 * 3600)), "2d04h");
    }
}
