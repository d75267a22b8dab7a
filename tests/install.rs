//! `make install` and `make uninstall` into a staging directory: static front ends, a
//! dynamic forward, six man pages; nothing left behind by uninstall.

mod common;

use common::{scratch, tool};
use std::path::Path;
use std::process::Command;

const FRONTENDS: &[&str] = &["smtpfront-echo", "smtpfront-reject", "smtpfront-spool"];
const PAGES: &[&str] = &[
    "man5/smtpfront-rules.5",
    "man7/smtpfront.7",
    "man8/smtpfront-echo.8",
    "man8/smtpfront-reject.8",
    "man8/smtpfront-spool.8",
    "man8/forward.8",
];

fn make(target: &str, stage: &Path) -> std::process::Output {
    Command::new("make")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg(target)
        .arg(format!("DESTDIR={}", stage.display()))
        .arg("PREFIX=/usr")
        .output()
        .expect("make")
}

/// What file(1) says of a binary, without its path.
fn kind(file: &Path, binary: &Path) -> String {
    run(file, &["-b", binary.to_str().unwrap()])
}

#[test]
fn make_install_gives_static_front_ends_forward_and_the_man_pages() {
    let (Some(_), Some(file)) = (tool("make"), tool("file")) else {
        return;
    };
    let stage = scratch("install");
    let out = make("install", &stage);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = stage.join("usr/bin");
    for program in FRONTENDS {
        let what = kind(&file, &bin.join(program));
        assert!(
            what.contains("static-pie linked") || what.contains("statically linked"),
            "{program}: {what}"
        );
    }
    let what = kind(&file, &bin.join("forward"));
    assert!(what.contains("dynamically linked"), "forward: {what}");
    for page in PAGES {
        assert!(
            stage.join("usr/share/man").join(page).is_file(),
            "{page} not installed"
        );
    }
    // An installed front end works: one session through pipes.
    let out = common::command(bin.join("smtpfront-echo"), &[])
        .stdin(std::fs::File::open("/dev/null").unwrap())
        .output()
        .unwrap();
    let replies = String::from_utf8(out.stdout).unwrap();
    assert!(
        common::like(replies.lines().next().unwrap(), "220 * smtpfront ESMTP"),
        "{replies}"
    );

    let out = make("uninstall", &stage);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left: Vec<_> = walk(&stage);
    assert_eq!(
        left,
        Vec::<String>::new(),
        "make uninstall left files behind"
    );
}

/// Every regular file under `dir`, relative.
fn walk(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                files.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    files
}

/// `make build` lays out the functions a session runs together (link/README.md): the Rust
/// ones in a `.text.hot` section before `.text` (link/hot.ld), glibc's start-up at the head
/// of `.text` (link/hot-functions). A build without the two files still works, and would
/// quietly cost each session about 6 more page faults; this catches it.
#[test]
fn static_front_ends_have_the_session_functions_first() {
    let (Some(readelf), Some(nm)) = (tool("readelf"), tool("nm")) else {
        return;
    };
    let Some(echo) = option_env!("SMTPFRONT_TEST_ECHO") else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI tests the binaries of make build (test.sh sets SMTPFRONT_TEST_ECHO)"
        );
        eprintln!("SKIPPED: not the front ends of make build");
        return;
    };
    let sections = run(&readelf, &["-SW", echo]);
    let (hot, hot_size) = section(&sections, ".text.hot");
    let (text, _) = section(&sections, ".text");
    assert!(hot + hot_size <= text, "{sections}");

    let symbols = run(&nm, &[echo]);
    let address = |wanted: &dyn Fn(&str) -> bool| -> u64 {
        let line = symbols
            .lines()
            .find(|l| l.split(' ').nth(2).is_some_and(wanted))
            .unwrap_or_else(|| panic!("symbol not found in {echo}"));
        u64::from_str_radix(line.split(' ').next().unwrap(), 16).unwrap()
    };
    let serve_on = address(&|s| s.starts_with("_ZN9smtpfront4smtp6server8serve_on17h"));
    assert!(
        (hot..hot + hot_size).contains(&serve_on),
        "serve_on at {serve_on:#x}, .text.hot at {hot:#x}+{hot_size:#x}"
    );
    let start = address(&|s| s == "__libc_start_main");
    assert!(
        (text..text + 64 * 1024).contains(&start),
        "__libc_start_main at {start:#x}, .text at {text:#x}"
    );
}

/// What `program` prints; it must succeed.
fn run(program: &Path, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Address and size of a section, from `readelf -SW`.
fn section(table: &str, name: &str) -> (u64, u64) {
    let fields: Vec<&str> = table
        .lines()
        .map(|l| l.split_once(']').map_or("", |(_, rest)| rest))
        .map(|rest| rest.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.first() == Some(&name))
        .unwrap_or_else(|| panic!("no section {name}:\n{table}"));
    let hex = |s: &str| u64::from_str_radix(s, 16).unwrap();
    (hex(fields[2]), hex(fields[4]))
}
