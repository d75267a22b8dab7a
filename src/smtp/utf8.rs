//! SMTPUTF8 in the session (SPEC 3.2, RFC 6531). The parser already refuses what is not
//! UTF-8 (overlong encodings and surrogates included: `501 5.5.2`), so an address that
//! reaches the session is well-formed; what is left is whether the transaction may carry
//! it, and what the Received header says.
//!
//! Choices where SPEC 3.2 is silent:
//! * a non-ASCII recipient in a transaction opened without `SMTPUTF8` gets `553 5.6.7` like
//!   a non-ASCII sender (RFC 6531 3.4: the transaction is not internationalised);
//! * the HELO name keeps its treatment: UTF-8 stays, the rest becomes `?` (it is only
//!   recorded, never routed on), with or without SMTPUTF8;
//! * the message itself is not checked: 8-bit headers without SMTPUTF8 pass as they did.

use crate::envelope::Protocol;
use crate::reply::{self, Reply};

/// The EHLO keyword.
pub const KEYWORD: &str = "SMTPUTF8";

/// SPEC 3.2: an address of a transaction without SMTPUTF8 must be ASCII.
pub fn check_address(address: &str, smtputf8: bool) -> Result<(), Reply> {
    match smtputf8 || address.is_ascii() {
        true => Ok(()),
        false => Err(reply::UTF8_NOT_DECLARED),
    }
}

/// `with` of the Received header: `UTF8SMTP...` for an SMTPUTF8 transaction.
pub fn received(protocol: Protocol, smtputf8: bool) -> Protocol {
    match smtputf8 {
        true => protocol.with_smtputf8(),
        false => protocol,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_needs_the_parameter() {
        assert_eq!(check_address("a@b.c", false), Ok(()));
        assert_eq!(check_address("", false), Ok(()));
        assert_eq!(
            check_address("j\u{f6}rg@b.c", false),
            Err(reply::UTF8_NOT_DECLARED)
        );
        assert_eq!(check_address("j\u{f6}rg@b\u{fc}cher.example", true), Ok(()));
    }

    #[test]
    fn received_keywords_of_rfc_6531() {
        let all = [
            (Protocol::Smtp, "UTF8SMTP"),
            (Protocol::Esmtp, "UTF8SMTP"),
            (Protocol::Esmtpa, "UTF8SMTPA"),
            (Protocol::Esmtps, "UTF8SMTPS"),
            (Protocol::Esmtpsa, "UTF8SMTPSA"),
        ];
        for (p, want) in all {
            assert_eq!(received(p, true).as_str(), want);
            assert_eq!(received(p, false), p);
        }
    }
}
