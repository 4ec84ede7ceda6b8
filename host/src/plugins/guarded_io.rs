//! `wasi:io` whose blocking calls give up at the current call's deadline.
//!
//! Epoch interruption stops a guest only while it runs wasm code; a guest
//! waiting inside a host call (`std::thread::sleep` is `pollable.block` on
//! a clock, `poll`, a blocking stream read or write) would otherwise hold
//! its plugin for as long as it asked. wasmtime-wasi's sync bindings run
//! each of those as a future to completion (`in_tokio`); the versions here
//! run the same futures from `wasmtime-wasi-io` under a timeout that ends at
//! the deadline the actor stored in the store before the call, then trap
//! with [`DeadlineExceeded`], which `classify` reports as `deadline`.
//!
//! They shadow wasmtime-wasi's own (`allow_shadowing`) after
//! `add_to_linker_sync`: the same resource types, so every other WASI
//! interface still hands out pollables and streams these accept. Guests
//! import older `wasi:io@0.2.x` and are matched by semver, as before. The
//! non-blocking functions delegate to wasmtime-wasi unchanged.

use std::future::Future;
use std::time::Instant;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::io as async_io;
use wasmtime_wasi::p2::bindings::sync::io::{poll, streams};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, StreamError, StreamResult};
use wasmtime_wasi::runtime::in_tokio;

use super::error::DeadlineExceeded;
use super::sandbox::StoreState;

/// The resource table of a store plus the deadline of the call in flight.
pub(crate) struct GuardedIo<'a> {
    pub(crate) table: &'a mut ResourceTable,
    /// When the current call must end; `None` outside calls.
    pub(crate) deadline: Option<Instant>,
}

struct Guarded;

impl HasData for Guarded {
    type Data<'a> = GuardedIo<'a>;
}

/// Shadow the blocking `wasi:io` functions of `linker` (which already has
/// wasmtime-wasi's) with deadline-aware ones.
pub(crate) fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    poll::add_to_linker::<StoreState, Guarded>(linker, StoreState::guarded_io)?;
    streams::add_to_linker::<StoreState, Guarded>(linker, StoreState::guarded_io)?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Run `fut` to completion, or until `deadline`.
///
/// A future that is ready at once wins even past the deadline: tokio's
/// `timeout` polls the future before its timer, and registers the timer
/// only if the future has to wait.
fn wait<T>(deadline: Option<Instant>, fut: impl Future<Output = T>) -> Result<T, DeadlineExceeded> {
    match deadline {
        None => Ok(in_tokio(fut)),
        Some(deadline) => {
            let left = deadline.saturating_duration_since(Instant::now());
            in_tokio(async { tokio::time::timeout(left, fut).await }).map_err(|_| DeadlineExceeded)
        }
    }
}

/// [`wait`] for functions that answer with a stream result: running out
/// of time traps (a `StreamError::Trap` is never shown to the guest).
fn wait_stream<T>(
    deadline: Option<Instant>,
    fut: impl Future<Output = StreamResult<T>>,
) -> StreamResult<T> {
    wait(deadline, fut).unwrap_or_else(|e| Err(StreamError::Trap(e.into())))
}

impl poll::Host for GuardedIo<'_> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        let deadline = self.deadline;
        wait(deadline, async_io::poll::Host::poll(self.table, pollables))?
    }
}

impl poll::HostPollable for GuardedIo<'_> {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        poll::HostPollable::ready(self.table, pollable)
    }

    fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        let deadline = self.deadline;
        wait(
            deadline,
            async_io::poll::HostPollable::block(self.table, pollable),
        )?
    }

    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        poll::HostPollable::drop(self.table, pollable)
    }
}

impl streams::Host for GuardedIo<'_> {
    fn convert_stream_error(&mut self, err: StreamError) -> wasmtime::Result<streams::StreamError> {
        streams::Host::convert_stream_error(self.table, err)
    }
}

impl streams::HostInputStream for GuardedIo<'_> {
    fn drop(&mut self, stream: Resource<DynInputStream>) -> wasmtime::Result<()> {
        streams::HostInputStream::drop(self.table, stream)
    }

    fn read(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        streams::HostInputStream::read(self.table, stream, len)
    }

    fn blocking_read(
        &mut self,
        stream: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<Vec<u8>> {
        let deadline = self.deadline;
        wait_stream(
            deadline,
            async_io::streams::HostInputStream::blocking_read(self.table, stream, len),
        )
    }

    fn skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        streams::HostInputStream::skip(self.table, stream, len)
    }

    fn blocking_skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        let deadline = self.deadline;
        wait_stream(
            deadline,
            async_io::streams::HostInputStream::blocking_skip(self.table, stream, len),
        )
    }

    fn subscribe(
        &mut self,
        stream: Resource<DynInputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        streams::HostInputStream::subscribe(self.table, stream)
    }
}

impl streams::HostOutputStream for GuardedIo<'_> {
    fn drop(&mut self, stream: Resource<DynOutputStream>) -> wasmtime::Result<()> {
        streams::HostOutputStream::drop(self.table, stream)
    }

    fn check_write(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<u64> {
        streams::HostOutputStream::check_write(self.table, stream)
    }

    fn write(&mut self, stream: Resource<DynOutputStream>, bytes: Vec<u8>) -> StreamResult<()> {
        streams::HostOutputStream::write(self.table, stream, bytes)
    }

    fn blocking_write_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        bytes: Vec<u8>,
    ) -> StreamResult<()> {
        let deadline = self.deadline;
        wait_stream(
            deadline,
            async_io::streams::HostOutputStream::blocking_write_and_flush(
                self.table, stream, bytes,
            ),
        )
    }

    fn blocking_write_zeroes_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        len: u64,
    ) -> StreamResult<()> {
        let deadline = self.deadline;
        wait_stream(
            deadline,
            async_io::streams::HostOutputStream::blocking_write_zeroes_and_flush(
                self.table, stream, len,
            ),
        )
    }

    fn subscribe(
        &mut self,
        stream: Resource<DynOutputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        streams::HostOutputStream::subscribe(self.table, stream)
    }

    fn write_zeroes(&mut self, stream: Resource<DynOutputStream>, len: u64) -> StreamResult<()> {
        streams::HostOutputStream::write_zeroes(self.table, stream, len)
    }

    fn flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        streams::HostOutputStream::flush(self.table, stream)
    }

    fn blocking_flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        let deadline = self.deadline;
        wait_stream(
            deadline,
            async_io::streams::HostOutputStream::blocking_flush(self.table, stream),
        )
    }

    fn splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        streams::HostOutputStream::splice(self.table, dst, src, len)
    }

    fn blocking_splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        let deadline = self.deadline;
        wait_stream(
            deadline,
            async_io::streams::HostOutputStream::blocking_splice(self.table, dst, src, len),
        )
    }
}
