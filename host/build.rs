//! Link-time settings of the `host` binary.

use std::env;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link-order.txt");
    println!("cargo:rerun-if-env-changed=HOST_LINK_ORDER");

    let target = env::var("TARGET").unwrap_or_default();
    if !target.ends_with("-linux-gnu") {
        return;
    }
    // The host is a position-independent executable, and its ~65,000
    // relative relocations took 1.5 MiB as RELA records, read by the loader
    // at every start and resident for the process's life. As RELR (glibc
    // 2.36, binutils 2.38, lld 15) they take a few kilobytes.
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");

    if env::var("PROFILE").as_deref() == Ok("release") {
        link_order();
    }
}

/// Lay out the functions a run of the host executes side by side, first in
/// its code (`link-order.txt`, written by `benches/link-order/generate.sh`).
///
/// The kernel maps a program's code 64 KiB around each page it faults in,
/// and a run touches ~9,000 of the binary's 50,000 functions, scattered by
/// the compiler over 27 MiB: an idle `host run` held 16–17 MiB of code
/// resident for the 3 MiB it executes. Packed together they take 3.5 MiB
/// (docs/benchmarks.md, "Eleventh pass, the code a run uses, laid out
/// together").
/// A stale list costs nothing but that saving: names the build no longer
/// has are skipped, new functions are placed after the listed ones. The
/// host crate is one codegen unit in release (`Cargo.toml`) so that its
/// functions keep their names from one edit to the next.
fn link_order() {
    if env::var("HOST_LINK_ORDER").as_deref() == Ok("0") {
        return;
    }
    // `--symbol-ordering-file` is an option of lld (Rust's default linker
    // on this target since 1.90) and mold, not of GNU ld: with a linker of
    // the user's choosing, leave the layout to it.
    let rustflags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if env::var_os("RUSTC_LINKER").is_some()
        || rustflags.contains("linker")
        || rustflags.contains("fuse-ld")
    {
        println!(
            "cargo:warning=host: a linker is configured; link-order.txt not applied (set HOST_LINK_ORDER=0 to silence)"
        );
        return;
    }
    let manifest = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let list = Path::new(&manifest).join("link-order.txt");
    if !list.exists() {
        return;
    }
    // `-Xlinker` hands the option over whole: `-Wl,` would split a path
    // with a comma in it.
    println!("cargo:rustc-link-arg-bins=-Xlinker");
    println!(
        "cargo:rustc-link-arg-bins=--symbol-ordering-file={}",
        list.display()
    );
    println!("cargo:rustc-link-arg-bins=-Xlinker");
    println!("cargo:rustc-link-arg-bins=--no-warn-symbol-ordering");
}
