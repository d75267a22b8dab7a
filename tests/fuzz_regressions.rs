//! Regression tests for the crashes the fuzz targets found (fuzz/README.md: "From a crash to
//! a regression test"). Each test runs the crashing input through the same library call as
//! its target and asserts what the target asserts. A test marked `ignore` still fails: the
//! fix is pending, and whoever fixes the bug removes the `ignore`.

use smtpfront::config::Settings;
use smtpfront::rules::{Rules, Verdict};
use std::path::Path;

fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// fuzz target `rules`, input `64215c5c` (`d!\\`, no newline at the end): a recipient rule
/// (its recipient pattern is empty) whose sender pattern `!\` matches every sender but `\`;
/// for the null recipient it must reject with the default text. The last line of a file
/// without a final newline reads its fields after the patterns (RESPONSE ...) from the end of
/// the file, where the decoded copy of its escaped pattern is appended (`rules/text.rs`): the
/// rule's tail is read as `\`, which does not parse. With debug assertions the lookup panics
/// ("the fields of a rule are checked at load", `rules/table.rs`); without them (release,
/// the programs as shipped) the matching `d` rule is silently skipped.
#[test]
fn last_line_with_an_escaped_pattern_keeps_its_own_fields() {
    let rules = Rules::parse("d!\\\\", Path::new("fuzz.rules")).expect("one valid rule");
    let outcome = rules.recipient("a@example.com", "").expect("no lists");
    assert_eq!(outcome.verdict, Verdict::Reject);
    assert_eq!(outcome.text, None);
    // The same as a sender rule.
    let rules = Rules::parse("d!\\\\:*", Path::new("fuzz.rules")).expect("one valid rule");
    let outcome = rules.sender("a@example.com").expect("no lists");
    assert_eq!(outcome.verdict, Verdict::Reject);
    assert_eq!(outcome.text, None);
}

/// The same bug when the decoded pattern happens to parse as fields: the rule answers with
/// another field's text as its RESPONSE (found while reducing the crash above).
#[test]
fn last_line_response_is_not_the_decoded_pattern() {
    let rules = Rules::parse("dx\\@y:*", Path::new("fuzz.rules")).expect("one valid rule");
    let outcome = rules.sender("x@y").expect("no lists");
    assert_eq!(outcome.verdict, Verdict::Reject);
    assert_eq!(outcome.text, None, "the rule has no RESPONSE field");
    // With a final newline the same rule is right already.
    let rules = Rules::parse("dx\\@y:*\n", Path::new("fuzz.rules")).expect("one valid rule");
    assert_eq!(rules.sender("x@y").expect("no lists").text, None);
}

/// fuzz target `settings`, input
/// `4441544142f5ffffff3d31326b0054491313134b13690008123d000da82d3d7e3a20315c6e582d3200134b136900083d000d3da8153d`,
/// which sets `HEADER_ADD` to `"\u{fffd}\u{15}="`. SPEC 2: a control character in a setting
/// that ends up in a header (HEADER_ADD apart from its line separator) is a configuration
/// error; `config.rs` refuses only CR and NUL.
#[test]
fn header_add_with_a_control_character_is_a_configuration_error() {
    let result = Settings::from_vars(vars(&[("HEADER_ADD", "\u{fffd}\u{15}=")]));
    assert!(result.is_err(), "accepted: {result:?}");
    // Its line separator is allowed.
    assert!(Settings::from_vars(vars(&[("HEADER_ADD", "X-A: 1\nX-B: 2")])).is_ok());
}

/// The same check, for the other settings SPEC 2 names (the `settings` target stops at the
/// first crash, so these were found by reading the check while triaging it): a LF in
/// HELOHOST would put a second command in forward's EHLO line.
#[test]
fn protocol_and_header_settings_refuse_control_characters() {
    for (name, value) in [
        ("HELOHOST", "mx.example\r\nRCPT TO:<x@y>"),
        ("HELOHOST", "mx.example\nRSET"),
        ("SMTPGREETING", "mx.example\nhello"),
        ("SMTPGREETING", "mx\x1b[2J"),
        ("FIXUP_RECEIVED_HOST", "gw.example\x01"),
        ("FIXUP_RECEIVED_IP", "192.0.2.1\n"),
    ] {
        let result = Settings::from_vars(vars(&[(name, value)]));
        assert!(result.is_err(), "{name}={value:?} accepted");
    }
}

/// fuzz target `command`, input `RUhMTyBBVVRIIFVUSOKBnw0JCQkJCQkJCQkJCQnigZ8J` (base64): the
/// HELO name kept a trailing U+205F once HELO was sanitised in bytes; names are trimmed of
/// Unicode white space as before.
#[test]
fn helo_name_is_trimmed_of_unicode_white_space() {
    use smtpfront::smtp::command::{parse, Command};
    let line = "EHLO AUTH UTH\u{205f}\r\t\t\t\t\t\t\t\t\t\t\t\t\u{205f}\t";
    let Ok(Command::Ehlo(name)) = parse(line.as_bytes()) else {
        panic!("EHLO refused");
    };
    assert_eq!(name, name.trim());
    assert_eq!(name, format!("AUTH UTH\u{205f}{}", "?".repeat(13)));
}
