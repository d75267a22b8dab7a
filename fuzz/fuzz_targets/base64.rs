//! `base64` (RFC 4648, strict, for AUTH): decode never panics; a successful decode encodes
//! back to exactly the input (the decoder accepts only canonical text); encoding any bytes
//! decodes back to them, in `4 * ceil(n / 3)` characters of the alphabet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpfront::base64::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(plain) = decode(data) {
        assert_eq!(
            encode(&plain).as_bytes(),
            data,
            "decode then encode is not the identity: a non-canonical text was accepted"
        );
    }
    let text = encode(data);
    assert_eq!(text.len(), data.len().div_ceil(3) * 4);
    assert!(text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='));
    assert_eq!(decode(text.as_bytes()).as_deref(), Ok(data), "round trip");
});
