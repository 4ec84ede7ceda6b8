//! Link-time settings of the `host` binary.

fn main() {
    // The host is a position-independent executable, and its ~65,000
    // relative relocations took 1.5 MiB as RELA records, read by the loader
    // at every start and resident for the process's life. As RELR (glibc
    // 2.36, binutils 2.38, lld 15) they take a few kilobytes.
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.ends_with("-linux-gnu") {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
