//! `config::Settings` from arbitrary environments (SPEC 2).
//!
//! Input: `NAME=value` pairs separated by NUL bytes; a name that is one byte below 0x20 is
//! replaced by the real variable of that index (SPEC 2's list), so the fuzzer reaches every
//! setting at once. Invariants besides "no panic":
//! * `from_vars(v)` is `Settings::default()` then `apply(v)`, and on success applying the
//!   same variables again changes nothing;
//! * `apply` that fails changes nothing;
//! * SPEC 2: a control character in a setting that ends up in a protocol line or a header
//!   (HELOHOST, SMTPGREETING, FIXUP_RECEIVED_HOST, FIXUP_RECEIVED_IP, HEADER_ADD apart from
//!   its line separator) is a configuration error: such settings never hold one;
//! * the numbers are what was written (decimal, non-negative).
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpfront::config::Settings;

/// SPEC 2's variables (and the one not in SPEC, SYSLOG_SOCKET).
const NAMES: &[&str] = &[
    "TIMEOUT",
    "SESSION_TIMEOUT",
    "DATABYTES",
    "MAXHOPS",
    "MAXRCPTS",
    "MAXNOTIMPL",
    "SMTPGREETING",
    "SMTPREJECT",
    "RELAYCLIENT",
    "MAILRULES",
    "RCPTHOSTS",
    "FIXUP_RECEIVED_HOST",
    "FIXUP_RECEIVED_IP",
    "HEADER_ADD",
    "CHECKPASSWORD",
    "REQUIRE_AUTH",
    "REQUIRE_TLS",
    "SPOOLDIR",
    "QUEUELIFETIME",
    "SENDMAIL",
    "HELOHOST",
    "SYSLOG",
    "SYSLOG_SOCKET",
    "PROTO",
    "TCPREMOTEIP",
    "TCPLOCALHOST",
    "SSLCTLFD",
    "PATH",
];

fn vars(data: &[u8]) -> Vec<(String, String)> {
    data.split(|&b| b == 0)
        .filter_map(|pair| {
            let text = String::from_utf8_lossy(pair);
            let (name, value) = text.split_once('=')?;
            let name = match name.as_bytes() {
                [b] if *b < 0x20 => NAMES[usize::from(*b) % NAMES.len()].to_string(),
                _ => name.to_string(),
            };
            Some((name, value.to_string()))
        })
        .collect()
}

fn no_control(name: &str, value: Option<&str>, allowed: &[char]) {
    if let Some(v) = value {
        assert!(
            !v.chars().any(|c| c.is_control() && !allowed.contains(&c)),
            "SPEC 2: {name}={v:?} was accepted with a control character"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let vars = vars(data);
    let parsed = Settings::from_vars(vars.clone());
    let mut applied = Settings::default();
    let result = applied.apply(vars.clone());
    match (&parsed, &result) {
        (Ok(p), Ok(())) => assert_eq!(p, &applied, "from_vars differs from apply"),
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "two errors for one environment");
            assert_eq!(
                applied,
                Settings::default(),
                "a failed apply changed settings"
            );
        }
        _ => panic!("from_vars {parsed:?} but apply {result:?}"),
    }
    let Ok(settings) = parsed else { return };
    let mut twice = settings.clone();
    twice
        .apply(vars.clone())
        .expect("the same variables apply again");
    assert_eq!(
        twice, settings,
        "applying the same variables again changed settings"
    );

    no_control("SMTPGREETING", settings.greeting.as_deref(), &[]);
    no_control("HELOHOST", settings.helohost.as_deref(), &[]);
    no_control(
        "FIXUP_RECEIVED_HOST",
        settings.fixup_received_host.as_deref(),
        &[],
    );
    no_control(
        "FIXUP_RECEIVED_IP",
        settings.fixup_received_ip.as_deref(),
        &[],
    );
    // A tab folds a header line (RFC 5322 2.2.3): allowed, smtpfront(7) says so.
    no_control("HEADER_ADD", settings.header_add.as_deref(), &['\n', '\t']);

    // Numbers: the last value given for the variable, as written.
    let last = |name: &str| vars.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v);
    if let Some(v) = last("DATABYTES") {
        assert_eq!(
            v.parse::<u64>().ok(),
            Some(settings.databytes),
            "DATABYTES={v:?}"
        );
    }
    if let Some(v) = last("MAXHOPS") {
        assert_eq!(
            v.parse::<u64>().ok(),
            Some(settings.maxhops),
            "MAXHOPS={v:?}"
        );
    }
});
