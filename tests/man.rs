//! The manual pages: they lint clean with mandoc and groff, and they document every
//! environment variable the programs read and every option of forward.

mod common;

use common::tool;
use std::path::{Path, PathBuf};
use std::process::Command;

const PAGES: &[&str] = &[
    "smtpfront.7",
    "smtpfront-rules.5",
    "smtpfront-echo.8",
    "smtpfront-reject.8",
    "smtpfront-spool.8",
    "forward.8",
];

fn page(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("man").join(name)
}

fn text(name: &str) -> String {
    std::fs::read_to_string(page(name)).expect("man page")
}

/// Runs a checker on every page; it must exit 0 and print nothing at all.
fn silent(program: &str, args: &[&str]) {
    let Some(path) = tool(program) else { return };
    for name in PAGES {
        let out = Command::new(&path)
            .args(args)
            .arg(page(name))
            .output()
            .expect(program);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "{program} on {name}: {:?}\n{said}",
            out.status
        );
        assert_eq!(said, "", "{program} on {name}");
    }
}

#[test]
fn mandoc_lint_reports_nothing() {
    silent("mandoc", &["-T", "lint"]);
}

#[test]
fn groff_reports_nothing() {
    silent("groff", &["-man", "-ww", "-z"]);
}

/// The field names of `struct Raw` in src/config.rs: every variable `config` reads,
/// upper-cased as the environment spells them.
fn config_variables() -> Vec<String> {
    let source =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config.rs"))
            .unwrap();
    let start = source
        .find("struct Raw {")
        .expect("struct Raw in config.rs");
    let body = &source[start..];
    let body = &body[..body.find("\n}").unwrap()];
    let names: Vec<String> = body
        .lines()
        .filter_map(|l| l.trim().split_once(": Option<"))
        .map(|(name, _)| name.to_ascii_uppercase())
        .collect();
    assert!(names.len() >= 20, "struct Raw not understood: {names:?}");
    names
}

/// A variable is documented when the page names it as a bold word (`.B NAME`,
/// `.BR NAME ,`, `.TP` lines), not merely inside another word.
fn documents(page: &str, name: &str) -> bool {
    page.lines()
        .filter(|l| l.starts_with(".B") || l.starts_with(".TP"))
        .any(|l| {
            l.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .any(|word| word == name)
        })
}

#[test]
fn smtpfront_7_documents_every_variable_config_reads() {
    let page = text("smtpfront.7");
    let missing: Vec<String> = config_variables()
        .into_iter()
        .filter(|v| !documents(&page, v))
        .collect();
    assert_eq!(missing, Vec::<String>::new(), "not in man/smtpfront.7");
}

#[test]
fn the_pages_name_the_variables_their_program_reads() {
    // SMTPREJECT is read by smtpfront-reject itself (src/reject.rs), not only by config.
    assert!(documents(&text("smtpfront-reject.8"), "SMTPREJECT"));
    for v in [
        "SPOOLDIR",
        "QUEUELIFETIME",
        "SENDMAIL",
        "HELOHOST",
        "REQUIRE_TLS",
    ] {
        assert!(documents(&text("forward.8"), v), "{v} not in forward.8");
    }
    for v in [
        "SPOOLDIR",
        "RCPTHOSTS",
        "MAILRULES",
        "DATABYTES",
        "CHECKPASSWORD",
    ] {
        assert!(
            documents(&text("smtpfront-spool.8"), v),
            "{v} not in smtpfront-spool.8"
        );
    }
    assert!(documents(&text("smtpfront-rules.5"), "MAILRULES"));
}

/// The options in `forward --help`, each as it is spelled there (`-h`, `--list`, ...).
fn forward_options() -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_forward"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "forward --help: {:?}", out.status);
    let usage = String::from_utf8(out.stdout).unwrap();
    let mut options: Vec<String> = usage
        .split(|c: char| c.is_whitespace() || c == '[' || c == ']' || c == ':')
        .filter(|w| w.starts_with('-') && w.len() > 1 && w != &"--")
        .map(str::to_string)
        .collect();
    options.sort();
    options.dedup();
    assert!(
        options.len() >= 5,
        "forward --help not understood: {options:?}"
    );
    options
}

#[test]
fn forward_8_documents_every_option_of_forward_help() {
    let page = text("forward.8");
    // In roff a hyphen of an option is written \- .
    let missing: Vec<String> = forward_options()
        .into_iter()
        .filter(|o| {
            let roff = o.replace('-', "\\-");
            !page.lines().any(|l| {
                (l.starts_with(".B") || l.starts_with(".TP"))
                    && l.split_whitespace().any(|w| w == roff)
            })
        })
        .collect();
    assert_eq!(missing, Vec::<String>::new(), "not in man/forward.8");
}

#[test]
fn every_program_has_a_page_in_section_8() {
    let bins = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin")).unwrap();
    for entry in bins {
        let file = entry.unwrap().file_name().into_string().unwrap();
        let program = file.strip_suffix(".rs").unwrap();
        assert!(page(&format!("{program}.8")).exists(), "no man/{program}.8");
    }
}
