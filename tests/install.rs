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
    let out = Command::new(file).arg("-b").arg(binary).output().unwrap();
    String::from_utf8(out.stdout).unwrap()
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
