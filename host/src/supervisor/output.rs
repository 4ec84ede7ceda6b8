//! Child output: read both pipes continuously, split them into lines, and
//! hand every line to the ring, the log file and, in batches, the publisher.
//!
//! The readers never wait on the bus, so a child never blocks on a full
//! pipe: batches go to the publisher (`publish.rs`) through a bounded
//! channel with a byte budget. When either is full the batch is counted as
//! dropped, and the count goes out as `process.output_dropped` as soon as
//! there is room, so loss is never silent. The ring and the log file
//! (`store.rs`) always get every line.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;
use std::time::Duration;

use chrono::Utc;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::publish;
use super::state::{OutputLine, Stream};
use super::store::{LogFile, SharedRing};
use crate::bus::Bus;

/// Longest line kept; the rest is cut and the line says how much was cut.
pub(crate) const MAX_LINE_BYTES: usize = 8 * 1024;
/// Lines per `process.output` event.
const BATCH_LINES: usize = 64;
/// A batch waits at most this long for more lines.
const FLUSH_AFTER: Duration = Duration::from_millis(50);
/// Batches queued for the publisher.
const CHANNEL_BATCHES: usize = 1024;
/// Bytes of line text queued for the publisher, per run.
const INFLIGHT_BYTES: usize = 4 * 1024 * 1024;
/// What the readers hand to the publisher.
#[derive(Debug, PartialEq)]
pub(super) enum Message {
    Lines {
        stream: Stream,
        lines: Vec<String>,
        truncated: usize,
        bytes: usize,
    },
    Dropped {
        stream: Stream,
        dropped: u64,
    },
}

/// Everything the readers of one run share.
struct Sink {
    ring: SharedRing,
    log: Arc<Mutex<LogFile>>,
    tx: mpsc::Sender<Message>,
    inflight: Arc<AtomicUsize>,
}

/// The reader and publisher tasks of one run.
pub(crate) struct OutputTasks {
    readers: Vec<JoinHandle<()>>,
    publisher: JoinHandle<()>,
}

impl OutputTasks {
    /// Starts readers on both pipes and a publisher for process `name`.
    pub(crate) fn start(
        bus: Bus,
        name: String,
        stdout: Option<impl AsyncRead + Unpin + Send + 'static>,
        stderr: Option<impl AsyncRead + Unpin + Send + 'static>,
        ring: SharedRing,
        log: LogFile,
        dropped: Arc<AtomicU64>,
    ) -> OutputTasks {
        let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
        let inflight = Arc::new(AtomicUsize::new(0));
        let log = Arc::new(Mutex::new(log));
        let mut readers = Vec::new();
        let sink = |tx| Sink {
            ring: ring.clone(),
            log: log.clone(),
            tx,
            inflight: inflight.clone(),
        };
        if let Some(pipe) = stdout {
            readers.push(tokio::spawn(read_stream(
                pipe,
                Stream::Stdout,
                sink(tx.clone()),
            )));
        }
        if let Some(pipe) = stderr {
            readers.push(tokio::spawn(read_stream(
                pipe,
                Stream::Stderr,
                sink(tx.clone()),
            )));
        }
        drop(tx);
        let publisher = tokio::spawn(publish::run(bus, name, rx, inflight, dropped));
        OutputTasks { readers, publisher }
    }

    /// Waits for both pipes to close and every batch to be published.
    ///
    /// Gives up after `limit` (a pipe held open by a process outside the
    /// tree); the tasks then keep running detached until the pipe closes.
    pub(crate) async fn finish(self, limit: Duration) -> bool {
        let all = async {
            for reader in self.readers {
                let _ = reader.await;
            }
            let _ = self.publisher.await;
        };
        tokio::time::timeout(limit, all).await.is_ok()
    }
}

/// Lines of one stream waiting to be handed over.
#[derive(Default)]
struct Batch {
    lines: Vec<String>,
    bytes: usize,
    truncated: usize,
    deadline: Option<Instant>,
    /// Lines that could not be queued and are not yet reported.
    dropped: u64,
}

impl Batch {
    /// Hands the batch to the publisher without waiting, or counts it dropped.
    fn flush_now(&mut self, stream: Stream, sink: &Sink) {
        self.report_dropped(stream, sink);
        if self.lines.is_empty() {
            return;
        }
        let reserved = sink.inflight.fetch_add(self.bytes, Ordering::SeqCst);
        let lines = std::mem::take(&mut self.lines);
        let message = Message::Lines {
            stream,
            truncated: std::mem::take(&mut self.truncated),
            bytes: self.bytes,
            lines,
        };
        let refused = if reserved + self.bytes > INFLIGHT_BYTES {
            Some(message)
        } else {
            sink.tx.try_send(message).err().map(|e| e.into_inner())
        };
        if let Some(Message::Lines { lines, .. }) = refused {
            sink.inflight.fetch_sub(self.bytes, Ordering::SeqCst);
            self.dropped += lines.len() as u64;
        }
        self.bytes = 0;
        self.deadline = None;
    }

    fn report_dropped(&mut self, stream: Stream, sink: &Sink) {
        if self.dropped > 0
            && sink
                .tx
                .try_send(Message::Dropped {
                    stream,
                    dropped: self.dropped,
                })
                .is_ok()
        {
            self.dropped = 0;
        }
    }

    /// At end of stream: waits for room, so the last lines and the final
    /// drop count always arrive (the child is done writing, nothing blocks).
    async fn flush_final(&mut self, stream: Stream, sink: &Sink) {
        if !self.lines.is_empty() {
            sink.inflight.fetch_add(self.bytes, Ordering::SeqCst);
            let message = Message::Lines {
                stream,
                lines: std::mem::take(&mut self.lines),
                truncated: self.truncated,
                bytes: self.bytes,
            };
            if let Err(mpsc::error::SendError(Message::Lines { lines, .. })) =
                sink.tx.send(message).await
            {
                self.dropped += lines.len() as u64;
            }
        }
        if self.dropped > 0 {
            let dropped = self.dropped;
            if sink
                .tx
                .send(Message::Dropped { stream, dropped })
                .await
                .is_err()
            {
                tracing::error!(%stream, dropped, "output lines lost: publisher gone");
            }
        }
    }
}

/// Reads one pipe until it closes, splitting it into lines.
async fn read_stream(mut pipe: impl AsyncRead + Unpin, stream: Stream, sink: Sink) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut partial: Vec<u8> = Vec::new();
    let mut cut: usize = 0;
    let mut batch = Batch::default();
    let mut log_failed = false;
    loop {
        let deadline = batch.deadline;
        let read = tokio::select! {
            read = pipe.read(&mut buf) => read,
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                batch.flush_now(stream, &sink);
                continue;
            }
        };
        let n = match read {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(%stream, error = %e, "reading child output failed");
                break;
            }
        };
        let mut lines = Vec::new();
        let mut rest = &buf[..n];
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            append(&mut partial, &mut cut, &rest[..i]);
            lines.push(finish_line(&mut partial, &mut cut, &mut batch.truncated));
            rest = &rest[i + 1..];
        }
        append(&mut partial, &mut cut, rest);
        deliver(lines, stream, &sink, &mut batch, &mut log_failed);
    }
    if !partial.is_empty() || cut > 0 {
        let line = finish_line(&mut partial, &mut cut, &mut batch.truncated);
        deliver(vec![line], stream, &sink, &mut batch, &mut log_failed);
    }
    if let Err(e) = sink.log.lock().flush() {
        tracing::error!(%stream, error = %e, "flushing the process log failed");
    }
    batch.flush_final(stream, &sink).await;
}

fn append(partial: &mut Vec<u8>, cut: &mut usize, bytes: &[u8]) {
    let room = MAX_LINE_BYTES.saturating_sub(partial.len());
    let keep = room.min(bytes.len());
    partial.extend_from_slice(&bytes[..keep]);
    *cut += bytes.len() - keep;
}

fn finish_line(partial: &mut Vec<u8>, cut: &mut usize, truncated: &mut usize) -> String {
    if partial.last() == Some(&b'\r') && *cut == 0 {
        partial.pop();
    }
    let mut line = String::from_utf8_lossy(partial).into_owned();
    if *cut > 0 {
        line.push_str(&format!(" …[line truncated: {cut} more bytes]"));
        *truncated += 1;
    }
    partial.clear();
    *cut = 0;
    line
}

/// Puts freshly read lines into the ring, the log file and the batch.
fn deliver(
    lines: Vec<String>,
    stream: Stream,
    sink: &Sink,
    batch: &mut Batch,
    log_failed: &mut bool,
) {
    if lines.is_empty() {
        return;
    }
    let now = Utc::now();
    if !*log_failed {
        // Plain buffered writes to the page cache: short enough to do inline.
        let mut log = sink.log.lock();
        if let Err(e) = lines.iter().try_for_each(|l| log.write_line(l)) {
            *log_failed = true;
            tracing::error!(path = %log.path().display(), error = %e,
                "writing the process log failed; later lines go to the ring and events only");
        }
    }
    {
        let mut ring = sink.ring.lock();
        for line in &lines {
            ring.push(OutputLine {
                stream,
                line: line.clone(),
                time: now,
                offset: 0, // numbered by the ring
            });
        }
        ring.touch(now);
    }
    for line in lines {
        batch.bytes += line.len();
        batch.lines.push(line);
        if batch.lines.len() >= BATCH_LINES {
            batch.flush_now(stream, sink);
        }
    }
    if !batch.lines.is_empty() && batch.deadline.is_none() {
        batch.deadline = Some(Instant::now() + FLUSH_AFTER);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_line_is_cut_and_says_so() {
        let mut partial = Vec::new();
        let mut cut = 0;
        let mut truncated = 0;
        append(&mut partial, &mut cut, &vec![b'a'; MAX_LINE_BYTES + 10]);
        let line = finish_line(&mut partial, &mut cut, &mut truncated);
        assert!(line.starts_with(&"a".repeat(MAX_LINE_BYTES)));
        assert!(line.ends_with("[line truncated: 10 more bytes]"), "{line}");
        assert_eq!(truncated, 1);
        append(&mut partial, &mut cut, b"ok\r");
        assert_eq!(finish_line(&mut partial, &mut cut, &mut truncated), "ok");
    }

    #[test]
    fn batches_refused_by_a_full_queue_are_counted_and_reported_later() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, mut rx) = mpsc::channel(1);
        let sink = Sink {
            ring: super::super::store::Ring::shared(10),
            log: Arc::new(Mutex::new(
                LogFile::open(dir.path().join("x.log"), 1 << 20).unwrap(),
            )),
            tx,
            inflight: Arc::new(AtomicUsize::new(0)),
        };
        let mut batch = Batch::default();
        let mut log_failed = false;
        let three = || vec!["a".to_string(), "b".into(), "c".into()];
        deliver(three(), Stream::Stdout, &sink, &mut batch, &mut log_failed);
        batch.flush_now(Stream::Stdout, &sink);
        deliver(three(), Stream::Stdout, &sink, &mut batch, &mut log_failed);
        batch.flush_now(Stream::Stdout, &sink);
        assert_eq!(
            batch.dropped, 3,
            "the queue held one batch; the second was dropped"
        );
        assert!(matches!(rx.try_recv(), Ok(Message::Lines { lines, .. }) if lines.len() == 3));
        // Room again: the next flush reports the drop before anything else.
        batch.flush_now(Stream::Stdout, &sink);
        assert_eq!(
            rx.try_recv().unwrap(),
            Message::Dropped {
                stream: Stream::Stdout,
                dropped: 3
            }
        );
        assert_eq!(batch.dropped, 0);
        // Every line still reached the ring.
        assert_eq!(sink.ring.lock().last(10).len(), 6);
    }
}
