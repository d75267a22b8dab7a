//! The spool directory (SPEC 6): `$SPOOLDIR/tmp/` and `$SPOOLDIR/new/`, one file per message.
//!
//! The states of a message file, and the one step that moves it from each:
//!
//! ```text
//! (nothing) --create--> tmp/ID being written --fsync, rename, fsync new/--> new/ID complete
//!                       tmp/ID --any failure, abort, drop--> (removed)
//!                       tmp/ID left by a crash --forward, after 36 hours--> (removed)
//! new/ID --forward: all recipients done--> (removed)
//! new/ID --forward: some left--> tmp/ID.rewrite.PID.N created exclusively, written,
//!                                 fsync, rename over new/ID
//! tmp/ID.rewrite.PID.N --failure--> (removed); left by a crash: removed after 36 hours
//! new/ID --forward: does not parse, or no regular file--> bad/ID (bad/ID.N if taken)
//! ```
//!
//! So a file in `new/` is always complete, and `250` is sent only after the rename into
//! `new/` and the `fsync` of `new/` have returned: the message survives a crash or power loss.

pub mod format;

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Write buffer of a message file: one write system call per 64 KiB of message.
const WRITE_BUFFER: usize = 64 * 1024;

/// An opened spool directory.
#[derive(Debug, Clone)]
pub struct Spool {
    root: PathBuf,
    tmp: PathBuf,
    new: PathBuf,
}

impl Spool {
    /// Checks `root` and creates `tmp/` and `new/` (mode 0700) when missing. The error says
    /// what to fix, for the log line of a front end that cannot start.
    pub fn open(root: &Path) -> Result<Spool, String> {
        let meta = fs::metadata(root).map_err(|e| {
            format!(
                "SPOOLDIR {}: {e}; create it (mode 0700, owned by the user the front end runs as)",
                root.display()
            )
        })?;
        if !meta.is_dir() {
            return Err(format!("SPOOLDIR {} is not a directory", root.display()));
        }
        let spool = Spool {
            root: root.to_path_buf(),
            tmp: root.join("tmp"),
            new: root.join("new"),
        };
        for dir in [&spool.tmp, &spool.new] {
            match DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(format!(
                        "cannot create {}: {e}; check the owner and mode of SPOOLDIR",
                        dir.display()
                    ))
                }
            }
            let m = fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            if !m.is_dir() {
                return Err(format!("{} is not a directory", dir.display()));
            }
            // SPEC 9: a spool we cannot write is found now, not as a 451 for every message.
            if let Err(e) = crate::sys::can_write_dir(dir) {
                return Err(format!(
                    "{} is not writable by this user: {e}; check the owner and mode of SPOOLDIR and its tmp/ and new/",
                    dir.display()
                ));
            }
        }
        Ok(spool)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn new_dir(&self) -> &Path {
        &self.new
    }

    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// Starts a message file `tmp/ID` (mode 0600, created exclusively).
    pub fn create(&self, id: &str) -> io::Result<Draft> {
        let path = self.tmp.join(id);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| at(&path, e))?;
        Ok(Draft {
            out: Some(BufWriter::with_capacity(WRITE_BUFFER, file)),
            tmp: path,
            new: self.new.join(id),
            new_dir: self.new.clone(),
        })
    }
}

/// A message file being written in `tmp/`. Dropped without [`Draft::commit`], it is removed.
pub struct Draft {
    out: Option<BufWriter<File>>,
    tmp: PathBuf,
    new: PathBuf,
    new_dir: PathBuf,
}

impl Draft {
    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.out {
            Some(w) => w.write_all(bytes).map_err(|e| at(&self.tmp, e)),
            None => Err(io::Error::other("message file already closed")),
        }
    }

    /// Makes the message durable: flush, fsync the file, rename it into `new/`, fsync `new/`.
    /// Only after this returns `Ok` may the client be told `250`.
    pub fn commit(mut self) -> io::Result<()> {
        let out = self
            .out
            .take()
            .ok_or_else(|| io::Error::other("message file already closed"))?;
        let file = out
            .into_inner()
            .map_err(|e| at(&self.tmp, e.into_error()))?;
        file.sync_all().map_err(|e| at(&self.tmp, e))?;
        drop(file);
        fs::rename(&self.tmp, &self.new).map_err(|e| at(&self.new, e))?;
        // From here the file is in new/: a failure to sync the directory must not remove it
        // (it is complete), but the client is told 451 and may send it again.
        self.tmp.clear();
        sync_dir(&self.new_dir).map_err(|e| at(&self.new_dir, e))
    }
}

/// The error with the path it happened on, for the log line an operator reads.
fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl Drop for Draft {
    fn drop(&mut self) {
        self.out = None;
        if !self.tmp.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// fsync of a directory, so that a rename into it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// `tmp/` files older than this are left by a crash and are removed by forward (SPEC 6).
pub const STALE_TMP: std::time::Duration = std::time::Duration::from_secs(36 * 3600);

/// Removes the files of `tmp/` last modified more than [`STALE_TMP`] before `now`; returns
/// their paths. Younger files belong to transactions in progress and are left alone.
pub fn remove_stale_tmp(spool: &Spool, now: std::time::SystemTime) -> io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for entry in fs::read_dir(&spool.tmp)? {
        let path = entry?.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue; // gone meanwhile: committed or aborted
        };
        let age = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        if meta.is_file() && age > STALE_TMP && fs::remove_file(&path).is_ok() {
            removed.push(path);
        }
    }
    Ok(removed)
}

/// Removes a message file of `new/` whose recipients are all settled (forward). The
/// directory is synced once per run by the caller ([`sync_dir`]), not per file: a crash
/// before that sync can only bring a delivered file back (a duplicate, never a loss), and
/// one fsync per message would halve forward's rate.
pub fn remove(target: &Path) -> io::Result<()> {
    fs::remove_file(target)
}

/// Replaces `target` atomically (forward's rewrite of a partly delivered file): write a new
/// file in `tmp/` with `head` then all of `rest` (streamed: a message may be large), fsync,
/// rename over `target`, fsync its directory.
pub fn replace(
    spool: &Spool,
    target: &Path,
    head: &[u8],
    rest: &mut dyn io::Read,
) -> io::Result<()> {
    let name = target
        .file_name()
        .ok_or_else(|| io::Error::other("no file name"))?;
    let (tmp, f) = create_unique(&spool.tmp, name)?;
    let result = (|| {
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, f);
        out.write_all(head)?;
        io::copy(rest, &mut out)?;
        let f = out.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        fs::rename(&tmp, target)?;
        sync_dir(target.parent().unwrap_or(Path::new(".")))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp); // ours: created exclusively above
    }
    result
}

/// Names tried by [`create_unique`] before it gives up: only files planted at our names
/// (or left by a crash of this very PID) can take them.
const UNIQUE_TRIES: u32 = 16;

/// Creates `dir/NAME.rewrite.PID.N` (mode 0600) for a rewrite: a fresh name, created
/// exclusively and never through a symbolic link, so that a file or link planted in `tmp/`
/// is never written through (STYLE: "open what you meant to open").
fn create_unique(dir: &Path, name: &std::ffi::OsStr) -> io::Result<(PathBuf, File)> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let mut last = io::Error::other("no name tried");
    for _ in 0..UNIQUE_TRIES {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut file_name = name.to_os_string();
        file_name.push(format!(".rewrite.{}.{n}", std::process::id()));
        let path = dir.join(file_name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = at(&path, e),
            Err(e) => return Err(at(&path, e)),
        }
    }
    Err(last)
}

/// Moves a file of `new/` that does not parse (or is no regular file) to `$SPOOLDIR/bad/`
/// (created with mode 0700), where an operator can look at it: never deleted silently (SPEC
/// 7), so an earlier file of the same name in `bad/` is not replaced: the new one gets a
/// `.N` suffix. `rename` moves a symbolic link itself, never its target. Returns the new path.
pub fn quarantine(spool: &Spool, target: &Path) -> io::Result<PathBuf> {
    let bad = spool.root.join("bad");
    match DirBuilder::new().mode(0o700).create(&bad) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    if !fs::symlink_metadata(&bad)?.is_dir() {
        return Err(io::Error::other(format!(
            "{} is not a directory",
            bad.display()
        )));
    }
    let name = target
        .file_name()
        .ok_or_else(|| io::Error::other("no file name"))?;
    let to = free_name(&bad, name)?;
    fs::rename(target, &to)?;
    sync_dir(&bad)?;
    sync_dir(target.parent().unwrap_or(Path::new(".")))?;
    Ok(to)
}

/// Most `.N` suffixes tried for a name taken in `bad/`.
const MAX_BAD_SUFFIX: u32 = 1000;

/// `dir/NAME`, or `dir/NAME.N` with the first N free. forward holds the spool lock, so no
/// other forward picks the same name in between.
fn free_name(dir: &Path, name: &std::ffi::OsStr) -> io::Result<PathBuf> {
    let taken = |p: &Path| fs::symlink_metadata(p).is_ok();
    let first = dir.join(name);
    if !taken(&first) {
        return Ok(first);
    }
    for n in 1..=MAX_BAD_SUFFIX {
        let mut file_name = name.to_os_string();
        file_name.push(format!(".{n}"));
        let p = dir.join(file_name);
        if !taken(&p) {
            return Ok(p);
        }
    }
    Err(io::Error::other(format!(
        "{}: {MAX_BAD_SUFFIX} files of that name already",
        first.display()
    )))
}
