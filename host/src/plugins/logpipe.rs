//! Plugin stdout/stderr as tracing lines.
//!
//! A guest that prints (Python's `print`, Rust's `println!`) should not
//! write to the host's terminal unannounced, nor be silenced: each complete
//! line becomes a tracing event tagged with the plugin and the stream.
//! Partial lines are buffered up to a cap, then flushed as they are.

use std::pin::Pin;
use std::sync::Arc;

use parking_lot::Mutex;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// A line longer than this is logged in pieces.
const MAX_LINE: usize = 16 * 1024;

/// Where complete lines go: tracing in the host, a vector in tests.
type Sink = Arc<dyn Fn(&str, &'static str, &str) + Send + Sync>;

/// A WASI output stream that logs lines.
#[derive(Clone)]
pub(crate) struct LogPipe {
    plugin: Arc<str>,
    stream: &'static str,
    pending: Arc<Mutex<Vec<u8>>>,
    sink: Sink,
}

impl LogPipe {
    pub(crate) fn new(plugin: String, stream: &'static str) -> Self {
        Self::with_sink(
            plugin,
            stream,
            Arc::new(
                |plugin, stream, text| tracing::info!(target: "plugin", plugin, stream, "{text}"),
            ),
        )
    }

    fn with_sink(plugin: String, stream: &'static str, sink: Sink) -> Self {
        Self {
            plugin: plugin.into(),
            stream,
            pending: Arc::default(),
            sink,
        }
    }

    fn push(&self, bytes: &[u8]) {
        let mut pending = self.pending.lock();
        pending.extend_from_slice(bytes);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            self.emit(&line[..line.len() - 1]);
        }
        if pending.len() > MAX_LINE {
            let line: Vec<u8> = std::mem::take(&mut *pending);
            self.emit(&line);
        }
    }

    fn emit(&self, line: &[u8]) {
        (self.sink)(&self.plugin, self.stream, &String::from_utf8_lossy(line));
    }
}

impl IsTerminal for LogPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogPipe {
    async fn ready(&mut self) {}
}

impl OutputStream for LogPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_LINE)
    }
}

impl AsyncWrite for LogPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture() -> (LogPipe, Arc<Mutex<Vec<String>>>) {
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = lines.clone();
        let pipe = LogPipe::with_sink(
            "p".into(),
            "stdout",
            Arc::new(move |plugin, stream, text| {
                seen.lock().push(format!("{plugin}/{stream}: {text}"));
            }),
        );
        (pipe, lines)
    }

    #[test]
    fn output_becomes_one_log_line_per_complete_line() {
        let (pipe, lines) = capture();
        pipe.push(b"hel");
        pipe.push(b"lo\nwor");
        assert_eq!(*lines.lock(), ["p/stdout: hello"]);
        pipe.push(b"ld\n\n");
        assert_eq!(
            *lines.lock(),
            ["p/stdout: hello", "p/stdout: world", "p/stdout: "]
        );
    }

    #[test]
    fn an_endless_line_is_logged_in_pieces_rather_than_held_forever() {
        let (pipe, lines) = capture();
        pipe.push(&vec![b'x'; MAX_LINE + 10]);
        let lines = lines.lock();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), "p/stdout: ".len() + MAX_LINE + 10);
    }
}
