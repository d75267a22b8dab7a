//! Byte tests eight bytes at a time, in a `u64` ("SIMD within a register").
//!
//! Why: a front end loads its rules file in every session, and most of the time of loading
//! a large one goes into looking at every byte for a few special ones (`\n`, `:`, `\`,
//! control characters). Rules lines are short runs of ordinary bytes between those, so
//! testing eight bytes at once and jumping to the first hit beats a loop over bytes. Plain
//! integer arithmetic: no `unsafe`, no target features. Lines under 64 bytes, nearly all,
//! are sorted sixteen bytes at a time instead (`classes.rs`); these tests serve the longer
//! ones, rules read again at lookup, and the hash of the index.
//!
//! The tests give a word with the high bit set in each byte that is a hit, and no other bit.
//! They work on the low seven bits of each byte, where adding never carries into the next
//! byte, so that every hit is exact.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = ONES * 0x80;

/// Eight copies of `b`.
pub(crate) const fn splat(b: u8) -> u64 {
    ONES * b as u64
}

/// Hits for the bytes of `x` that are zero.
pub(crate) fn zero_bytes(x: u64) -> u64 {
    // The high bit of `(x & !HIGH) + !HIGH` is set where the low seven bits are not zero.
    !(((x & !HIGH) + !HIGH) | x) & HIGH
}

/// Hits for the bytes of `x` below `n`, which is at most 0x80.
pub(crate) fn bytes_below(x: u64, n: u8) -> u64 {
    // The high bit of `(x & !HIGH) + (0x80 - n)` is set where the low seven bits reach `n`.
    !((x & !HIGH) + splat(0x80 - n)) & !x & HIGH
}

/// The index of the first byte from `from` on that is a hit, or `bytes.len()`: `hits` tests
/// a word (little-endian, so byte order is bit order), `hit` one byte, and they must agree.
#[inline(always)]
pub(crate) fn find(
    bytes: &[u8],
    from: usize,
    hits: impl Fn(u64) -> u64,
    hit: impl Fn(u8) -> bool,
) -> usize {
    let mut at = from;
    while let Some(eight) = bytes.get(at..at + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(eight);
        let found = hits(u64::from_le_bytes(word));
        if found != 0 {
            return at + (found.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    match bytes.get(at..) {
        Some(rest) => at + rest.iter().position(|&b| hit(b)).unwrap_or(rest.len()),
        None => bytes.len(),
    }
}

/// Eight bytes lower-cased at once: 0x20 is added to each byte in `b'A'..=b'Z'`.
pub(crate) fn lower8(x: u64) -> u64 {
    // The low seven bits of each byte: adding below 0x80 to them never carries into the next.
    let seven = x & !HIGH;
    let from_a = seven + splat(0x80 - b'A');
    let past_z = seven + splat(0x80 - b'Z' - 1);
    // High bit set where the byte is ASCII (its own high bit clear) and in 'A'..='Z'.
    let upper = from_a & !past_z & !x & HIGH;
    x | (upper >> 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower8_agrees_with_std() {
        for b in 0..=255u8 {
            for shift in 0..8 {
                let x = 0x4142_5a5b_6061_7a7bu64 ^ (u64::from(b) << (shift * 8));
                let want = u64::from_le_bytes(x.to_le_bytes().map(|b| b.to_ascii_lowercase()));
                assert_eq!(lower8(x), want, "{x:#x}");
            }
        }
    }

    #[test]
    fn tests_are_exact() {
        for b in 0..=255u8 {
            for other in [0u8, 0x01, 0x1f, 0x20, 0x3a, 0x7f, 0x80, 0x9f, 0xff] {
                let x = u64::from_le_bytes([other, b, other, b, b, other, other, b]);
                let want = |hit: bool| {
                    u64::from_le_bytes([0, 1, 0, 1, 1, 0, 0, 1].map(|m| {
                        if hit && m == 1 {
                            0x80
                        } else {
                            0
                        }
                    }))
                };
                let zero_other = if other == 0 {
                    splat(0x80) & !want(true)
                } else {
                    0
                };
                assert_eq!(
                    zero_bytes(x),
                    want(b == 0) | zero_other,
                    "{b:#x} {other:#x}"
                );
                let below_other = if other < 0x20 {
                    splat(0x80) & !want(true)
                } else {
                    0
                };
                assert_eq!(
                    bytes_below(x, 0x20),
                    want(b < 0x20) | below_other,
                    "{b:#x} {other:#x}"
                );
            }
        }
    }

    #[test]
    fn find_agrees_with_a_byte_loop() {
        let hits = |x: u64| zero_bytes(x ^ splat(b':')) | bytes_below(x, 0x20);
        let hit = |b: u8| b == b':' || b < 0x20;
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 24) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|i| {
                    [b'a', b':', 0x01, 0x1f, 0x20, 0x3a ^ 0x80, 0xff]
                        [(state >> (i * 2 + 8)) as usize % 7]
                })
                .collect();
            for from in 0..=len {
                let want = from
                    + bytes[from..]
                        .iter()
                        .position(|&b| hit(b))
                        .unwrap_or(len - from);
                assert_eq!(find(&bytes, from, hits, hit), want, "{bytes:?} from {from}");
            }
        }
    }
}
