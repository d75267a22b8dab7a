//! List files of the mail rules (SPEC 5): `[[file]]` and `[[@file]]`.
//!
//! This module owns reading a list file and looking an address up in it. A name ending in
//! `.cdb` is a constant database (see `crate::cdb`), opened at load and read per lookup; a
//! missing one matches nothing. Any other name is a text list read whole at load: one entry a
//! line, blank and `#` lines skipped, white space trimmed, entries lower-cased; a missing or
//! unreadable one is an error (the session then answers with a temporary failure).
//!
//! Lookups, as in mailfront's `plugin-mailrules.c`, with keys lower-cased:
//! * `[[file]]`: the whole address, then `@domain`;
//! * `[[@file]]`: the domain; also `@domain`, so one list with `@domain` entries serves both
//!   forms (mailfront looked up the bare domain only);
//! * an address without `@` (the null sender, `postmaster`) has no domain: only the whole
//!   address is looked up, and `[[@file]]` does not match;
//! * SPEC 3.2: domains compare in A-labels (`crate::idna`). Text entries have their domain
//!   (after the last `@`, or the whole entry when it has none) converted at load; the
//!   address's domain is converted at each lookup. A cdb is asked for the A-label keys, then,
//!   for an internationalised domain, for the U-label keys: its keys may be written either
//!   way. The local part is compared as written (ASCII lower-cased).

use std::borrow::Cow;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::pattern::Address;
use super::RulesError;
use crate::cdb::{Cdb, CdbError};

pub(crate) enum List {
    Text {
        path: PathBuf,
        entries: HashSet<String>,
    },
    /// `db` is `None` when the file does not exist.
    Cdb { path: PathBuf, db: Option<Cdb> },
}

impl List {
    /// Reads or opens the list `name` (relative to the working directory, as in mailfront),
    /// named by the rule at `origin:line`.
    pub(crate) fn load(name: &str, origin: &Path, line: usize) -> Result<List, RulesError> {
        let path = PathBuf::from(name);
        let fail = |reason: String| RulesError {
            file: origin.to_path_buf(),
            line,
            reason,
        };
        if name.len() > 4 && name.ends_with(".cdb") {
            let db = Cdb::open(&path).map_err(|e| fail(format!("list file {name}: {e}")))?;
            return Ok(List::Cdb { path, db });
        }
        let bytes =
            std::fs::read(&path).map_err(|e| fail(format!("cannot read list file {name}: {e}")))?;
        let mut entries = HashSet::new();
        for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let entry = std::str::from_utf8(raw)
                .map_err(|_| RulesError {
                    file: path.clone(),
                    line: index + 1,
                    reason: "not valid UTF-8".to_string(),
                })?
                .trim();
            if !entry.is_empty() && !entry.starts_with('#') {
                let lower = entry.to_ascii_lowercase();
                entries.insert(crate::idna::address_to_ascii(&lower).into_owned());
            }
        }
        Ok(List::Text { path, entries })
    }

    pub(crate) fn path(&self) -> &Path {
        match self {
            List::Text { path, .. } | List::Cdb { path, .. } => path,
        }
    }

    /// Whether `address` is in the list; only a cdb lookup can fail.
    pub(crate) fn matches(&self, address: &Address, domain_only: bool) -> Result<bool, CdbError> {
        match self {
            List::Text { entries, .. } => {
                lookup(address, domain_only, false, |key| Ok(entries.contains(key)))
            }
            List::Cdb { db: None, .. } => Ok(false),
            List::Cdb { db: Some(db), .. } => lookup(address, domain_only, true, |key| {
                db.contains(key.as_bytes())
            }),
        }
    }
}

/// The keys of SPEC 5 tried in order, `has` answering for one lower-cased key: with the
/// domain in A-labels, then (`also_unicode`, for cdbs) in U-labels when that differs.
fn lookup(
    address: &Address,
    domain_only: bool,
    also_unicode: bool,
    has: impl Fn(&str) -> Result<bool, CdbError>,
) -> Result<bool, CdbError> {
    let Some((_, domain)) = address.domain() else {
        return Ok(!domain_only && has(address.as_str())?);
    };
    let whole = address.as_str();
    // With the `@`: the domain is never empty of it, see Address::domain.
    let local = &whole[..whole.len() - domain.len()];
    let ascii = crate::idna::to_ascii(domain);
    if keys_hit(local, whole, domain, &ascii, domain_only, &has)? {
        return Ok(true);
    }
    match crate::idna::to_unicode(&ascii) {
        Cow::Owned(unicode) if also_unicode => {
            keys_hit(local, whole, domain, &unicode, domain_only, &has)
        }
        _ => Ok(false),
    }
}

/// The keys for one form `form` of the domain: `[[@file]]` the domain, then `@domain`;
/// `[[file]]` the whole address, then `@domain`. No allocation when `form` is the domain
/// as the address has it (ASCII mail).
fn keys_hit(
    local: &str,
    whole: &str,
    domain: &str,
    form: &str,
    domain_only: bool,
    has: &impl Fn(&str) -> Result<bool, CdbError>,
) -> Result<bool, CdbError> {
    let at_domain = &whole[local.len() - 1..];
    if form == domain {
        return Ok(if domain_only {
            has(domain)? || has(at_domain)?
        } else {
            has(whole)? || has(at_domain)?
        });
    }
    let first = match domain_only {
        true => has(form)?,
        false => has(&format!("{local}{form}"))?,
    };
    Ok(first || has(&format!("@{form}"))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_list(entries: &[&str]) -> List {
        List::Text {
            path: PathBuf::from("test"),
            entries: entries.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn hit(list: &List, address: &str, domain_only: bool) -> bool {
        list.matches(&Address::new(address), domain_only)
            .expect("text lookups cannot fail")
    }

    #[test]
    fn whole_address_lookups() {
        // mailfront's tests/rules-list.
        let list = text_list(&["a@example.net", "@example.com"]);
        assert!(hit(&list, "a@example.net", false));
        assert!(hit(&list, "A@Example.NET", false));
        assert!(!hit(&list, "b@example.net", false));
        assert!(hit(&list, "c@example.com", false));
        assert!(hit(&list, "c@Example.COM", false));
        assert!(!hit(&list, "", false));
        assert!(!hit(&list, "example.com", false));
    }

    #[test]
    fn domain_lookups() {
        let list = text_list(&["example.biz", "@example.org"]);
        assert!(hit(&list, "a@example.biz", true));
        assert!(hit(&list, "b@Example.BIZ", true));
        assert!(hit(&list, "b@example.org", true));
        assert!(!hit(&list, "example.biz", true));
        assert!(!hit(&list, "", true));
        assert!(!hit(&list, "a@sub.example.biz", true));
        // The domain is what follows the last '@'.
        assert!(hit(&list, "a@b@example.biz", true));
    }

    /// SPEC 3.2: U-label entries match A-label addresses and the reverse.
    #[test]
    fn domains_compare_in_a_labels() {
        let dir = std::env::temp_dir().join(format!("list-idn-{}", std::process::id()));
        std::fs::write(
            &dir,
            "@xn--bcher-kva.example\nj\u{f6}rg@\u{43f}\u{440}\u{438}\u{43c}\u{435}\u{440}.\u{440}\u{444}\n",
        )
        .unwrap();
        let list = List::load(dir.to_str().unwrap(), Path::new("rules"), 1).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert!(hit(&list, "user@b\u{fc}cher.example", false));
        assert!(hit(&list, "user@B\u{dc}cher.example", true));
        assert!(hit(&list, "user@xn--bcher-kva.example", true));
        assert!(hit(&list, "j\u{f6}rg@xn--e1afmkfd.xn--p1ai", false));
        assert!(hit(
            &list,
            "J\u{f6}RG@\u{43f}\u{440}\u{438}\u{43c}\u{435}\u{440}.\u{440}\u{444}",
            false
        ));
        assert!(
            !hit(&list, "j\u{d6}rg@xn--e1afmkfd.xn--p1ai", false),
            "local parts as written"
        );
        assert!(!hit(&list, "user@bucher.example", true));
    }

    #[test]
    fn missing_cdb_matches_nothing_and_missing_text_is_an_error() {
        let origin = Path::new("rules");
        let list = List::load("/nonexistent/smtpfront/list.cdb", origin, 3).expect("missing cdb");
        assert!(!hit(&list, "a@example.com", false));
        let err = match List::load("/nonexistent/smtpfront/list", origin, 3) {
            Err(e) => e,
            Ok(_) => panic!("a missing text list must be an error"),
        };
        assert_eq!(err.line, 3);
        assert!(err
            .to_string()
            .starts_with("rules:3: cannot read list file"));
    }
}
