//! The only module with `unsafe` code: thin wrappers over the system calls std does not
//! offer (poll with a deadline, non-blocking descriptors, exec, the host name, memchr), and
//! the processor's vector instructions where std has no safe form of them.
//! Each wrapper turns the C convention (-1 and errno) into `io::Result`.
#![allow(unsafe_code)]

use std::ffi::{CString, OsStr};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::RawFd;
use std::time::Instant;

/// What a descriptor is waited for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    Read,
    Write,
}

/// Waits until `fd` is ready or `deadline` passes. Returns `Ok(false)` on timeout.
/// EINTR is retried with the time that is left, so a signal never shortens a timeout.
pub fn wait_fd(fd: RawFd, what: Wait, deadline: Instant) -> io::Result<bool> {
    let events = match what {
        Wait::Read => libc::POLLIN,
        Wait::Write => libc::POLLOUT,
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // Round up so that a few microseconds left do not become a busy loop of 0 ms polls.
        let ms = left.as_millis().min(i32::MAX as u128) as i32 + i32::from(left.as_nanos() > 0);
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: pfd is a valid pollfd for the duration of the call and nfds is 1.
        let n = unsafe { libc::poll(&mut pfd, 1, if left.is_zero() { 0 } else { ms }) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if n > 0 {
            // POLLHUP / POLLERR also count as ready: the next read or write reports them.
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
    }
}

/// Reads what is available from `fd` into `buf`; EINTR is retried.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: buf is valid for writes of buf.len() bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Writes some of `buf` to `fd`; EINTR is retried.
pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: buf is valid for reads of buf.len() bytes.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Sets or clears O_NONBLOCK on `fd` and returns the flags it had before.
pub fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<libc::c_int> {
    // SAFETY: F_GETFL takes no pointer argument.
    let old = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if old < 0 {
        return Err(io::Error::last_os_error());
    }
    let new = if on {
        old | libc::O_NONBLOCK
    } else {
        old & !libc::O_NONBLOCK
    };
    // SAFETY: F_SETFL takes an int argument.
    if new != old && unsafe { libc::fcntl(fd, libc::F_SETFL, new) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(old)
}

/// Sets TCP_NODELAY on `fd` (an error, e.g. ENOTSOCK for a pipe, is returned, not fatal).
pub fn set_tcp_nodelay(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: the option value points to a live c_int and its exact size is passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether `fd` is an open descriptor of this process (fcntl F_GETFD succeeds): SPEC 3.1
/// offers STARTTLS only over descriptors a TLS helper really passed on.
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD takes no pointer argument; an invalid fd only gives EBADF.
    fd >= 0 && unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0
}

/// Closes `fd`; errors are ignored (nothing is lost: it was only read from or is done).
pub fn close(fd: RawFd) {
    // SAFETY: close takes no pointer; the caller owns fd and does not use it afterwards.
    unsafe { libc::close(fd) };
}

/// Restores flags saved by [`set_nonblocking`].
pub fn restore_flags(fd: RawFd, flags: libc::c_int) {
    // SAFETY: F_SETFL takes an int argument; failure leaves the descriptor as it was.
    unsafe { libc::fcntl(fd, libc::F_SETFL, flags) };
}

/// Position of the first `byte` in `hay`. glibc's memchr is vectorised, which matters on
/// the DATA path where every line end is searched for.
pub fn memchr(byte: u8, hay: &[u8]) -> Option<usize> {
    if hay.is_empty() {
        return None;
    }
    // SAFETY: hay is valid for hay.len() bytes; the result points into hay or is null.
    let p = unsafe { libc::memchr(hay.as_ptr().cast(), i32::from(byte), hay.len()) };
    if p.is_null() {
        None
    } else {
        Some(p as usize - hay.as_ptr() as usize)
    }
}

/// Runs `f` compiled for AVX2 when the processor has it, else as it is: a loop that the
/// compiler vectorises inside `f` (inlined here) then takes 32 bytes a step, not 16. The
/// DATA path's scan for unusual line ends (`linereader`) is such a loop.
#[inline(always)]
pub fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        #[target_feature(enable = "avx2")]
        fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // SAFETY: the processor has AVX2, checked just above.
        return unsafe { avx2(f) };
    }
    f()
}

/// Whether the processor has AVX2 and the kernel saves its registers. glibc has found this
/// out before `main` (its string functions choose their variant by it), so the answer is a
/// load from its table: `is_x86_feature_detected!` would run CPUID again on the first DATA
/// of every session, and each CPUID traps to the hypervisor on a virtual machine (measured:
/// the largest single cost of a one-message session above the static C floor).
#[cfg(all(target_arch = "x86_64", target_env = "gnu"))]
fn has_avx2() -> bool {
    /// glibc's `struct cpuid_feature` (<bits/platform/x86.h>, glibc 2.33 and later).
    #[repr(C)]
    struct CpuidFeature {
        cpuid: [u32; 4],
        active: [u32; 4],
    }
    extern "C" {
        fn __x86_get_cpuid_feature_leaf(leaf: u32) -> *const CpuidFeature;
    }
    /// CPUID_INDEX_7 (leaf 7, subleaf 0); AVX2 is bit 5 of its EBX (index 1).
    const LEAF_7: u32 = 1;
    const EBX: usize = 1;
    const AVX2: u32 = 1 << 5;
    // SAFETY: glibc returns a pointer to its static feature table (filled in before main, never
    // freed) for every leaf index, a zeroed entry for one it does not know.
    let leaf = unsafe { &*__x86_get_cpuid_feature_leaf(LEAF_7) };
    leaf.active[EBX] & AVX2 != 0
}

#[cfg(all(target_arch = "x86_64", not(target_env = "gnu")))]
fn has_avx2() -> bool {
    std::is_x86_feature_detected!("avx2")
}

/// Ignores SIGXFSZ, so that a write past `RLIMIT_FSIZE` fails with EFBIG (and the message
/// gets `451`) instead of killing the process.
pub fn ignore_sigxfsz() {
    // SAFETY: setting a signal disposition to SIG_IGN has no memory effects.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
}

/// Ignores SIGPIPE, so that writing to a client that is gone fails with EPIPE (the session
/// ends and logs it) instead of killing the process. Rust's runtime does this before `main`;
/// the front ends start without that runtime (`#![no_main]`, see [`crate::frontend::main`]).
pub fn ignore_sigpipe() {
    // SAFETY: setting a signal disposition to SIG_IGN has no memory effects.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

extern "C" {
    static environ: *const *const libc::c_char;
}

/// The environment as (name, value) byte strings, borrowed from the process (no copy):
/// `std::env::vars_os` copies every variable, where start-up wants a handful of them.
/// Nothing in this program changes the environment, so the entries stay valid.
pub fn environment() -> impl Iterator<Item = (&'static [u8], &'static [u8])> {
    environ_entries().filter_map(|entry| {
        let eq = memchr(b'=', entry)?;
        Some((&entry[..eq], &entry[eq + 1..]))
    })
}

/// The environment's `NAME=value` entries.
fn environ_entries() -> impl Iterator<Item = &'static [u8]> {
    // SAFETY: environ is a NULL-terminated array of NUL-terminated strings that lives as
    // long as the process; this program never calls setenv/putenv (std::env::set_var).
    let mut p = unsafe { environ };
    std::iter::from_fn(move || {
        if p.is_null() {
            return None;
        }
        // SAFETY: p points into the array before its terminating NULL (checked below).
        let entry = unsafe { *p };
        if entry.is_null() {
            return None;
        }
        // SAFETY: entry is a NUL-terminated string that lives as long as the process.
        p = unsafe { p.add(1) };
        Some(unsafe { std::ffi::CStr::from_ptr(entry) }.to_bytes())
    })
}

/// Makes `fd` the child's descriptor 3 (the checkpassword interface); the command owns it.
pub fn pass_as_fd3(cmd: &mut std::process::Command, fd: std::io::PipeReader) {
    use std::os::unix::io::AsRawFd;
    use std::os::unix::process::CommandExt;
    let raw = fd.as_raw_fd();
    // SAFETY: the closure runs in the child between fork and exec and calls only
    // async-signal-safe functions (dup2, fcntl).
    unsafe {
        cmd.pre_exec(move || {
            // Captured so that the descriptor lives as long as the command.
            let _ = &fd;
            if raw == 3 {
                // dup2(3, 3) would keep close-on-exec: clear it instead.
                if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(raw, 3) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        })
    };
}

/// Whether this process may create files in `dir` (write and search permission), checked
/// with access(2) against the real user, which is the user a front end runs as.
pub fn can_write_dir(dir: &std::path::Path) -> io::Result<()> {
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in path"))?;
    // SAFETY: c is a valid NUL-terminated string for the duration of the call.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The system's host name (SPEC 2: the last fallback for LOCAL).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for buf.len() bytes; gethostname NUL-terminates when it fits.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return "localhost".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Replaces this process with `argv[0]`, searched in PATH, keeping the environment and the
/// descriptors. Returns only on failure.
pub fn exec(argv: &[&OsStr]) -> io::Error {
    if argv.is_empty() {
        return io::Error::new(io::ErrorKind::InvalidInput, "empty command line");
    }
    let cargs: Result<Vec<CString>, _> = argv.iter().map(|a| CString::new(a.as_bytes())).collect();
    let Ok(cargs) = cargs else {
        return io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in argument");
    };
    let mut ptrs: Vec<*const libc::c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // The next program gets the default SIGPIPE disposition, not the one Rust's runtime set.
    // SAFETY: resetting a signal disposition to its default has no memory effects.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    // SAFETY: ptrs is a NULL-terminated array of valid C strings that outlive the call.
    unsafe { libc::execvp(ptrs[0], ptrs.as_ptr()) };
    io::Error::last_os_error()
}

/// Sends SIGKILL to every process of the process group `pgid` (a child started as the
/// leader of its own group): what it started in the background dies with it.
pub fn kill_group(pgid: u32) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    if pgid > 1 {
        // SAFETY: kill(2) with a negative pid only sends a signal; no memory is involved.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
}

/// mkfifo(2): a FIFO at `path` with `mode` (less the umask).
pub fn mkfifo(path: &std::path::Path, mode: libc::mode_t) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in path"))?;
    // SAFETY: c is a valid NUL-terminated string for the duration of the call.
    if unsafe { libc::mkfifo(c.as_ptr(), mode) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Set by the SIGALRM handler of [`catch_alarm`].
static ALARMED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_alarm(_: libc::c_int) {
    ALARMED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// SIGALRM (daemontools' `svc -a`, runit's `sv alarm`) is caught, and blocked except
/// inside [`wait_readable_or_alarm`]: an alarm that comes before the wait is held until the
/// wait lets it in, so it can never fall between a check and the sleep.
pub fn catch_alarm() -> io::Result<()> {
    // SAFETY: the sigset and sigaction structures are zeroed, then set up by the libc calls
    // meant for them; the handler only stores to an atomic (async-signal-safe).
    unsafe {
        let mut block: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut block);
        libc::sigaddset(&mut block, libc::SIGALRM);
        if libc::sigprocmask(libc::SIG_BLOCK, &block, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_alarm as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        // No SA_RESTART: the wait must return.
        if libc::sigaction(libc::SIGALRM, &action, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// How [`wait_readable_or_alarm`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Woken {
    Readable,
    Alarm,
    Timeout,
}

/// Waits until `fd` is readable (or hung up), SIGALRM arrives (after [`catch_alarm`]), or
/// `deadline` passes. ppoll unblocks SIGALRM only for the wait itself.
pub fn wait_readable_or_alarm(fd: RawFd, deadline: Instant) -> io::Result<Woken> {
    use std::sync::atomic::Ordering;
    // SAFETY: the mask is read into a zeroed sigset_t and changed with the libc calls.
    let open_mask = unsafe {
        let mut mask: libc::sigset_t = std::mem::zeroed();
        if libc::sigprocmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask) != 0 {
            return Err(io::Error::last_os_error());
        }
        libc::sigdelset(&mut mask, libc::SIGALRM);
        mask
    };
    loop {
        if ALARMED.swap(false, Ordering::SeqCst) {
            return Ok(Woken::Alarm);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let ts = libc::timespec {
            tv_sec: left.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
            tv_nsec: left.subsec_nanos().into(),
        };
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: pfd, ts and open_mask are valid for the duration of the call; nfds is 1.
        let n = unsafe { libc::ppoll(&mut pfd, 1, &ts, &open_mask) };
        if n > 0 {
            return Ok(Woken::Readable);
        }
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        } else if Instant::now() >= deadline {
            return Ok(Woken::Timeout);
        }
    }
}

/// Sixteen bytes compared all at once with SSE2, which every x86-64 processor has: each
/// answer has bit `i` set for byte `i`. The rules loader sorts the bytes of a line with it
/// (`rules/classes.rs`); std's intrinsics for it all need `unsafe`.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub struct Bytes16(std::arch::x86_64::__m128i);

#[cfg(target_arch = "x86_64")]
impl Bytes16 {
    #[inline(always)]
    pub fn new(bytes: &[u8; 16]) -> Bytes16 {
        use std::arch::x86_64::_mm_loadu_si128;
        // SAFETY: SSE2 is part of x86-64; an unaligned load of the sixteen bytes of `bytes`.
        Bytes16(unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) })
    }

    /// The bytes equal to `b`.
    #[inline(always)]
    pub fn eq(self, b: u8) -> u16 {
        use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_movemask_epi8, _mm_set1_epi8};
        // SAFETY: SSE2 is part of x86-64; no memory is read.
        unsafe { _mm_movemask_epi8(_mm_cmpeq_epi8(self.0, _mm_set1_epi8(b as i8))) as u16 }
    }

    /// The bytes at most `b`, unsigned.
    #[inline(always)]
    pub fn at_most(self, b: u8) -> u16 {
        use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_min_epu8, _mm_movemask_epi8, _mm_set1_epi8};
        // The smaller of a byte and `b` is the byte itself.
        // SAFETY: SSE2 is part of x86-64; no memory is read.
        unsafe {
            let least = _mm_min_epu8(self.0, _mm_set1_epi8(b as i8));
            _mm_movemask_epi8(_mm_cmpeq_epi8(least, self.0)) as u16
        }
    }

    /// The bytes with their high bit set (not ASCII).
    #[inline(always)]
    pub fn high(self) -> u16 {
        use std::arch::x86_64::_mm_movemask_epi8;
        // SAFETY: SSE2 is part of x86-64; no memory is read.
        unsafe { _mm_movemask_epi8(self.0) as u16 }
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub use bytewise::Bytes16;

/// [`Bytes16`] a byte at a time, where there is no SSE2 (and in tests, as the reference).
#[cfg(any(test, not(target_arch = "x86_64")))]
mod bytewise {
    #[derive(Clone, Copy)]
    pub struct Bytes16([u8; 16]);

    impl Bytes16 {
        pub fn new(bytes: &[u8; 16]) -> Bytes16 {
            Bytes16(*bytes)
        }

        fn bits(self, hit: impl Fn(u8) -> bool) -> u16 {
            let bit = |(i, &b): (usize, &u8)| u16::from(hit(b)) << i;
            self.0.iter().enumerate().map(bit).fold(0, |a, b| a | b)
        }

        pub fn eq(self, b: u8) -> u16 {
            self.bits(|x| x == b)
        }

        pub fn at_most(self, b: u8) -> u16 {
            self.bits(|x| x <= b)
        }

        pub fn high(self) -> u16 {
            self.bits(|x| x >= 0x80)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::io::AsRawFd;

    /// The SSE2 compares agree with the byte-at-a-time ones, for every byte value in every
    /// position and every threshold.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn bytes16_agrees_with_bytewise() {
        for b in 0..=255u8 {
            for at in 0..16 {
                let mut bytes = [b'a'; 16];
                bytes[at] = b;
                bytes[15 - at] ^= 0x80;
                let (x, y) = (Bytes16::new(&bytes), bytewise::Bytes16::new(&bytes));
                assert_eq!(x.high(), y.high(), "{bytes:?}");
                for t in [0, b'\t', b'\n', 0x1f, b'a', 0x7f, 0x80, 0xc3, 0xff, b] {
                    assert_eq!(x.eq(t), y.eq(t), "{bytes:?} {t}");
                    assert_eq!(x.at_most(t), y.at_most(t), "{bytes:?} {t}");
                }
            }
        }
    }

    /// glibc's table, read through our copy of its struct layout, gives the same answer as
    /// std's own CPUID probe: a wrong leaf, register or bit shows here on a machine with AVX2
    /// (this one) and on one without.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn avx2_from_glibc_agrees_with_cpuid() {
        assert_eq!(has_avx2(), std::is_x86_feature_detected!("avx2"));
    }

    /// The front end sets TCP_NODELAY on a connection shared with a TLS helper: on a TCP
    /// socket it takes (the kernel reports it back), on a pipe it is an error, ignored.
    #[test]
    fn tcp_nodelay_on_a_socket_and_not_on_a_pipe() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        assert!(!stream.nodelay().unwrap());
        set_tcp_nodelay(stream.as_raw_fd()).unwrap();
        assert!(stream.nodelay().unwrap());
        let (reader, _writer) = std::io::pipe().unwrap();
        assert!(set_tcp_nodelay(reader.as_raw_fd()).is_err());
    }
}

/// A copy of a text file in memory of its own, checked to be UTF-8: the mail rules file
/// (SPEC 5), read in every session. Read into heap memory, each fresh 4 KiB page costs a
/// page fault at first touch, and on a virtual machine a fault costs microseconds (a 300 KB
/// file: ~75 faults, ~0.4 ms measured). Here the memory is an anonymous mapping populated
/// in one system call (`MAP_POPULATE`), and the file is read into it.
///
/// A copy, not a mapping of the file: a rules file truncated or rewritten in place while a
/// session uses it (an editor, `cat new >rules`) would raise SIGBUS in a mapping of it, or
/// change under the reader. A copy is the file as it was when the session began.
pub struct MappedText {
    ptr: std::ptr::NonNull<u8>,
    /// Bytes of the mapping.
    size: usize,
    /// Bytes read into it (the file may have shrunk since its size was taken).
    len: usize,
}

// SAFETY: the memory is owned by the value and not written after `map` returns: sharing or
// moving it between threads is as safe as for a `Box<str>`.
unsafe impl Send for MappedText {}
// SAFETY: as above: nothing writes through it.
unsafe impl Sync for MappedText {}

/// Why [`MappedText::map`] gave no copy.
#[derive(Debug)]
pub enum MapError {
    Io(io::Error),
    /// The file is not UTF-8 (the caller reads it again to say where).
    NotUtf8,
}

impl MappedText {
    /// Reads up to `len` bytes (`len > 0`: its size) of `file`, opened for reading.
    pub fn map(file: &std::fs::File, len: usize) -> Result<MappedText, MapError> {
        use std::io::Read;
        if len == 0 {
            return Err(MapError::Io(io::Error::from(io::ErrorKind::InvalidInput)));
        }
        // SAFETY: a new private anonymous mapping at an address the kernel chooses: it
        // aliases no Rust object. MAP_POPULATE gives it all its pages at once.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(MapError::Io(io::Error::last_os_error()));
        }
        let Some(ptr) = std::ptr::NonNull::new(p.cast::<u8>()) else {
            return Err(MapError::Io(io::Error::other("mmap gave address 0")));
        };
        let mut copy = MappedText {
            ptr,
            size: len,
            len: 0,
        };
        // SAFETY: the mapping is `len` writable bytes (zeroed), owned by `copy` alone.
        let buf = unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr(), len) };
        let mut file = file;
        while copy.len < len {
            match file.read(&mut buf[copy.len..]) {
                Ok(0) => break,
                Ok(n) => copy.len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(MapError::Io(e)),
            }
        }
        match std::str::from_utf8(copy.bytes()) {
            Ok(_) => Ok(copy),
            Err(_) => Err(MapError::NotUtf8),
        }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` is a live mapping of `size` >= `len` bytes, of which `len` were
        // read; unmapped only by drop.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub fn as_str(&self) -> &str {
        // SAFETY: checked to be UTF-8 by `map`, and not written since.
        unsafe { std::str::from_utf8_unchecked(self.bytes()) }
    }
}

impl Drop for MappedText {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `size` are the mapping made by `map`, unmapped once, here.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.size) };
    }
}
