//! forward's queue file names (`forward::queue`, SPEC 6/7: names like
//! `1733130000.123456.4242.1`, seconds first, so they sort by arrival).
//!
//! The input is a file name. A valid message file of that name is put in `new/` of a
//! scratch spool and loaded with `Message::load`, which takes the arrival time from the
//! name (the parser itself, `queue::arrival`, is private), then `age` and `age_text`.
//! Invariants besides "no panic":
//! * a well-formed file loads, whatever its name;
//! * `arrival_from_name` reads the leading number of seconds when a `SystemTime` can hold
//!   it, and the arrival is never later than that;
//! * `queue::scan` lists the name (unless it starts with a dot, which scan skips).
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpfront::forward::queue::{age_text, arrival_from_name, scan, Message};
use smtpfront::spool::Spool;
use smtpfront_fuzz::scratch;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const FILE: &[u8] = b"HELO client.example\r\nMAIL FROM:<a@example.net>\r\n\
RCPT TO:<b@example.com>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n";

fn spool() -> &'static Spool {
    static S: OnceLock<Spool> = OnceLock::new();
    S.get_or_init(|| Spool::open(&scratch("filename")).expect("scratch spool"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(name) = std::str::from_utf8(data) else {
        return;
    };
    if name.is_empty()
        || name.len() > 255
        || name == "."
        || name == ".."
        || name.contains(['/', '\0'])
    {
        return;
    }
    let spool = spool();
    let path = spool.new_dir().join(name);
    std::fs::write(&path, FILE).expect("write the message file");
    let loaded = Message::load(spool, name);
    let listed = scan(spool).expect("scan new/");
    let _ = std::fs::remove_file(&path);
    let m = match loaded {
        Ok(m) => m,
        Err(e) => panic!("a well-formed file named {name:?} does not load: {e:?}"),
    };
    assert_eq!(m.id, name);
    assert_eq!(listed.iter().any(|n| n == name), !name.starts_with('.'));
    let stamp = name
        .split('.')
        .next()
        .and_then(|s| s.parse::<u64>().ok())
        .and_then(|secs| UNIX_EPOCH.checked_add(Duration::from_secs(secs)));
    assert_eq!(arrival_from_name(name), stamp, "the stamp of {name:?}");
    // The arrival is the earlier of the name's stamp and the file's time (a name from the
    // future must not keep a message past QUEUELIFETIME).
    if let Some(t) = stamp {
        assert!(m.arrival <= t, "arrival of {name:?} after its stamp");
    }
    let now = SystemTime::now();
    let _ = age_text(m.age(now));
    let _ = age_text(m.age(UNIX_EPOCH));
});
