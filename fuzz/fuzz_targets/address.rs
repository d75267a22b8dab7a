//! `address::parse_path` on arbitrary text (SPEC 3: `<>`, quotes, escapes, source routes).
//!
//! Invariants besides "no panic":
//! * `consumed` covers `<` ... `>` of the input, on a character boundary;
//! * the result depends only on the consumed bytes: parsing `input[..consumed]` alone
//!   gives the same path;
//! * the address holds no CR, LF or NUL; it is empty (null path), a bare `postmaster`, or
//!   has a non-empty local part and a domain after an `@`;
//! * round trip: `<address>` parses to the same address, consuming all of it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpfront::address::{domain, parse_path, Path};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(path) = parse_path(text) else { return };
    let Path { address, consumed } = &path;
    assert!(
        *consumed >= 2 && *consumed <= text.len(),
        "consumed {consumed}"
    );
    assert!(text.is_char_boundary(*consumed));
    let taken = &text[..*consumed];
    assert!(taken.starts_with('<') && taken.ends_with('>'), "{taken:?}");
    assert_eq!(
        parse_path(taken).as_ref(),
        Ok(&path),
        "the rest of the line changed the path"
    );
    assert!(
        !address.contains(['\r', '\n', '\0']),
        "CR, LF or NUL in {address:?}"
    );
    if !address.is_empty() && !address.eq_ignore_ascii_case("postmaster") {
        let d = domain(address).expect("an address with a domain");
        assert!(!d.is_empty(), "empty domain in {address:?}");
        assert!(!address.starts_with('@'), "empty local part in {address:?}");
    }
    let again = format!("<{address}>");
    assert_eq!(
        parse_path(&again),
        Ok(Path {
            address: address.clone(),
            consumed: again.len()
        }),
        "round trip of {address:?}"
    );
});
