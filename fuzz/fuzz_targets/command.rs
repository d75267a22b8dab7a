//! `smtp::command::parse` on arbitrary bytes (SPEC 3).
//!
//! Invariants besides "no panic":
//! * a NUL anywhere is `CommandError::Nul`, whatever else the line holds;
//! * verbs are case-insensitive: upper-casing the verb gives the same result;
//! * HELO/EHLO names and AUTH arguments are non-empty / trimmed as parsed;
//! * a MAIL or RCPT path never holds CR, LF or NUL, parameters never hold white space;
//! * an ETRN node that passes the check shows as printable ASCII and parses back the same;
//! * a parsed path re-rendered as `MAIL FROM:<path>` / `RCPT TO:<path>` parses back to the
//!   same path, with no parameters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpfront::etrn::Node;
use smtpfront::smtp::command::{parse, Command, CommandError, Params};

fn clean_text(s: &str, what: &str) {
    assert!(
        !s.contains(['\r', '\n', '\0']),
        "{what} holds CR, LF or NUL: {s:?}"
    );
}

fn params_ok(params: &Params) {
    assert_eq!(params.iter().collect::<Vec<_>>().join(" "), params.as_str());
    for p in params.iter() {
        assert!(!p.is_empty(), "empty parameter");
        assert!(
            !p.contains(|c: char| c.is_ascii_whitespace()),
            "white space in parameter {p:?}"
        );
    }
}

fuzz_target!(|line: &[u8]| {
    let parsed = parse(line);
    if line.contains(&0) {
        assert_eq!(parsed, Err(CommandError::Nul));
        return;
    }
    // Verbs are case-insensitive (SPEC 3): the same line with the verb in upper case.
    let verb_end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let mut upper = line.to_vec();
    upper[..verb_end].make_ascii_uppercase();
    assert_eq!(parse(&upper), parsed, "verb case changed the result");
    let Ok(command) = parsed else { return };
    match command {
        Command::Helo(name) | Command::Ehlo(name) => {
            assert!(!name.is_empty(), "HELO/EHLO without a name accepted");
            assert_eq!(name.trim(), name, "HELO/EHLO name not trimmed");
        }
        Command::Auth(arg) => assert_eq!(arg.trim(), arg, "AUTH argument not trimmed"),
        Command::Mail { sender, params } => {
            clean_text(&sender, "sender");
            params_ok(&params.all);
            assert!(
                !sender.eq_ignore_ascii_case("postmaster"),
                "bare postmaster accepted as a sender"
            );
            if params.size.is_some() || params.body.is_some() {
                assert!(!params.all.is_empty(), "SIZE/BODY without a parameter");
            }
            let again = format!("MAIL FROM:<{sender}>");
            match parse(again.as_bytes()) {
                Ok(Command::Mail {
                    sender: s,
                    params: p,
                }) => {
                    assert_eq!(s, sender, "sender changed on the round trip");
                    assert!(p.all.is_empty(), "parameters appeared: {p:?}");
                }
                other => panic!("{again:?} does not parse back: {other:?}"),
            }
        }
        Command::Rcpt { recipient, params } => {
            clean_text(&recipient, "recipient");
            params_ok(&params);
            assert!(!recipient.is_empty(), "null recipient accepted");
            let again = format!("RCPT TO:<{recipient}>");
            match parse(again.as_bytes()) {
                Ok(Command::Rcpt {
                    recipient: r,
                    params: p,
                }) => {
                    assert_eq!(r, recipient, "recipient changed on the round trip");
                    assert!(p.is_empty(), "parameters appeared: {p:?}");
                }
                other => panic!("{again:?} does not parse back: {other:?}"),
            }
        }
        // SPEC 3.3: a node that passes the check prints as RFC 1985 writes it, and that
        // text parses back to the same node.
        Command::Etrn(arg) => {
            if let Ok(node) = Node::parse(&arg) {
                let shown = node.to_string();
                assert!(shown.bytes().all(|b| b.is_ascii_graphic()), "{shown:?}");
                assert_eq!(Node::parse(&shown), Ok(node), "node changed on the round trip");
            }
        }
        Command::Data
        | Command::Rset
        | Command::Noop
        | Command::Quit
        | Command::Vrfy
        | Command::Help
        | Command::StartTls { .. } => {}
    }
});
