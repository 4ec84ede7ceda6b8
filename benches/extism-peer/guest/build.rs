//! wasm32-wasip2 links with `wasm-component-ld`, which wraps the core module
//! in a component; Extism loads core modules, so skip that step and keep
//! what `wasm-ld` produced. `no_std` leaves `memcmp` (which serde_json's
//! code uses) to libc: link wasi-libc's, the one the echo component has, so
//! the module imports nothing but Extism's functions.

fn main() {
    println!("cargo:rustc-link-arg=--skip-wit-component");
    println!("cargo:rustc-link-arg=-lc");
}
