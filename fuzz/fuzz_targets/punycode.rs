//! `punycode` (RFC 3492) and the domain conversion built on it (SPEC 3.2): decode never
//! panics, whatever it is given; encoding any string gives ASCII letters, digits and
//! hyphens (and the string's own ASCII) that decode back to exactly that string; the
//! domain conversions never panic, and `to_ascii` of a domain whose labels are short gives
//! ASCII.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpfront::{idna, punycode};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = punycode::decode(text);
    if let Some(encoded) = punycode::encode(text) {
        assert!(encoded.is_ascii(), "not ASCII: {encoded:?}");
        assert_eq!(
            punycode::decode(&encoded).as_deref(),
            Some(text),
            "decode(encode(s)) != s for {encoded:?}"
        );
    }
    let ascii = idna::to_ascii(text);
    if text.split('.').all(|l| l.chars().count() <= 63) {
        assert!(ascii.is_ascii(), "{text:?} -> {ascii:?}");
    }
    let _ = idna::to_unicode(&ascii);
    let _ = idna::address_to_ascii(text);
});
