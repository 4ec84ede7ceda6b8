//! Child output: read both pipes as fast as they fill, put the bytes in the
//! log file as they come, and cut lines only for the ring and the bus.
//!
//! The bus gets at most 1 MiB/s of line text per run after a 4 MiB burst
//! (see [`Budget`]), so a flood costs the journal a bounded share.
//!
//! The hot path is per read, not per line: a read of up to 128 KiB is written
//! to the log file whole (up to its last newline, so the two streams never
//! interleave inside a line), and lines are cut with `memchr` for the ring
//! (which copies the lines' bytes aside and builds strings for the last
//! `ring_lines` only every 10 ms) and for the bus
//! (which only builds lines while it has room, written straight to JSON:
//! see `publish.rs`). While the bus has no room
//! (a flood past its budget), a read's lines are not even cut: they are
//! counted with one vectorised pass and staged for the ring as one run,
//! cut at the flush. The readers never wait on
//! the bus, so a child never blocks on a full pipe: batches go to the
//! publisher (`publish.rs`) through a bounded channel with a byte budget,
//! and lines that find no room are counted, reported as
//! `process.output_dropped` as soon as there is room again: every line read
//! is either published or counted dropped. The log file gets every byte.
//!
//! A stream holds no read buffer: it waits for its pipe to be readable,
//! then reads into the worker thread's one buffer (128 KiB) and hands the
//! bytes on before it waits again, so a thousand idle processes hold no
//! buffers at all (a 4 KiB one per stream was 8 MiB at 1,000 processes).
//! A pipe starts at the kernel's 64 KiB and is grown to 1 MiB once a read
//! finds it full.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;
use std::time::Duration;

use chrono::Utc;
use tokio::net::unix::pipe;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::lines::{MAX_LINE_BYTES, Splitter, run_lines};
use super::logfile::LogFile;
use super::publish::{self, JsonLines};
use super::state::{OutputLine, Stream};
use super::store::SharedRing;
use crate::bus::Bus;

/// Lines per `process.output` event.
const BATCH_LINES: usize = 64;
/// A batch waits at most this long for more lines.
const FLUSH_AFTER: Duration = Duration::from_millis(50);
/// Batches queued for the publisher.
const CHANNEL_BATCHES: usize = 1024;
/// Bytes of line text queued for the publisher, per run.
const INFLIGHT_BYTES: usize = 4 * 1024 * 1024;
/// Line text a run may put on the bus per second, sustained...
const BUS_BYTES_PER_SEC: f64 = 1024.0 * 1024.0;
/// ...and at once: far beyond what a person or a mapper reads (a test
/// suite's output), while a flood costs the journal at most this much
/// plus 1 MiB/s instead of whatever it can commit.
const BUS_BURST_BYTES: f64 = 4.0 * 1024.0 * 1024.0;
/// The read buffer, one per worker thread. Not larger: a read, the line
/// scan and the write to the log then stay in the core's cache; with 1 MiB
/// reads a pipe-to-file copy of 1 GiB took twice as long here.
const READ_MAX: usize = 128 * 1024;

thread_local! {
    /// The read buffer of every stream this thread reads: a read and the
    /// handing on of its bytes never wait in between, so one suffices.
    static READ_BUFFER: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_MAX].into_boxed_slice());
}
/// The kernel's default pipe size: a read this large found the pipe full.
const PIPE_START: usize = 64 * 1024;
/// The pipe size asked for once a read found the pipe full, so the child
/// can run ahead of the reader by this much.
const PIPE_MAX: usize = 1024 * 1024;

/// What the readers hand to the publisher.
///
/// A run's channel allocates its first block of 32 messages up front, and
/// most processes never write a line: with the batch boxed, that block is a
/// third the size (a kilobyte less for each process).
#[derive(Debug, PartialEq)]
pub(super) enum Message {
    Lines(Box<LineBatch>),
    Dropped { stream: Stream, dropped: u64 },
}

const _: () = assert!(std::mem::size_of::<Message>() <= 16);

/// A batch of lines from one stream.
#[derive(Debug, PartialEq)]
pub(super) struct LineBatch {
    pub(super) stream: Stream,
    pub(super) lines: JsonLines,
    /// Lines that are pieces of a longer line, continued by the next.
    pub(super) split: usize,
    pub(super) bytes: usize,
}

/// Everything the readers of one run share (one allocation per run).
struct Sink {
    ring: SharedRing,
    log: Mutex<LogFile>,
    publisher: Mutex<Publisher>,
    inflight: Arc<AtomicUsize>,
    budget: Mutex<Budget>,
}

impl Sink {
    /// Whether the publisher's queue has room (an unstarted one has).
    fn queue_has_room(&self) -> bool {
        match &*self.publisher.lock() {
            Publisher::Unstarted { .. } => true,
            Publisher::Started { tx, .. } => tx.capacity() > 0,
            Publisher::Finished => false,
        }
    }

    /// Queues `message` without waiting, starting the publisher if this is
    /// the run's first; gives it back if the queue is full.
    fn try_send(&self, message: Message) -> Result<(), Message> {
        match self.publisher.lock().sender(&self.inflight) {
            Some(tx) => tx.try_send(message).map_err(|e| e.into_inner()),
            None => Err(message),
        }
    }

    /// Queues `message`, waiting for room; gives it back if the publisher
    /// is gone.
    async fn send(&self, message: Message) -> Result<(), Message> {
        let tx = self.publisher.lock().sender(&self.inflight).cloned();
        match tx {
            Some(tx) => tx.send(message).await.map_err(|e| e.0),
            None => Err(message),
        }
    }
}

/// A run's publisher task, started by the run's first message: most of a
/// thousand processes never write a line, and a publisher is a task and a
/// channel, ~1.7 KiB a run.
enum Publisher {
    /// No message yet: what starting one takes.
    Unstarted {
        bus: Bus,
        name: String,
        dropped: Arc<AtomicU64>,
    },
    /// Publishing what `tx` brings until every sender is gone.
    Started {
        tx: mpsc::Sender<Message>,
        task: JoinHandle<()>,
    },
    /// Taken by [`OutputTasks::finish`] once the readers were done.
    Finished,
}

impl Publisher {
    /// The queue to the publisher, started now if it was not; `None` once
    /// finished.
    fn sender(&mut self, inflight: &Arc<AtomicUsize>) -> Option<&mpsc::Sender<Message>> {
        if let Publisher::Unstarted { bus, name, dropped } = self {
            let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
            let task = tokio::spawn(publish::run(
                bus.clone(),
                std::mem::take(name),
                rx,
                inflight.clone(),
                dropped.clone(),
            ));
            *self = Publisher::Started { tx, task };
        }
        match self {
            Publisher::Started { tx, .. } => Some(tx),
            _ => None,
        }
    }
}

/// The run's share of the bus: a token bucket of line bytes
/// ([`BUS_BYTES_PER_SEC`], [`BUS_BURST_BYTES`]). Without it a flood is
/// published as fast as the journal commits, and the host spends its CPU
/// and memory on the journal instead of draining the pipe (a 1 GiB burst
/// put 1.9 million lines on the bus, at 7 s of CPU); with it the flood's
/// lines beyond the budget are counted dropped, as when the queue is full.
struct Budget {
    tokens: f64,
    at: Instant,
}

impl Budget {
    fn new() -> Budget {
        Budget {
            tokens: BUS_BURST_BYTES,
            at: Instant::now(),
        }
    }

    /// Whether any bytes may go now (refilled for the time passed).
    fn open(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * BUS_BYTES_PER_SEC;
        self.tokens = (self.tokens + refill).min(BUS_BURST_BYTES);
        self.at = now;
        self.tokens > 0.0
    }

    /// Takes `bytes` (possibly into debt: at most one batch).
    fn spend(&mut self, bytes: usize) {
        self.tokens -= bytes as f64;
    }
}

/// The reader task (both pipes) and the publisher of one run.
pub(crate) struct OutputTasks {
    readers: JoinHandle<()>,
    sink: Arc<Sink>,
}

impl OutputTasks {
    /// Starts readers on both pipes and a publisher for process `name`.
    pub(crate) fn start(
        bus: Bus,
        name: String,
        stdout: Option<OwnedFd>,
        stderr: Option<OwnedFd>,
        ring: SharedRing,
        log: LogFile,
        dropped: Arc<AtomicU64>,
    ) -> OutputTasks {
        let sink = Arc::new(Sink {
            ring,
            log: Mutex::new(log),
            publisher: Mutex::new(Publisher::Unstarted { bus, name, dropped }),
            inflight: Arc::new(AtomicUsize::new(0)),
            budget: Mutex::new(Budget::new()),
        });
        let stdout = stdout.and_then(|fd| receiver(fd, Stream::Stdout));
        let stderr = stderr.and_then(|fd| receiver(fd, Stream::Stderr));
        let readers = tokio::spawn(read_both(stdout, stderr, sink.clone()));
        OutputTasks { readers, sink }
    }

    /// Waits for both pipes to close and every batch to be published.
    ///
    /// Gives up after `limit` (a pipe held open by a process outside the
    /// tree); the tasks then keep running detached until the pipe closes.
    pub(crate) async fn finish(self, limit: Duration) -> bool {
        let all = async {
            let _ = self.readers.await;
            // The readers are done: closing the queue lets the publisher
            // drain it and end.
            let publisher =
                std::mem::replace(&mut *self.sink.publisher.lock(), Publisher::Finished);
            if let Publisher::Started { tx, task } = publisher {
                drop(tx);
                let _ = task.await;
            }
        };
        tokio::time::timeout(limit, all).await.is_ok()
    }
}

/// Lines of one stream waiting to be handed over.
#[derive(Default)]
struct Batch {
    lines: JsonLines,
    bytes: usize,
    split: usize,
    deadline: Option<Instant>,
    /// Lines that could not be queued and are not yet reported.
    dropped: u64,
}

impl Batch {
    /// Whether the publisher can take more right now (checked once per
    /// read: while it cannot, lines are only counted, never built).
    fn room(&self, sink: &Sink) -> bool {
        sink.inflight.load(Ordering::Relaxed) + self.bytes < INFLIGHT_BYTES
            && sink.queue_has_room()
            && sink.budget.lock().open()
    }

    /// Hands the batch to the publisher without waiting, or counts it
    /// dropped; false if it was dropped.
    fn flush_now(&mut self, stream: Stream, sink: &Sink) -> bool {
        self.report_dropped(stream, sink);
        if self.lines.is_empty() {
            return true;
        }
        let reserved = sink.inflight.fetch_add(self.bytes, Ordering::SeqCst);
        let lines = std::mem::take(&mut self.lines);
        let message = Message::Lines(Box::new(LineBatch {
            stream,
            split: std::mem::take(&mut self.split),
            bytes: self.bytes,
            lines,
        }));
        let refused = if reserved + self.bytes > INFLIGHT_BYTES {
            Some(message)
        } else {
            sink.try_send(message).err()
        };
        let sent = refused.is_none();
        if sent {
            sink.budget.lock().spend(self.bytes);
        }
        if let Some(Message::Lines(batch)) = refused {
            sink.inflight.fetch_sub(self.bytes, Ordering::SeqCst);
            self.dropped += batch.lines.len() as u64;
        }
        self.bytes = 0;
        self.deadline = None;
        sent
    }

    fn report_dropped(&mut self, stream: Stream, sink: &Sink) {
        if self.dropped > 0
            && sink
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
            let message = Message::Lines(Box::new(LineBatch {
                stream,
                lines: std::mem::take(&mut self.lines),
                split: self.split,
                bytes: self.bytes,
            }));
            if let Err(Message::Lines(batch)) = sink.send(message).await {
                self.dropped += batch.lines.len() as u64;
            }
        }
        if self.dropped > 0 {
            let dropped = self.dropped;
            if sink
                .send(Message::Dropped { stream, dropped })
                .await
                .is_err()
            {
                tracing::error!(%stream, dropped, "output lines lost: publisher gone");
            }
        }
    }
}

/// The read end of a child's pipe, as a receiver polled for readiness;
/// `None` (and a warning) if the pipe cannot be taken over, which leaves
/// that stream unread rather than failing the run.
fn receiver(fd: OwnedFd, stream: Stream) -> Option<pipe::Receiver> {
    // The pipe was made blocking; `from_owned_fd` makes it non-blocking (a
    // blocking read would stall a worker thread).
    pipe::Receiver::from_owned_fd(fd)
        .inspect_err(|e| tracing::warn!(%stream, error = %e, "cannot read child output"))
        .ok()
}

/// Reads both pipes until they close, in one task (a task per pipe was
/// ~0.8 KiB more per run): each read hands its bytes on before the task
/// waits again, so neither pipe waits on the other's work for long.
///
/// The readers' futures are made here, not passed in: an `async` block
/// keeps what it captures apart from its own state, and two captured
/// readers doubled the task.
async fn read_both(
    stdout: Option<pipe::Receiver>,
    stderr: Option<pipe::Receiver>,
    sink: Arc<Sink>,
) {
    let read = async |pipe: Option<pipe::Receiver>, stream| {
        if let Some(pipe) = pipe {
            read_stream(pipe, stream, &sink).await;
        }
    };
    tokio::join!(read(stdout, Stream::Stdout), read(stderr, Stream::Stderr));
}

/// What a stream keeps between reads once it has said something.
///
/// Boxed, and made by the first read with bytes in it: a stream that never
/// writes (most of a thousand idle processes) holds none of it, and the
/// reading task stays a third smaller.
#[derive(Default)]
struct Said {
    lines: Lines,
    log: LogTail,
    batch: Batch,
}

/// Reads one pipe until it closes; see the module doc.
async fn read_stream(pipe: pipe::Receiver, stream: Stream, sink: &Sink) {
    let fd = pipe.as_raw_fd();
    let mut grown = false;
    let mut said: Option<Box<Said>> = None;
    loop {
        let deadline = said.as_deref().and_then(|s| {
            [s.batch.deadline, s.lines.stage.due]
                .into_iter()
                .flatten()
                .min()
        });
        let ready = tokio::select! {
            ready = pipe.readable() => ready,
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                let now = Instant::now();
                if let Some(s) = said.as_deref_mut() {
                    if s.batch.deadline.is_some_and(|d| d <= now) {
                        s.batch.flush_now(stream, sink);
                    }
                    if s.lines.stage.due.is_some_and(|d| d <= now) {
                        s.lines.stage.flush(stream, &sink.ring);
                    }
                }
                continue;
            }
        };
        // Read and hand the bytes on without waiting in between: the
        // thread's buffer is free again before this task can be suspended.
        let read = ready.and_then(|()| {
            READ_BUFFER.with_borrow_mut(|buf| {
                let n = pipe.try_read(buf)?;
                if n > 0 {
                    let s = said.get_or_insert_default();
                    s.log.write(&buf[..n], &sink.log);
                    s.lines.take(&buf[..n], stream, sink, &mut s.batch);
                }
                Ok(n)
            })
        });
        match read {
            Ok(0) => break,
            // A read of the pipe's whole size means the child is ahead of us.
            Ok(n) if n >= PIPE_START && !grown => {
                grow_pipe(fd);
                grown = true;
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                tracing::warn!(%stream, error = %e, "reading child output failed");
                break;
            }
        }
    }
    if let Some(mut s) = said {
        s.log.finish(&sink.log);
        s.lines.finish(stream, sink, &mut s.batch);
        s.batch.flush_final(stream, sink).await;
    }
}

/// Asks the kernel for a pipe of [`PIPE_MAX`] (best effort: a
/// `pipe-max-size` below it, or a user over its pipe quota, keeps 64 KiB).
fn grow_pipe(fd: RawFd) {
    // SAFETY: fcntl on a descriptor the caller's pipe owns and keeps open;
    // F_SETPIPE_SZ touches no memory of ours.
    let _ = unsafe { nix::libc::fcntl(fd, nix::libc::F_SETPIPE_SZ, PIPE_MAX as i32) };
}

/// The log side of one stream: bytes go to the file up to the last newline
/// of each read; the start of an unfinished line waits for its end (or
/// goes out once longer than [`MAX_LINE_BYTES`]), so the streams sharing
/// the file interleave only between lines.
#[derive(Default)]
struct LogTail {
    pending: Vec<u8>,
    failed: bool,
}

impl LogTail {
    fn write(&mut self, chunk: &[u8], log: &Mutex<LogFile>) {
        if self.failed {
            return;
        }
        let Some(last) = memchr::memrchr(b'\n', chunk) else {
            self.pending.extend_from_slice(chunk);
            if self.pending.len() >= MAX_LINE_BYTES {
                let result = log.lock().write(&self.pending);
                self.pending.clear();
                self.check(result, log);
            }
            return;
        };
        let mut file = log.lock();
        let mut from = 0;
        let mut result = Ok(());
        if !self.pending.is_empty() {
            // Only the first line is copied to join its start.
            let first = memchr::memchr(b'\n', chunk).unwrap_or(last);
            self.pending.extend_from_slice(&chunk[..=first]);
            result = file.write(&self.pending);
            from = first + 1;
        }
        if result.is_ok() && from <= last {
            result = file.write(&chunk[from..=last]);
        }
        drop(file);
        self.pending.clear();
        self.pending.extend_from_slice(&chunk[last + 1..]);
        self.check(result, log);
    }

    fn finish(&mut self, log: &Mutex<LogFile>) {
        if !self.failed && !self.pending.is_empty() {
            let result = log.lock().write(&self.pending);
            self.pending.clear();
            self.check(result, log);
        }
    }

    fn check(&mut self, result: io::Result<()>, log: &Mutex<LogFile>) {
        if let Err(e) = result {
            self.failed = true;
            tracing::error!(path = %log.lock().path().display(), error = %e,
                "writing the process log failed; later output goes to the ring and events only");
        }
    }
}

/// The line side of one stream: the splitter and the lines waiting for
/// the ring.
#[derive(Default)]
struct Lines {
    splitter: Splitter,
    stage: Stage,
}

/// How long lines may wait in the [`Stage`] before the ring gets them.
const RING_EVERY: Duration = Duration::from_millis(10);

/// Lines of recent reads on their way to the ring, as raw bytes: a burst
/// costs a copy per read instead of a string per line, and strings are
/// built only for the last `ring_lines` when the stage is flushed (every
/// [`RING_EVERY`] at most, and at the end of the stream).
#[derive(Default)]
struct Stage {
    bytes: Vec<u8>,
    /// What is where in `bytes`, oldest first.
    items: Vec<Staged>,
    /// Lines in `items`.
    lines: usize,
    /// Lines before the items that fell out before the ring saw them.
    skipped: u64,
    /// When the stage is to be flushed.
    due: Option<Instant>,
}

/// A stretch of [`Stage::bytes`]: one line (or piece) as the ring gets it,
/// or a run of whole lines from [`Splitter::feed_runs`], cut at the flush.
struct Staged {
    start: usize,
    end: usize,
    /// 1 for a line; a run's count.
    lines: usize,
    run: bool,
    time: chrono::DateTime<Utc>,
}

impl Stage {
    fn push(&mut self, line: &[u8], time: chrono::DateTime<Utc>) {
        self.append(line, 1, false, time);
    }

    /// Stages a run of `count` lines; one that fills the ring alone
    /// replaces everything staged before it.
    fn push_run(&mut self, run: &[u8], count: usize, capacity: usize, time: chrono::DateTime<Utc>) {
        if count >= capacity {
            self.forget(self.items.len());
        }
        self.append(run, count, true, time);
    }

    fn append(&mut self, bytes: &[u8], lines: usize, run: bool, time: chrono::DateTime<Utc>) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(bytes);
        self.items.push(Staged {
            start,
            end: self.bytes.len(),
            lines,
            run,
            time,
        });
        self.lines += lines;
    }

    /// Forgets the oldest `n` items (their lines only count as skipped).
    fn forget(&mut self, n: usize) {
        let n = n.min(self.items.len());
        if n == 0 {
            return;
        }
        let gone: usize = self.items[..n].iter().map(|i| i.lines).sum();
        if n == self.items.len() {
            self.bytes.clear();
            self.items.clear();
        } else {
            let base = self.items[n].start;
            self.bytes.drain(..base);
            self.items.drain(..n);
            for item in &mut self.items {
                item.start -= base;
                item.end -= base;
            }
        }
        self.lines -= gone;
        self.skipped += gone as u64;
    }

    /// Forgets the oldest items that the ring would not keep anyway, once
    /// the stage holds twice what it needs (so bytes move rarely).
    fn trim(&mut self, capacity: usize) {
        if self.lines <= 2 * capacity.max(1) {
            return;
        }
        let mut over = self.lines - capacity;
        let n = self
            .items
            .iter()
            .take_while(|item| {
                let fits = item.lines <= over;
                over = over.saturating_sub(item.lines);
                fits
            })
            .count();
        self.forget(n);
    }

    /// Hands the lines to the ring: numbers the skipped ones, keeps the
    /// last `capacity`.
    fn flush(&mut self, stream: Stream, ring: &SharedRing) {
        self.due = None;
        if self.items.is_empty() && self.skipped == 0 {
            return;
        }
        let mut ring = ring.lock();
        let mut extra = self.lines.saturating_sub(ring.capacity());
        ring.skip(self.skipped + extra as u64);
        for item in &self.items {
            if extra >= item.lines {
                extra -= item.lines;
                continue;
            }
            let bytes = &self.bytes[item.start..item.end];
            let lossy = |line| String::from_utf8_lossy(line).into_owned();
            if item.run {
                for line in run_lines(bytes).skip(extra) {
                    ring.push(output_line(stream, lossy(line), item.time));
                }
            } else {
                ring.push(output_line(stream, lossy(bytes), item.time));
            }
            extra = 0;
        }
        ring.touch(Utc::now());
        drop(ring);
        self.items.clear();
        self.bytes.clear();
        self.lines = 0;
        self.skipped = 0;
    }
}

impl Lines {
    /// Cuts `chunk` into lines; the ring's stage gets the last of them (the
    /// others are only numbered), the batch those the publisher has room
    /// for, the drop count the rest.
    fn take(&mut self, chunk: &[u8], stream: Stream, sink: &Sink, batch: &mut Batch) {
        let capacity = sink.ring.lock().capacity();
        let open = batch.room(sink);
        // While the bus takes nothing (a flood past its budget), lines are
        // counted and staged in runs, not one by one.
        let counted = if open {
            None
        } else {
            self.count(chunk, capacity, batch)
        };
        let count = counted.unwrap_or_else(|| self.cut(chunk, open, capacity, stream, sink, batch));
        self.stage.trim(capacity);
        self.arm(count, stream, sink, batch);
    }

    /// `take` while the bus is closed: the lines go to the stage in runs
    /// and to the drop count as a number. `None` if the splitter declines
    /// (no newline, or an overlong line: then `cut` does it).
    fn count(&mut self, chunk: &[u8], capacity: usize, batch: &mut Batch) -> Option<usize> {
        let now = Utc::now();
        // Both callbacks stage, one after the other, in the stream's order.
        let stage = RefCell::new(&mut self.stage);
        let mut singles = 0;
        let mut in_run = 0;
        let taken = self.splitter.feed_runs(
            chunk,
            |bytes, _| {
                stage.borrow_mut().push(bytes, now);
                singles += 1;
            },
            |run, count| {
                in_run = count;
                stage.borrow_mut().push_run(run, count, capacity, now);
            },
        );
        let count = singles + in_run;
        batch.dropped += count as u64;
        taken.then_some(count)
    }

    /// `take` line by line: strings for the batch while the publisher has
    /// room, the ring's share staged, the rest counted. Returns the lines.
    fn cut(
        &mut self,
        chunk: &[u8],
        mut open: bool,
        capacity: usize,
        stream: Stream,
        sink: &Sink,
        batch: &mut Batch,
    ) -> usize {
        let now = Utc::now();
        // Set by the splitter's count before the first line comes out.
        let ring_from = std::cell::Cell::new(0);
        let mut index = 0;
        let staged = self.stage.items.len();
        let stage = &mut self.stage;
        self.splitter.feed(
            chunk,
            |hint| ring_from.set(hint.saturating_sub(capacity)),
            |bytes, continued| {
                let for_ring = index >= ring_from.get();
                index += 1;
                if for_ring {
                    stage.push(bytes, now);
                }
                if !open {
                    batch.dropped += 1;
                    return;
                }
                let line = String::from_utf8_lossy(bytes);
                batch.bytes += line.len();
                batch.split += usize::from(continued);
                batch.lines.push(&line);
                if batch.lines.len() >= BATCH_LINES {
                    open = batch.flush_now(stream, sink) && batch.room(sink);
                }
            },
        );
        let skipped = ring_from.get().min(index);
        if skipped > 0 {
            // This read alone fills the ring: what was staged falls out.
            self.stage.forget(staged);
            self.stage.skipped += skipped as u64;
        }
        index
    }

    /// At end of stream: the last line if it had no newline, and whatever
    /// waits for the ring.
    fn finish(&mut self, stream: Stream, sink: &Sink, batch: &mut Batch) {
        let now = Utc::now();
        let stage = &mut self.stage;
        self.splitter.finish(|bytes, continued| {
            let line = String::from_utf8_lossy(bytes);
            batch.bytes += line.len();
            batch.split += usize::from(continued);
            batch.lines.push(&line);
            stage.push(bytes, now);
        });
        self.stage.flush(stream, &sink.ring);
    }

    /// After a read of `count` lines: flushes the stage if it is due (or
    /// makes it due), and arms the batch's flush deadline.
    fn arm(&mut self, count: usize, stream: Stream, sink: &Sink, batch: &mut Batch) {
        if count == 0 {
            return;
        }
        let now = Instant::now();
        match self.stage.due {
            Some(due) if due <= now => self.stage.flush(stream, &sink.ring),
            Some(_) => {}
            None => self.stage.due = Some(now + RING_EVERY),
        }
        if !batch.lines.is_empty() && batch.deadline.is_none() {
            batch.deadline = Some(now + FLUSH_AFTER);
        }
    }
}

/// A line for the ring, which numbers it.
fn output_line(stream: Stream, line: String, time: chrono::DateTime<Utc>) -> OutputLine {
    OutputLine {
        stream,
        line,
        time,
        offset: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batches_refused_by_a_full_queue_are_counted_and_reported_later() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, mut rx) = mpsc::channel(1);
        let task = tokio::spawn(async {});
        let sink = Sink {
            ring: super::super::store::Ring::shared(10),
            log: Mutex::new(log_in(dir.path())),
            publisher: Mutex::new(Publisher::Started { tx, task }),
            inflight: Arc::new(AtomicUsize::new(0)),
            budget: Mutex::new(Budget::new()),
        };
        let mut batch = Batch::default();
        let mut lines = Lines::default();
        lines.take(b"a\nb\nc\n", Stream::Stdout, &sink, &mut batch);
        batch.flush_now(Stream::Stdout, &sink);
        lines.take(b"a\nb\nc\n", Stream::Stdout, &sink, &mut batch);
        batch.flush_now(Stream::Stdout, &sink);
        lines.finish(Stream::Stdout, &sink, &mut batch);
        assert_eq!(
            batch.dropped, 3,
            "the queue held one batch; the second was dropped"
        );
        assert!(matches!(rx.try_recv(), Ok(Message::Lines(batch)) if batch.lines.len() == 3));
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

    /// A sink whose bus is closed (its publisher is finished), so `take`
    /// only counts.
    fn closed_sink(capacity: usize, dir: &std::path::Path) -> Sink {
        Sink {
            ring: super::super::store::Ring::shared(capacity),
            log: Mutex::new(log_in(dir)),
            publisher: Mutex::new(Publisher::Finished),
            inflight: Arc::new(AtomicUsize::new(0)),
            budget: Mutex::new(Budget::new()),
        }
    }

    #[test]
    fn a_closed_bus_counts_in_runs_what_it_counted_line_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = fastrand::Rng::with_seed(11);
        for round in 0..200 {
            let capacity = rng.usize(0..40);
            let (fast_sink, slow_sink) = (
                closed_sink(capacity, dir.path()),
                closed_sink(capacity, dir.path()),
            );
            let (mut fast, mut slow) = (Lines::default(), Lines::default());
            let (mut fast_batch, mut slow_batch) = (Batch::default(), Batch::default());
            for _ in 0..rng.usize(1..30) {
                let mut chunk = Vec::new();
                for _ in 0..rng.usize(0..80) {
                    let len = match rng.u8(0..20) {
                        0 => rng.usize(0..2 * MAX_LINE_BYTES),
                        _ => rng.usize(0..30),
                    };
                    chunk.extend((0..len).map(|_| b"xy\r"[rng.usize(0..3)]));
                    chunk.push(b'\n');
                }
                chunk.extend((0..rng.usize(0..20)).map(|_| b'p'));
                // `take` goes through `count` while the bus is closed; the
                // line-by-line path is what it did before.
                fast.take(&chunk, Stream::Stdout, &fast_sink, &mut fast_batch);
                slow.cut(
                    &chunk,
                    false,
                    capacity,
                    Stream::Stdout,
                    &slow_sink,
                    &mut slow_batch,
                );
                slow.stage.trim(capacity);
                // The ring gets the stage when the test says, not the clock.
                fast.stage.due = None;
                if rng.u8(0..4) == 0 {
                    fast.stage.flush(Stream::Stdout, &fast_sink.ring);
                    slow.stage.flush(Stream::Stdout, &slow_sink.ring);
                }
            }
            fast.finish(Stream::Stdout, &fast_sink, &mut fast_batch);
            slow.finish(Stream::Stdout, &slow_sink, &mut slow_batch);
            let ring = |sink: &Sink| {
                let ring = sink.ring.lock();
                let lines: Vec<_> = ring
                    .last(usize::MAX)
                    .into_iter()
                    .map(|l| (l.offset, l.line))
                    .collect();
                (lines, ring.next_offset())
            };
            assert_eq!(ring(&fast_sink), ring(&slow_sink), "round {round}");
            assert_eq!(fast_batch.dropped, slow_batch.dropped, "round {round}");
            assert_eq!(fast_batch.lines, slow_batch.lines, "round {round}");
        }
    }

    fn log_in(dir: &std::path::Path) -> LogFile {
        let policy = super::super::logfile::LogPolicy {
            max_bytes: 1 << 20,
            generations: 1,
            compress: false,
        };
        LogFile::open(dir.join("x.log"), policy).unwrap()
    }

    #[tokio::test]
    async fn a_silent_run_starts_no_publisher_and_a_talking_one_publishes_every_line() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::open_in_memory(Default::default()).unwrap();
        let start = |out: OwnedFd, err: OwnedFd| {
            OutputTasks::start(
                bus.clone(),
                "p".into(),
                Some(out),
                Some(err),
                super::super::store::Ring::shared(10),
                log_in(dir.path()),
                Arc::default(),
            )
        };
        let (out, out_w) = nix::unistd::pipe().unwrap();
        let (err, err_w) = nix::unistd::pipe().unwrap();
        let silent = start(out, err);
        drop((out_w, err_w));
        while !silent.readers.is_finished() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(matches!(
            *silent.sink.publisher.lock(),
            Publisher::Unstarted { .. }
        ));
        assert!(silent.finish(Duration::from_secs(5)).await);

        let (out, out_w) = nix::unistd::pipe().unwrap();
        let (err, err_w) = nix::unistd::pipe().unwrap();
        let talking = start(out, err);
        nix::unistd::write(&out_w, b"one\ntwo\n").unwrap();
        nix::unistd::write(&err_w, b"three\n").unwrap();
        drop((out_w, err_w));
        assert!(talking.finish(Duration::from_secs(5)).await);
        let mut lines: Vec<String> = bus
            .query(&crate::bus::EventQuery::default())
            .unwrap()
            .iter()
            .filter(|e| e.ty.as_str() == "process.output")
            .flat_map(|e| e.data["lines"].as_array().cloned().unwrap_or_default())
            .map(|l| l.as_str().unwrap().to_string())
            .collect();
        lines.sort();
        assert_eq!(lines, ["one", "three", "two"]);
    }
}
