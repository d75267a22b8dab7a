//! Bounces of internationalised mail (RFC 6533, SPEC 3.2): a report that names a UTF-8
//! address or returns UTF-8 headers says so in its MIME types, as Postfix's do, so that a
//! reader does not take it for broken ASCII:
//! * `Final-Recipient: utf-8; ...` for a UTF-8 address, in the `unitext` form (RFC 6533 3:
//!   `+`, `=`, `\`, space and controls as `\x{HH}`), else `rfc822;` as before;
//! * `message/global-delivery-status` when the fields hold UTF-8, `message/global-headers`
//!   when the returned headers do, and the text part in `charset=utf-8`.

/// The `Final-Recipient` value of `rcpt`.
pub fn final_recipient(rcpt: &str) -> String {
    if rcpt.is_ascii() {
        return format!("rfc822; {rcpt}");
    }
    let mut out = String::from("utf-8; ");
    for c in rcpt.chars() {
        match c {
            '+' | '=' | '\\' | ' ' => out.push_str(&format!("\\x{{{:02X}}}", u32::from(c))),
            c if c.is_control() => out.push_str(&format!("\\x{{{:02X}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// The MIME types of a report's three parts: the text's charset, the status part, the
/// headers part.
pub struct Types {
    pub charset: &'static str,
    pub status: &'static str,
    pub headers: &'static str,
}

/// `text_utf8`: the human text and the fields hold UTF-8; `headers_utf8`: the returned
/// header block does.
pub fn types(text_utf8: bool, headers_utf8: bool) -> Types {
    Types {
        charset: if text_utf8 || headers_utf8 {
            "utf-8"
        } else {
            "us-ascii"
        },
        status: match text_utf8 {
            true => "message/global-delivery-status",
            false => "message/delivery-status",
        },
        headers: match headers_utf8 {
            true => "message/global-headers",
            false => "text/rfc822-headers",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_addresses_in_unitext() {
        assert_eq!(final_recipient("a+b@x.test"), "rfc822; a+b@x.test");
        assert_eq!(
            final_recipient("j\u{f6}rg+x=1@b\u{fc}cher.example"),
            "utf-8; j\u{f6}rg\\x{2B}x\\x{3D}1@b\u{fc}cher.example"
        );
    }

    #[test]
    fn types_follow_the_content() {
        let t = types(false, false);
        assert_eq!(
            (t.charset, t.status, t.headers),
            ("us-ascii", "message/delivery-status", "text/rfc822-headers")
        );
        let t = types(true, true);
        assert_eq!(
            (t.charset, t.status, t.headers),
            (
                "utf-8",
                "message/global-delivery-status",
                "message/global-headers"
            )
        );
    }
}
