//! Spools made by hand for forward's tests: the directories with a stub $SENDMAIL, and
//! messages in their stored (dot-stuffed) form.

use super::scratch;
use smtpfront::spool::format::Stuffer;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// A spool directory with new/ and tmp/, and a SENDMAIL script that saves each bounce in
/// bounces/ (argv one `[arg]` a line, stdin) and exits with the number in sendmail-exit.
pub fn spool_dir(name: &str) -> PathBuf {
    let dir = scratch(name);
    for d in ["new", "tmp", "bounces"] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    let script = format!(
        "#!/bin/sh\nd={0}/bounces\nfor a in \"$@\"; do printf '[%s]\\n' \"$a\"; done > $d/$$.argv\n\
         cat > $d/$$.msg\nexit $(cat {0}/sendmail-exit 2>/dev/null || echo 0)\n",
        dir.display()
    );
    fs::write(dir.join("sendmail"), script).unwrap();
    fs::set_permissions(dir.join("sendmail"), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// The stored (dot-stuffed, dot-terminated) form of `message`.
pub fn stuffed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut s = Stuffer::default();
    let mut push = |b: &[u8]| -> Result<(), ()> {
        out.extend_from_slice(b);
        Ok(())
    };
    s.stuff(message, &mut push).unwrap();
    s.finish(&mut push).unwrap();
    out
}
