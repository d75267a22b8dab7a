//! Mail rules (SPEC 5) end to end: transcripts through the real `smtpfront-echo` binary with
//! `MAILRULES` naming a rules file written into a scratch directory, one test per feature.
//! Every reply is compared in full (code, enhanced code and text); an expected line ending in
//! `...` is compared as a prefix (queue ids vary).
//!
//! cdb lists are built with the real tools: `cdbmake` (freecdb) and `cdb -c -m` (tinycdb). A
//! missing tool fails the test under `CI=true` and skips it otherwise (`common::tool`).

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;

use common::{echo, replies, scratch, tool};

// ---- replies that do not come from a rule ---------------------------------------------------

const GO_AHEAD: &str = "354 End your message with a line holding only a dot";
const RULES_BROKEN: &str = "451 4.3.0 Mail rules are unusable, try again later";
const TOO_BIG: &str = "552 5.3.4 Message too big";
const TOO_MANY_HOPS: &str = "554 5.4.6 Too many hops, this message is looping";
const RESET: &str = "250 2.0.0 Reset";
const NEED_MAIL: &str = "503 5.5.1 MAIL first";

// ---- helpers --------------------------------------------------------------------------------

/// A scratch directory for one test's rules and list files, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(test: &str) -> Dir {
        Dir(scratch(&format!("rules-{test}")))
    }

    /// The path of `name` in the directory, as text for a rules file.
    fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }

    /// Writes `name` with `text`; returns its path.
    fn write(&self, name: &str, text: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, text).expect("write scratch file");
        path
    }

    /// Writes the rules file, `{DIR}` replaced by this directory; returns its path.
    fn rules(&self, text: &str) -> String {
        self.write("mailrules", &text.replace("{DIR}", &self.path("")))
    }

    /// [`check`] with the list files of this directory.
    fn check(
        &self,
        env: &[(&str, &str)],
        rules: &str,
        script: &[&str],
        expected: &[&str],
    ) -> (String, String) {
        let path = self.rules(rules);
        run(env, &path, script, expected)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `script` (lines joined with CRLF) through smtpfront-echo with `rules_text` as
/// `$MAILRULES` and `env`, and checks every reply after the greeting against `expected`, in
/// order and in full (a trailing `...`: as a prefix). Returns (stdout, stderr: the log).
fn check(
    env: &[(&str, &str)],
    rules_text: &str,
    script: &[&str],
    expected: &[&str],
) -> (String, String) {
    Dir::new("check").check(env, rules_text, script, expected)
}

/// [`check`] with `$MAILRULES` naming `rules_path` as it is.
fn run(
    env: &[(&str, &str)],
    rules_path: &str,
    script: &[&str],
    expected: &[&str],
) -> (String, String) {
    let mut env = env.to_vec();
    env.push(("MAILRULES", rules_path));
    let mut input = script.join("\r\n");
    input.push_str("\r\n");
    let (out, err, code) = echo(&env, &input);
    assert_eq!(code, 0, "exit status; stderr:\n{err}");
    let got = replies(&out);
    let matches = got.len() == expected.len()
        && got
            .iter()
            .zip(expected)
            .all(|(g, e)| match e.strip_suffix("...") {
                // `PREFIX queue id ...`: the rest of the line is a queue id, digits and dots.
                Some(prefix) if prefix.ends_with("queue id ") => {
                    common::like(g, &format!("{prefix}{}", common::QUEUE_ID))
                }
                Some(prefix) => g.starts_with(prefix),
                None => g == e,
            });
    assert!(
        matches,
        "for script {script:#?}\nexpected {expected:#?}\ngot {got:#?}\nstderr:\n{err}"
    );
    (out, err)
}

/// The headers the echo back end logged (`header: ...` lines), in order.
fn logged_headers(log: &str) -> Vec<&str> {
    common::log_lines_without_prefix(log)
        .into_iter()
        .filter_map(|m| m.strip_prefix("header: "))
        .collect()
}

/// Builds `dir/name` with freecdb's `cdbmake` from `keys` (value `1` each).
fn cdbmake(dir: &Dir, name: &str, keys: &[&str]) -> Option<String> {
    let program = tool("cdbmake")?;
    let mut input = Vec::new();
    for key in keys {
        writeln!(input, "+{},1:{key}->1", key.len()).expect("format");
    }
    input.push(b'\n');
    let out = dir.path(name);
    let tmp = dir.path(&format!("{name}.tmp"));
    feed(common::command(program, &[]).arg(&out).arg(&tmp), &input);
    Some(out)
}

/// Builds `dir/name` with tinycdb's `cdb -c -m` ("key value" lines).
fn tinycdb(dir: &Dir, name: &str, keys: &[&str]) -> Option<String> {
    let program = tool("cdb")?;
    let input: String = keys.iter().map(|k| format!("{k} 1\n")).collect();
    let out = dir.path(name);
    feed(
        common::command(program, &[]).arg("-c").arg("-m").arg(&out),
        input.as_bytes(),
    );
    Some(out)
}

/// Runs `command` with `input` on stdin; panics unless it succeeds.
fn feed(command: &mut std::process::Command, input: &[u8]) {
    let mut child = command
        .stdin(Stdio::piped())
        .spawn()
        .expect("run the cdb tool");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input)
        .expect("write to the cdb tool");
    let status = child.wait().expect("wait for the cdb tool");
    assert!(status.success(), "{command:?} failed: {status}");
}

// ---- prefixes and texts -----------------------------------------------------------------------

#[test]
fn k_and_big_k_accept_with_their_response_or_the_usual_text() {
    check(
        &[],
        "ka@x.y:*:Welcome a\nKb@x.y:*:Welcome b\nkc@x.y:*\n\
         k*:r1@x.y:Hello r1\nK*:r2@x.y:Hello r2\nk*:r3@x.y\n",
        &[
            "MAIL FROM:<a@x.y>",
            "RSET",
            "MAIL FROM:<b@x.y>",
            "RSET",
            "MAIL FROM:<c@x.y>",
            "RCPT TO:<r1@x.y>",
            "RCPT TO:<r2@x.y>",
            "RCPT TO:<r3@x.y>",
        ],
        &[
            "250 2.1.0 Welcome a",
            RESET,
            "250 2.1.0 Welcome b",
            RESET,
            "250 2.1.0 Sender <c@x.y> accepted",
            "250 2.1.5 Hello r1",
            "250 2.1.5 Hello r2",
            "250 2.1.5 Recipient <r3@x.y> accepted",
        ],
    );
}

#[test]
fn d_and_z_refuse_with_the_default_texts() {
    check(
        &[],
        "dbad@x.y:*\nzslow@x.y:*\nd*:bad@x.y\nz*:slow@x.y\n",
        &[
            "MAIL FROM:<bad@x.y>",
            "MAIL FROM:<slow@x.y>",
            "MAIL FROM:<good@x.y>",
            "RCPT TO:<bad@x.y>",
            "RCPT TO:<slow@x.y>",
            "RCPT TO:<good@x.y>",
            "DATA",
            "hi",
            ".",
        ],
        &[
            "553 5.7.1 Rejected",
            "451 4.7.1 Deferred",
            "250 2.1.0 Sender <good@x.y> accepted",
            "553 5.7.1 Rejected",
            "451 4.7.1 Deferred",
            "250 2.1.5 Recipient <good@x.y> accepted",
            GO_AHEAD,
            // The refused recipients are not part of the message.
            "250 2.0.0 Received 4 bytes for 1 recipient(s), queue id ...",
        ],
    );
}

#[test]
fn response_texts_multi_line_and_escapes() {
    check(
        &[],
        concat!(
            r"dmulti@x.y:*:First line\nSecond line\nThird line",
            "\n",
            r"dcolon@x.y:*:Code\: 42, path C\:\\dir\\",
            "\n",
            r"doctal@x.y:*:\101\102C \0411 \67",
            "\n",
            "zspaced@x.y:*:  Try later, please \t\n",
            r"kgreet@x.y:*:Hi\nthere",
            "\n",
            r"z*:multi@x.y:Not now\nmaybe later",
            "\n",
        ),
        &[
            "MAIL FROM:<multi@x.y>",
            "MAIL FROM:<colon@x.y>",
            "MAIL FROM:<octal@x.y>",
            "MAIL FROM:<spaced@x.y>",
            "MAIL FROM:<greet@x.y>",
            "RCPT TO:<multi@x.y>",
        ],
        &[
            "553-5.7.1 First line",
            "553-5.7.1 Second line",
            "553 5.7.1 Third line",
            r"553 5.7.1 Code: 42, path C:\dir\",
            "553 5.7.1 ABC !1 7",
            "451 4.7.1 Try later, please",
            "250-2.1.0 Hi",
            "250 2.1.0 there",
            "451-4.7.1 Not now",
            "451 4.7.1 maybe later",
        ],
    );
}

#[test]
fn escapes_in_patterns() {
    // `\:` puts a colon into a pattern (here for a quoted local part, which rules see
    // without its quotes, SPEC 5), `\141` an `a`.
    check(
        &[],
        "d*:odd\\:name@x.y:colon\nd\\141lice@x.y:*:octal\n",
        &[
            "MAIL FROM:<alice@x.y>",
            "MAIL FROM:<bob@x.y>",
            "RCPT TO:<\"odd:name\"@x.y>",
            "RCPT TO:<oddname@x.y>",
        ],
        &[
            "553 5.7.1 octal",
            "250 2.1.0 Sender <bob@x.y> accepted",
            "553 5.7.1 colon",
            "250 2.1.5 Recipient <oddname@x.y> accepted",
        ],
    );
}

// ---- selectors -----------------------------------------------------------------------------------

#[test]
fn selectors_and_their_abbreviations() {
    // After `:sender` (here `:s`) a rule tests the sender only, whatever its recipient
    // pattern; after `:recipient` (here `:rec`) a rule with recipient `*` is a recipient rule.
    let rules = "\
:s
dspam@x.y:nobody@x.y:sender rule
:rec
dblock@x.y:*:recipient rule
:sender
zlater@x.y:*:sender again
:recipient
z*:busy@x.y:recipient again
:r
d*:*@evil.example:short selector
";
    check(
        &[],
        rules,
        &[
            "MAIL FROM:<spam@x.y>",
            "MAIL FROM:<later@x.y>",
            "MAIL FROM:<block@x.y>",
            "RCPT TO:<anyone@x.y>",
            "RSET",
            "MAIL FROM:<ok@x.y>",
            "RCPT TO:<busy@x.y>",
            "RCPT TO:<u@evil.example>",
            "RCPT TO:<nobody@x.y>",
        ],
        &[
            "553 5.7.1 sender rule",
            "451 4.7.1 sender again",
            "250 2.1.0 Sender <block@x.y> accepted",
            "553 5.7.1 recipient rule",
            RESET,
            "250 2.1.0 Sender <ok@x.y> accepted",
            "451 4.7.1 recipient again",
            "553 5.7.1 short selector",
            "250 2.1.5 Recipient <nobody@x.y> accepted",
        ],
    );
}

#[test]
fn before_any_selector_recipient_star_makes_a_sender_rule() {
    check(
        &[],
        "dstar@x.y:*:sender rule\ndnostar@x.y:r@x.y:recipient rule\nd*:*@x.y:domain rule\n",
        &[
            "MAIL FROM:<star@x.y>",
            "MAIL FROM:<nostar@x.y>",
            "RCPT TO:<other@z.z>",
            "RCPT TO:<r@x.y>",
            "RSET",
            "MAIL FROM:<someone@z.z>",
            "RCPT TO:<r@x.y>",
        ],
        &[
            "553 5.7.1 sender rule",
            // A recipient rule: not tried at MAIL.
            "250 2.1.0 Sender <nostar@x.y> accepted",
            "250 2.1.5 Recipient <other@z.z> accepted",
            "553 5.7.1 recipient rule",
            RESET,
            "250 2.1.0 Sender <someone@z.z> accepted",
            "553 5.7.1 domain rule",
        ],
    );
}

// ---- patterns ------------------------------------------------------------------------------------

#[test]
fn globs_are_case_insensitive() {
    let rules = "\
dexact@example.com:*:exact
d?@example.com:*:one character
d[abc]x@example.com:*:set
d[!abc]y@example.com:*:negated set
d*@*.example.org:*:stars
dUPPER@X.Y:*:upper-case pattern
d*:*+*@x.y:recipient glob
";
    check(
        &[],
        rules,
        &[
            "MAIL FROM:<EXACT@Example.COM>",
            "MAIL FROM:<q@example.com>",
            "MAIL FROM:<qq@example.com>",
            "RSET",
            "MAIL FROM:<Bx@example.com>",
            "MAIL FROM:<dx@example.com>",
            "RSET",
            "MAIL FROM:<dy@example.com>",
            "MAIL FROM:<ay@example.com>",
            "RSET",
            "MAIL FROM:<me@mail.EXAMPLE.org>",
            "MAIL FROM:<me@example.org>",
            "RSET",
            "MAIL FROM:<upper@x.y>",
            "MAIL FROM:<a@x.y>",
            "RCPT TO:<a+b@X.Y>",
            "RCPT TO:<ab@x.y>",
        ],
        &[
            "553 5.7.1 exact",
            "553 5.7.1 one character",
            "250 2.1.0 Sender <qq@example.com> accepted",
            RESET,
            "553 5.7.1 set",
            "250 2.1.0 Sender <dx@example.com> accepted",
            RESET,
            "553 5.7.1 negated set",
            "250 2.1.0 Sender <ay@example.com> accepted",
            RESET,
            "553 5.7.1 stars",
            "250 2.1.0 Sender <me@example.org> accepted",
            RESET,
            "553 5.7.1 upper-case pattern",
            "250 2.1.0 Sender <a@x.y> accepted",
            "553 5.7.1 recipient glob",
            "250 2.1.5 Recipient <ab@x.y> accepted",
        ],
    );
}

#[test]
fn empty_pattern_matches_only_the_null_sender() {
    check(
        &[],
        "d:*:no bounces here\n",
        &["MAIL FROM:<>", "MAIL FROM:<a@x.y>", "RCPT TO:<b@x.y>"],
        &[
            "553 5.7.1 no bounces here",
            "250 2.1.0 Sender <a@x.y> accepted",
            "250 2.1.5 Recipient <b@x.y> accepted",
        ],
    );
    // `*` matches the null sender too; `!` with the empty pattern: every real address.
    check(
        &[],
        "k*:*:anything\n",
        &["MAIL FROM:<>"],
        &["250 2.1.0 anything"],
    );
    check(
        &[],
        "d!:*:real senders refused\n",
        &["MAIL FROM:<a@x.y>", "MAIL FROM:<>"],
        &[
            "553 5.7.1 real senders refused",
            "250 2.1.0 Sender <> accepted",
        ],
    );
}

#[test]
fn negation_and_double_negation() {
    let rules = "\
k!!vip@example.com:*:twice negated
d!*@example.com:*:outsider
d*:!*@example.com:not our domain
";
    check(
        &[],
        rules,
        &[
            "MAIL FROM:<VIP@example.com>",
            "RSET",
            "MAIL FROM:<a@example.net>",
            "MAIL FROM:<>",
            "MAIL FROM:<other@example.com>",
            "RCPT TO:<x@example.net>",
            "RCPT TO:<x@example.com>",
        ],
        &[
            "250 2.1.0 twice negated",
            RESET,
            "553 5.7.1 outsider",
            "553 5.7.1 outsider",
            "250 2.1.0 Sender <other@example.com> accepted",
            "553 5.7.1 not our domain",
            "250 2.1.5 Recipient <x@example.com> accepted",
        ],
    );
}

// ---- list files ------------------------------------------------------------------------------------

/// The same transcript for every kind of list: `people` matched with `[[...]]` (holds
/// `spammer@example.com` and `@bad.example`), `domains` with `[[@...]]` (holds
/// `example.org` and `@at.example`).
fn list_transcript(dir: &Dir, people: &str, domains: &str) {
    let rules = format!(
        "d[[{people}]]:*:sender listed\nd[[@{domains}]]:*:sender domain listed\n\
         z*:[[{people}]]:recipient listed\nd*:[[@{domains}]]:recipient domain listed\n"
    );
    dir.check(
        &[],
        &rules,
        &[
            "MAIL FROM:<Spammer@EXAMPLE.com>",
            "MAIL FROM:<anyone@bad.example>",
            "MAIL FROM:<anyone@sub.bad.example>",
            "RSET",
            "MAIL FROM:<x@Example.ORG>",
            "MAIL FROM:<y@at.example>",
            "MAIL FROM:<x@sub.example.org>",
            "RSET",
            "MAIL FROM:<>",
            "RCPT TO:<spammer@example.com>",
            "RCPT TO:<who@BAD.example>",
            "RCPT TO:<who@example.org>",
            "RCPT TO:<postmaster>",
        ],
        &[
            "553 5.7.1 sender listed",
            "553 5.7.1 sender listed",
            "250 2.1.0 Sender <anyone@sub.bad.example> accepted",
            RESET,
            "553 5.7.1 sender domain listed",
            "553 5.7.1 sender domain listed",
            "250 2.1.0 Sender <x@sub.example.org> accepted",
            RESET,
            "250 2.1.0 Sender <> accepted",
            "451 4.7.1 recipient listed",
            "451 4.7.1 recipient listed",
            "553 5.7.1 recipient domain listed",
            "250 2.1.5 Recipient <postmaster> accepted",
        ],
    );
}

#[test]
fn text_lists_with_domains_and_comments() {
    let dir = Dir::new("text-lists");
    let people = dir.write(
        "people",
        "# people we refuse\nSpammer@Example.com\n  @bad.example  \n\n#anyone@sub.bad.example\n",
    );
    let domains = dir.write("domains", "# domains\nExample.org\n@at.example\n");
    list_transcript(&dir, &people, &domains);
}

#[test]
fn cdb_lists_made_by_cdbmake() {
    let dir = Dir::new("cdbmake");
    let Some(people) = cdbmake(&dir, "people.cdb", &["spammer@example.com", "@bad.example"]) else {
        return;
    };
    let Some(domains) = cdbmake(&dir, "domains.cdb", &["example.org", "@at.example"]) else {
        return;
    };
    list_transcript(&dir, &people, &domains);
}

#[test]
fn cdb_lists_made_by_tinycdb() {
    let dir = Dir::new("tinycdb");
    let Some(people) = tinycdb(&dir, "people.cdb", &["spammer@example.com", "@bad.example"]) else {
        return;
    };
    let Some(domains) = tinycdb(&dir, "domains.cdb", &["example.org", "@at.example"]) else {
        return;
    };
    list_transcript(&dir, &people, &domains);
}

#[test]
fn a_missing_cdb_matches_nothing() {
    let (_, err) = check(
        &[],
        "d[[{DIR}missing.cdb]]:*:listed\nd*:[[@{DIR}gone.cdb]]:listed\nd!![[{DIR}missing.cdb]]:*:listed\n\
         dlast@x.y:*:after the lists\n",
        &[
            "MAIL FROM:<a@x.y>",
            "RCPT TO:<b@x.y>",
            "RSET",
            "MAIL FROM:<last@x.y>",
        ],
        &[
            "250 2.1.0 Sender <a@x.y> accepted",
            "250 2.1.5 Recipient <b@x.y> accepted",
            RESET,
            "553 5.7.1 after the lists",
        ],
    );
    assert!(!err.contains("MAILRULES"), "no complaint expected:\n{err}");
}

// ---- broken rules ------------------------------------------------------------------------------------

#[test]
fn a_missing_text_list_defers_every_mail_and_is_logged() {
    let dir = Dir::new("missing-list");
    let (_, err) = dir.check(
        &[],
        "# line 1\nk*:*@x.y\nd[[{DIR}no-such-list]]:*:listed\n",
        &[
            "MAIL FROM:<a@x.y>",
            "RCPT TO:<b@x.y>",
            "NOOP",
            "MAIL FROM:<>",
        ],
        &[RULES_BROKEN, NEED_MAIL, "250 2.0.0 Ok", RULES_BROKEN],
    );
    let rules = dir.path("mailrules");
    assert!(
        err.lines()
            .any(|l| l.contains(&format!("{rules}:3: ")) && l.contains("no-such-list")),
        "the log must name the rules file, line 3 and the list:\n{err}"
    );
}

#[test]
fn an_unreadable_rules_file_defers_every_mail_and_is_logged() {
    let dir = Dir::new("unreadable");
    let missing = dir.path("no-such-rules");
    let a_directory = dir.path("");
    for path in [missing.as_str(), a_directory.as_str()] {
        let (_, err) = run(
            &[],
            path,
            &["MAIL FROM:<a@x.y>", "MAIL FROM:<b@x.y>"],
            &[RULES_BROKEN, RULES_BROKEN],
        );
        assert!(
            err.contains(path.trim_end_matches('/')),
            "{path} not named:\n{err}"
        );
    }
}

#[test]
fn a_line_that_does_not_parse_defers_every_mail_and_is_logged() {
    let bad_lines = [
        "x*:*:unknown prefix",
        "k*:*::12x",
        "k[oops:*",
        ":bogus",
        "k*:*:ends with a backslash\\",
        "k*:*::::NOT A PAIR",
        "k*:*:\\400 is not ASCII",
        "&a@x.y:*",
    ];
    for bad in bad_lines {
        let dir = Dir::new("parse-error");
        let (_, err) = dir.check(
            &[],
            &format!("# fine\nkok@x.y:*:fine\n\n{bad}\n"),
            &["MAIL FROM:<ok@x.y>", "MAIL FROM:<other@x.y>"],
            &[RULES_BROKEN, RULES_BROKEN],
        );
        let at = format!("{}:4: ", dir.path("mailrules"));
        assert!(
            err.lines().any(|l| l.contains(&at)),
            "{bad:?}: the log must name {at:?}:\n{err}"
        );
    }
}

// ---- DATABYTES ---------------------------------------------------------------------------------------

/// A message of 208 bytes as counted (CRLF line ends, after the dot-unstuffing).
const MESSAGE_208: [&str; 5] = [
    "Subject: size test",
    "",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
];

/// MAIL from `sender`, one RCPT to `recipient`, DATA, the 208-byte message, the dot.
fn transaction(sender: &str, recipient: &str) -> Vec<String> {
    let mut lines = vec![
        format!("MAIL FROM:<{sender}>"),
        format!("RCPT TO:<{recipient}>"),
        "DATA".to_string(),
    ];
    lines.extend(MESSAGE_208.iter().map(|l| l.to_string()));
    lines.push(".".to_string());
    lines
}

fn script<'a>(parts: &'a [Vec<String>], extra: &[&'a str]) -> Vec<&'a str> {
    let mut v: Vec<&str> = parts.iter().flatten().map(String::as_str).collect();
    v.extend_from_slice(extra);
    v
}

#[test]
fn databytes_field_lowers_the_limit_of_one_message() {
    let parts = [
        transaction("small@x.y", "r@x.y"),
        transaction("other@x.y", "r@x.y"),
        transaction("other@x.y", "tiny@x.y"),
        transaction("other@x.y", "r@x.y"),
    ];
    let lines = script(
        &parts,
        &[
            "MAIL FROM:<small@x.y> SIZE=101",
            "MAIL FROM:<small@x.y> SIZE=100",
            "RSET",
            "MAIL FROM:<other@x.y> SIZE=1000",
            "RSET",
            "MAIL FROM:<other@x.y> SIZE=1001",
            // A rule cannot raise the limit.
            "MAIL FROM:<big@x.y> SIZE=1001",
        ],
    );
    let accepted = "250 2.0.0 Received 208 bytes for 1 recipient(s), queue id ...";
    check(
        &[("DATABYTES", "1000")],
        "ksmall@x.y:*::100\nk*:tiny@x.y::150\nkbig@x.y:*::5000\n",
        &lines,
        &[
            "250 2.1.0 Sender <small@x.y> accepted",
            "250 2.1.5 Recipient <r@x.y> accepted",
            GO_AHEAD,
            TOO_BIG,
            // The next transaction, without the rule, has the full limit again.
            "250 2.1.0 Sender <other@x.y> accepted",
            "250 2.1.5 Recipient <r@x.y> accepted",
            GO_AHEAD,
            accepted,
            // A recipient rule lowers it too, for its message.
            "250 2.1.0 Sender <other@x.y> accepted",
            "250 2.1.5 Recipient <tiny@x.y> accepted",
            GO_AHEAD,
            TOO_BIG,
            "250 2.1.0 Sender <other@x.y> accepted",
            "250 2.1.5 Recipient <r@x.y> accepted",
            GO_AHEAD,
            accepted,
            TOO_BIG,
            "250 2.1.0 Sender <small@x.y> accepted, parameters: SIZE=100",
            RESET,
            "250 2.1.0 Sender <other@x.y> accepted, parameters: SIZE=1000",
            RESET,
            TOO_BIG,
            TOO_BIG,
        ],
    );
}

#[test]
fn databytes_field_without_a_global_limit() {
    let parts = [transaction("small@x.y", "r@x.y")];
    check(
        &[],
        "nsmall@x.y:*::200\n",
        &script(&parts, &["MAIL FROM:<small@x.y> SIZE=201"]),
        &[
            "250 2.1.0 Sender <small@x.y> accepted",
            "250 2.1.5 Recipient <r@x.y> accepted",
            GO_AHEAD,
            TOO_BIG,
            TOO_BIG,
        ],
    );
}

// ---- RELAYCLIENT field -----------------------------------------------------------------------------

#[test]
fn relayclient_field_is_appended_to_the_recipient() {
    check(
        &[],
        "k*:*@x.y:::@suffix\nksender@a.b:*:::@ignored-for-senders\n",
        &[
            "MAIL FROM:<sender@a.b>",
            "RCPT TO:<user@x.y>",
            "RCPT TO:<user@other.example>",
        ],
        &[
            "250 2.1.0 Sender <sender@a.b> accepted",
            "250 2.1.5 Recipient <user@x.y@suffix> accepted",
            "250 2.1.5 Recipient <user@other.example> accepted",
        ],
    );
}

// ---- ENVIRONMENT field -----------------------------------------------------------------------------

/// MAIL, RCPT, DATA and a message with `hops` Received headers.
fn hops_transaction(sender: &str, hops: usize) -> Vec<String> {
    let mut lines = vec![
        format!("MAIL FROM:<{sender}>"),
        "RCPT TO:<r@x.y>".to_string(),
        "DATA".to_string(),
    ];
    lines.extend((0..hops).map(|i| format!("Received: from hop{i}.example")));
    lines.extend(["Subject: hops".to_string(), String::new(), "x".to_string()]);
    lines.push(".".to_string());
    lines
}

#[test]
fn environment_maxhops_from_the_rule_on() {
    let parts = [
        hops_transaction("normal@x.y", 2),
        hops_transaction("strict@x.y", 2),
        // From then on, for the rest of the session.
        hops_transaction("normal@x.y", 1),
        hops_transaction("normal@x.y", 2),
    ];
    let tx = |sender: &str, verdict: &str| {
        vec![
            format!("250 2.1.0 Sender <{sender}> accepted"),
            "250 2.1.5 Recipient <r@x.y> accepted".to_string(),
            GO_AHEAD.to_string(),
            verdict.to_string(),
        ]
    };
    let expected = [
        tx(
            "normal@x.y",
            "250 2.0.0 Received # bytes for 1 recipient(s), queue id ...",
        ),
        tx("strict@x.y", TOO_MANY_HOPS),
        tx(
            "normal@x.y",
            "250 2.0.0 Received # bytes for 1 recipient(s), queue id ...",
        ),
        tx("normal@x.y", TOO_MANY_HOPS),
    ];
    check(
        &[],
        "nstrict@x.y:*::::MAXHOPS=1\n",
        &script(&parts, &[]),
        &script(&expected, &[]),
    );
}

#[test]
fn environment_header_add_adds_headers() {
    let rules = concat!(
        r"ntagged@x.y:*::::HEADER_ADD=X-Rule: tagged\nX-Second: two",
        "\n",
        "k*:quoted@x.y::::HEADER_ADD=\"X-List: a, b\",MAXHOPS=50\n",
    );
    let message = ["DATA", "Subject: t", "", "x", "."];
    let mut lines = vec!["MAIL FROM:<plain@x.y>", "RCPT TO:<r@x.y>"];
    lines.extend(message);
    lines.extend(["MAIL FROM:<tagged@x.y>", "RCPT TO:<r@x.y>"]);
    lines.extend(message);
    lines.extend(["MAIL FROM:<plain@x.y>", "RCPT TO:<quoted@x.y>"]);
    lines.extend(message);
    let queued = "250 2.0.0 Received 17 bytes for 1 recipient(s), queue id ...";
    let (_, err) = check(
        &[],
        rules,
        &lines,
        &[
            "250 2.1.0 Sender <plain@x.y> accepted",
            "250 2.1.5 Recipient <r@x.y> accepted",
            GO_AHEAD,
            queued,
            "250 2.1.0 Sender <tagged@x.y> accepted",
            "250 2.1.5 Recipient <r@x.y> accepted",
            GO_AHEAD,
            queued,
            "250 2.1.0 Sender <plain@x.y> accepted",
            "250 2.1.5 Recipient <quoted@x.y> accepted",
            GO_AHEAD,
            queued,
        ],
    );
    // Received headers shortened to their name; continuation lines left out.
    let headers: Vec<&str> = logged_headers(&err)
        .into_iter()
        .filter(|h| !h.starts_with("\\x09"))
        .map(|h| {
            if h.starts_with("Received: ") {
                "Received:"
            } else {
                h
            }
        })
        .collect();
    assert_eq!(
        headers,
        [
            "Received:",
            "Received:",
            "X-Rule: tagged",
            "X-Second: two",
            "Received:",
            "X-List: a, b",
        ],
        "{err}"
    );
}

#[test]
fn environment_relayclient_applies_to_later_recipients() {
    check(
        &[],
        "n*:trigger@x.y::::RELAYCLIENT=@relay\n",
        &[
            "MAIL FROM:<a@x.y>",
            "RCPT TO:<before@x.y>",
            "RCPT TO:<trigger@x.y>",
            "RCPT TO:<after@x.y>",
            "RSET",
            "MAIL FROM:<a@x.y>",
            "RCPT TO:<next@x.y>",
        ],
        &[
            "250 2.1.0 Sender <a@x.y> accepted",
            "250 2.1.5 Recipient <before@x.y> accepted",
            "250 2.1.5 Recipient <trigger@x.y@relay> accepted",
            "250 2.1.5 Recipient <after@x.y@relay> accepted",
            RESET,
            "250 2.1.0 Sender <a@x.y> accepted",
            "250 2.1.5 Recipient <next@x.y@relay> accepted",
        ],
    );
    // Set by a sender rule: for every recipient of the session.
    check(
        &[],
        "nrelay@x.y:*::::RELAYCLIENT=+r\n",
        &["MAIL FROM:<relay@x.y>", "RCPT TO:<one@x.y>"],
        &[
            "250 2.1.0 Sender <relay@x.y> accepted",
            "250 2.1.5 Recipient <one@x.y+r> accepted",
        ],
    );
}

#[test]
fn environment_value_that_start_up_would_refuse() {
    let (_, err) = check(
        &[("MAXHOPS", "2")],
        "nbad@x.y:*::::MAXHOPS=abc\nn*:bad@x.y::::DATABYTES=-1\n",
        &[
            "MAIL FROM:<bad@x.y>",
            "MAIL FROM:<good@x.y>",
            "RCPT TO:<bad@x.y>",
            "RCPT TO:<good@x.y>",
            "DATA",
            "Received: a",
            "Received: b",
            "Received: c",
            "",
            "x",
            ".",
        ],
        &[
            RULES_BROKEN,
            "250 2.1.0 Sender <good@x.y> accepted",
            RULES_BROKEN,
            "250 2.1.5 Recipient <good@x.y> accepted",
            GO_AHEAD,
            // The refused value changed nothing: MAXHOPS is still 2.
            TOO_MANY_HOPS,
        ],
    );
    // Looked for in the messages, without `PROGRAM[PID]: ` (a PID holds digits).
    let logged = |name: &str, value: &str| {
        common::log_lines_without_prefix(&err).iter().any(|m| {
            m.starts_with("mail rule ENVIRONMENT refused: ")
                && m.contains(name)
                && m.contains(value)
        })
    };
    assert!(logged("MAXHOPS", "abc"), "{err}");
    assert!(logged("DATABYTES", "-1"), "{err}");
}

// ---- p, n, & -----------------------------------------------------------------------------------------

#[test]
fn p_passes_on_to_relayclient() {
    let rules = "\
p*:pass@x.y:this text is not used::+field
d*:pass@x.y:never reached
k*:accept@x.y
d*:*@x.y:refused
";
    check(
        &[("RELAYCLIENT", "@env")],
        rules,
        &[
            "MAIL FROM:<a@b.c>",
            "RCPT TO:<pass@x.y>",
            "RCPT TO:<accept@x.y>",
            "RCPT TO:<other@x.y>",
            "RCPT TO:<other@z.z>",
        ],
        &[
            "250 2.1.0 Sender <a@b.c> accepted",
            // p decides (the d after it is not tried) and goes on to RELAYCLIENT.
            "250 2.1.5 Recipient <pass@x.y+field@env> accepted",
            // k accepts; SPEC 2 appends RELAYCLIENT to every recipient the rules did not
            // refuse, so k's too (mailfront skipped its relayclient plugin after k).
            "250 2.1.5 Recipient <accept@x.y@env> accepted",
            // The rules refuse before RELAYCLIENT is looked at.
            "553 5.7.1 refused",
            "250 2.1.5 Recipient <other@z.z@env> accepted",
        ],
    );
    // A p sender rule: no verdict, the usual reply.
    check(
        &[],
        "pa@x.y:*:unused\nd*:*:not reached for a@x.y\n",
        &["MAIL FROM:<a@x.y>", "RSET", "MAIL FROM:<b@x.y>"],
        &[
            "250 2.1.0 Sender <a@x.y> accepted",
            RESET,
            "553 5.7.1 not reached for a@x.y",
        ],
    );
}

#[test]
fn n_applies_its_fields_and_goes_on() {
    let rules = "\
n*:*@x.y:not a verdict::+n
k*:special@x.y:::+k
d*:blocked@x.y
nslow@x.y:*:ignored too:100
";
    check(
        &[],
        rules,
        &[
            "MAIL FROM:<slow@x.y> SIZE=101",
            "MAIL FROM:<slow@x.y>",
            "RCPT TO:<special@x.y>",
            "RCPT TO:<blocked@x.y>",
            "RCPT TO:<plain@x.y>",
            "RCPT TO:<plain@z.z>",
        ],
        &[
            TOO_BIG,
            "250 2.1.0 Sender <slow@x.y> accepted",
            "250 2.1.5 Recipient <special@x.y+n+k> accepted",
            "553 5.7.1 Rejected",
            "250 2.1.5 Recipient <plain@x.y+n> accepted",
            "250 2.1.5 Recipient <plain@z.z> accepted",
        ],
    );
}

#[test]
fn and_chains() {
    let rules = "\
&*@chain.example:*
&!ok@*:*
d*:*:chained reject
zlast@*:*:after the chain
:recipient
&*@trusted.example:*
k*:*@x.y:trusted sender
d*:*@x.y:untrusted
";
    check(
        &[],
        rules,
        &[
            "MAIL FROM:<x@chain.example>",
            "MAIL FROM:<last@chain.example>",
            "MAIL FROM:<ok@chain.example>",
            "RSET",
            "MAIL FROM:<last@other.example>",
            "MAIL FROM:<a@trusted.example>",
            "RCPT TO:<u@x.y>",
            "RSET",
            "MAIL FROM:<a@other.example>",
            "RCPT TO:<u@x.y>",
            "RCPT TO:<u@z.z>",
        ],
        &[
            "553 5.7.1 chained reject",
            "553 5.7.1 chained reject",
            // A failed link skips the rest of its chain, the rule it guards included.
            "250 2.1.0 Sender <ok@chain.example> accepted",
            RESET,
            "451 4.7.1 after the chain",
            "250 2.1.0 Sender <a@trusted.example> accepted",
            "250 2.1.5 trusted sender",
            RESET,
            "250 2.1.0 Sender <a@other.example> accepted",
            "553 5.7.1 untrusted",
            "250 2.1.5 Recipient <u@z.z> accepted",
        ],
    );
}

// ---- a large file --------------------------------------------------------------------------------

/// 10,000 rules, four kinds in turn: exact sender, exact recipient, sender domain, recipient
/// glob. Line `n` (1-based) mentions `n`; a few lines are replaced to test the order.
fn big_rules() -> String {
    let mut text = String::new();
    for n in 1..=10_000 {
        let line = match n {
            // Shadowed by line 1: must never answer.
            7000 => "ksender1@s1.example:*:shadowed".to_string(),
            // Shadowed by the domain rule of line 3.
            6000 => "kfirst@d3.example:*:shadowed too".to_string(),
            // An exact rule before the domain rule of line 9999.
            2000 => "kvip@d9999.example:*:vip".to_string(),
            _ => match (n - 1) % 4 {
                0 => format!("dsender{n}@s{n}.example:*:sender {n}"),
                1 => format!("d*:rcpt{n}@r{n}.example:recipient {n}"),
                2 => format!("z*@d{n}.example:*:domain {n}"),
                _ => format!("d*:*+tag{n}@*:glob {n}"),
            },
        };
        text.push_str(&line);
        text.push('\n');
    }
    text
}

#[test]
fn ten_thousand_rules_answer_correctly() {
    let rules = big_rules();
    assert_eq!(rules.lines().count(), 10_000);
    check(
        &[],
        &rules,
        &[
            "MAIL FROM:<Sender1@S1.example>",
            "MAIL FROM:<sender5001@s5001.example>",
            "MAIL FROM:<sender9997@s9997.example>",
            "MAIL FROM:<first@d3.example>",
            "MAIL FROM:<x@d5003.example>",
            "MAIL FROM:<x@d9999.example>",
            "MAIL FROM:<vip@d9999.example>",
            "RSET",
            "MAIL FROM:<nobody@nowhere.example>",
            "RCPT TO:<rcpt2@r2.example>",
            "RCPT TO:<a+tag5000@x.y>",
            "RCPT TO:<rcpt5002@r5002.example>",
            "RCPT TO:<a+tag10000@x.y>",
            "RCPT TO:<a+tag100000@x.y>",
            "RCPT TO:<rcpt9998@R9998.example>",
            "RCPT TO:<ok@x.y>",
        ],
        &[
            "553 5.7.1 sender 1",
            "553 5.7.1 sender 5001",
            "553 5.7.1 sender 9997",
            "451 4.7.1 domain 3",
            "451 4.7.1 domain 5003",
            "451 4.7.1 domain 9999",
            "250 2.1.0 vip",
            RESET,
            "250 2.1.0 Sender <nobody@nowhere.example> accepted",
            "553 5.7.1 recipient 2",
            "553 5.7.1 glob 5000",
            "553 5.7.1 recipient 5002",
            "553 5.7.1 glob 10000",
            "250 2.1.5 Recipient <a+tag100000@x.y> accepted",
            "553 5.7.1 recipient 9998",
            "250 2.1.5 Recipient <ok@x.y> accepted",
        ],
    );
}

// ---- regressions of the hardening issue ------------------------------------------------------

/// Two rules that set one variable for one address made the merge fail ("duplicate field")
/// and every later MAIL got 451; SPEC 5: the later value wins.
#[test]
fn two_rules_setting_one_variable_the_later_wins() {
    check(
        &[],
        "\
n*:both@x.y::::RELAYCLIENT=+first,HEADER_ADD=X-A: 1
n*:both@x.y::::RELAYCLIENT=+second
k*:both@x.y::::HEADER_ADD=X-B: 2
",
        &[
            "MAIL FROM:<a@x.y>",
            "RCPT TO:<both@x.y>",
            "RCPT TO:<other@x.y>",
            "RSET",
            "MAIL FROM:<a@x.y>",
        ],
        &[
            "250 2.1.0 Sender <a@x.y> accepted",
            "250 2.1.5 Recipient <both@x.y+second> accepted",
            "250 2.1.5 Recipient <other@x.y+second> accepted",
            RESET,
            "250 2.1.0 Sender <a@x.y> accepted",
        ],
    );
}

/// SPEC 5: patterns and lists match the local part with its quotes and backslash escapes
/// removed, as mailfront does; what is echoed keeps the RFC 5321 form.
#[test]
fn rules_see_quoted_local_parts_unquoted() {
    let dir = Dir::new("unquoted");
    dir.write("list", "c d@list.test\n");
    dir.check(
        &[],
        "\
:r
d*:a b@*:refused unquoted
z*:???@host:three characters
k*:[[{DIR}list]]:listed
d*:*:everything else
",
        &[
            "MAIL FROM:<\"s x\"@a.b>",
            "RCPT TO:<\"a b\"@relay.test>",
            "RCPT TO:<a\\ b@relay.test>",
            "RCPT TO:<a\\>b@host>",
            "RCPT TO:<\"c d\"@list.test>",
            "RCPT TO:<abcd@host>",
        ],
        &[
            "250 2.1.0 Sender <\"s x\"@a.b> accepted",
            "553 5.7.1 refused unquoted",
            "553 5.7.1 refused unquoted",
            "451 4.7.1 three characters",
            "250 2.1.5 listed",
            "553 5.7.1 everything else",
        ],
    );
    // Sender patterns too.
    check(
        &[],
        "ds x@*:*:no quotes for rules\n",
        &["MAIL FROM:<\"s x\"@a.b>"],
        &["553 5.7.1 no quotes for rules"],
    );
}
