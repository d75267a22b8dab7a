//! The transaction (sender, parameters, recipients) and the trace headers the front end
//! prepends to each message (SPEC 4): the fixup Received header, the standard Received
//! header and the `HEADER_ADD` lines, in that order.

use crate::smtp::command::MailParams;
use crate::ucspi::{address_literal, Conn};
use crate::ucspitls::TlsInfo;
use std::time::{SystemTime, UNIX_EPOCH};

/// One transaction: exists from an accepted MAIL to the end of DATA or RSET.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    /// The client's HELO/EHLO name, or `[ip]` if it gave none (the spool file's HELO line).
    pub helo: String,
    pub sender: String,
    pub params: MailParams,
    /// Accepted recipients, as they will be delivered (RELAYCLIENT suffix appended).
    pub recipients: Vec<String>,
    /// The bytes of `recipients` together (SPEC 3 bounds them per transaction).
    pub recipient_bytes: usize,
    /// The size limit for this message: DATABYTES, possibly lowered by a mail rule.
    pub databytes: u64,
}

/// `with` of the Received header (RFC 3848).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Smtp,
    Esmtp,
    Esmtpa,
    /// RFC 3848: ESMTP over TLS (STARTTLS, SPEC 3.1), and with AUTH too.
    Esmtps,
    Esmtpsa,
    /// RFC 6531 3.7.3: a transaction with SMTPUTF8 (SPEC 3.2), and with AUTH, TLS, both.
    Utf8smtp,
    Utf8smtpa,
    Utf8smtps,
    Utf8smtpsa,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Smtp => "SMTP",
            Protocol::Esmtp => "ESMTP",
            Protocol::Esmtpa => "ESMTPA",
            Protocol::Esmtps => "ESMTPS",
            Protocol::Esmtpsa => "ESMTPSA",
            Protocol::Utf8smtp => "UTF8SMTP",
            Protocol::Utf8smtpa => "UTF8SMTPA",
            Protocol::Utf8smtps => "UTF8SMTPS",
            Protocol::Utf8smtpsa => "UTF8SMTPSA",
        }
    }

    /// The same with SMTPUTF8 (RFC 6531 3.7.3). A client that sent the parameter after HELO
    /// gets `UTF8SMTP` too: the keyword says what the transaction was, not the greeting.
    pub fn with_smtputf8(self) -> Protocol {
        match self {
            Protocol::Smtp | Protocol::Esmtp => Protocol::Utf8smtp,
            Protocol::Esmtpa => Protocol::Utf8smtpa,
            Protocol::Esmtps => Protocol::Utf8smtps,
            Protocol::Esmtpsa => Protocol::Utf8smtpsa,
            utf8 => utf8,
        }
    }
}

/// What the trace headers say about the session.
pub struct Trace<'a> {
    pub helo: Option<&'a str>,
    pub conn: &'a Conn,
    pub local: &'a str,
    pub protocol: Protocol,
    /// SPEC 4, 3.1: TLS protocol and cipher, named in a comment after `with`.
    pub tls: Option<&'a TlsInfo>,
    pub fixup_host: Option<&'a str>,
    pub fixup_ip: Option<&'a str>,
    pub header_add: Option<&'a str>,
}

/// Header text never carries bytes that would end or break the header (SPEC 4).
fn clean(s: &str) -> String {
    // Printable ASCII, the usual case, is copied as it is.
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return s.to_string();
    }
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// [`clean`] for `HEADER_ADD`, where config allows a tab: it folds a header line
/// (RFC 5322 2.2.3), and a `?` in its place would start a line that is no header at all.
fn clean_keeping_tabs(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
        .collect()
}

impl Trace<'_> {
    /// The headers to prepend, with CRLF line ends, dated `now`.
    pub fn headers(&self, now: SystemTime) -> Vec<u8> {
        let date = date_cached(now);
        let mut out = String::with_capacity(256);
        if let Some(fixup) = self.fixup() {
            out.push_str(&fixup);
            out.push_str(&date);
            out.push_str("\r\n");
        }
        out.push_str("Received:");
        if let Some(from) = self.origin_clause() {
            out.push_str(" from ");
            out.push_str(&from);
            out.push_str("\r\n\t");
        } else {
            out.push(' ');
        }
        out.push_str("by ");
        out.push_str(&clean(self.local));
        if let Some(ip) = &self.conn.localip {
            out.push_str(&format!(" ({})", address_literal(&clean(ip))));
        }
        out.push_str("\r\n\twith ");
        out.push_str(self.protocol.as_str());
        if let Some(proto) = &self.conn.proto {
            out.push_str(" via ");
            out.push_str(&clean(proto));
        }
        if let Some(tls) = self.tls {
            out.push_str(&format!(
                " ({} {})",
                clean(&tls.protocol),
                clean(&tls.cipher)
            ));
        }
        out.push_str("; ");
        out.push_str(&date);
        out.push_str("\r\n");
        if let Some(add) = self.header_add {
            // SPEC 2: `\n` separates lines; a real newline does too.
            for line in add.split('\n').flat_map(|l| l.split("\\n")) {
                if !line.is_empty() {
                    out.push_str(&clean_keeping_tabs(line));
                    out.push_str("\r\n");
                }
            }
        }
        out.into_bytes()
    }

    /// `HELO (INFO@HOST [IP])`, leaving out what is unknown; `None` if nothing is known.
    fn origin_clause(&self) -> Option<String> {
        let c = self.conn;
        let mut paren = String::new();
        if let Some(host) = &c.remotehost {
            if let Some(info) = &c.remoteinfo {
                paren.push_str(&clean(info));
                paren.push('@');
            }
            paren.push_str(&clean(host));
        }
        if let Some(ip) = &c.remoteip {
            if !paren.is_empty() {
                paren.push(' ');
            }
            paren.push_str(&address_literal(&clean(ip)));
        }
        let name = self
            .helo
            .map(clean)
            .or_else(|| c.remotehost.as_deref().map(clean))
            .or_else(|| c.remoteip.as_ref().map(|ip| address_literal(&clean(ip))));
        match (name, paren.is_empty()) {
            (None, _) => None,
            (Some(n), true) => Some(n),
            (Some(n), false) => Some(format!("{n} ({paren})")),
        }
    }

    /// SPEC 4: the hop from the fixup name/IP to this host, when both are set and differ.
    fn fixup(&self) -> Option<String> {
        let (host, ip) = (self.fixup_host?.trim(), self.fixup_ip?.trim());
        if host.is_empty() || ip.is_empty() {
            return None;
        }
        let local_ip = self.conn.localip.as_deref().unwrap_or("");
        if host.eq_ignore_ascii_case(self.local) && ip == local_ip {
            return None;
        }
        let mut s = format!(
            "Received: from {} ({})\r\n\tby {}",
            clean(host),
            address_literal(&clean(ip)),
            clean(self.local)
        );
        if !local_ip.is_empty() {
            s.push_str(&format!(" ({})", address_literal(&clean(local_ip))));
        }
        s.push_str("; ");
        Some(s)
    }
}

/// [`rfc5322_date`], remembered for the second it names: a pipelined batch of messages
/// within one second formats the date once.
fn date_cached(t: SystemTime) -> String {
    use std::cell::RefCell;
    thread_local! {
        static LAST: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != secs {
            *last = (secs, rfc5322_date(t));
        }
        last.1.clone()
    })
}

/// `Sun, 22 Nov 2026 10:04:00 +0000` (RFC 5322 3.3), in UTC.
pub fn rfc5322_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86400;
    let rem = secs % 86400;
    let (y, m, d) = civil_from_days(days as i64);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {} {} {} {:02}:{:02}:{:02} +0000",
        WEEKDAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 -> (year, month, day); H. Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(at(0)), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(at(1_795_341_840)),
            "Sun, 22 Nov 2026 10:04:00 +0000"
        );
        assert_eq!(
            rfc5322_date(at(951_782_400)),
            "Tue, 29 Feb 2000 00:00:00 +0000"
        );
    }

    #[test]
    fn the_date_cache_follows_the_clock() {
        assert_eq!(date_cached(at(0)), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(date_cached(at(0)), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(date_cached(at(61)), "Thu, 1 Jan 1970 00:01:01 +0000");
        assert_eq!(date_cached(at(0)), "Thu, 1 Jan 1970 00:00:00 +0000");
    }

    fn conn() -> Conn {
        Conn {
            remoteip: Some("192.0.2.7".into()),
            remotehost: Some("client.example".into()),
            localip: Some("198.51.100.1".into()),
            proto: Some("TCP".into()),
            ..Conn::default()
        }
    }

    fn trace<'a>(c: &'a Conn, helo: Option<&'a str>) -> Trace<'a> {
        Trace {
            helo,
            conn: c,
            local: "mx.example",
            protocol: Protocol::Esmtp,
            tls: None,
            fixup_host: None,
            fixup_ip: None,
            header_add: None,
        }
    }

    #[test]
    fn standard_received() {
        let c = conn();
        let h = trace(&c, Some("helo.example")).headers(at(0));
        assert_eq!(
            String::from_utf8(h).unwrap(),
            "Received: from helo.example (client.example [192.0.2.7])\r\n\
             \tby mx.example ([198.51.100.1])\r\n\
             \twith ESMTP via TCP; Thu, 1 Jan 1970 00:00:00 +0000\r\n"
        );
    }

    /// RFC 5321 4.1.3: an IPv6 client and local address are written `[IPv6:...]`, in the
    /// clause and, without a HELO, as the name.
    #[test]
    fn received_from_ipv6_uses_address_literals() {
        let c = Conn {
            remoteip: Some("2001:db8::7".into()),
            localip: Some("::1".into()),
            proto: Some("TCP6".into()),
            ..Conn::default()
        };
        assert_eq!(
            String::from_utf8(trace(&c, Some("helo.example")).headers(at(0))).unwrap(),
            "Received: from helo.example ([IPv6:2001:db8::7])\r\n\
             \tby mx.example ([IPv6:::1])\r\n\
             \twith ESMTP via TCP6; Thu, 1 Jan 1970 00:00:00 +0000\r\n"
        );
        let h = String::from_utf8(trace(&c, None).headers(at(0))).unwrap();
        assert!(
            h.starts_with("Received: from [IPv6:2001:db8::7] ([IPv6:2001:db8::7])\r\n"),
            "{h}"
        );
    }

    /// SPEC 4, 3.1: RFC 3848's ESMTPS, and the protocol and cipher in a comment.
    #[test]
    fn received_over_tls() {
        let c = conn();
        let info = TlsInfo {
            protocol: "TLSv1.3".into(),
            cipher: "TLS_AES_256_GCM_SHA384".into(),
        };
        let mut t = trace(&c, Some("helo.example"));
        t.protocol = Protocol::Esmtpsa;
        t.tls = Some(&info);
        assert_eq!(
            String::from_utf8(t.headers(at(0))).unwrap(),
            "Received: from helo.example (client.example [192.0.2.7])\r\n\
             \tby mx.example ([198.51.100.1])\r\n\
             \twith ESMTPSA via TCP (TLSv1.3 TLS_AES_256_GCM_SHA384); \
             Thu, 1 Jan 1970 00:00:00 +0000\r\n"
        );
    }

    #[test]
    fn unknown_parts_are_left_out() {
        let c = Conn::default();
        let h = String::from_utf8(trace(&c, None).headers(at(0))).unwrap();
        assert_eq!(
            h,
            "Received: by mx.example\r\n\twith ESMTP; Thu, 1 Jan 1970 00:00:00 +0000\r\n"
        );
        assert!(!h.contains("[]") && !h.contains("()"));
    }

    #[test]
    fn client_bytes_cannot_break_the_header() {
        let c = conn();
        let h = String::from_utf8(trace(&c, Some("evil\r\nX-Injected: 1")).headers(at(0))).unwrap();
        assert!(h.contains("evil??X-Injected: 1"));
        assert_eq!(h.matches("\r\n").count(), 3);
    }

    #[test]
    fn fixup_then_received_then_header_add() {
        let c = conn();
        let mut t = trace(&c, Some("h"));
        t.fixup_host = Some("public.example");
        t.fixup_ip = Some("203.0.113.9");
        t.header_add = Some("X-A: 1\\nX-B: 2");
        let h = String::from_utf8(t.headers(at(0))).unwrap();
        let lines: Vec<&str> = h.split("\r\n").collect();
        assert_eq!(lines[0], "Received: from public.example ([203.0.113.9])");
        assert_eq!(
            lines[1],
            "\tby mx.example ([198.51.100.1]); Thu, 1 Jan 1970 00:00:00 +0000"
        );
        assert!(lines[2].starts_with("Received: from h "));
        assert_eq!(&lines[5..7], ["X-A: 1", "X-B: 2"]);
    }

    /// The tab that config allows in HEADER_ADD folds the line; it became `?`, which broke
    /// the header block.
    #[test]
    fn header_add_keeps_its_folding_tab() {
        let c = conn();
        let mut t = trace(&c, Some("h"));
        t.header_add = Some("X-A: 1\n\tcontinued\nX-B:\t2");
        let h = String::from_utf8(t.headers(at(0))).unwrap();
        assert!(
            h.ends_with("\r\nX-A: 1\r\n\tcontinued\r\nX-B:\t2\r\n"),
            "{h}"
        );
    }

    #[test]
    fn no_fixup_when_it_names_this_host() {
        let c = conn();
        let mut t = trace(&c, Some("h"));
        t.fixup_host = Some("MX.example");
        t.fixup_ip = Some("198.51.100.1");
        let h = String::from_utf8(t.headers(at(0))).unwrap();
        assert_eq!(h.matches("Received:").count(), 1);
    }
}
