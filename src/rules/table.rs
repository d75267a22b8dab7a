//! One list of rules (the sender rules or the recipient rules) and its evaluation (SPEC 5).
//!
//! This module owns the order in which rules are tried, the `&` chains, and the fields that
//! accumulate on the way to the deciding rule (see the module doc of `rules` for the
//! semantics and their mailfront references).
//!
//! Speed: a large rules file is mostly rules for one address or one domain (`d*:user@x`,
//! `k*:*@example.com`). Trying 10,000 of them one by one for every address would cost a
//! tenth of a millisecond or more each time, so such rules are also entered in hash tables
//! keyed by that address or domain. An evaluation merges, in file order, the rules that must
//! always be tried with the few that the tables give for this sender and recipient; every
//! candidate is still tested in full, so the tables only skip rules that cannot match. Rules
//! in an `&` chain are never skipped this way: a failed link must reach the rule it guards.

use std::collections::HashMap;
use std::path::Path;

use super::list::List;
use super::parse::Action;
use super::pattern::{Address, Glob, IndexKey};
use super::{error_at, Outcome, RulesError, Verdict};

/// What is rarely needed when a rule is tried, kept out of line so that the rules a scan
/// walks through stay small.
pub(crate) struct Fields {
    pub(crate) line: usize,
    pub(crate) response: Option<String>,
    pub(crate) databytes: Option<u64>,
    pub(crate) relayclient: String,
    pub(crate) environment: Vec<(String, String)>,
}

pub(crate) struct Rule {
    pub(crate) action: Action,
    pub(crate) sender: Pattern,
    pub(crate) recipient: Pattern,
    pub(crate) fields: Box<Fields>,
}

pub(crate) struct Pattern {
    pub(crate) negated: bool,
    pub(crate) test: Test,
}

pub(crate) enum Test {
    Glob(Glob),
    /// Index into `Rules::lists`.
    List {
        list: usize,
        domain_only: bool,
    },
}

impl Pattern {
    fn index_key(&self) -> Option<IndexKey<'_>> {
        match (&self.test, self.negated) {
            (Test::Glob(glob), false) => glob.index_key(),
            _ => None,
        }
    }
}

const SENDER: usize = 0;
const RECIPIENT: usize = 1;

/// Rule positions by the one address (`exact`) or domain (`domain`) their pattern can match,
/// for the sender pattern (`[SENDER]`) and the recipient pattern (`[RECIPIENT]`).
#[derive(Default)]
struct Index {
    exact: [HashMap<String, Vec<usize>>; 2],
    domain: [HashMap<String, Vec<usize>>; 2],
}

#[derive(Default)]
pub(crate) struct Table {
    rules: Vec<Rule>,
    /// Positions of the rules not in `index`, in order.
    always: Vec<usize>,
    index: Index,
    /// Off only in tests, to check that the index changes no answer.
    no_index: bool,
}

impl Table {
    #[cfg(test)]
    pub(crate) fn without_index() -> Table {
        Table {
            no_index: true,
            ..Table::default()
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.rules.len()
    }

    /// Appends a complete chain: `&` rules and the rule they guard, or one lone rule.
    pub(crate) fn push_chain(&mut self, chain: Vec<Rule>, recipient_rules: bool) {
        let lone = chain.len() == 1;
        for rule in chain {
            let position = self.rules.len();
            // Sender rules never look at the recipient pattern.
            let sender_key = || rule.sender.index_key().map(|k| (SENDER, k));
            let key = match recipient_rules {
                true => rule
                    .recipient
                    .index_key()
                    .map(|k| (RECIPIENT, k))
                    .or_else(sender_key),
                false => sender_key(),
            };
            match key.filter(|_| lone && !self.no_index) {
                Some((side, IndexKey::Exact(key))) => {
                    let slot = self.index.exact[side].entry(key.to_string());
                    slot.or_default().push(position);
                }
                Some((side, IndexKey::Domain(key))) => {
                    let slot = self.index.domain[side].entry(key.to_string());
                    slot.or_default().push(position);
                }
                None => self.always.push(position),
            }
            self.rules.push(rule);
        }
    }

    /// Positions of the indexed rules that may match these addresses, in order.
    fn indexed_candidates(&self, addresses: [Option<&Address>; 2]) -> Vec<usize> {
        let mut found = Vec::new();
        for (side, address) in addresses.into_iter().enumerate() {
            let Some(address) = address else { continue };
            if let Some(hits) = self.index.exact[side].get(address.as_str()) {
                found.extend_from_slice(hits);
            }
            if let Some((_, domain)) = address.domain() {
                if let Some(hits) = self.index.domain[side].get(domain) {
                    found.extend_from_slice(hits);
                }
            }
        }
        found.sort_unstable();
        found
    }

    /// The first deciding rule for `sender` (and `recipient`, for the recipient rules).
    pub(crate) fn run(
        &self,
        lists: &[List],
        origin: &Path,
        sender: &Address,
        recipient: Option<&Address>,
    ) -> Result<Outcome, RulesError> {
        let indexed = self.indexed_candidates([Some(sender), recipient]);
        let mut effects = Effects::default();
        // False after a failed `&`, until the rule that chain guards has been skipped.
        let mut chain_ok = true;
        for position in merge(&self.always, &indexed) {
            let rule = &self.rules[position];
            let hit = chain_ok && rule_matches(rule, lists, origin, sender, recipient)?;
            if rule.action == Action::And {
                chain_ok = hit;
                continue;
            }
            chain_ok = true;
            if !hit {
                continue;
            }
            effects.apply(&rule.fields, recipient.is_some());
            let verdict = match rule.action {
                Action::Noop | Action::And => continue,
                Action::Accept => Verdict::Accept,
                Action::Reject => Verdict::Reject,
                Action::Defer => Verdict::Defer,
                Action::Pass => Verdict::Pass,
            };
            return Ok(effects.finish(verdict, rule.fields.response.clone()));
        }
        Ok(effects.finish(Verdict::NoMatch, None))
    }
}

/// The union of two ascending sequences, ascending.
fn merge<'a>(a: &'a [usize], b: &'a [usize]) -> impl Iterator<Item = usize> + 'a {
    let (mut a, mut b) = (a.iter().peekable(), b.iter().peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(&&x), Some(&&y)) if y < x => b.next().copied(),
        (Some(_), _) => a.next().copied(),
        (None, _) => b.next().copied(),
    })
}

fn rule_matches(
    rule: &Rule,
    lists: &[List],
    origin: &Path,
    sender: &Address,
    recipient: Option<&Address>,
) -> Result<bool, RulesError> {
    let test = |pattern: &Pattern, address: &Address| -> Result<bool, RulesError> {
        let hit = match &pattern.test {
            Test::Glob(glob) => glob.matches(address),
            Test::List { list, domain_only } => {
                let list = &lists[*list];
                list.matches(address, *domain_only).map_err(|e| {
                    let (origin, line) = (origin.display(), rule.fields.line);
                    let reason = format!("{e} (a list of the rule at {origin}:{line})");
                    error_at(list.path(), 0, reason)
                })?
            }
        };
        Ok(hit != pattern.negated)
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
    fn apply(&mut self, fields: &Fields, for_recipient: bool) {
        if let Some(limit) = fields.databytes {
            self.databytes = Some(self.databytes.map_or(limit, |d| d.min(limit)));
        }
        if for_recipient {
            self.relayclient.push_str(&fields.relayclient);
        }
        self.environment.extend(fields.environment.iter().cloned());
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
    use super::super::Rules;
    use super::*;

    #[test]
    fn merge_keeps_order() {
        let merged: Vec<usize> = merge(&[1, 4, 5, 9], &[0, 2, 6, 10, 11]).collect();
        assert_eq!(merged, [0, 1, 2, 4, 5, 6, 9, 10, 11]);
        assert_eq!(merge(&[], &[3]).collect::<Vec<_>>(), [3]);
        assert_eq!(merge(&[3], &[]).collect::<Vec<_>>(), [3]);
    }

    #[test]
    fn indexed_rules_are_found() {
        let text = ":r\nd*:a@x:A\nd*:*@y:Y\nkb@z:*@w:B\n&*:c@x\nd*:*:C\nz*:*:Z\n";
        let rules = Rules::parse(text, Path::new("t")).expect("parses");
        let table = &rules.recipient_rules;
        assert_eq!(
            table.always.len(),
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
            let indexed = Rules::build(&text, origin, Table::default);
            let plain = Rules::build(&text, origin, Table::without_index);
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
