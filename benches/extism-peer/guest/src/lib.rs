//! The Extism side of the echo benchmark: the logic of the `echo-v1`
//! component (`tests/plugins/echo-shared/echo.rs`) as an Extism plugin.
//!
//! Extism passes bytes, so the event comes in as one JSON document and the
//! pong goes out as one. Per call, `echo`:
//! 1. copies the input from Extism's kernel into guest memory, 8 bytes per
//!    kernel call, as `extism_pdk::input_bytes` does;
//! 2. decodes the whole event (every field, as the component model lifts
//!    every field of the WIT `event` record for the echo component);
//! 3. answers `{"fail": true}` with an error, as the echo component does;
//! 4. asks the host for the time (`now_ms`, a host function, as the echo
//!    component calls the host's `now-ms`);
//! 5. encodes `{"type":"test.pong","subject":null,"data":{"version":1,
//!    "ping_sequence":N,"handled_ms":T}}` and hands it to the kernel as the
//!    output, as `extism_pdk::output` does.
//!
//! `lean` does step 1 only (the event in, nothing out: the shape of the
//! host's lean call); `noop` does nothing (a bare call).
//!
//! `no_std` with `alloc`: the PDK needs `std`, and `std` on wasm32-wasip2
//! imports WASI 0.2 functions that Extism does not provide. The kernel
//! calls below are the PDK's own declarations (`extism-pdk` 1.4, its
//! `extism.rs`), and so are the copy loops.

#![no_std]

extern crate alloc;

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

// Extism's kernel (the `extism:host/env` module Extism links in).
#[link(wasm_import_module = "extism:host/env")]
unsafe extern "C" {
    fn input_length() -> u64;
    fn input_load_u8(offs: u64) -> u8;
    fn input_load_u64(offs: u64) -> u64;
    fn alloc(length: u64) -> u64;
    fn store_u8(offs: u64, data: u8);
    fn store_u64(offs: u64, data: u64);
    fn output_set(offs: u64, length: u64);
    fn error_set(offs: u64);
}

// The peer's host function: milliseconds since the Unix epoch.
#[link(wasm_import_module = "extism:host/user")]
unsafe extern "C" {
    fn now_ms() -> u64;
}

/// The input, copied into guest memory (`extism_pdk::extism::load_input`).
fn load_input() -> Vec<u8> {
    // SAFETY: the kernel calls read within the input's length, which the
    // kernel itself reports; the vector has that many bytes.
    unsafe {
        let len = input_length() as usize;
        let mut data = vec![0u8; len];
        let chunks = len >> 3;
        let words = data.as_mut_ptr() as *mut u64;
        for i in 0..chunks {
            words
                .add(i)
                .write_unaligned(input_load_u64((i << 3) as u64));
        }
        for (i, byte) in data.iter_mut().enumerate().skip(chunks << 3) {
            *byte = input_load_u8(i as u64);
        }
        data
    }
}

/// Copies `bytes` into a new kernel block (`extism_pdk::Memory::new` and
/// `extism::store`); its offset.
fn store(bytes: &[u8]) -> u64 {
    // SAFETY: the block is `bytes.len()` long and every store is within it.
    unsafe {
        let offs = alloc(bytes.len() as u64);
        let chunks = bytes.len() >> 3;
        let words = bytes.as_ptr() as *const u64;
        for i in 0..chunks {
            store_u64(offs + (i << 3) as u64, words.add(i).read_unaligned());
        }
        for (i, byte) in bytes.iter().enumerate().skip(chunks << 3) {
            store_u8(offs + i as u64, *byte);
        }
        offs
    }
}

/// Sets `message` as the call's error; the return code that says so.
fn fail(message: &str) -> i32 {
    // SAFETY: `store` returns the offset of a kernel block.
    unsafe { error_set(store(message.as_bytes())) };
    1
}

/// The event as the host sends it: the fields of the WIT `event` record,
/// with `data` as JSON rather than JSON text.
#[derive(Deserialize)]
#[expect(
    dead_code,
    reason = "decoded like the component's lifted record, not all read"
)]
struct Event {
    id: String,
    source: String,
    #[serde(rename = "type")]
    ty: String,
    subject: Option<String>,
    time: String,
    sequence: u64,
    data: Value,
}

/// The pong, as the WIT `new-event` record.
#[derive(Serialize)]
struct NewEvent<'a> {
    #[serde(rename = "type")]
    ty: &'a str,
    subject: Option<&'a str>,
    data: Value,
}

/// A bare call: no input read, no output.
#[unsafe(no_mangle)]
pub extern "C" fn noop() -> i32 {
    0
}

/// The event copied in, nothing out.
#[unsafe(no_mangle)]
pub extern "C" fn lean() -> i32 {
    core::hint::black_box(load_input());
    0
}

/// The echo: a ping event in, a pong out (see the module docs).
#[unsafe(no_mangle)]
pub extern "C" fn echo() -> i32 {
    let input = load_input();
    let event: Event = match serde_json::from_slice(&input) {
        Ok(e) => e,
        Err(_) => return fail("the input is not an event"),
    };
    if event.data.get("fail") == Some(&Value::Bool(true)) {
        return fail("asked to fail");
    }
    // SAFETY: a host function without arguments.
    let handled_ms = unsafe { now_ms() };
    let pong = NewEvent {
        ty: "test.pong",
        subject: None,
        data: json!({
            "version": 1,
            "ping_sequence": event.sequence,
            "handled_ms": handled_ms,
        }),
    };
    let Ok(bytes) = serde_json::to_vec(&pong) else {
        return fail("cannot encode the pong");
    };
    let offs = store(&bytes);
    // SAFETY: `offs` is a kernel block of `bytes.len()` bytes.
    unsafe { output_set(offs, bytes.len() as u64) };
    0
}
