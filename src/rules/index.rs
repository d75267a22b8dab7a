//! The hash index of a rule table: the lines of the rules by the one address or the one domain
//! their pattern can match (see `table.rs` for why rules are indexed at all).
//!
//! This module owns that table and its hash function. Keys are texts of the rules as written;
//! lookups are with lower-cased addresses, so hashing folds ASCII case. Only hashes are
//! kept and compared: every rule found is parsed again from its line and tested in full
//! (`table.rs`), so a collision costs a test, never a wrong answer, and an entry is three
//! words (a large file is loaded in every session: every byte here is a byte of fresh memory
//! per rule).
//!
//! Why not a `HashMap<String, Vec<usize>>`: the rules file is loaded in every session, and
//! for a 10,000-rule file a `String` and a `Vec` per key, their `free`s at exit and SipHash
//! cost more than the rest of loading. Here the whole index is two vectors: the entries, hashed
//! as the file is read, and the bucket heads, which chain them once it is read. The hash is
//! FxHash's multiply-and-rotate, eight bytes at a time; hash flooding is no concern, as the
//! keys come from the administrator's rules file, not from clients.

use super::parse::Selector;
use super::swar::lower8;

/// What a key is for: the list of the rule, which of its patterns gave the key, and
/// whether the key is an address or a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Kind(u8);

impl Kind {
    pub(crate) fn new(list: Selector, pattern: Selector, domain: bool) -> Kind {
        let bit = |selector| u8::from(selector == Selector::Recipient);
        Kind(bit(list) << 2 | bit(pattern) << 1 | u8::from(domain))
    }
}

struct Entry {
    /// Of the key and its kind.
    hash: u32,
    /// Where the line of the rule starts in the rules file.
    line: u32,
    /// The next entry of the same bucket, or [`END`].
    next: u32,
}

const END: u32 = u32::MAX;

#[derive(Default)]
pub(crate) struct Index {
    entries: Vec<Entry>,
    /// First entry of each bucket, or [`END`]; a power of two long (empty if no entries).
    heads: Vec<u32>,
}

impl Index {
    /// Makes room for `keys` more keys.
    pub(crate) fn reserve(&mut self, keys: usize) {
        self.entries.reserve(keys);
    }

    /// Adds the rule of the line at `line` under `key`; [`Index::link`] must follow the
    /// last one.
    pub(crate) fn push(&mut self, kind: Kind, key: &str, line: u32) {
        self.entries.push(Entry {
            hash: hash(kind, key.as_bytes()),
            line,
            next: END,
        });
    }

    /// Chains the entries into buckets.
    pub(crate) fn link(&mut self) {
        if self.entries.is_empty() {
            return;
        }
        // At least as many buckets as entries: chains stay short.
        self.heads = vec![END; self.entries.len().next_power_of_two()];
        let mask = self.heads.len() - 1;
        for (at, entry) in self.entries.iter_mut().enumerate() {
            let head = &mut self.heads[entry.hash as usize & mask];
            entry.next = *head;
            // Fewer entries than heads, and heads fit in memory: `at` fits in a u32.
            *head = at as u32;
        }
    }

    /// Appends to `out` the lines of the rules under `key` (lower-cased), in no order, and
    /// maybe others whose key has the same hash.
    pub(crate) fn find(&self, kind: Kind, key: &str, out: &mut Vec<u32>) {
        if self.heads.is_empty() {
            return;
        }
        let hash = hash(kind, key.as_bytes());
        let mut at = self.heads[hash as usize & (self.heads.len() - 1)];
        while at != END {
            let entry = &self.entries[at as usize];
            if entry.hash == hash {
                out.push(entry.line);
            }
            at = entry.next;
        }
    }
}

/// FxHash's constant (from Firefox, by way of rustc).
const SEED: u64 = 0x517c_c1b7_2722_0a95;

/// The hash of `key` with ASCII letters lower-cased, and of `kind`.
fn hash(kind: Kind, key: &[u8]) -> u32 {
    let mix = |h: u64, word: u64| (h.rotate_left(5) ^ word).wrapping_mul(SEED);
    let mut h = mix(u64::from(kind.0), key.len() as u64);
    let mut words = key.chunks_exact(8);
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        h = mix(h, lower8(u64::from_le_bytes(bytes)));
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        // Byte by byte: copying a few bytes into a word and reading it whole would stall.
        let word = rest
            .iter()
            .rev()
            .fold(0, |word, &b| word << 8 | u64::from(b));
        h = mix(h, lower8(word));
    }
    // The multiply mixes upwards: the high half is the better hash.
    (h >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_ignoring_case() {
        use Selector::{Recipient, Sender};
        #[allow(non_snake_case)]
        let (RecipientExact, RecipientDomain, SenderExact) = (
            Kind::new(Recipient, Recipient, false),
            Kind::new(Recipient, Recipient, true),
            Kind::new(Recipient, Sender, false),
        );
        let mut index = Index::default();
        for (kind, key, line) in [
            (RecipientExact, "A@Example.COM", 7),
            (RecipientDomain, "example.com", 8),
            (RecipientExact, "a@example.com.long-domain-name", 9),
            (RecipientExact, "A@Example.COM", 10),
        ] {
            index.push(kind, key, line);
        }
        index.link();
        let find = |kind: Kind, key: &str| {
            let mut out = Vec::new();
            index.find(kind, key, &mut out);
            out.sort_unstable();
            out
        };
        assert_eq!(find(RecipientExact, "a@example.com"), [7, 10]);
        assert_eq!(find(SenderExact, "a@example.com"), [] as [u32; 0]);
        assert_eq!(find(RecipientDomain, "example.com"), [8]);
        assert_eq!(find(RecipientExact, "example.com"), [] as [u32; 0]);
        assert_eq!(find(RecipientExact, "a@example.com.long-domain-name"), [9]);
        assert_eq!(find(RecipientExact, "a@example.co"), [] as [u32; 0]);
        assert!(hash(SenderExact, b"ABCDEFGHIJ") == hash(SenderExact, b"abcdefghij"));
        assert_eq!(
            Kind::new(Sender, Sender, false),
            Kind::new(Sender, Sender, false)
        );
        assert_ne!(Kind::new(Sender, Sender, false), SenderExact);
    }
}
