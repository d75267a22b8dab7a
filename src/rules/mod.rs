//! Mail rules (SPEC 5): the `$MAILRULES` file, in the format of mailfront's mail rules.
//!
//! This module owns loading a rules file with the list files it names, and answering, for a
//! sender or a recipient, which rule decides and with what. It knows nothing of SMTP: the
//! session turns an [`Outcome`] into a reply and into settings.
//!
//! * `parse.rs` — one line to a selector or a rule (prefix, fields, patterns);
//!   `tail.rs` — the fields after the patterns (RESPONSE, DATABYTES, RELAYCLIENT,
//!   ENVIRONMENT); `text.rs` — where the texts of the rules live, and the escapes.
//! * `pattern.rs` — the case-insensitive globs and their common shapes; `general.rs` —
//!   patterns with a wildcard inside, and sets; `quick.rs` — the address prepared for
//!   matching, and the quick tests that refuse most patterns at once.
//! * `list.rs` — the list files of `[[file]]` and `[[@file]]`, text or cdb.
//! * `table.rs` — the rules in their two lists, and their evaluation; `index.rs` — the hash
//!   index that keeps a 10,000-rule file fast.
//! * `classes.rs` — the bytes of a line that parsing looks for, found in one pass (SSE2) as
//!   bit sets; `swar.rs` — byte tests eight bytes at a time, for the lines of 64 bytes or
//!   more and for rules read again at lookup.
//! * here — the interface, and loading: lines to the table.
//!
//! Speed (one process per connection, so the file is loaded in every session): loading a
//! 10,000-line file must cost well under a millisecond, which is about 100 ns a line. So
//! loading makes no string and no allocation per rule: the file is read once into memory
//! populated in one system call (`sys::MappedText`) and the rules keep it, texts are spans
//! of it (fields with escapes are decoded once, into one string whose spans start past the
//! end of the file); each line's bytes are sorted into classes once, and splitting and
//! reading its patterns read bits (`classes.rs`); a rule is a small fixed-size record in
//! one vector; the fields after the patterns are only checked, and read again when their
//! rule is applied; patterns are not compiled, only scanned for the facts that let most of
//! them be refused at once. Every line is still checked in full at load, so an error names
//! its line before any mail comes (SPEC 5).
//!
//! Loading (once per session, SPEC 5): every text list file is read at load, and a missing or
//! unreadable one is an error; a cdb list is opened at load, and a missing one matches nothing
//! (a present but corrupt one is an error). List file names are used as written, so relative
//! names are relative to the working directory of the front end, as in mailfront.
//!
//! Evaluation follows mailfront's `plugin-mailrules.c`:
//! * rules are kept in two lists. After `:sender` rules go to the sender list, after
//!   `:recipient` to the recipient list; before any selector a rule whose recipient pattern is
//!   `*` is a sender rule, others recipient rules (SPEC 5). Sender rules test the sender
//!   pattern only; recipient rules test the sender pattern, then the recipient pattern;
//! * rules are tried in order; `n` applies its fields (not its RESPONSE) and goes on; the
//!   first other matching rule decides. `k` and `K` both accept (SPEC 5; in mailfront `K`
//!   also kept later plugins from running, which has no counterpart here). Fields of every
//!   applied rule accumulate: DATABYTES keeps the smallest
//!   (each one *lowers* the limit, SPEC 5; mailfront did the same), RELAYCLIENT fields are
//!   concatenated (mailfront appended each to the address), ENVIRONMENT pairs are listed in
//!   order (apply them in order: a later value wins). A sender rule's RELAYCLIENT is ignored,
//!   as in mailfront;
//! * `&` (SPEC 5): the next rule is tried only if this one matches; `&` rules chain, and a
//!   failed link skips the rest of the chain including the rule it guards. The fields of an
//!   `&` rule are parsed and ignored, as in mailfront. Differences from mailfront: a chain is
//!   classified as a whole (a sender rule only if all its rules have recipient pattern `*`),
//!   where mailfront could split one across the two lists; and an `&` rule followed by no rule
//!   (end of file, or a selector line) is an error;
//! * lists: `[[file]]` matches when the address, or `@` and its domain, is in the list;
//!   `[[@file]]` when its domain is (details in `list.rs`);
//! * addresses are compared lower-cased (ASCII); text list entries are lower-cased at load,
//!   cdb keys must be lower-case (as `cdbmake` input for mailfront had to be).
//!
//! Default reply texts are applied by the caller: [`Outcome::text`] is only what the rule
//! said. [`Outcome::text_or_default`] gives the SPEC 5 defaults ([`REJECT_TEXT`],
//! [`DEFER_TEXT`]) for the session to use.

mod classes;
mod general;
mod index;
mod list;
mod parse;
mod pattern;
mod quick;
mod swar;
mod table;
mod tail;
mod text;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use list::List;
use parse::{Action, Body, Line, PatternSpec, RawRule, Selector};
use pattern::{Address, Pattern};
use table::{Reparsed, Rule, Table};
use text::{Text, TextBuilder, MAX_FILE_LEN};

/// SPEC 5: the text of a `d` rule without a RESPONSE.
pub const REJECT_TEXT: &str = "Rejected";
/// SPEC 5: the text of a `z` rule without a RESPONSE.
pub const DEFER_TEXT: &str = "Deferred";

/// Rules lines are rarely shorter than this: the table is sized for the file at once. A
/// wrong guess costs only address space (pages never written are never mapped) or a copy.
const LINE_LEN_HINT: usize = 16;

/// A parsed rules file with its list files, loaded once per session.
pub struct Rules {
    /// The rules file, and the decoded texts of fields with escapes (see `text.rs`).
    file: Source,
    decoded: String,
    table: Table,
    lists: Vec<List>,
    /// Positions in `lists` by file name, for the rules parsed again (`table.rs`).
    list_index: HashMap<String, usize>,
    origin: PathBuf,
}

/// A rules file that cannot be used: the session answers with a temporary failure.
#[derive(Debug)]
pub struct RulesError {
    pub file: PathBuf,
    /// 1-based; 0 when the error is not about one line.
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => write!(f, "{}: {}", self.file.display(), self.reason),
            line => write!(f, "{}:{}: {}", self.file.display(), line, self.reason),
        }
    }
}

impl std::error::Error for RulesError {}

fn error_at(file: &Path, line: usize, reason: String) -> RulesError {
    RulesError {
        file: file.to_path_buf(),
        line,
        reason,
    }
}

/// What the rules say about one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `k` or `K`: accepted without back-end validation.
    Accept,
    /// `d`: refused permanently (553).
    Reject,
    /// `z`: refused temporarily (451).
    Defer,
    /// `p`: go on with the normal checks.
    Pass,
    /// No rule decided.
    NoMatch,
}

/// The deciding rule's verdict and text, with the fields of every rule applied on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    /// The deciding rule's RESPONSE, escapes resolved (`'\n'` separates reply lines); `None`
    /// when it gave none. See [`Outcome::text_or_default`].
    pub text: Option<String>,
    /// The smallest DATABYTES of the rules applied, if any: lowers the limit for this message.
    pub databytes: Option<u64>,
    /// RELAYCLIENT fields of the applied recipient rules, to append to the recipient.
    pub relayclient: Option<String>,
    /// ENVIRONMENT pairs of the applied rules, in order: apply them in order.
    pub environment: Vec<(String, String)>,
}

impl Outcome {
    /// The text for the reply: the rule's, else SPEC 5's default for `d` and `z`; `None` for
    /// the other verdicts when the rule gave none (the session uses its usual text).
    pub fn text_or_default(&self) -> Option<&str> {
        match (&self.text, &self.verdict) {
            (Some(text), _) => Some(text),
            (None, Verdict::Reject) => Some(REJECT_TEXT),
            (None, Verdict::Defer) => Some(DEFER_TEXT),
            (None, _) => None,
        }
    }
}

/// Where the text of a rules file is.
enum Source {
    /// The file, read into memory populated at once: no fresh page to fault in per
    /// 4 KiB of it.
    Mapped(crate::sys::MappedText),
    /// Text given to [`Rules::parse`], or a file read the ordinary way.
    Owned(String),
}

impl Source {
    fn as_str(&self) -> &str {
        match self {
            Source::Mapped(mapped) => mapped.as_str(),
            Source::Owned(text) => text,
        }
    }
}

impl fmt::Debug for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rules")
            .field("origin", &self.origin)
            .field("sender_rules", &self.table.len(Selector::Sender))
            .field("recipient_rules", &self.table.len(Selector::Recipient))
            .field("lists", &self.lists.len())
            .finish()
    }
}

impl Rules {
    /// Reads and parses the rules file at `path` and the list files it names.
    pub fn load(path: &Path) -> Result<Rules, RulesError> {
        if let Some(mapped) = Rules::map(path) {
            return Rules::build(Source::Mapped(mapped), path, Table::default);
        }
        // Not mapped (an empty file, not a regular file, not UTF-8, an error): read, and
        // report as reading does.
        let bytes =
            std::fs::read(path).map_err(|e| error_at(path, 0, format!("cannot read: {e}")))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
            error_at(path, line, "not valid UTF-8".to_string())
        })?;
        Rules::build(Source::Owned(text), path, Table::default)
    }

    /// The file at `path` read into populated memory, if it is a regular file and UTF-8.
    fn map(path: &Path) -> Option<crate::sys::MappedText> {
        let file = std::fs::File::open(path).ok()?;
        let meta = file.metadata().ok()?;
        let len = usize::try_from(meta.len()).ok()?;
        if !meta.is_file() || len == 0 || len > MAX_FILE_LEN {
            return None;
        }
        crate::sys::MappedText::map(&file, len).ok()
    }

    /// Parses rules text; list files are read relative to the current directory. `origin`
    /// names the text in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Rules, RulesError> {
        Rules::build(Source::Owned(text.to_string()), origin, Table::default)
    }

    /// [`Rules::parse`] of the text it keeps, with the tables made by `new_table` (tests
    /// compare indexed and not).
    fn build(file: Source, origin: &Path, new_table: fn() -> Table) -> Result<Rules, RulesError> {
        let text = file.as_str();
        if text.len() > MAX_FILE_LEN {
            let reason = format!("larger than the limit of {MAX_FILE_LEN} bytes");
            return Err(error_at(origin, 0, reason));
        }
        // A rule's tail is read to the end of its line (`text::rest_of_line`), or of the
        // file: the decoded texts are apart (the `rules` fuzz target found a `d` rule that
        // lost its fields when they followed the file's last line without a newline).
        let mut loader = Loader {
            origin,
            lists: Vec::new(),
            list_index: HashMap::new(),
        };
        let mut table = new_table();
        table.reserve(text.len() / LINE_LEN_HINT);
        let decoded = loader.read(text, &mut table)?;
        table.finish();
        Ok(Rules {
            file,
            decoded,
            table,
            lists: loader.lists,
            list_index: loader.list_index,
            origin: origin.to_path_buf(),
        })
    }

    /// The rules text: the file, then the decoded texts.
    fn text(&self) -> Text<'_> {
        Text::new(self.file.as_str(), &self.decoded)
    }

    /// The rules' answer for the envelope sender (`""` for the null sender), at MAIL.
    pub fn sender(&self, sender: &str) -> Result<Outcome, RulesError> {
        let sender = Address::new(sender);
        let (text, lists, origin) = (self.text(), &self.lists, &self.origin);
        let reparse = |line| self.reparse(line);
        let list = Selector::Sender;
        self.table
            .run(list, text, lists, origin, &reparse, &sender, None)
    }

    /// The rules' answer for one recipient of a transaction from `sender`, at RCPT.
    pub fn recipient(&self, sender: &str, recipient: &str) -> Result<Outcome, RulesError> {
        let (sender, recipient) = (Address::new(sender), Address::new(recipient));
        let (text, lists, origin) = (self.text(), &self.lists, &self.origin);
        let reparse = |line| self.reparse(line);
        let list = Selector::Recipient;
        self.table.run(
            list,
            text,
            lists,
            origin,
            &reparse,
            &sender,
            Some(&recipient),
        )
    }

    /// The indexed rule of the line at `line`, parsed again as it was at load (`table.rs`).
    /// `None` if it no longer parses as it did, which only a file changed in place can do.
    fn reparse(&self, line: u32) -> Option<Reparsed> {
        let file = self.file.as_str();
        let line = text::line_at(file, line)?;
        let mut text = TextBuilder::new(file);
        let Ok(Some(Line::Rule(raw))) = parse::parse_line(line, &mut text) else {
            return None;
        };
        let pattern = |spec: PatternSpec| match spec.body {
            Body::Glob(glob) => Some(Pattern::glob(glob, spec.negated)),
            Body::List { path, domain_only } => {
                let list = *self.list_index.get(text.get(path))?;
                let list = u32::try_from(list).ok()?;
                Some(Pattern::list(list, domain_only, spec.negated))
            }
        };
        let rule = Rule {
            action: raw.action,
            sender: pattern(raw.sender)?,
            recipient: pattern(raw.recipient)?,
            tail: raw.tail.start(),
        };
        let decoded = text.into_decoded();
        Some(Reparsed { rule, decoded })
    }
}

/// For the `rules` fuzz target: checks that each line of `text` parses alike the two ways
/// the loader can read it (see `classes.rs`); the error names the first line that does not.
#[doc(hidden)]
pub fn lines_parse_alike(text: &str) -> Result<(), String> {
    parse::classes_agree(text)
}

/// Reading the lines of a rules file into a table.
struct Loader<'p> {
    origin: &'p Path,
    lists: Vec<List>,
    /// Positions in `lists` by file name: each list file is read once.
    list_index: HashMap<String, usize>,
}

impl Loader<'_> {
    /// Parses `file` into `table`; returns the decoded texts to append to the file.
    fn read(&mut self, file: &str, table: &mut Table) -> Result<String, RulesError> {
        let mut text = TextBuilder::new(file);
        let mut selector: Option<Selector> = None;
        // An open `&` chain: its rules, and whether all have recipient pattern `*`.
        let mut chain: Vec<(u32, Rule)> = Vec::new();
        let mut chain_star = true;
        let mut last_line = 0;
        for (index, line) in classes::lines(file).enumerate() {
            let number = index + 1;
            if line.passed_over {
                continue;
            }
            // The place of the line in the file: the order of the rules, and where an
            // indexed one is read again. A file is under 2 GiB: it fits.
            let place = u32::try_from(line.at).unwrap_or(u32::MAX);
            let parsed = parse::parse_classified(line.text, line.classes.as_ref(), &mut text)
                .map_err(|e| error_at(self.origin, number, e))?;
            let raw = match parsed {
                None => continue,
                Some(Line::Selector(s)) => {
                    if !chain.is_empty() {
                        let reason = "selector line inside an & chain".to_string();
                        return Err(error_at(self.origin, number, reason));
                    }
                    selector = Some(s);
                    continue;
                }
                Some(Line::Rule(raw)) => raw,
            };
            chain_star &= raw.recipient_is_star;
            let ends_chain = raw.action != Action::And;
            let rule = self.resolve(raw, number, &text)?;
            last_line = number;
            // SPEC 5: before any selector, a rule whose recipient pattern is `*` is a
            // sender rule; a chain is one only if all its rules are.
            let list = match (selector, chain_star) {
                (Some(list), _) => list,
                (None, true) => Selector::Sender,
                (None, false) => Selector::Recipient,
            };
            match (ends_chain, chain.is_empty()) {
                (true, true) => table.push(list, place, rule, true, &text),
                (true, false) => {
                    chain.push((place, rule));
                    table.push_chain(list, &mut chain, &text);
                }
                (false, _) => chain.push((place, rule)),
            }
            if ends_chain {
                chain_star = true;
            }
        }
        if !chain.is_empty() {
            let reason = "& rule is not followed by the rule it guards".to_string();
            return Err(error_at(self.origin, last_line, reason));
        }
        Ok(text.into_decoded())
    }

    /// Turns a parsed line into a rule, opening its list files (once per file name).
    fn resolve(
        &mut self,
        raw: RawRule,
        line: usize,
        text: &TextBuilder<'_>,
    ) -> Result<Rule, RulesError> {
        Ok(Rule {
            action: raw.action,
            sender: self.pattern(raw.sender, line, text)?,
            recipient: self.pattern(raw.recipient, line, text)?,
            tail: raw.tail.start(),
        })
    }

    /// Inline, and lists apart: this runs twice for every rule of the file.
    #[inline(always)]
    fn pattern(
        &mut self,
        spec: PatternSpec,
        line: usize,
        text: &TextBuilder<'_>,
    ) -> Result<Pattern, RulesError> {
        match spec.body {
            Body::Glob(glob) => Ok(Pattern::glob(glob, spec.negated)),
            Body::List { path, domain_only } => {
                let list = self.open_list(text.get(path), line)?;
                Ok(Pattern::list(list, domain_only, spec.negated))
            }
        }
    }

    /// The index in `lists` of the list file `path`, named at `line`: read at its first use.
    #[inline(never)]
    fn open_list(&mut self, path: &str, line: usize) -> Result<u32, RulesError> {
        let list = match self.list_index.get(path) {
            Some(&list) => list,
            None => {
                let loaded = List::load(path, self.origin, line)?;
                self.lists.push(loaded);
                self.list_index
                    .insert(path.to_string(), self.lists.len() - 1);
                self.lists.len() - 1
            }
        };
        // As many lists as rules at most: a file under 4 GiB has fewer.
        Ok(u32::try_from(list).unwrap_or(u32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> Rules {
        Rules::parse(text, Path::new("test.rules")).expect("rules parse")
    }

    fn error(text: &str) -> RulesError {
        Rules::parse(text, Path::new("test.rules")).expect_err("rules must not parse")
    }

    /// The verdict and text for a sender.
    fn mail(rules: &Rules, sender: &str) -> (Verdict, Option<String>) {
        let outcome = rules.sender(sender).expect("no cdb errors");
        (outcome.verdict, outcome.text)
    }

    fn accepted(text: &str) -> (Verdict, Option<String>) {
        (Verdict::Accept, Some(text.to_string()))
    }

    #[test]
    fn mailfront_asterisk_empty_and_negate() {
        // mailfront's tests/rules-asterisk, rules-empty and rules-negate.
        let r = rules("ka@a:*:K1\nk*@a:*:K2\nkc@*:*:K3\nk*:*:K4\n");
        for (sender, want) in [("a@a", "K1"), ("b@a", "K2"), ("c@b", "K3"), ("d@d", "K4")] {
            assert_eq!(mail(&r, sender), accepted(want), "{sender}");
        }
        assert_eq!(mail(&r, ""), accepted("K4"));
        assert_eq!(mail(&r, "1@2@a@a"), accepted("K2"));
        let r = rules("k:*:K1\nk*:*:K2\n");
        assert_eq!(mail(&r, ""), accepted("K1"));
        assert_eq!(mail(&r, "foo@example.com"), accepted("K2"));
        let r = rules("k!a@example.com:*:A\nk!!a@example.com:*:B\n");
        assert_eq!(mail(&r, "a@example.com"), accepted("B"));
        assert_eq!(mail(&r, "b@example.net"), accepted("A"));
    }

    #[test]
    fn mailfront_and_chains() {
        // mailfront's tests/rules-and: a failed link skips the rest of its chain.
        let dir = std::env::temp_dir().join(format!("smtpfront-rules-and-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let domains = dir.join("domains");
        std::fs::write(&domains, "example.com\n").expect("write list");
        let text = format!(
            "&a@*:*:K1\nk[[@{}]]:*:K2\n&b@*:*:K3\n&*@example.com:*:K4\nk*:*:K5\nk*:*:K6\n",
            domains.display()
        );
        let r = rules(&text);
        std::fs::remove_dir_all(&dir).expect("cleanup");
        for (sender, want) in [
            ("a@example.com", "K2"),
            ("b@example.com", "K5"),
            ("c@example.com", "K6"),
            ("a@example.net", "K6"),
            ("b@example.net", "K6"),
            ("c@example.net", "K6"),
        ] {
            assert_eq!(mail(&r, sender), accepted(want), "{sender}");
        }
    }

    #[test]
    fn selectors_and_classification() {
        // mailfront's tests/rules-selector.
        let r = rules(":sender\nkone@example.com:two@example.net:A\n:r\nktwo@example.net:*:B\n");
        assert_eq!(mail(&r, "one@example.com"), accepted("A"));
        let out = r
            .recipient("one@example.com", "three@example.org")
            .expect("ok");
        assert_eq!(out.verdict, Verdict::NoMatch);
        assert_eq!(mail(&r, "two@example.net").0, Verdict::NoMatch);
        let out = r
            .recipient("two@example.net", "four@example.biz")
            .expect("ok");
        assert_eq!(
            (out.verdict, out.text.as_deref()),
            (Verdict::Accept, Some("B"))
        );
        // Before a selector: `*` recipient = sender rule; a chain goes where its rules all go.
        let r = rules("d*:*@x:R\n&s@*:*\nz*:*@y:D\n&u@*:*\nk*:*:S\n");
        assert_eq!(r.table.len(Selector::Sender), 2);
        assert_eq!(r.table.len(Selector::Recipient), 3);
        let out = r.recipient("s@a", "b@y").expect("ok");
        assert_eq!(
            (out.verdict, out.text.as_deref()),
            (Verdict::Defer, Some("D"))
        );
        assert_eq!(
            r.recipient("t@a", "b@y").expect("ok").verdict,
            Verdict::NoMatch
        );
        assert_eq!(
            r.recipient("t@a", "b@x").expect("ok").verdict,
            Verdict::Reject
        );
        assert_eq!(mail(&r, "u@a"), accepted("S"));
        assert_eq!(mail(&r, "v@a").0, Verdict::NoMatch);
    }

    #[test]
    fn fields_accumulate_over_noop_rules() {
        let r = rules(concat!(
            "n*:*:ignored:5000::A=1\n",
            "n*:*@x::300:+one:B=2,A=3\n",
            "n*:*@x::::C=\"x,y\"\n",
            "p*:*@x::9000:+two\n",
            "k*:*:S:100:+sender-ignored:S=1\n",
        ));
        let out = r.recipient("s@a", "r@x").expect("ok");
        assert_eq!(out.verdict, Verdict::Pass);
        assert_eq!(out.text, None);
        assert_eq!(out.databytes, Some(300));
        assert_eq!(out.relayclient.as_deref(), Some("+one+two"));
        let env: Vec<String> = out
            .environment
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        assert_eq!(env, ["B=2", "A=3", "C=x,y"]);
        let out = r.sender("s@a").expect("ok");
        assert_eq!(out.databytes, Some(100));
        assert_eq!(out.relayclient, None);
        let env: Vec<String> = out
            .environment
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        assert_eq!(env, ["A=1", "S=1"]);
        // Nothing decides: the fields of the `n` rules still come back.
        let out = r.recipient("s@a", "r@elsewhere").expect("ok");
        assert_eq!(out.verdict, Verdict::NoMatch);
        assert!(out.environment.is_empty());
    }

    #[test]
    fn default_texts() {
        let r = rules("da@*:*\nzb@*:*\nkc@*:*\npd@*:*\nde@*:*: custom \\n two \n");
        let text = |s: &str| {
            r.sender(s)
                .expect("ok")
                .text_or_default()
                .map(str::to_string)
        };
        assert_eq!(text("a@x").as_deref(), Some(REJECT_TEXT));
        assert_eq!(text("b@x").as_deref(), Some(DEFER_TEXT));
        assert_eq!(text("c@x"), None);
        assert_eq!(text("d@x"), None);
        assert_eq!(text("e@x").as_deref(), Some("custom \n two"));
        assert_eq!(text("f@x"), None);
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = error("# comment\nk*:*\n\nk*:*::12x\n");
        assert_eq!((e.line, e.file.as_path()), (4, Path::new("test.rules")));
        assert!(e.to_string().starts_with("test.rules:4: databytes"), "{e}");
        assert_eq!(error("k*:*\n&a:*\n").line, 2);
        assert_eq!(error("&a:*\n:sender\nk*:*\n").line, 2);
        assert_eq!(error("k*:*\nk[[/nonexistent/smtpfront-list]]:*\n").line, 2);
        assert_eq!(error("k*:*\nwhat\n").line, 2);
        assert_eq!(error("k*:*\nk[oops:*\n").line, 2);
        // A missing cdb is not an error: it matches nothing.
        let r = rules("k[[/nonexistent/smtpfront.cdb]]:*:LIST\nd*:*\n");
        assert_eq!(mail(&r, "a@b").0, Verdict::Reject);
    }

    #[test]
    fn load_reads_files() {
        let dir = std::env::temp_dir().join(format!("smtpfront-rules-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("rules");
        std::fs::write(&path, "k*:*:OK\r\n").expect("write");
        let r = Rules::load(&path).expect("loads");
        assert_eq!(mail(&r, "a@b"), accepted("OK"));
        std::fs::write(&path, b"k*:*:OK\nk*:*:\xff\n").expect("write");
        let e = Rules::load(&path).expect_err("bad UTF-8");
        assert_eq!(e.line, 2);
        let e = Rules::load(&dir.join("missing")).expect_err("missing");
        assert_eq!(e.line, 0);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    /// A loaded file answers as the same text parsed, indexed or not: indexed rules parsed
    /// again from their lines, with escapes, and the last line without its newline; and
    /// goes on answering so when the file is changed in place.
    #[test]
    fn mapped_files_and_indexed_rules_answer_as_parsed_text() {
        let dir = std::env::temp_dir().join(format!("smtpfront-rules-map-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let list = dir.join("list");
        std::fs::write(&list, "listed@x\n").expect("write list");
        let text = format!(
            "n*:*@x::100::A=1\nk*:a\\:b@x:ESCAPED\nd*:*@Example.COM:Domain\\nrule\n\
             k[[{}]]:u@example.org:LISTED\n&*:c@x\nz*:*:CHAIN\nkz@*:*@y:no newline",
            list.display()
        );
        let path = dir.join("rules");
        std::fs::write(&path, &text).expect("write");
        let mapped = Rules::load(&path).expect("loads");
        assert!(matches!(mapped.file, Source::Mapped(_)));
        // Edited in place while a session uses it (truncated, then rewritten): the session
        // keeps its copy. A mapping of the file would raise SIGBUS below.
        std::fs::write(&path, "").expect("truncate");
        std::fs::write(&path, "dx@x:*\n").expect("rewrite");
        std::fs::write(dir.join("empty"), "").expect("write");
        let empty = Rules::load(&dir.join("empty")).expect("loads");
        assert_eq!(mail(&empty, "a@b").0, Verdict::NoMatch);
        let parsed = rules(&text);
        let origin = Path::new("t");
        let plain = Rules::build(Source::Owned(text.clone()), origin, Table::without_index)
            .expect("parses");
        std::fs::remove_dir_all(&dir).expect("cleanup");
        let addresses = [
            "a:b@x",
            "A:B@X",
            "u@example.org",
            "u@example.com",
            "listed@x",
            "c@x",
            "z@q",
            "w@y",
            "",
        ];
        for s in addresses {
            for r in addresses {
                let want = plain.recipient(s, r).expect("ok");
                assert_eq!(mapped.recipient(s, r).expect("ok"), want, "{s} {r}");
                assert_eq!(parsed.recipient(s, r).expect("ok"), want, "{s} {r}");
            }
        }
        let answer = |s: &str, r: &str| {
            let out = mapped.recipient(s, r).expect("ok");
            (out.verdict, out.text, out.databytes)
        };
        let accepted = |t: &str, d| (Verdict::Accept, Some(t.to_string()), d);
        assert_eq!(answer("s@s", "A:b@x"), accepted("ESCAPED", Some(100)));
        assert_eq!(
            answer("s@s", "q@example.com"),
            (Verdict::Reject, Some("Domain\nrule".to_string()), None)
        );
        assert_eq!(
            answer("listed@x", "u@example.org"),
            accepted("LISTED", None)
        );
        assert_eq!(answer("s@s", "c@x").0, Verdict::Defer);
        assert_eq!(answer("z@q", "w@y"), accepted("no newline", None));
        assert_eq!(answer("y@q", "w@y").0, Verdict::NoMatch);
    }
}
