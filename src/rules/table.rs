//! The rules of a file in their two lists (sender rules, recipient rules), and their
//! evaluation (SPEC 5).
//!
//! This module owns the order in which rules are tried, the `&` chains, and the fields that
//! accumulate on the way to the deciding rule (see the module doc of `rules` for the
//! semantics and their mailfront references).
//!
//! Speed: a large rules file is mostly rules for one address or one domain (`d*:user@x`,
//! `k*:*@example.com`). Trying 10,000 of them one by one for every address would cost a
//! tenth of a millisecond or more each time, so such rules are entered in a hash index
//! (`index.rs`) under that address or domain instead. An evaluation merges, in file order,
//! the rules that must always be tried with the few that the index gives for this sender and
//! recipient; every candidate is still tested in full, so the index only skips rules that
//! cannot match. Rules in an `&` chain are never skipped this way: a failed link must reach
//! the rule it guards. The rules that are always tried are scanned from a dense vector of
//! their quick conditions ([`Scan`]), which refuses most of them without reading them.
//!
//! The rules file is loaded in every session, so the table is a handful of vectors, whatever
//! the number of rules, and holds as few bytes per rule as it can: every 4 KiB of it is a
//! fresh page for the kernel to fault in, a few microseconds each on a virtual machine. A
//! rule that is always tried is a small record, its texts spans of the rules text, and what
//! it does when applied is read again from the text (`tail.rs`) when it is. An indexed rule
//! is only its index entry, the place of its line: a lookup that finds it parses the line
//! again (`Reparse`), which costs less than keeping it, as the index finds few rules.

use std::borrow::Cow;
use std::path::Path;

use super::index::{Index, Kind};
use super::list::List;
use super::parse::{Action, Selector};
use super::pattern::{Address, IndexKey, Pattern};
use super::quick::Quick;
use super::tail::{self, Tail};
use super::text::{self, Text, TextBuilder};
use super::{error_at, Outcome, RulesError, Verdict};

/// A rule, as a lookup tests it. What it changes when applied is read again from the text,
/// and so is its line number (only an error message needs it): a large rules file is
/// loaded in every session, and every byte here is written for every rule that is always
/// tried (a size test below keeps it at 48).
pub(crate) struct Rule {
    pub(crate) action: Action,
    pub(crate) sender: Pattern,
    pub(crate) recipient: Pattern,
    /// Where its fields after the patterns start, as written and checked at load: they run
    /// to the end of the line (see [`text::rest_of_line`] and [`tail::tail`]).
    pub(crate) tail: u32,
}

/// A list lookup that failed (only cdb lookups can).
struct ListError<'a>(&'a List, crate::cdb::CdbError);

/// A rule that every scan of its list tries, as the scan reads it first: the place of its
/// line, and what its patterns need of the addresses. A scan reads these from a small, dense
/// vector, and refuses most rules on them alone, without reading the rules (see `quick.rs`).
#[derive(Debug, Clone, Copy)]
struct Scan {
    /// Where the line of the rule starts in the rules file (the order of the rules), with
    /// [`AND`] set for an `&` rule.
    rule: u32,
    sender: Quick,
    /// [`Quick::ANY`] in the sender list, which does not look at the recipient pattern.
    recipient: Quick,
}

/// Marks an `&` rule in [`Scan::rule`]: a file is under 2 GiB (`text::MAX_FILE_LEN`).
const AND: u32 = 1 << 31;

impl Scan {
    fn new(line: u32, rule: &Rule, list: Selector) -> Scan {
        let and = if rule.action == Action::And { AND } else { 0 };
        let recipient = match list {
            Selector::Sender => Quick::ANY,
            Selector::Recipient => rule.recipient.prefilter(),
        };
        Scan {
            rule: line | and,
            sender: rule.sender.prefilter(),
            recipient,
        }
    }

    fn line(&self) -> u32 {
        self.rule & !AND
    }

    fn is_and(&self) -> bool {
        self.rule & AND != 0
    }

    /// Whether the rule may match these addresses.
    #[inline(always)]
    fn allows(&self, sender: &Address, recipient: Option<&Address>) -> bool {
        self.sender.allows(sender) && recipient.is_none_or(|r| self.recipient.allows(r))
    }
}

/// The rules of a file, in file order, in their two lists.
#[derive(Default)]
pub(crate) struct Table {
    /// Per list, sender rules first: its rules not in `index`, in order ...
    always: [Vec<Scan>; 2],
    /// ... and the same rules in full, one for one.
    rules: [Vec<Rule>; 2],
    /// The number of rules of each list.
    count: [usize; 2],
    index: Index,
    /// Off only in tests, to check that the index changes no answer.
    no_index: bool,
}

/// The position in [`Table::always`] and [`Table::count`] of a list.
fn slot(list: Selector) -> usize {
    match list {
        Selector::Sender => 0,
        Selector::Recipient => 1,
    }
}

impl Table {
    #[cfg(test)]
    pub(crate) fn without_index() -> Table {
        Table {
            no_index: true,
            ..Table::default()
        }
    }

    /// Makes room for `rules` rules: growing the vectors as the file is read would copy them
    /// while they are small, and leave the old copies behind as written pages. Room never
    /// written costs only address space.
    pub(crate) fn reserve(&mut self, rules: usize) {
        for list in 0..2 {
            self.always[list].reserve(rules);
            self.rules[list].reserve(rules);
        }
        self.index.reserve(rules);
    }

    /// The number of rules in `list`.
    pub(crate) fn len(&self, list: Selector) -> usize {
        self.count[slot(list)]
    }

    /// Appends a complete chain to `list`, leaving `chain` empty: `&` rules and the rule they
    /// guard, or one lone rule, each with the place of its line. `text` holds the texts of
    /// their spans.
    pub(crate) fn push_chain(
        &mut self,
        list: Selector,
        chain: &mut Vec<(u32, Rule)>,
        text: &TextBuilder,
    ) {
        let lone = chain.len() == 1;
        for (line, rule) in chain.drain(..) {
            self.push(list, line, rule, lone, text);
        }
    }

    /// Appends the rule of the line at `line` (a place in the file) to `list`; `lone` when it
    /// is not part of an `&` chain, whose rules are never skipped and so never indexed.
    /// Inline: this runs for every rule of the file.
    #[inline(always)]
    pub(crate) fn push(
        &mut self,
        list: Selector,
        line: u32,
        rule: Rule,
        lone: bool,
        text: &TextBuilder,
    ) {
        let key = |pattern: &Pattern, side| {
            Some(match pattern.index_key()? {
                IndexKey::Exact(key) => (Kind::new(list, side, false), key),
                IndexKey::Domain(key) => (Kind::new(list, side, true), key),
            })
        };
        // Sender rules never look at the recipient pattern.
        let key = match (lone && !self.no_index, list) {
            (false, _) => None,
            (true, Selector::Sender) => key(&rule.sender, Selector::Sender),
            (true, Selector::Recipient) => key(&rule.recipient, Selector::Recipient)
                .or_else(|| key(&rule.sender, Selector::Sender)),
        };
        match key {
            Some((kind, key)) => self.index.push(kind, text.get(key), line),
            None => {
                self.always[slot(list)].push(Scan::new(line, &rule, list));
                self.rules[slot(list)].push(rule);
            }
        }
        self.count[slot(list)] += 1;
    }

    /// Readies the index once every rule is in.
    pub(crate) fn finish(&mut self) {
        self.index.link();
    }

    /// The lines of the indexed rules of `list` that may match these addresses, in order.
    fn indexed_candidates(
        &self,
        list: Selector,
        sender: &Address,
        recipient: Option<&Address>,
    ) -> Vec<u32> {
        let mut found = Vec::new();
        let sides = [
            (Some(sender), Selector::Sender),
            (recipient, Selector::Recipient),
        ];
        for (address, side) in sides {
            let Some(address) = address else { continue };
            let exact = Kind::new(list, side, false);
            self.index.find(exact, address.as_str(), &mut found);
            if let Some((_, name)) = address.domain() {
                let domain = Kind::new(list, side, true);
                self.index.find(domain, name, &mut found);
            }
        }
        found.sort_unstable();
        // Found twice only through equal hashes of two keys: it is one rule, tried once.
        found.dedup();
        found
    }

    /// The first deciding rule of `list` for `sender` (and `recipient`, for the recipient
    /// rules); `text` is the rules text, `reparse` gives the indexed rules.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run(
        &self,
        list: Selector,
        text: Text<'_>,
        lists: &[List],
        origin: &Path,
        reparse: &dyn Fn(u32) -> Option<Reparsed>,
        sender: &Address,
        recipient: Option<&Address>,
    ) -> Result<Outcome, RulesError> {
        let indexed = self.indexed_candidates(list, sender, recipient);
        let (always, rules) = (&self.always[slot(list)], &self.rules[slot(list)]);
        let mut effects = Effects::default();
        // False after a failed `&`, until the rule that chain guards has been skipped.
        let mut chain_ok = true;
        // The indexed rule being tried, and the text of its spans.
        let mut found: Reparsed;
        let mut merge = Merge::new(always, &indexed);
        loop {
            // Most rules are refused by their quick conditions: passed over in a tight loop,
            // with what a refused rule does to a chain (an `&` fails it, another ends it).
            merge.skip_while(|scan| {
                let refused = !scan.allows(sender, recipient);
                if refused {
                    chain_ok = !scan.is_and();
                }
                refused
            });
            let Some(candidate) = merge.next() else {
                break;
            };
            let (rule, scan, text) = match candidate {
                Candidate::Always(at) => (&rules[at], Some(&always[at]), text),
                Candidate::Indexed(line) => {
                    found = reparse(line).ok_or_else(|| {
                        let line = text::line_number(text.file(), line);
                        let reason = "rule changed since the file was loaded".to_string();
                        error_at(origin, line, reason)
                    })?;
                    let text = Text::new(text.file(), &found.decoded);
                    (&found.rule, None, text)
                }
            };
            // Indexed rules are never in `&` chains.
            let is_and = scan.is_some_and(Scan::is_and);
            let hit = chain_ok
                && scan.is_none_or(|scan| scan.allows(sender, recipient))
                && rule_matches(rule, text, lists, sender, recipient).map_err(
                    |ListError(list, e)| {
                        let origin = origin.display();
                        let line = text::line_number(text.file(), rule.tail);
                        let reason = format!("{e} (a list of the rule at {origin}:{line})");
                        error_at(list.path(), 0, reason)
                    },
                )?;
            if is_and {
                chain_ok = hit;
                continue;
            }
            chain_ok = true;
            if !hit {
                continue;
            }
            let Ok(tail) = tail::tail(text::rest_of_line(text.file(), rule.tail)) else {
                debug_assert!(false, "the fields of a rule are checked at load");
                continue;
            };
            effects.apply(&tail, recipient.is_some());
            let verdict = match rule.action {
                Action::Noop | Action::And => continue,
                Action::Accept => Verdict::Accept,
                Action::Reject => Verdict::Reject,
                Action::Defer => Verdict::Defer,
                Action::Pass => Verdict::Pass,
            };
            return Ok(effects.finish(verdict, tail.response.map(Cow::into_owned)));
        }
        Ok(effects.finish(Verdict::NoMatch, None))
    }
}

/// An indexed rule parsed again from its line (see the module doc), with the texts decoded
/// from it: its spans past the end of the file are spans of `decoded`.
pub(crate) struct Reparsed {
    pub(crate) rule: Rule,
    pub(crate) decoded: String,
}

/// A rule to try: the one at this position of [`Table::always`], or the indexed one whose
/// line starts at this place of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Candidate {
    Always(usize),
    Indexed(u32),
}

/// The rules of `always` and the lines of `indexed`, both in file order, in file order.
struct Merge<'a> {
    always: &'a [Scan],
    indexed: &'a [u32],
    /// The next of each.
    a: usize,
    b: usize,
}

impl<'a> Merge<'a> {
    fn new(always: &'a [Scan], indexed: &'a [u32]) -> Merge<'a> {
        Merge {
            always,
            indexed,
            a: 0,
            b: 0,
        }
    }

    /// Passes over the rules of `always` for which `skip` says so, up to the next indexed one.
    #[inline(always)]
    fn skip_while(&mut self, mut skip: impl FnMut(&Scan) -> bool) {
        let limit = self.indexed.get(self.b).copied().unwrap_or(u32::MAX);
        while let Some(scan) = self.always.get(self.a) {
            if scan.line() > limit || !skip(scan) {
                break;
            }
            self.a += 1;
        }
    }

    fn next(&mut self) -> Option<Candidate> {
        let (a, b) = (self.always.get(self.a), self.indexed.get(self.b));
        match (a, b) {
            (Some(x), Some(&y)) if y < x.line() => {
                self.b += 1;
                Some(Candidate::Indexed(y))
            }
            (Some(_), _) => {
                self.a += 1;
                Some(Candidate::Always(self.a - 1))
            }
            (None, Some(&y)) => {
                self.b += 1;
                Some(Candidate::Indexed(y))
            }
            (None, None) => None,
        }
    }
}

fn rule_matches<'a>(
    rule: &Rule,
    text: Text<'_>,
    lists: &'a [List],
    sender: &Address,
    recipient: Option<&Address>,
) -> Result<bool, ListError<'a>> {
    let test = |pattern: &Pattern, address: &Address| {
        pattern.matches(text, address, |list, domain_only| {
            let list = &lists[list];
            list.matches(address, domain_only)
                .map_err(|e| ListError(list, e))
        })
    };
    if !test(&rule.sender, sender)? {
        return Ok(false);
    }
    match recipient {
        Some(recipient) => test(&rule.recipient, recipient),
        None => Ok(true),
    }
}

/// Fields of the rules applied so far in one evaluation.
#[derive(Default)]
struct Effects {
    databytes: Option<u64>,
    relayclient: String,
    environment: Vec<(String, String)>,
}

impl Effects {
    fn apply(&mut self, tail: &Tail, for_recipient: bool) {
        if let Some(limit) = tail.databytes {
            let limit = limit.get();
            self.databytes = Some(self.databytes.map_or(limit, |d| d.min(limit)));
        }
        if for_recipient {
            self.relayclient.push_str(&tail.relayclient);
        }
        let environment = &mut self.environment;
        let checked = tail::environment(tail.environment, |name, value| {
            environment.push((name.to_string(), value.to_string()));
        });
        debug_assert!(checked.is_ok(), "ENVIRONMENT is checked at load");
    }

    fn finish(self, verdict: Verdict, text: Option<String>) -> Outcome {
        Outcome {
            verdict,
            text,
            databytes: self.databytes,
            relayclient: (!self.relayclient.is_empty()).then_some(self.relayclient),
            environment: self.environment,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Rules, Source};
    use super::*;

    /// Every byte of these is written for every rule of a file, in every session.
    #[test]
    fn records_stay_small() {
        assert!(std::mem::size_of::<Rule>() <= 48);
        assert!(std::mem::size_of::<Scan>() <= 12);
    }

    #[test]
    fn merge_keeps_order() {
        let scans = |positions: &[u32]| -> Vec<Scan> {
            let (sender, recipient) = (Quick::ANY, Quick::ANY);
            let scan = |&rule| Scan {
                rule,
                sender,
                recipient,
            };
            positions.iter().map(scan).collect()
        };
        let merge = |a: &[u32], b: &[u32]| -> Vec<(u32, bool)> {
            let scans = scans(a);
            let line = |c| match c {
                Candidate::Always(at) => (a[at], true),
                Candidate::Indexed(line) => (line, false),
            };
            let mut merge = Merge::new(&scans, b);
            std::iter::from_fn(|| merge.next()).map(line).collect()
        };
        let merged = merge(&[1, 4, 5, 9], &[0, 2, 6, 10, 11]);
        let lines: Vec<u32> = merged.iter().map(|&(p, _)| p).collect();
        assert_eq!(lines, [0, 1, 2, 4, 5, 6, 9, 10, 11]);
        assert!(merged
            .iter()
            .all(|&(p, always)| always == [1, 4, 5, 9].contains(&p)));
        assert_eq!(merge(&[], &[3]), [(3, false)]);
        assert_eq!(merge(&[3], &[]), [(3, true)]);
    }

    #[test]
    fn indexed_rules_are_found() {
        let text = ":r\nd*:a@x:A\nd*:*@y:Y\nkb@z:*@w:B\n&*:c@x\nd*:*:C\nz*:*:Z\n";
        let rules = Rules::parse(text, Path::new("t")).expect("parses");
        let table = &rules.table;
        assert_eq!(
            table.always[1].len(),
            3,
            "chain rules and the catch-all are not indexed"
        );
        let verdict = |s: &str, r: &str| rules.recipient(s, r).expect("ok").text;
        assert_eq!(verdict("s@s", "A@X").as_deref(), Some("A"));
        assert_eq!(verdict("s@s", "q@Y").as_deref(), Some("Y"));
        assert_eq!(verdict("b@z", "q@w").as_deref(), Some("B"));
        assert_eq!(verdict("b@z", "c@x").as_deref(), Some("C"));
        assert_eq!(verdict("b@z", "d@x").as_deref(), Some("Z"));
    }

    /// Random rule files: the indexed and the plain scan must give the same outcomes.
    #[test]
    fn index_changes_no_answer() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: usize| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
        };
        let actions = ["k", "d", "z", "p", "n", "&", "&"];
        let patterns = [
            "*", "a@x", "A@X", "*@x", "*@y", "!a@x", "!*@x", "b@y", "", "?@x", "*",
        ];
        let addresses = ["a@x", "b@x", "b@y", "a@b@x", "", "a", "c@y"];
        for _ in 0..300 {
            let mut text = String::new();
            for n in 0..next(12) {
                let action = actions[next(actions.len())];
                let sender = patterns[next(patterns.len())];
                let recipient = patterns[next(patterns.len())];
                text.push_str(&format!(
                    "{action}{sender}:{recipient}:R{n}:{}::V=N{n}\n",
                    n + 1
                ));
                if next(5) == 0 {
                    text.push_str([":sender\n", ":recipient\n"][next(2)]);
                }
            }
            text.push_str("k*:*:END\n");
            let origin = Path::new("t");
            let indexed = Rules::build(Source::Owned(text.clone()), origin, Table::default);
            let plain = Rules::build(Source::Owned(text.clone()), origin, Table::without_index);
            let (Ok(indexed), Ok(plain)) = (indexed, plain) else {
                continue; // a selector inside a chain
            };
            for s in addresses {
                assert_eq!(indexed.sender(s).ok(), plain.sender(s).ok(), "{text}\n{s}");
                for r in addresses {
                    let a = indexed.recipient(s, r).ok();
                    assert_eq!(a, plain.recipient(s, r).ok(), "{text}\n{s} {r}");
                }
            }
        }
    }
}
