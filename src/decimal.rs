//! Numbers written into text without `format!`: replies, log lines and queue ids of every
//! pipelined message carry a few, and the formatting machinery costs more than the rest of
//! building those lines.

/// The digits of `n`, without leading zeros.
struct Digits {
    buf: [u8; 20],
    start: usize,
}

/// "00" to "99": two digits per division.
const PAIRS: &[u8; 200] = b"\
    0001020304050607080910111213141516171819202122232425262728293031323334353637383940414243444546474849\
    5051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899";

impl Digits {
    #[inline]
    fn of(n: u64) -> Digits {
        let mut buf = [b'0'; 20];
        let mut start = buf.len();
        let mut n = n;
        while n >= 100 {
            let pair = (n % 100) as usize * 2;
            n /= 100;
            start -= 2;
            buf[start..start + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
        }
        if n >= 10 {
            let pair = n as usize * 2;
            start -= 2;
            buf[start..start + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
        } else {
            start -= 1;
            buf[start] = b'0' + n as u8;
        }
        Digits { buf, start }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// Appends `n` in decimal, at least `width` digits (leading zeros).
pub fn push_padded(out: &mut String, n: u64, width: usize) {
    let digits = Digits::of(n);
    let digits = digits.as_bytes();
    out.extend(std::iter::repeat_n('0', width.saturating_sub(digits.len())));
    // One char at a time: cheaper for a few digits than checking them as UTF-8.
    out.extend(digits.iter().map(|&d| char::from(d)));
}

/// Appends `n` in decimal.
pub fn push(out: &mut String, n: u64) {
    push_padded(out, n, 0);
}

/// Appends `n` in decimal to text built in bytes (a log line, see [`crate::log::line_bytes`]).
pub fn push_bytes(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(Digits::of(n).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_format() {
        for n in [0, 1, 9, 10, 99, 100, 123_456, u64::from(u32::MAX), u64::MAX] {
            let mut s = String::from("x");
            push(&mut s, n);
            assert_eq!(s, format!("x{n}"));
            let mut b = b"x".to_vec();
            push_bytes(&mut b, n);
            assert_eq!(b, format!("x{n}").into_bytes());
            for width in [0, 1, 6, 20, 25] {
                let mut s = String::new();
                push_padded(&mut s, n, width);
                assert_eq!(s, format!("{n:0width$}"));
            }
        }
    }
}
