//! The recipient policy of smtpfront-spool (SPEC 2): a recipient is accepted when a mail
//! rule accepts it, or `RELAYCLIENT` is set, or the client authenticated (the session marks
//! those [`crate::backend::Approval::Approved`]), or its domain is in `$RCPTHOSTS`.
//! Otherwise `553 5.7.1`. With no policy configured at all it answers `451 4.3.5`: never an
//! open relay, never lost mail.
//!
//! It also turns mail-rule outcomes (SPEC 5) into replies for the session: [`MailRules`] is
//! the rules file as a session holds it, loaded once, with every failure a `451 4.3.0`.

use crate::address::unquoted;
use crate::cdb::Cdb;
use crate::config::Settings;
use crate::reply::{self, Reply};
use crate::rules::{Outcome, Rules, Verdict};
use std::path::{Path, PathBuf};

/// `$MAILRULES` as a session holds it.
pub enum MailRules {
    Off,
    On(Box<Rules>),
    /// Unreadable or malformed: every MAIL gets `451 4.3.0` (SPEC 2).
    Broken,
}

fn no_match() -> Outcome {
    Outcome {
        verdict: Verdict::NoMatch,
        text: None,
        databytes: None,
        relayclient: None,
        environment: Vec::new(),
    }
}

impl MailRules {
    /// Loads the file named by `MAILRULES`; a failure is logged with the file and line.
    pub fn load(path: Option<&Path>) -> MailRules {
        let Some(path) = path else {
            return MailRules::Off;
        };
        match Rules::load(path) {
            Ok(r) => MailRules::On(Box::new(r)),
            Err(e) => {
                crate::log::line(&format!("MAILRULES unusable, deferring all mail: {e}"));
                MailRules::Broken
            }
        }
    }

    /// SPEC 5: rules see addresses as mailfront does, quotes and escapes removed.
    pub fn sender(&self, sender: &str) -> Result<Outcome, Reply> {
        self.ask(|r| r.sender(&unquoted(sender)))
    }

    pub fn recipient(&self, sender: &str, recipient: &str) -> Result<Outcome, Reply> {
        self.ask(|r| r.recipient(&unquoted(sender), &unquoted(recipient)))
    }

    fn ask(
        &self,
        f: impl FnOnce(&Rules) -> Result<Outcome, crate::rules::RulesError>,
    ) -> Result<Outcome, Reply> {
        match self {
            MailRules::Off => Ok(no_match()),
            MailRules::Broken => Err(reply::RULES_FAILED),
            MailRules::On(r) => f(r).map_err(|e| {
                crate::log::line(&format!("MAILRULES lookup failed: {e}"));
                reply::RULES_FAILED
            }),
        }
    }
}

/// The reply of a rule that refuses (`d`, `z`), with its RESPONSE or the default text.
pub fn refusal(outcome: &Outcome) -> Option<Reply> {
    let base = match outcome.verdict {
        Verdict::Reject => reply::RULE_REJECT,
        Verdict::Defer => reply::RULE_DEFER,
        _ => return None,
    };
    Some(match outcome.text_or_default() {
        Some(t) => base.with_text(t.to_string()),
        None => base,
    })
}

/// A positive reply with the accepting rule's RESPONSE, when it gave one.
pub fn acceptance(outcome: &Outcome, answer: Reply) -> Reply {
    match (&outcome.verdict, &outcome.text) {
        (Verdict::Accept, Some(t)) => answer.with_text(t.clone()),
        _ => answer,
    }
}

/// qmail's rcpthosts: one domain a line, `.example.com` for every sub-domain; or the same
/// keys in a cdb (qmail's morercpthosts.cdb), lower-cased. SPEC 3.2: domains compare in
/// A-labels ([`crate::idna`]): text entries are converted at load, the domain asked for at
/// each lookup; a cdb is asked for the A-label key, then (for an internationalised domain)
/// for the U-label key, so its keys may be written either way.
pub enum RcptHosts {
    List(Vec<String>),
    Cdb(Option<Cdb>),
}

impl RcptHosts {
    /// Reads the file named by `RCPTHOSTS`. A text list that cannot be read is an error (the
    /// front end then refuses to start); a missing cdb matches nothing, as in mail rules.
    pub fn load(path: &Path) -> Result<RcptHosts, String> {
        if path.extension().is_some_and(|e| e == "cdb") {
            return Cdb::open(path)
                .map(RcptHosts::Cdb)
                .map_err(|e| format!("RCPTHOSTS {}: {e}", path.display()));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("RCPTHOSTS {}: {e}", path.display()))?;
        let mut domains: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| crate::idna::to_ascii(l).into_owned())
            .collect();
        domains.sort_unstable();
        domains.dedup();
        Ok(RcptHosts::List(domains))
    }

    fn has(&self, key: &str) -> Result<bool, String> {
        match self {
            RcptHosts::List(d) => Ok(d.binary_search_by(|x| x.as_str().cmp(key)).is_ok()),
            RcptHosts::Cdb(None) => Ok(false),
            RcptHosts::Cdb(Some(c)) => c.contains(key.as_bytes()).map_err(|e| e.to_string()),
        }
    }

    /// Whether `domain` is listed, itself or through a `.parent` entry (qmail's rule).
    pub fn contains(&self, domain: &str) -> Result<bool, String> {
        let domain = crate::idna::to_ascii(domain.trim_end_matches('.'));
        if self.contains_form(&domain)? {
            return Ok(true);
        }
        match (self, crate::idna::to_unicode(&domain)) {
            (RcptHosts::Cdb(_), std::borrow::Cow::Owned(u)) => self.contains_form(&u),
            _ => Ok(false),
        }
    }

    /// [`RcptHosts::contains`] for one form of the domain, lower-cased already.
    fn contains_form(&self, domain: &str) -> Result<bool, String> {
        if domain.is_empty() {
            return Ok(false);
        }
        if self.has(domain)? {
            return Ok(true);
        }
        let mut rest = domain;
        while let Some(i) = rest.find('.') {
            if self.has(&rest[i..])? {
                return Ok(true);
            }
            rest = &rest[i + 1..];
        }
        Ok(false)
    }
}

/// What the back end checks for a recipient nobody approved.
pub enum Policy {
    /// None of RCPTHOSTS, MAILRULES, RELAYCLIENT, CHECKPASSWORD is set.
    Unconfigured,
    /// Only approved recipients pass.
    ApprovedOnly,
    Hosts(RcptHosts, PathBuf),
}

impl Policy {
    pub fn from_settings(s: &Settings) -> Result<Policy, String> {
        if let Some(path) = &s.rcpthosts {
            return Ok(Policy::Hosts(RcptHosts::load(path)?, path.clone()));
        }
        let configured =
            s.mailrules.is_some() || s.relayclient.is_some() || s.checkpassword.is_some();
        Ok(if configured {
            Policy::ApprovedOnly
        } else {
            Policy::Unconfigured
        })
    }

    /// SPEC 3.3: whether `domain` is in `RCPTHOSTS` (ETRN without RELAYCLIENT or AUTH).
    pub fn lists_domain(&self, domain: &str) -> Result<bool, Reply> {
        match self {
            Policy::Hosts(hosts, path) => hosts.contains(domain).map_err(|e| {
                crate::log::line(&format!("RCPTHOSTS {}: {e}", path.display()));
                reply::RCPTHOSTS_FAILED
            }),
            Policy::Unconfigured | Policy::ApprovedOnly => Ok(false),
        }
    }

    /// The verdict for an unapproved recipient.
    pub fn check(&self, recipient: &str) -> Result<(), Reply> {
        match self {
            Policy::Unconfigured => Err(reply::POLICY_NOT_CONFIGURED),
            Policy::ApprovedOnly => Err(reply::RELAY_DENIED),
            Policy::Hosts(hosts, path) => {
                // RFC 5321 4.5.1: the bare postmaster is always ours.
                let Some(domain) = crate::address::domain(recipient) else {
                    return if recipient.eq_ignore_ascii_case("postmaster") {
                        Ok(())
                    } else {
                        Err(reply::RELAY_DENIED)
                    };
                };
                match hosts.contains(domain) {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(reply::RELAY_DENIED),
                    Err(e) => {
                        crate::log::line(&format!("RCPTHOSTS {}: {e}", path.display()));
                        Err(reply::RCPTHOSTS_FAILED)
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(domains: &[&str]) -> RcptHosts {
        let mut d: Vec<String> = domains.iter().map(|s| s.to_string()).collect();
        d.sort();
        RcptHosts::List(d)
    }

    #[test]
    fn exact_and_subdomain_entries() {
        let h = list(&["example.com", ".example.org"]);
        assert!(h.contains("example.com").unwrap());
        assert!(h.contains("EXAMPLE.COM").unwrap());
        assert!(h.contains("example.com.").unwrap());
        assert!(!h.contains("mail.example.com").unwrap());
        assert!(h.contains("mail.example.org").unwrap());
        assert!(h.contains("a.b.example.org").unwrap());
        assert!(!h.contains("example.org").unwrap());
        assert!(!h.contains("notexample.org").unwrap());
        assert!(!h.contains("").unwrap());
    }

    /// SPEC 3.2: A-labels in the list match U-label domains, and the reverse.
    #[test]
    fn domains_compare_in_a_labels() {
        let dir = std::env::temp_dir().join(format!("rcpthosts-idn-{}", std::process::id()));
        std::fs::write(
            &dir,
            "xn--bcher-kva.example\n.\u{43f}\u{440}\u{438}\u{43c}\u{435}\u{440}.\u{440}\u{444}\n",
        )
        .unwrap();
        let h = RcptHosts::load(&dir).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert!(h.contains("b\u{fc}cher.example").unwrap());
        assert!(h.contains("B\u{dc}CHER.example").unwrap());
        assert!(h.contains("xn--bcher-kva.example").unwrap());
        assert!(h.contains("mail.xn--e1afmkfd.xn--p1ai").unwrap());
        assert!(h
            .contains("mail.\u{43f}\u{440}\u{438}\u{43c}\u{435}\u{440}.\u{440}\u{444}")
            .unwrap());
        assert!(!h.contains("bucher.example").unwrap());
    }
}
