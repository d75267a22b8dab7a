//! What forward makes of the primary's replies to one transaction (`forward::fate`, SPEC 7):
//! codes for MAIL, each RCPT, DATA and the final dot, chosen by the input (any code from 200
//! to 599, or no reply to DATA or to the dot).
//!
//! The one rule of success, asserted for every recipient: it is `Delivered` only when MAIL
//! and its RCPT got 2xx, DATA got 354 and the dot got 2xx, and it is then delivered with the
//! dot's reply. Every recipient gets exactly one fate, and a 5xx is never kept as 4xx is.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpfront::forward::client::EnvelopeReplies;
use smtpfront::forward::fate::{fates, message_fate, Fate};
use smtpfront::forward::reply::RemoteReply;

/// A code from a byte pair: 200..=599, with the interesting ones (354, 250, 450, 550) likely.
fn code(a: u8, b: u8) -> u16 {
    match a % 8 {
        0 => 354,
        1 => 250,
        2 => 451,
        3 => 554,
        _ => 200 + u16::from_le_bytes([a, b]) % 400,
    }
}

fn reply(code: u16) -> RemoteReply {
    RemoteReply {
        code,
        lines: vec![format!("{code} text")],
    }
}

fuzz_target!(|data: &[u8]| {
    let [a, b, c, d, e, f, g, rest @ ..] = data else {
        return;
    };
    let mail = reply(code(*a, *b));
    let data_reply = (c % 5 != 0).then(|| reply(code(*c, *d)));
    let dot = (e % 5 != 0).then(|| reply(code(*f, *g)));
    let rcpts: Vec<RemoteReply> = rest
        .chunks_exact(2)
        .take(50)
        .map(|p| reply(code(p[0], p[1])))
        .collect();
    let n = rcpts.len();
    let replies = EnvelopeReplies {
        mail,
        rcpts,
        data: data_reply,
    };
    let out = fates(n, &replies, dot.as_ref());
    assert_eq!(out.len(), n);
    let sent = replies.data.as_ref().is_some_and(|d| d.code == 354);
    let dot_ok = dot.as_ref().is_some_and(RemoteReply::is_positive);
    for (i, fate) in out.iter().enumerate() {
        let rcpt_ok = replies.mail.is_positive() && replies.rcpts[i].is_positive();
        match fate {
            Fate::Delivered(r) => {
                assert!(
                    rcpt_ok && sent && dot_ok,
                    "delivered without 354 + 2xx: {fate:?}"
                );
                assert_eq!(Some(r), dot.as_ref());
            }
            Fate::Deferred(_) | Fate::Bounced(_) | Fate::Expired(_) => {
                assert!(!(rcpt_ok && sent && dot_ok), "refused a delivery: {fate:?}");
            }
        }
    }
    let whole = message_fate(replies.data.as_ref(), dot.as_ref());
    assert_eq!(matches!(whole, Fate::Delivered(_)), sent && dot_ok);
});
