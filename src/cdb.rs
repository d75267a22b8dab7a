//! Read-only lookups in D. J. Bernstein's constant database (cdb) format.
//!
//! The mail rules (SPEC 5) accept `[[file.cdb]]` and `[[@file.cdb]]` lists made by `cdbmake`
//! or `cdb -c`; this module owns the lookup in such a file and nothing else.
//!
//! The format: a 2048-byte header of 256 `(position, slot count)` pairs (u32, little endian),
//! then the records `klen u32, dlen u32, key, data`, then the 256 hash tables of
//! `(hash u32, record position u32)` slots. The hash is `h = 5381; h = (h * 33) ^ byte`
//! (wrapping u32); table `h % 256`, first slot `(h >> 8) % slots`, linear probing, and a slot
//! whose record position is 0 ends the search.
//!
//! Why a `File` and positioned reads rather than reading the whole file: a front end loads
//! the rules once per connection, and a 100,000-key list is several megabytes. Reading it all
//! would cost that much time and memory in every process; the cdb format exists so that a
//! lookup costs a handful of small reads. Opening reads and checks the 2048-byte header only.
//! [`Cdb::from_bytes`] serves files already in memory (tests, fuzzing) through the same code.
//!
//! The file is untrusted in the sense that it may be truncated or garbage: every position and
//! length read from it is checked against the file size before use, and the probe loop is
//! bounded by the table's slot count, so a bad file gives [`CdbError::Corrupt`] — never a
//! panic, an endless loop or a huge allocation. The size is taken once at open: cdb files are
//! replaced by `rename`, so an open file does not change under us (if it shrinks anyway, the
//! short read is reported as corrupt).

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Size of the fixed header: 256 tables times (position u32, slot count u32).
const HEADER_LEN: usize = 2048;
/// Size of one hash-table slot and of one record header.
const PAIR_LEN: u64 = 8;

/// An open constant database.
pub struct Cdb {
    source: Source,
    /// Size of the file, fixed at open; every read is checked against it.
    len: u64,
    header: Box<[u8; HEADER_LEN]>,
}

enum Source {
    File(File),
    Bytes(Vec<u8>),
}

/// Why a lookup or an open failed.
#[derive(Debug)]
pub enum CdbError {
    /// Reading the file failed.
    Io(io::Error),
    /// The file is not a valid cdb (truncated, or a position points outside it).
    Corrupt(&'static str),
}

impl fmt::Display for CdbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CdbError::Io(e) => write!(f, "cdb read error: {e}"),
            CdbError::Corrupt(why) => write!(f, "corrupt cdb file: {why}"),
        }
    }
}

impl std::error::Error for CdbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CdbError::Io(e) => Some(e),
            CdbError::Corrupt(_) => None,
        }
    }
}

impl fmt::Debug for Cdb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.source {
            Source::File(_) => "file",
            Source::Bytes(_) => "bytes",
        };
        f.debug_struct("Cdb")
            .field("source", &kind)
            .field("len", &self.len)
            .finish()
    }
}

/// The cdb hash of `key`.
fn hash(key: &[u8]) -> u32 {
    key.iter()
        .fold(5381u32, |h, &c| (h << 5).wrapping_add(h) ^ u32::from(c))
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(word)
}

impl Cdb {
    /// Opens the cdb at `path`. `Ok(None)` when the file does not exist (SPEC 5: a missing
    /// cdb matches nothing); any other failure, or a file shorter than the header or whose
    /// tables point past its end, is an error.
    pub fn open(path: &Path) -> Result<Option<Cdb>, CdbError> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CdbError::Io(e)),
        };
        let len = file.metadata().map_err(CdbError::Io)?.len();
        let cdb = Cdb::new(Source::File(file), len)?;
        Ok(Some(cdb))
    }

    /// A cdb held in memory. Checks the header as [`Cdb::open`] does.
    pub fn from_bytes(data: Vec<u8>) -> Result<Cdb, CdbError> {
        let len = data.len() as u64;
        Cdb::new(Source::Bytes(data), len)
    }

    fn new(source: Source, len: u64) -> Result<Cdb, CdbError> {
        if len < HEADER_LEN as u64 {
            return Err(CdbError::Corrupt("shorter than the 2048-byte header"));
        }
        let mut cdb = Cdb {
            source,
            len,
            header: Box::new([0u8; HEADER_LEN]),
        };
        let mut header = [0u8; HEADER_LEN];
        cdb.read(0, &mut header)?;
        *cdb.header = header;
        // Check every table once here, so that a truncated file (whose tables are at the end)
        // is refused when the rules are loaded, not on the first unlucky lookup.
        for table in 0..256 {
            let (pos, slots) = cdb.table(table);
            cdb.check(pos, slots * PAIR_LEN)?;
        }
        Ok(cdb)
    }

    /// Position and slot count of hash table `index` (0..256).
    fn table(&self, index: usize) -> (u64, u64) {
        let at = index * 8;
        (
            u64::from(u32_at(&self.header[..], at)),
            u64::from(u32_at(&self.header[..], at + 4)),
        )
    }

    /// Errors unless `len` bytes at `pos` lie inside the file.
    fn check(&self, pos: u64, len: u64) -> Result<(), CdbError> {
        match pos.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(CdbError::Corrupt(
                "a position points past the end of the file",
            )),
        }
    }

    /// Fills `buf` from `pos`, after checking the range against the file size.
    fn read(&self, pos: u64, buf: &mut [u8]) -> Result<(), CdbError> {
        self.check(pos, buf.len() as u64)?;
        match &self.source {
            Source::Bytes(data) => {
                // In range: checked above against len == data.len().
                let start = usize::try_from(pos).map_err(|_| CdbError::Corrupt("position"))?;
                buf.copy_from_slice(&data[start..start + buf.len()]);
                Ok(())
            }
            Source::File(file) => file.read_exact_at(buf, pos).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    CdbError::Corrupt("the file shrank after it was opened")
                } else {
                    CdbError::Io(e)
                }
            }),
        }
    }

    /// Finds the first record with `key`: the position and length of its data.
    fn find(&self, key: &[u8]) -> Result<Option<(u64, u64)>, CdbError> {
        let h = hash(key);
        let (table_pos, slots) = self.table((h & 255) as usize);
        if slots == 0 {
            return Ok(None);
        }
        let first = u64::from(h >> 8) % slots;
        let mut pair = [0u8; 8];
        let mut stored_key = Vec::new();
        // At most one pass over the table: a full table without an empty slot must not loop.
        for probe in 0..slots {
            let slot = (first + probe) % slots;
            self.read(table_pos + slot * PAIR_LEN, &mut pair)?;
            let slot_hash = u32_at(&pair, 0);
            let record = u64::from(u32_at(&pair, 4));
            if record == 0 {
                return Ok(None);
            }
            if slot_hash != h {
                continue;
            }
            self.read(record, &mut pair)?;
            let key_len = u64::from(u32_at(&pair, 0));
            let data_len = u64::from(u32_at(&pair, 4));
            let key_pos = record + PAIR_LEN;
            self.check(key_pos, key_len)?;
            self.check(key_pos + key_len, data_len)?;
            if key_len != key.len() as u64 {
                continue;
            }
            stored_key.resize(key.len(), 0);
            self.read(key_pos, &mut stored_key)?;
            if stored_key == key {
                return Ok(Some((key_pos + key_len, data_len)));
            }
        }
        Ok(None)
    }

    /// Whether some record has `key`.
    pub fn contains(&self, key: &[u8]) -> Result<bool, CdbError> {
        Ok(self.find(key)?.is_some())
    }

    /// The data of the first record with `key`. Owned, because a file-backed database has
    /// nothing in memory to lend out (see the module doc); its length was checked against
    /// the file size before it is allocated.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, CdbError> {
        let Some((pos, len)) = self.find(key)? else {
            return Ok(None);
        };
        let len = usize::try_from(len).map_err(|_| CdbError::Corrupt("record too large"))?;
        let mut data = vec![0u8; len];
        self.read(pos, &mut data)?;
        Ok(Some(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal cdb writer (the format of `cdbmake`) to build fixtures.
    fn make(records: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = vec![0u8; HEADER_LEN];
        let mut entries: Vec<Vec<(u32, u32)>> = vec![Vec::new(); 256];
        for (key, data) in records {
            let pos = out.len() as u32;
            out.extend_from_slice(&(key.len() as u32).to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(key);
            out.extend_from_slice(data);
            let h = hash(key);
            entries[(h & 255) as usize].push((h, pos));
        }
        for (index, list) in entries.iter().enumerate() {
            let slots = list.len() * 2;
            let pos = out.len() as u32;
            let mut table = vec![(0u32, 0u32); slots];
            for &(h, rec) in list {
                let mut slot = (h >> 8) as usize % slots;
                while table[slot].1 != 0 {
                    slot = (slot + 1) % slots;
                }
                table[slot] = (h, rec);
            }
            for (h, rec) in table {
                out.extend_from_slice(&h.to_le_bytes());
                out.extend_from_slice(&rec.to_le_bytes());
            }
            out[index * 8..index * 8 + 4].copy_from_slice(&pos.to_le_bytes());
            out[index * 8 + 4..index * 8 + 8].copy_from_slice(&(slots as u32).to_le_bytes());
        }
        out
    }

    /// Small deterministic generator (xorshift64*), so the tests need no crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    #[test]
    fn hash_matches_reference_values() {
        assert_eq!(hash(b""), 5381);
        // 5381 * 33 ^ 'a' (97)
        assert_eq!(hash(b"a"), (5381u32 * 33) ^ 97);
    }

    #[test]
    fn empty_database_finds_nothing() {
        let db = Cdb::from_bytes(make(&[])).expect("valid");
        assert!(!db.contains(b"").expect("lookup"));
        assert!(!db.contains(b"anything").expect("lookup"));
    }

    #[test]
    fn finds_keys_and_first_value() {
        let db = Cdb::from_bytes(make(&[
            (b"one", b"1"),
            (b"two", b"2"),
            (b"one", b"second"),
            (b"", b"empty key"),
            (b"bin\0\xff", b"\0"),
        ]))
        .expect("valid");
        assert_eq!(db.get(b"one").expect("lookup").as_deref(), Some(&b"1"[..]));
        assert_eq!(db.get(b"two").expect("lookup").as_deref(), Some(&b"2"[..]));
        assert_eq!(
            db.get(b"").expect("lookup").as_deref(),
            Some(&b"empty key"[..])
        );
        assert!(db.contains(b"bin\0\xff").expect("lookup"));
        assert!(!db.contains(b"three").expect("lookup"));
        assert!(!db.contains(b"on").expect("lookup"));
    }

    #[test]
    fn many_keys_all_found() {
        let keys: Vec<String> = (0..5000).map(|i| format!("user{i}@example.com")).collect();
        let records: Vec<(&[u8], &[u8])> =
            keys.iter().map(|k| (k.as_bytes(), k.as_bytes())).collect();
        let db = Cdb::from_bytes(make(&records)).expect("valid");
        for key in &keys {
            assert_eq!(
                db.get(key.as_bytes()).expect("lookup").as_deref(),
                Some(key.as_bytes())
            );
        }
        assert!(!db.contains(b"user5000@example.com").expect("lookup"));
    }

    #[test]
    fn short_header_is_corrupt() {
        assert!(matches!(
            Cdb::from_bytes(Vec::new()),
            Err(CdbError::Corrupt(_))
        ));
        assert!(matches!(
            Cdb::from_bytes(vec![0; 2047]),
            Err(CdbError::Corrupt(_))
        ));
        // A header of zeros alone is a valid empty database.
        assert!(Cdb::from_bytes(vec![0; 2048]).is_ok());
    }

    #[test]
    fn truncated_file_is_refused_at_open() {
        let data = make(&[(b"a@example.com", b""), (b"b@example.com", b"")]);
        for cut in [data.len() - 1, data.len() - 8, HEADER_LEN + 3] {
            let short = data[..cut].to_vec();
            assert!(
                matches!(Cdb::from_bytes(short), Err(CdbError::Corrupt(_))),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn record_pointing_past_the_end_is_corrupt() {
        let key = b"a@example.com";
        let mut data = make(&[(key, b"x")]);
        // Make the record's data length huge: lookup must fail cleanly, not allocate 4 GiB.
        data[HEADER_LEN + 4..HEADER_LEN + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        let db = Cdb::from_bytes(data.clone()).expect("header still valid");
        assert!(matches!(db.get(key), Err(CdbError::Corrupt(_))));
        // A slot pointing past the end of the file.
        let h = hash(key);
        let (table_pos, _) = db.table((h & 255) as usize);
        let mut data = make(&[(key, b"x")]);
        for slot in 0..2u64 {
            let at = (table_pos + slot * 8) as usize;
            data[at..at + 4].copy_from_slice(&h.to_le_bytes());
            data[at + 4..at + 8].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        }
        let db = Cdb::from_bytes(data).expect("header still valid");
        assert!(matches!(db.contains(key), Err(CdbError::Corrupt(_))));
    }

    #[test]
    fn full_table_without_empty_slot_terminates() {
        let key = b"k";
        let mut data = make(&[(key, b"v")]);
        let h = hash(key);
        let index = (h & 255) as usize;
        let table_pos = u32_at(&data, index * 8) as usize;
        // Fill both slots with a record position that is not 0 and a hash that never matches.
        for slot in 0..2 {
            let at = table_pos + slot * 8;
            data[at..at + 4].copy_from_slice(&(h ^ 1).to_le_bytes());
            data[at + 4..at + 8].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        }
        let db = Cdb::from_bytes(data).expect("valid header");
        assert!(!db.contains(key).expect("lookup ends"));
    }

    #[test]
    fn random_damage_never_panics() {
        let keys: Vec<String> = (0..50).map(|i| format!("k{i}")).collect();
        let records: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (k.as_bytes(), &b"v"[..])).collect();
        let good = make(&records);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2000 {
            let mut data = good.clone();
            for _ in 0..1 + rng.next() % 8 {
                let at = (rng.next() % data.len() as u64) as usize;
                data[at] = rng.next() as u8;
            }
            if rng.next().is_multiple_of(4) {
                let cut = (rng.next() % data.len() as u64) as usize;
                data.truncate(cut);
            }
            if let Ok(db) = Cdb::from_bytes(data) {
                for key in &keys {
                    let _ = db.get(key.as_bytes());
                }
            }
        }
    }

    #[test]
    fn open_reads_files_and_reports_missing_ones() {
        let dir = std::env::temp_dir().join(format!("smtpfront-cdb-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("list.cdb");
        std::fs::write(&path, make(&[(b"a@example.com", b"yes")])).expect("write");
        let db = Cdb::open(&path).expect("opens").expect("exists");
        assert_eq!(
            db.get(b"a@example.com").expect("lookup").as_deref(),
            Some(&b"yes"[..])
        );
        assert!(!db.contains(b"b@example.com").expect("lookup"));
        assert!(Cdb::open(&dir.join("missing.cdb"))
            .expect("no error")
            .is_none());
        std::fs::write(&path, b"short").expect("write");
        assert!(matches!(Cdb::open(&path), Err(CdbError::Corrupt(_))));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
