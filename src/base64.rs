//! Strict base64 (RFC 4648, standard alphabet, padding required) for SMTP AUTH (RFC 4954).
//! Anything else — a stray character, a missing or misplaced `=`, non-zero pad bits — is an
//! error, which AUTH answers with `501 5.5.2`.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid;

fn value(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    } as u32)
}

pub fn decode(text: &[u8]) -> Result<Vec<u8>, Invalid> {
    if !text.len().is_multiple_of(4) {
        return Err(Invalid);
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let quads = text.len() / 4;
    for (i, q) in text.chunks_exact(4).enumerate() {
        let last = i + 1 == quads;
        let pad = q.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return Err(Invalid);
        }
        let mut n = 0u32;
        for &c in &q[..4 - pad] {
            n = (n << 6) | value(c).ok_or(Invalid)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        // Pad bits must be zero, or two encodings would decode alike.
        let keep = 3 - pad;
        if bytes[keep..].iter().any(|&b| b != 0) {
            return Err(Invalid);
        }
        out.extend_from_slice(&bytes[..keep]);
    }
    Ok(out)
}

pub fn encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode(plain.as_bytes()), coded);
            assert_eq!(decode(coded.as_bytes()).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn strictness() {
        for bad in [
            "Zg",
            "Zg=",
            "Z===",
            "Zg==Zg==",
            "Zm9v YmFy",
            "Zh==",
            "Zm9=",
            "Zm!v",
            "====",
        ] {
            assert_eq!(decode(bad.as_bytes()), Err(Invalid), "{bad}");
        }
    }

    #[test]
    fn round_trip_all_bytes() {
        let data: Vec<u8> = (0..=255).collect();
        for n in 0..data.len() {
            assert_eq!(decode(encode(&data[..n]).as_bytes()).unwrap(), &data[..n]);
        }
    }
}
