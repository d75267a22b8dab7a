//! The FIFO `$SPOOLDIR/trigger` (SPEC 3.3), both ends. smtpfront-spool [`pull`]s it: one
//! byte, written without blocking; `forward --wait` [`wait`]s on it: a byte (or SIGALRM, or
//! the time running out) ends the wait, and the loop that ran it runs forward at once.
//!
//! FIFO semantics decide the answers: a writer's non-blocking open fails with ENXIO while
//! no process has the FIFO open for reading (SPEC 3.3 `458`). `service/forward/run` keeps
//! it open for reading for as long as the service runs, so an ETRN that comes during a
//! delivery run is kept in the pipe and the next wait returns at once; `458` then means
//! that no forward service is running at all. Bytes from many ETRNs are drained together:
//! they ask for one run.

use crate::sys::{self, Woken};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The FIFO's name in `$SPOOLDIR`.
pub const NAME: &str = "trigger";

/// Why the trigger could not be used.
#[derive(Debug)]
pub enum TriggerError {
    /// No FIFO: no forward has waited on this spool yet.
    Missing(PathBuf),
    /// The FIFO is there, but nobody reads it: no forward service runs.
    NoReader(PathBuf),
    /// Something else has the name (STYLE: open what you meant to open).
    NotFifo(PathBuf),
    Io(PathBuf, io::Error),
}

impl fmt::Display for TriggerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TriggerError::Missing(p) => write!(
                f,
                "{}: no such FIFO (forward --wait creates it: is the forward service running?)",
                p.display()
            ),
            TriggerError::NoReader(p) => write!(
                f,
                "{}: nobody waits on it (is the forward service running?)",
                p.display()
            ),
            TriggerError::NotFifo(p) => write!(f, "{}: not a FIFO; remove it", p.display()),
            TriggerError::Io(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

/// Checks that `path` is a FIFO before it is opened: opening a device or writing into a
/// regular file by mistake must never happen.
fn check_fifo(path: &Path) -> Result<(), TriggerError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_fifo() => Ok(()),
        Ok(_) => Err(TriggerError::NotFifo(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(TriggerError::Missing(path.to_path_buf()))
        }
        Err(e) => Err(TriggerError::Io(path.to_path_buf(), e)),
    }
}

/// Opens the FIFO without blocking and without following a link, and checks what was
/// opened (the name may have been replaced since [`check_fifo`]).
fn open(path: &Path, write: bool) -> Result<File, TriggerError> {
    let at = |e| TriggerError::Io(path.to_path_buf(), e);
    let file = OpenOptions::new()
        .read(!write)
        .write(write)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENXIO) => TriggerError::NoReader(path.to_path_buf()),
            Some(libc::ENOENT) => TriggerError::Missing(path.to_path_buf()),
            Some(libc::ELOOP) => TriggerError::NotFifo(path.to_path_buf()),
            _ => at(e),
        })?;
    if !file.metadata().map_err(at)?.file_type().is_fifo() {
        return Err(TriggerError::NotFifo(path.to_path_buf()));
    }
    Ok(file)
}

/// smtpfront-spool's end: one byte into `root/trigger`, never blocking.
pub fn pull(root: &Path) -> Result<(), TriggerError> {
    let path = root.join(NAME);
    check_fifo(&path)?;
    let mut fifo = open(&path, true)?;
    match fifo.write(b"!") {
        Ok(_) => Ok(()),
        // The pipe is full: wake-ups are already waiting to be read, this one adds nothing.
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        // The reader went away between the open and the write.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(TriggerError::NoReader(path)),
        Err(e) => Err(TriggerError::Io(path, e)),
    }
}

/// Why [`wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A byte came: an ETRN asked for a run.
    Trigger,
    /// SIGALRM (`svc -a`).
    Alarm,
    /// The time ran out.
    Timeout,
}

/// `forward --wait`'s end: creates the FIFO (mode 0600) when missing, waits up to
/// `timeout` for a byte, drains every byte there is. With `timeout` zero it only drains.
pub fn wait(root: &Path, timeout: Duration) -> Result<Wake, TriggerError> {
    let path = root.join(NAME);
    create(&path)?;
    sys::catch_alarm().map_err(|e| TriggerError::Io(path.clone(), e))?;
    // A timeout too large for the clock is a wait without end, in slices of a year.
    let far = || Instant::now() + Duration::from_secs(365 * 86400);
    let deadline = Instant::now().checked_add(timeout).unwrap_or_else(far);
    loop {
        let fifo = open(&path, false)?;
        let at = |e| TriggerError::Io(path.clone(), e);
        match sys::wait_readable_or_alarm(fifo.as_raw_fd(), deadline).map_err(at)? {
            Woken::Alarm => return Ok(Wake::Alarm),
            Woken::Timeout if drain(&fifo).map_err(at)? => return Ok(Wake::Trigger),
            Woken::Timeout => return Ok(Wake::Timeout),
            Woken::Readable if drain(&fifo).map_err(at)? => return Ok(Wake::Trigger),
            // A writer came and went without a byte: the FIFO now reports a hang-up for
            // ever. A new open forgets it.
            Woken::Readable => continue,
        }
    }
}

/// Reads until nothing is left; true when there was at least one byte.
fn drain(mut fifo: &File) -> io::Result<bool> {
    let mut buf = [0u8; 512];
    let mut got = false;
    loop {
        match fifo.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(_) => got = true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(got),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The FIFO, mode 0600, unless it exists; anything else with its name is refused.
fn create(path: &Path) -> Result<(), TriggerError> {
    match check_fifo(path) {
        Err(TriggerError::Missing(_)) => {}
        other => return other,
    }
    match sys::mkfifo(path, 0o600) {
        Ok(()) => {}
        // Made by another forward --wait meanwhile.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return check_fifo(path),
        Err(e) => return Err(TriggerError::Io(path.to_path_buf(), e)),
    }
    // mkfifo's mode is masked by the umask; the SPEC's 0600 is exact.
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .map_err(|e| TriggerError::Io(path.to_path_buf(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("etrn-trigger-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn pull_without_fifo_or_reader() {
        let d = root("pull");
        assert!(matches!(pull(&d), Err(TriggerError::Missing(_))));
        create(&d.join(NAME)).unwrap();
        let mode = fs::metadata(d.join(NAME)).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o600);
        assert!(matches!(pull(&d), Err(TriggerError::NoReader(_))));
        let reader = open(&d.join(NAME), false).unwrap();
        pull(&d).unwrap();
        pull(&d).unwrap();
        assert!(drain(&reader).unwrap());
        assert!(!drain(&reader).unwrap());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_regular_file_is_not_a_trigger() {
        let d = root("regular");
        fs::write(d.join(NAME), "keep me").unwrap();
        assert!(matches!(pull(&d), Err(TriggerError::NotFifo(_))));
        assert!(matches!(
            wait(&d, Duration::ZERO),
            Err(TriggerError::NotFifo(_))
        ));
        assert_eq!(fs::read_to_string(d.join(NAME)).unwrap(), "keep me");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn wait_zero_drains() {
        let d = root("zero");
        assert_eq!(wait(&d, Duration::ZERO).unwrap(), Wake::Timeout);
        // A reader held open (as the service loop does) keeps a byte for the next wait.
        let _held = OpenOptions::new()
            .read(true)
            .write(true)
            .open(d.join(NAME))
            .unwrap();
        pull(&d).unwrap();
        assert_eq!(wait(&d, Duration::ZERO).unwrap(), Wake::Trigger);
        assert_eq!(wait(&d, Duration::ZERO).unwrap(), Wake::Timeout);
        fs::remove_dir_all(&d).unwrap();
    }
}
