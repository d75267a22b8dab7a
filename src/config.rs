//! The environment, read once (SPEC 2): raw variables in, one validated [`Settings`] out.
//! `envy` is wrapped here and nowhere else. A variable that is set but does not parse is a
//! [`ConfigError`] naming the variable and the value, never a silent default. Mail-rule
//! ENVIRONMENT overrides go through the same parser ([`Settings::apply`]), so a rule cannot
//! set a value that start-up would refuse.

use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The variables as the environment spells them; `None` = unset.
#[derive(Deserialize, Default, Debug)]
struct Raw {
    timeout: Option<u64>,
    session_timeout: Option<u64>,
    databytes: Option<u64>,
    maxhops: Option<u64>,
    maxrcpts: Option<u64>,
    maxnotimpl: Option<u64>,
    smtpgreeting: Option<String>,
    smtpreject: Option<String>,
    relayclient: Option<String>,
    mailrules: Option<PathBuf>,
    rcpthosts: Option<PathBuf>,
    fixup_received_host: Option<String>,
    fixup_received_ip: Option<String>,
    header_add: Option<String>,
    checkpassword: Option<String>,
    require_auth: Option<String>,
    require_tls: Option<String>,
    sslctlfd: Option<u32>,
    sslreadfd: Option<u32>,
    sslwritefd: Option<u32>,
    spooldir: Option<PathBuf>,
    queuelifetime: Option<u64>,
    sendmail: Option<String>,
    helohost: Option<String>,
    syslog: Option<String>,
    syslog_socket: Option<PathBuf>,
    proto: Option<String>,
}

/// A setting that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "configuration error: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Every setting of SPEC 2, validated. Limits of 0 mean "no limit", as SPEC 2 says for
/// DATABYTES and MAXRCPTS; TIMEOUT and SESSION_TIMEOUT of 0 likewise mean none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub timeout: Option<Duration>,
    pub session_timeout: Option<Duration>,
    pub databytes: u64,
    pub maxhops: u64,
    pub maxrcpts: u64,
    pub maxnotimpl: u64,
    pub greeting: Option<String>,
    pub smtpreject: Option<String>,
    pub relayclient: Option<String>,
    pub mailrules: Option<PathBuf>,
    pub rcpthosts: Option<PathBuf>,
    pub fixup_received_host: Option<String>,
    pub fixup_received_ip: Option<String>,
    pub header_add: Option<String>,
    pub checkpassword: Option<String>,
    pub require_auth: bool,
    /// SPEC 2, 3.1: while STARTTLS is available and not yet done, MAIL and AUTH get `530`.
    pub require_tls: bool,
    /// SPEC 2, 3.1: the UCSPI-TLS descriptors a TLS helper (s6-ucspitlsd) passed on: the
    /// control socket, the channel to read the decrypted client from, and to write to it.
    pub sslctlfd: Option<u32>,
    pub sslreadfd: Option<u32>,
    pub sslwritefd: Option<u32>,
    pub spooldir: Option<PathBuf>,
    pub queuelifetime: Duration,
    pub sendmail: String,
    pub helohost: Option<String>,
    /// SPEC 8: a syslog facility name; `None` logs to stderr.
    pub syslog: Option<String>,
    /// Not in SPEC: the syslog socket (default `/dev/log`), so tests can listen themselves.
    pub syslog_socket: Option<PathBuf>,
    pub proto: Option<String>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            timeout: Some(Duration::from_secs(1200)),
            session_timeout: Some(Duration::from_secs(86400)),
            databytes: 0,
            maxhops: 100,
            maxrcpts: 0,
            maxnotimpl: 0,
            greeting: None,
            smtpreject: None,
            relayclient: None,
            mailrules: None,
            rcpthosts: None,
            fixup_received_host: None,
            fixup_received_ip: None,
            header_add: None,
            checkpassword: None,
            require_auth: false,
            require_tls: false,
            sslctlfd: None,
            sslreadfd: None,
            sslwritefd: None,
            spooldir: None,
            queuelifetime: Duration::from_secs(604800),
            sendmail: "/usr/sbin/sendmail".to_string(),
            helohost: None,
            syslog: None,
            syslog_socket: None,
            proto: None,
        }
    }
}

/// Facility names accepted in `SYSLOG` (those of syslog(3) that a mail program may use).
pub const FACILITIES: &[&str] = &[
    "mail", "daemon", "user", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
    "local7",
];

/// The names `Raw` reads (lower case), as serde's derive lists them: `Raw::deserialize`
/// hands them to `deserialize_struct` first thing, where this probe stops it. So the list
/// cannot drift from the struct.
fn raw_fields() -> &'static [&'static str] {
    use serde::de::Visitor;

    struct Probe;
    #[derive(Debug)]
    struct Fields(&'static [&'static str]);
    impl fmt::Display for Fields {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "fields {:?}", self.0)
        }
    }
    impl std::error::Error for Fields {}
    impl serde::de::Error for Fields {
        fn custom<T: fmt::Display>(_: T) -> Self {
            Fields(&[])
        }
    }
    impl<'de> serde::Deserializer<'de> for Probe {
        type Error = Fields;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Fields> {
            Err(Fields(&[]))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Fields> {
            Err(Fields(fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    match Raw::deserialize(Probe) {
        Err(Fields(fields)) => fields,
        Ok(_) => &[],
    }
}

fn seconds(n: u64) -> Option<Duration> {
    (n > 0).then(|| Duration::from_secs(n))
}

impl Settings {
    /// Reads the process environment. Only the variables `Raw` reads are copied out of it:
    /// start-up is paid by every connection, and a tcpserver environment holds dozens of
    /// others.
    pub fn from_env() -> Result<Settings, ConfigError> {
        let fields = raw_fields();
        Settings::from_vars(crate::sys::environment().filter_map(|(name, value)| {
            // Upper case only (see `apply`); values of ours that are not UTF-8 are
            // refused below through the lossy replacement character.
            let ours = !name.iter().any(u8::is_ascii_lowercase)
                && fields
                    .iter()
                    .any(|f| f.as_bytes().eq_ignore_ascii_case(name));
            ours.then(|| {
                let name = String::from_utf8_lossy(name).into_owned();
                (name, String::from_utf8_lossy(value).into_owned())
            })
        }))
    }

    /// Reads settings from (NAME, VALUE) pairs, over the defaults.
    pub fn from_vars<I: IntoIterator<Item = (String, String)>>(
        vars: I,
    ) -> Result<Settings, ConfigError> {
        let mut settings = Settings::default();
        settings.apply(vars)?;
        Ok(settings)
    }

    /// Overrides the settings named in `vars` (a mail rule's ENVIRONMENT field, SPEC 5).
    /// On error nothing is changed.
    pub fn apply<I: IntoIterator<Item = (String, String)>>(
        &mut self,
        vars: I,
    ) -> Result<(), ConfigError> {
        // Only upper-case names are ours: envy folds case, and `path` or `user` in lower
        // case must not be mistaken for a setting.
        let vars = last_of_each(
            vars.into_iter()
                .filter(|(k, _)| !k.bytes().any(|b| b.is_ascii_lowercase())),
        );
        let raw: Raw = envy::from_iter(vars).map_err(|e| ConfigError(name_variable(e)))?;
        let mut next = self.clone();
        next.merge(raw)?;
        *self = next;
        Ok(())
    }

    fn merge(&mut self, raw: Raw) -> Result<(), ConfigError> {
        if let Some(n) = raw.timeout {
            self.timeout = seconds(n);
        }
        if let Some(n) = raw.session_timeout {
            self.session_timeout = seconds(n);
        }
        if let Some(n) = raw.databytes {
            self.databytes = n;
        }
        if let Some(n) = raw.maxhops {
            self.maxhops = n;
        }
        if let Some(n) = raw.maxrcpts {
            self.maxrcpts = n;
        }
        if let Some(n) = raw.maxnotimpl {
            self.maxnotimpl = n;
        }
        if let Some(n) = raw.queuelifetime {
            self.queuelifetime = Duration::from_secs(n);
        }
        if let Some(f) = raw.syslog {
            if !FACILITIES.contains(&f.as_str()) {
                return Err(ConfigError(format!(
                    "SYSLOG={f:?} is not a facility (one of {})",
                    FACILITIES.join(" ")
                )));
            }
            self.syslog = Some(f);
        }
        if let Some(s) = raw.sendmail {
            if s.is_empty() {
                return Err(ConfigError("SENDMAIL is set but empty".into()));
            }
            self.sendmail = s;
        }
        // SPEC 2: these end up in protocol lines or headers, where a control character
        // would start a new command or header line. HEADER_ADD's line separator is LF, and
        // a tab there may fold a header (RFC 5322 2.2.3).
        for (name, value, allowed) in [
            ("SMTPGREETING", &raw.smtpgreeting, ""),
            ("HELOHOST", &raw.helohost, ""),
            ("FIXUP_RECEIVED_HOST", &raw.fixup_received_host, ""),
            ("FIXUP_RECEIVED_IP", &raw.fixup_received_ip, ""),
            ("HEADER_ADD", &raw.header_add, "\n\t"),
        ] {
            if let Some(v) = value {
                if v.chars().any(|c| c.is_control() && !allowed.contains(c)) {
                    return Err(ConfigError(format!(
                        "{name}={v:?} holds a control character"
                    )));
                }
            }
        }
        set(&mut self.greeting, raw.smtpgreeting);
        set(&mut self.smtpreject, raw.smtpreject);
        set(&mut self.relayclient, raw.relayclient);
        set(&mut self.mailrules, raw.mailrules);
        set(&mut self.rcpthosts, raw.rcpthosts);
        set(&mut self.fixup_received_host, raw.fixup_received_host);
        set(&mut self.fixup_received_ip, raw.fixup_received_ip);
        set(&mut self.header_add, raw.header_add);
        set(&mut self.checkpassword, raw.checkpassword);
        set(&mut self.spooldir, raw.spooldir);
        set(&mut self.helohost, raw.helohost);
        set(&mut self.syslog_socket, raw.syslog_socket);
        set(&mut self.proto, raw.proto);
        if raw.require_auth.is_some() {
            self.require_auth = true;
        }
        if raw.require_tls.is_some() {
            self.require_tls = true;
        }
        set(&mut self.sslctlfd, raw.sslctlfd);
        set(&mut self.sslreadfd, raw.sslreadfd);
        set(&mut self.sslwritefd, raw.sslwritefd);
        Ok(())
    }
}

/// SPEC 5: when several mail rules set one variable, the later value wins. envy refuses a
/// name given twice ("duplicate field"), so only the last of each name is passed on, in
/// the order the names first came.
fn last_of_each(vars: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in vars {
        match out.iter_mut().find(|(seen, _)| *seen == k) {
            Some(slot) => slot.1 = v,
            None => out.push((k, v)),
        }
    }
    out
}

fn set<T>(slot: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *slot = value;
    }
}

/// envy says "... provided by databytes"; the operator wrote DATABYTES.
fn name_variable(e: envy::Error) -> String {
    let msg = e.to_string();
    match msg.rfind(" provided by ") {
        Some(at) => {
            let (head, name) = msg.split_at(at + " provided by ".len());
            format!("{head}{}", name.to_ascii_uppercase())
        }
        None => msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// from_env copies only these names out of the environment: every field, in order.
    #[test]
    fn the_probe_lists_every_field_of_raw() {
        let fields = raw_fields();
        assert_eq!(fields.len(), 27);
        assert_eq!(fields.first(), Some(&"timeout"));
        assert_eq!(fields.last(), Some(&"proto"));
        for name in [
            "mailrules",
            "rcpthosts",
            "spooldir",
            "sslctlfd",
            "header_add",
        ] {
            assert!(fields.contains(&name), "{name} missing from {fields:?}");
        }
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let s = Settings::from_vars(vec![]).unwrap();
        assert_eq!(s, Settings::default());
        assert_eq!(s.timeout, Some(Duration::from_secs(1200)));
        assert_eq!(s.maxhops, 100);
    }

    #[test]
    fn numbers_parse() {
        let s = Settings::from_vars(vars(&[("DATABYTES", "1000"), ("TIMEOUT", "0")])).unwrap();
        assert_eq!(s.databytes, 1000);
        assert_eq!(s.timeout, None);
    }

    #[test]
    fn bad_number_names_variable_and_value() {
        let e = Settings::from_vars(vars(&[("DATABYTES", "12k")])).unwrap_err();
        assert!(e.0.contains("DATABYTES"), "{e}");
        assert!(e.0.contains("12k"), "{e}");
    }

    #[test]
    fn empty_number_is_an_error_not_a_default() {
        assert!(Settings::from_vars(vars(&[("MAXHOPS", "")])).is_err());
        assert!(Settings::from_vars(vars(&[("TIMEOUT", "-1")])).is_err());
    }

    #[test]
    fn empty_relayclient_is_set() {
        let s = Settings::from_vars(vars(&[("RELAYCLIENT", "")])).unwrap();
        assert_eq!(s.relayclient.as_deref(), Some(""));
    }

    #[test]
    fn lower_case_names_are_not_settings() {
        let s = Settings::from_vars(vars(&[("databytes", "oops")])).unwrap();
        assert_eq!(s.databytes, 0);
    }

    #[test]
    fn unknown_facility_is_refused() {
        assert!(Settings::from_vars(vars(&[("SYSLOG", "mial")])).is_err());
        let s = Settings::from_vars(vars(&[("SYSLOG", "mail")])).unwrap();
        assert_eq!(s.syslog.as_deref(), Some("mail"));
    }

    /// Two rules that set one variable for one address: the later value wins (SPEC 5);
    /// envy alone refused the pair and every later MAIL got `451 Mail rules are unusable`.
    #[test]
    fn the_later_of_two_values_wins() {
        let mut s = Settings::default();
        s.apply(vars(&[
            ("RELAYCLIENT", "+a"),
            ("MAXHOPS", "3"),
            ("RELAYCLIENT", "+b"),
            ("HEADER_ADD", "X-A: 1"),
            ("HEADER_ADD", "X-B: 2"),
        ]))
        .unwrap();
        assert_eq!(s.relayclient.as_deref(), Some("+b"));
        assert_eq!(s.header_add.as_deref(), Some("X-B: 2"));
        assert_eq!(s.maxhops, 3);
    }

    /// SPEC 2: a control character in a setting that ends up in a protocol line or a header
    /// is a configuration error (a LF in HELOHOST made forward send two commands).
    #[test]
    fn control_characters_in_protocol_settings_are_refused() {
        for name in [
            "SMTPGREETING",
            "HELOHOST",
            "FIXUP_RECEIVED_HOST",
            "FIXUP_RECEIVED_IP",
            "HEADER_ADD",
        ] {
            for bad in ["a\nb", "a\rb", "a\0b", "a\x1bb", "a\u{85}b", "a\x7fb"] {
                if name == "HEADER_ADD" && bad == "a\nb" {
                    continue;
                }
                let e = Settings::from_vars(vars(&[(name, bad)])).unwrap_err();
                assert_eq!(
                    e.to_string(),
                    format!("configuration error: {name}={bad:?} holds a control character")
                );
            }
        }
        let s = Settings::from_vars(vars(&[("HEADER_ADD", "X-A: 1\nX-B: 2\n\tfolded")])).unwrap();
        assert_eq!(s.header_add.as_deref(), Some("X-A: 1\nX-B: 2\n\tfolded"));
        assert!(Settings::from_vars(vars(&[("HELOHOST", "a\tb")])).is_err());
    }

    /// SPEC 2: the UCSPI-TLS descriptors are numbers; anything else is a configuration error.
    #[test]
    fn ucspi_tls_descriptors_parse_or_refuse() {
        let s = Settings::from_vars(vars(&[
            ("SSLCTLFD", "5"),
            ("SSLREADFD", "6"),
            ("SSLWRITEFD", "7"),
            ("REQUIRE_TLS", ""),
        ]))
        .unwrap();
        assert_eq!(
            (s.sslctlfd, s.sslreadfd, s.sslwritefd),
            (Some(5), Some(6), Some(7))
        );
        assert!(s.require_tls);
        for bad in ["x", "-1", ""] {
            let e = Settings::from_vars(vars(&[("SSLCTLFD", bad)])).unwrap_err();
            assert!(e.0.contains("SSLCTLFD"), "{e}");
        }
    }

    #[test]
    fn apply_changes_nothing_on_error() {
        let mut s = Settings::from_vars(vars(&[("MAXHOPS", "5")])).unwrap();
        let before = s.clone();
        assert!(s
            .apply(vars(&[("MAXRCPTS", "3"), ("MAXHOPS", "x")]))
            .is_err());
        assert_eq!(s, before);
        s.apply(vars(&[("MAXHOPS", "1")])).unwrap();
        assert_eq!(s.maxhops, 1);
    }
}
