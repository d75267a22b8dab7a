//! The cdb reader (`cdb.rs`, used by the mail rules' `[[file.cdb]]` lists).
//!
//! Two halves per input:
//! * hostile file: the input is the file, opened from memory and from a temporary file;
//!   lookups of the keys its records seem to hold (and of a few others) never panic, never
//!   loop, and both sources answer alike (same errors, same data);
//! * valid file: records taken from the input, written as `cdbmake` does; every key is
//!   found with the data of its first record, and keys that are not there are not found.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpfront::cdb::{Cdb, CdbError};
use smtpfront_fuzz::{make_cdb, scratch, Unstructured};

/// Keys the records of a (maybe corrupt) file claim to have, walking from byte 2048.
fn claimed_keys(file: &[u8]) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    let mut pos = 2048usize;
    while keys.len() < 16 {
        let Some(head) = file.get(pos..pos + 8) else {
            break;
        };
        let klen = u32::from_le_bytes(head[..4].try_into().unwrap()) as usize;
        let dlen = u32::from_le_bytes(head[4..].try_into().unwrap()) as usize;
        let Some(key) = file.get(pos + 8..).and_then(|r| r.get(..klen)) else {
            break;
        };
        keys.push(key.to_vec());
        pos = pos
            .saturating_add(8)
            .saturating_add(klen)
            .saturating_add(dlen);
    }
    keys
}

fn answer(db: &Result<Cdb, CdbError>, key: &[u8]) -> String {
    match db {
        Err(e) => format!("open: {e}"),
        Ok(db) => {
            let got = db.get(key);
            let has = db.contains(key);
            // `contains` and `get` read the same slots: they agree.
            match (&got, &has) {
                (Ok(g), Ok(h)) => assert_eq!(g.is_some(), *h, "get and contains disagree"),
                (Err(_), Err(_)) => {}
                // `get` reads the data too, which may lie past the end.
                (Err(CdbError::Corrupt(_)), Ok(true)) => {}
                _ => panic!("get {got:?} but contains {has:?}"),
            }
            format!("{got:?}")
        }
    }
}

fn hostile(file: &[u8]) {
    let in_memory = Cdb::from_bytes(file.to_vec());
    let path = scratch("cdb").join("db.cdb");
    std::fs::write(&path, file).expect("write the file");
    let on_disk = match Cdb::open(&path) {
        Ok(Some(db)) => Ok(db),
        Ok(None) => panic!("an existing file reported missing"),
        Err(e) => Err(e),
    };
    let mut keys = claimed_keys(file);
    keys.extend([
        b"".to_vec(),
        b"a@example.com".to_vec(),
        file.get(..8).unwrap_or(b"").to_vec(),
    ]);
    for key in &keys {
        assert_eq!(
            answer(&in_memory, key),
            answer(&on_disk, key),
            "memory and file answer differently for {key:?}"
        );
    }
}

fn valid(u: &mut Unstructured<'_>) -> Option<()> {
    let n = u.int_in_range(0..=40u8).ok()?;
    let mut records: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for _ in 0..n {
        let klen = u.int_in_range(0..=12u8).ok()?;
        let key = u.bytes(usize::from(klen)).ok()?.to_vec();
        let dlen = u.int_in_range(0..=20u8).ok()?;
        let data = u.bytes(usize::from(dlen)).ok()?.to_vec();
        records.push((key, data));
    }
    let db = Cdb::from_bytes(make_cdb(&records)).expect("a valid cdb opens");
    for (key, _) in &records {
        let first = records
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, d)| d.clone());
        assert_eq!(db.get(key).expect("lookup"), first, "key {key:?}");
        assert!(db.contains(key).expect("lookup"));
    }
    let probe = u.bytes(u.len().min(12)).ok()?.to_vec();
    let there = records.iter().any(|(k, _)| *k == probe);
    assert_eq!(
        db.contains(&probe).expect("lookup"),
        there,
        "probe {probe:?}"
    );
    Some(())
}

fuzz_target!(|data: &[u8]| {
    hostile(data);
    let _ = valid(&mut Unstructured::new(data));
});
