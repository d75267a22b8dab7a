//! The release build of the front ends lays out their hot functions in the order of
//! link/hot.ld and link/hot-functions (Makefile, link/README.md). The linker reads those
//! files, cargo does not: this tells cargo to relink when it changes.
fn main() {
    println!("cargo:rerun-if-changed=link/hot-functions");
    println!("cargo:rerun-if-changed=link/hot.ld");
}
