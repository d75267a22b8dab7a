//! Numbers written into text without `format!`: replies, log lines and queue ids of every
//! pipelined message carry a few, and the formatting machinery costs more than the rest of
//! building those lines.

/// Appends `n` in decimal, at least `width` digits (leading zeros).
pub fn push_padded(out: &mut String, n: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for _ in (digits.len() - i)..width {
        out.push('0');
    }
    out.push_str(std::str::from_utf8(&digits[i..]).expect("ASCII digits"));
}

/// Appends `n` in decimal.
pub fn push(out: &mut String, n: u64) {
    push_padded(out, n, 0);
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
            for width in [0, 1, 6, 25] {
                let mut s = String::new();
                push_padded(&mut s, n, width);
                assert_eq!(s, format!("{n:0width$}"));
            }
        }
    }
}
