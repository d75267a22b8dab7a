//! Transcript tests: the real `smtpfront-echo` binary through pipes, one SMTP script per
//! case, every reply of SPEC 3 and every variable of SPEC 2 (set, unset, empty, bad).

mod common;
use common::{echo, like, log_entries, log_lines_without_prefix, replies, reply_lines, QUEUE_ID};

/// Runs `input` (lines joined with CRLF) and checks each reply line starts with the
/// expected text, in order, and that nothing else was answered.
fn check(env: &[(&str, &str)], input: &[&str], expected: &[&str]) -> (String, String) {
    let mut script = input.join("\r\n");
    script.push_str("\r\n");
    let (out, err, code) = echo(env, &script);
    let got = replies(&out);
    assert_eq!(code, 0, "exit status; stderr:\n{err}");
    assert_eq!(
        got.len(),
        expected.len(),
        "reply count for {input:?}:\n{out}\nstderr:\n{err}"
    );
    for (g, e) in got.iter().zip(expected) {
        assert!(g.starts_with(e), "expected {e:?}, got {g:?}\nfull:\n{out}");
    }
    (out, err)
}

#[test]
fn greeting_names_local_host_then_ip_then_hostname() {
    let (out, _, _) = echo(&[("PROTO", "TCP"), ("TCPLOCALHOST", "mx.test")], "QUIT\r\n");
    assert!(out.starts_with("220 mx.test smtpfront ESMTP\r\n"), "{out}");
    let (out, _, _) = echo(&[("PROTO", "TCP"), ("TCPLOCALIP", "192.0.2.1")], "QUIT\r\n");
    assert!(
        out.starts_with("220 192.0.2.1 smtpfront ESMTP\r\n"),
        "{out}"
    );
    let (out, _, _) = echo(&[("SMTPGREETING", "mx.example.org hi")], "QUIT\r\n");
    assert!(out.starts_with("220 mx.example.org hi ESMTP\r\n"), "{out}");
    let (out, _, _) = echo(
        &[("PROTO", "TCP6"), ("TCP6LOCALHOST", "six.test")],
        "QUIT\r\n",
    );
    assert!(out.starts_with("220 six.test smtpfront ESMTP\r\n"), "{out}");
}

#[test]
fn ehlo_lists_extensions() {
    let env = [
        ("PROTO", "TCP"),
        ("TCPLOCALHOST", "mx.test"),
        ("DATABYTES", "1000"),
    ];
    let (out, _) = check(
        &env,
        &["EHLO client", "QUIT"],
        &[
            "250-mx.test",
            "250-SIZE 1000",
            "250-8BITMIME",
            "250-SMTPUTF8",
            "250-ENHANCEDSTATUSCODES",
            "250 PIPELINING",
            "221 2.0.0",
        ],
    );
    assert!(!out.contains("AUTH"));
    check(
        &[("CHECKPASSWORD", "/bin/false")],
        &["EHLO client"],
        &[
            "250-",
            "250-SIZE 0",
            "250-8BITMIME",
            "250-SMTPUTF8",
            "250-ENHANCEDSTATUSCODES",
            "250-PIPELINING",
            "250 AUTH PLAIN LOGIN",
        ],
    );
    check(
        &[("TCPLOCALHOST", "mx.test"), ("PROTO", "TCP")],
        &["HELO client"],
        &["250 mx.test"],
    );
}

#[test]
fn helo_and_ehlo_need_a_domain() {
    check(
        &[],
        &["HELO", "EHLO", "EHLO  "],
        &["501 5.5.4", "501 5.5.4", "501 5.5.4"],
    );
}

#[test]
fn helo_is_not_required_before_mail() {
    check(
        &[],
        &[
            "MAIL FROM:<a@example.net>",
            "RCPT TO:<b@example.com>",
            "DATA",
            "x",
            ".",
        ],
        &["250 2.1.0", "250 2.1.5", "354", "250 2.0.0"],
    );
}

#[test]
fn mail_paths_and_parameters() {
    check(
        &[],
        &[
            "MAIL FROM: <a@example.net> SIZE=100 BODY=8BITMIME X-UNKNOWN=1",
            "RSET",
            "MAIL FROM:<\"a b\"@example.net>",
            "RSET",
            "mail from:<@hop1,@hop2.example:u@example.com>",
            "RSET",
            "MAIL FROM:<>",
        ],
        &[
            "250 2.1.0 Sender <a@example.net> accepted, parameters: SIZE=100 BODY=8BITMIME X-UNKNOWN=1",
            "250 2.0.0",
            "250 2.1.0 Sender <\"a b\"@example.net> accepted",
            "250 2.0.0",
            "250 2.1.0 Sender <u@example.com> accepted",
            "250 2.0.0",
            "250 2.1.0 Sender <> accepted",
        ],
    );
}

#[test]
fn malformed_mail_is_refused() {
    check(
        &[],
        &[
            "MAIL FROM:a@example.net",
            "MAIL FROM:<a@example.net",
            "MAIL FROM:<a b@example.net>",
            "MAIL <a@example.net>",
            "MAIL FROM:<a@example.net> SIZE=big",
            "MAIL FROM:<a@example.net> BODY=BINARYMIME",
            "MAIL FROM:<postmaster>",
        ],
        &[
            "501 5.5.2",
            "501 5.5.2",
            "501 5.5.2",
            "501 5.5.2",
            "501 5.5.4",
            "501 5.5.4",
            "501 5.5.2",
        ],
    );
}

#[test]
fn second_mail_in_a_transaction_is_refused() {
    check(
        &[],
        &["MAIL FROM:<a@x.y>", "MAIL FROM:<b@x.y>", "RCPT TO:<c@x.y>"],
        &["250 2.1.0", "503 5.5.1", "250 2.1.5 Recipient <c@x.y>"],
    );
}

#[test]
fn size_parameter_over_databytes() {
    check(
        &[("DATABYTES", "100")],
        &["MAIL FROM:<a@x.y> SIZE=101", "MAIL FROM:<a@x.y> SIZE=100"],
        &["552 5.3.4", "250 2.1.0"],
    );
}

#[test]
fn rcpt_rules() {
    check(
        &[],
        &[
            "RCPT TO:<b@x.y>",
            "MAIL FROM:<a@x.y>",
            "RCPT TO:<PostMaster>",
            "RCPT TO:<b@x.y> NOTIFY=NEVER",
            "RCPT TO:<>",
            "RCPT TO:b@x.y",
            "RCPT <b@x.y>",
        ],
        &[
            "503 5.5.1",
            "250 2.1.0",
            "250 2.1.5 Recipient <PostMaster>",
            "250 2.1.5 Recipient <b@x.y>",
            "501 5.5.2",
            "501 5.5.2",
            "501 5.5.2",
        ],
    );
}

#[test]
fn null_sender_gets_one_recipient() {
    check(
        &[],
        &[
            "MAIL FROM:<>",
            "RCPT TO:<a@x.y>",
            "RCPT TO:<b@x.y>",
            "RCPT TO:<c@x.y>",
            "DATA",
            "x",
            ".",
        ],
        &[
            "250 2.1.0",
            "250 2.1.5",
            "550 5.5.3",
            "550 5.5.3",
            "354",
            "250 2.0.0 Received 3 bytes for 1 recipient(s)",
        ],
    );
}

#[test]
fn data_needs_mail_and_a_recipient() {
    check(
        &[],
        &["DATA", "MAIL FROM:<a@x.y>", "DATA", "RCPT TO:<>", "DATA"],
        &["503 5.5.1", "250", "554 5.5.1", "501", "554 5.5.1"],
    );
}

#[test]
fn dot_stuffing_and_size() {
    // "..a" is ".a" (3 bytes with CRLF... 4), "b" 3, "." ends: 2 lines, 7 bytes.
    check(
        &[],
        &[
            "MAIL FROM:<a@x.y>",
            "RCPT TO:<b@x.y>",
            "DATA",
            "..a",
            "b",
            ".",
            "NOOP",
        ],
        &[
            "250",
            "250",
            "354",
            "250 2.0.0 Received 7 bytes",
            "250 2.0.0",
        ],
    );
}

#[test]
fn bare_lf_is_accepted_and_counted_as_crlf() {
    let (out, _, _) = echo(
        &[],
        "MAIL FROM:<a@x.y>\nRCPT TO:<b@x.y>\nDATA\nab\n..\n.\nQUIT\n",
    );
    let r = replies(&out);
    assert!(r[3].starts_with("250 2.0.0 Received 7 bytes"), "{out}");
    assert!(r[4].starts_with("221"), "{out}");
}

#[test]
fn databytes_exceeded_is_552_after_the_dot_and_the_session_goes_on() {
    let big = "x".repeat(98);
    check(
        &[("DATABYTES", "200")],
        &[
            "MAIL FROM:<a@x.y>",
            "RCPT TO:<b@x.y>",
            "DATA",
            &big,
            &big,
            ".",
            "MAIL FROM:<a@x.y>",
            "RCPT TO:<b@x.y>",
            "DATA",
            &big,
            &big,
            &big,
            ".",
            "NOOP",
        ],
        &[
            "250",
            "250",
            "354",
            "250 2.0.0 Received 200 bytes",
            "250",
            "250",
            "354",
            "552 5.3.4",
            "250 2.0.0",
        ],
    );
}

#[test]
fn hop_limit() {
    let msg = |n: usize| {
        let mut v = vec!["MAIL FROM:<a@x.y>", "RCPT TO:<b@x.y>", "DATA"];
        v.extend(std::iter::repeat_n("Received: from somewhere", n));
        v.extend([
            "Subject: loop",
            "",
            "Received: in the body does not count",
            ".",
        ]);
        v
    };
    check(
        &[("MAXHOPS", "2")],
        &msg(2),
        &["250", "250", "354", "250 2.0.0"],
    );
    check(
        &[("MAXHOPS", "2")],
        &msg(3),
        &["250", "250", "354", "554 5.4.6"],
    );
    check(&[], &msg(100), &["250", "250", "354", "250 2.0.0"]);
    check(&[], &msg(101), &["250", "250", "354", "554 5.4.6"]);
    check(
        &[("MAXHOPS", "1")],
        &[
            "MAIL FROM:<a@x.y>",
            "RCPT TO:<b@x.y>",
            "DATA",
            "Delivered-To: a",
            "delivered-to: b",
            "",
            "x",
            ".",
        ],
        &["250", "250", "354", "554 5.4.6"],
    );
}

#[test]
fn maxrcpts() {
    check(
        &[("MAXRCPTS", "2")],
        &[
            "MAIL FROM:<a@x.y>",
            "RCPT TO:<b@x.y>",
            "RCPT TO:<c@x.y>",
            "RCPT TO:<d@x.y>",
            "RSET",
            "MAIL FROM:<a@x.y>",
            "RCPT TO:<e@x.y>",
        ],
        &["250", "250", "250", "452 4.5.3", "250", "250", "250"],
    );
}

#[test]
fn maxnotimpl_closes_after_the_limit() {
    let (out, _) = check(
        &[("MAXNOTIMPL", "2")],
        &["FOO", "BAR", "NOOP", "BAZ", "NOOP"],
        &["500 5.5.1", "500 5.5.1", "250", "503 5.5.0"],
    );
    // No 221 line (the greeting names this host, which may hold any digits).
    assert!(
        !reply_lines(&out).iter().any(|l| common::has_code(l, "221")),
        "{out}"
    );
    assert!(!out.contains("\r\n221"), "{out}");
    check(
        &[],
        &["FOO", "BAR", "BAZ", "NOOP"],
        &["500", "500", "500", "250"],
    );
}

#[test]
fn simple_commands() {
    check(
        &[],
        &[
            "NOOP",
            "RSET",
            "VRFY postmaster",
            "HELP",
            "EXPN list",
            "TURN",
            "QUIT",
            "NOOP",
        ],
        &[
            "250 2.0.0",
            "250 2.0.0",
            "252 2.5.2",
            "214 2.0.0",
            "500 5.5.1",
            "500 5.5.1",
            "221 2.0.0",
        ],
    );
}

#[test]
fn long_command_line_and_nul() {
    let long = format!("MAIL FROM:<{}@x.y>", "a".repeat(5000));
    check(&[], &[&long, "NOOP"], &["500 5.5.2", "250"]);
    check(
        &[],
        &["NO\0OP", "MAIL FROM:<a\0@x.y>", "NOOP"],
        &["501 5.5.2", "501 5.5.2", "250"],
    );
}

#[test]
fn relayclient_suffix_is_appended() {
    check(
        &[("RELAYCLIENT", "@relay.example")],
        &["MAIL FROM:<a@x.y>", "RCPT TO:<b@x.y>"],
        &["250", "250 2.1.5 Recipient <b@x.y@relay.example>"],
    );
    check(
        &[("RELAYCLIENT", "")],
        &["MAIL FROM:<a@x.y>", "RCPT TO:<b@x.y>"],
        &["250", "250 2.1.5 Recipient <b@x.y>"],
    );
}

#[test]
fn helo_resets_the_transaction() {
    check(
        &[],
        &[
            "MAIL FROM:<a@x.y>",
            "RCPT TO:<b@x.y>",
            "EHLO again",
            "DATA",
            "MAIL FROM:<a@x.y>",
            "HELO again",
            "RCPT TO:<b@x.y>",
        ],
        &[
            "250",
            "250",
            "250-",
            "250-",
            "250-",
            "250-",
            "250-",
            "250 ",
            "503 5.5.1",
            "250",
            "250",
            "503 5.5.1",
        ],
    );
}

#[test]
fn bad_settings_refuse_the_session() {
    for (name, value) in [
        ("TIMEOUT", "abc"),
        ("SESSION_TIMEOUT", "-1"),
        ("DATABYTES", "10k"),
        ("DATABYTES", ""),
        ("MAXHOPS", "1e3"),
        ("MAXRCPTS", " 5"),
        ("MAXNOTIMPL", "many"),
        ("SYSLOG", "nosuchfacility"),
    ] {
        let (out, err, code) = echo(&[(name, value)], "HELO x\r\nQUIT\r\n");
        assert_eq!(
            out, "421 4.3.0 Configuration error, try again later\r\n",
            "{name}={value:?}"
        );
        assert_eq!(code, 111, "{name}={value:?}");
        // One line, `PROGRAM[PID]: configuration error: ...`; the PID is no part of what is
        // looked for (a value such as " 5" could be in it).
        let messages = log_lines_without_prefix(&err);
        assert_eq!(messages.len(), 1, "{name}={value:?}: {err}");
        let message = messages[0];
        assert!(
            message.starts_with("configuration error: "),
            "{name}={value:?}: {err}"
        );
        assert!(
            message.contains(name),
            "{name}={value:?}: log must name the variable: {err}"
        );
        if !value.trim().is_empty() {
            assert!(
                message.contains(value.trim()),
                "{name}={value:?}: log must show the value: {err}"
            );
        }
    }
}

#[test]
fn received_header_and_header_add() {
    let env = [
        ("PROTO", "TCP"),
        ("TCPREMOTEIP", "192.0.2.7"),
        ("TCPREMOTEHOST", "client.example"),
        ("TCPLOCALIP", "198.51.100.1"),
        ("TCPLOCALHOST", "mx.example"),
        ("HEADER_ADD", "X-Trap: yes\\nX-Second: 2"),
        ("FIXUP_RECEIVED_HOST", "public.example"),
        ("FIXUP_RECEIVED_IP", "203.0.113.9"),
    ];
    let (_, err) = check(
        &env,
        &[
            "EHLO helo.example",
            "MAIL FROM:<a@x.y>",
            "RCPT TO:<b@x.y>",
            "DATA",
            "x",
            ".",
        ],
        &[
            "250-",
            "250-",
            "250-",
            "250-",
            "250-",
            "250 ",
            "250",
            "250",
            "354",
            "250 2.0.0",
        ],
    );
    let headers: Vec<&str> = log_lines_without_prefix(&err)
        .into_iter()
        .filter_map(|m| m.strip_prefix("header: "))
        .collect();
    // One line per field, unfolded (the folding tab was logged as `\x09`).
    let date = "*, # * # #:#:# +0000";
    let fixup = format!(
        "Received: from public.example ([203.0.113.9]) by mx.example ([198.51.100.1]); {date}"
    );
    let received = format!("Received: from helo.example (client.example [192.0.2.7]) by mx.example ([198.51.100.1]) with ESMTP via TCP; {date}");
    common::assert_lines_like(&headers, &[&fixup, &received, "X-Trap: yes", "X-Second: 2"]);
    assert!(!err.contains("\\x09"), "{err}");
}

/// RFC 5321 4.1.3: an IPv6 client (s6-tcpserver on `::` says PROTO=TCP, ucspi-tcp6 says
/// TCP6) is written `[IPv6:...]` in the Received header.
#[test]
fn received_header_writes_ipv6_address_literals() {
    for proto in ["TCP", "TCP6"] {
        let (ip, local) = (format!("{proto}REMOTEIP"), format!("{proto}LOCALIP"));
        let host = format!("{proto}LOCALHOST");
        let env = [
            ("PROTO", proto),
            (ip.as_str(), "2001:db8::7"),
            (local.as_str(), "2001:db8::25"),
            (host.as_str(), "mx.example"),
        ];
        let (_, err) = check(
            &env,
            &["MAIL FROM:<a@x.y>", "RCPT TO:<b@x.y>", "DATA", "x", "."],
            &["250", "250", "354", "250 2.0.0"],
        );
        let headers: Vec<&str> = log_lines_without_prefix(&err)
            .into_iter()
            .filter_map(|m| m.strip_prefix("header: "))
            .collect();
        let want = format!(
            "Received: from [IPv6:2001:db8::7] ([IPv6:2001:db8::7]) by mx.example ([IPv6:2001:db8::25]) with SMTP via {proto}; *, # * # #:#:# +0000"
        );
        common::assert_lines_like(&headers, &[&want]);
    }
}

#[test]
fn helo_with_control_bytes_cannot_break_the_header() {
    let (_, err, _) = echo(
        &[],
        "HELO a\rb\r\nMAIL FROM:<a@x.y>\r\nRCPT TO:<b@x.y>\r\nDATA\r\nx\r\n.\r\n",
    );
    assert!(err.contains("header: Received: from a?b by "), "{err}");
    assert!(err.contains("with SMTP;"), "{err}");
}

#[test]
fn log_lines_for_errors_and_session_end() {
    let env = [("PROTO", "TCP"), ("TCPREMOTEIP", "192.0.2.7")];
    let (_, err) = check(
        &env,
        &[
            "HELO c.example",
            "FOO bar",
            "MAIL FROM:<a@x.y>",
            "RCPT TO:<b@x.y>",
            "DATA",
            "x",
            ".",
            "QUIT",
        ],
        &["250", "500", "250", "250", "354", "250", "221"],
    );
    let entries = log_entries(&err);
    assert!(entries.iter().all(|&(p, _)| p == "smtpfront-echo"), "{err}");
    // Every line but the Received header's, whole.
    let messages: Vec<&str> = entries
        .iter()
        .map(|&(_, m)| m)
        .filter(|m| !m.starts_with("header: "))
        .collect();
    assert_eq!(messages.len(), 3, "{err}");
    assert_eq!(
        messages[0], "FOO bar -> 500 5.5.1 Command not recognized",
        "{err}"
    );
    assert!(
        like(
            messages[1],
            &format!("accepted: queue id {QUEUE_ID} from <a@x.y> to 1 recipient(s), 3 bytes")
        ),
        "{err}"
    );
    assert!(
        like(
            messages[2],
            "end: remote 192.0.2.7 helo c.example messages 1 bytes in # out #: QUIT"
        ),
        "{err}"
    );
}

#[test]
fn client_gone_in_data_stores_nothing_and_exits_0() {
    let (out, err, code) = echo(
        &[],
        "MAIL FROM:<a@x.y>\r\nRCPT TO:<b@x.y>\r\nDATA\r\npartial\r\n",
    );
    assert_eq!(code, 0);
    assert!(!out.contains("250 2.0.0"), "{out}");
    assert_eq!(
        replies(&out),
        [
            "250 2.1.0 Sender <a@x.y> accepted",
            "250 2.1.5 Recipient <b@x.y> accepted",
            "354 End your message with a line holding only a dot"
        ],
        "{out}"
    );
    let messages = log_lines_without_prefix(&err);
    assert!(
        messages.iter().all(|m| !m.starts_with("accepted: ")),
        "{err}"
    );
    assert!(
        like(
            messages.last().unwrap(),
            "end: remote unknown helo none messages 0 bytes in # out #: client went away during DATA, nothing stored"
        ),
        "{err}"
    );
}

#[test]
fn empty_string_settings_mean_nothing_added() {
    let env = [
        ("SMTPGREETING", ""),
        ("HEADER_ADD", ""),
        ("FIXUP_RECEIVED_HOST", ""),
        ("FIXUP_RECEIVED_IP", ""),
        ("PROTO", ""),
        ("TCPREMOTEIP", "192.0.2.1"),
    ];
    let (out, err) = check(
        &env,
        &[
            "HELO c",
            "MAIL FROM:<a@x.y>",
            "RCPT TO:<b@x.y>",
            "DATA",
            "x",
            ".",
        ],
        &["250", "250", "250", "354", "250 2.0.0"],
    );
    assert!(like(reply_lines(&out)[0], "220 * smtpfront ESMTP"), "{out}");
    let headers: Vec<&str> = err.lines().filter(|l| l.contains("header: ")).collect();
    assert_eq!(headers.len(), 1, "only the Received header: {err}");
    assert!(
        like(headers[0], "*header: Received: from c by * with SMTP; *"),
        "no PROTO, no IP: {err}"
    );
}

#[test]
fn empty_syslog_is_a_configuration_error() {
    let (out, err, code) = echo(&[("SYSLOG", "")], "QUIT\r\n");
    assert_eq!(out, "421 4.3.0 Configuration error, try again later\r\n");
    assert_eq!(code, 111);
    assert!(err.contains("SYSLOG"), "{err}");
}

/// The helpers of tests/common that make checks line-exact: a port, a PID, a queue id or a
/// byte count never satisfies them by accident.
#[test]
fn exact_line_helpers() {
    use common::{has_code, like, log_entries, split_log_line, swaks_server_lines};
    // The flaky case: port 35457 holds "354".
    let t = "=== Trying 127.0.0.1:35457...\n=== Connected to 127.0.0.1.\n\
             <-  220 mx.test smtpfront ESMTP\n -> MAIL FROM:<a@x.y>\n<** 451 4.3.2 Back soon\n";
    assert!(t.contains("354"));
    assert_eq!(
        swaks_server_lines(t),
        ["220 mx.test smtpfront ESMTP", "451 4.3.2 Back soon"]
    );
    assert!(!swaks_server_lines(t).iter().any(|l| has_code(l, "354")));
    assert!(has_code("354 End", "354") && has_code("250-SIZE", "250") && has_code("221", "221"));
    assert!(!has_code("3541 x", "354") && !has_code("220 host354", "354"));
    assert!(!common::any_reply_code(
        "220 mx354.test smtpfront ESMTP\r\n",
        "354"
    ));
    // Patterns: '#' one or more digits, '*' anything; the whole line must match.
    let id = format!("queue id {QUEUE_ID}");
    assert!(like("queue id 1796200736.684295.10121.0", &id));
    assert!(!like("queue id 1796200736.684295.10121.", &id));
    assert!(!like("queue id 1796200736.684295.10121.0 x", &id));
    assert!(!like("queue id x.1.2.3", &id));
    assert!(like("Received 21 bytes", "Received # bytes"));
    assert!(!like("Received 210 bytes", "Received 21 bytes"));
    assert!(like("a b c", "a*c") && like("ac", "a*c") && !like("a b", "a*c"));
    // Log lines: PROGRAM[PID]: MESSAGE, the PID digits.
    assert_eq!(
        split_log_line("smtpfront-echo[354]: end: x"),
        Some(("smtpfront-echo", "end: x"))
    );
    assert_eq!(split_log_line("smtpfront-echo[3a]: end: x"), None);
    assert_eq!(split_log_line("tcpserver: ok 1 x"), None);
    assert_eq!(
        log_entries("a[1]: x\nb[2]: y: z\n"),
        [("a", "x"), ("b", "y: z")]
    );
}
