//! The publisher of one run's output: batches from the readers become
//! `process.output` events, drop counts become `process.output_dropped`.
//!
//! Under load it coalesces queued batches of the same stream into larger
//! events, so a burst costs the bus fewer appends and fewer lines are
//! dropped. Each append awaits its commit on the bus's writer thread
//! (`publish_all_async`), so no worker blocks on the journal, and the bytes
//! in flight are released only once their lines are in the journal; the
//! readers keep draining the pipes meanwhile.
//!
//! A batch carries its lines already written as JSON ([`JsonLines`]): the
//! event's text is then the batches' texts joined, where a `String` per
//! line cost a third more than the line while queued, and the event was
//! built as a value tree (a second copy of every line) only to be written
//! out as text.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use serde_json::json;
use tokio::sync::mpsc;

use super::events::{self, EventType};
use super::output::{LineBatch, Message};
use super::state::Stream;
use crate::bus::{Bus, EventData, NewEvent};

/// Most queued messages taken per bus append.
const DRAIN_MESSAGES: usize = 256;
/// Most lines in one coalesced `process.output` event.
const EVENT_LINES: usize = 1024;
/// Most bytes of line text in one coalesced `process.output` event.
const EVENT_BYTES: usize = 256 * 1024;

/// Lines as the elements of a JSON array, each a JSON string
/// (`"one","two"`), with their count.
#[derive(Debug, Default, PartialEq)]
pub(super) struct JsonLines {
    /// Valid UTF-8: `serde_json` writes each line, commas between.
    text: Vec<u8>,
    count: usize,
}

impl JsonLines {
    /// Appends `line`, escaped as JSON.
    pub(super) fn push(&mut self, line: &str) {
        if self.count > 0 {
            self.text.push(b',');
        }
        serde_json::to_writer(&mut self.text, line).expect("writing to a Vec cannot fail");
        self.count += 1;
    }

    /// Lines held.
    pub(super) fn len(&self) -> usize {
        self.count
    }

    /// Whether no line is held.
    pub(super) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Appends `other`'s lines after this one's.
    fn append(&mut self, other: &JsonLines) {
        if other.is_empty() {
            return;
        }
        if !self.is_empty() {
            self.text.push(b',');
        }
        self.text.extend_from_slice(&other.text);
        self.count += other.count;
    }
}

/// One `process.output` event being assembled.
struct Pending {
    stream: Stream,
    lines: JsonLines,
    split: usize,
    bytes: usize,
}

impl Pending {
    /// The event: `{"stream":..,"lines":[..],"split":..}`, its text written
    /// here around the lines' own.
    fn into_event(self, name: &str) -> NewEvent {
        let mut text = Vec::with_capacity(self.lines.text.len() + 64);
        text.extend_from_slice(b"{\"stream\":");
        serde_json::to_writer(&mut text, &self.stream).expect("a stream name serializes");
        text.extend_from_slice(b",\"lines\":[");
        text.extend_from_slice(&self.lines.text);
        write!(text, "],\"split\":{}}}", self.split).expect("writing to a Vec cannot fail");
        // serde_json wrote the stream and every line, the rest is fixed
        // punctuation and a number: valid by construction (and checked).
        let text = String::from_utf8(text).expect("serde_json writes UTF-8");
        let data = EventData::from_json(text).expect("serde_json writes valid JSON");
        events::new(name, EventType::Output, data)
    }
}

/// Turns queued messages into events, merging neighbouring batches of the
/// same stream up to [`EVENT_LINES`] / [`EVENT_BYTES`]. Also returns the line
/// count per stream (stdout, stderr) and the bytes they held.
fn coalesce(name: &str, messages: Vec<Message>) -> (Vec<NewEvent>, [u64; 2], usize) {
    let mut events = Vec::new();
    let mut counts = [0u64; 2];
    let mut total_bytes = 0;
    let mut pending: Option<Pending> = None;
    for message in messages {
        match message {
            Message::Lines(batch) => {
                let LineBatch {
                    stream,
                    lines,
                    split,
                    bytes,
                } = *batch;
                counts[stream as usize] += lines.len() as u64;
                total_bytes += bytes;
                match pending.as_mut() {
                    Some(p)
                        if p.stream == stream
                            && p.lines.len() + lines.len() <= EVENT_LINES
                            && p.bytes + bytes <= EVENT_BYTES =>
                    {
                        p.lines.append(&lines);
                        p.split += split;
                        p.bytes += bytes;
                    }
                    _ => {
                        if let Some(p) = pending.take() {
                            events.push(p.into_event(name));
                        }
                        pending = Some(Pending {
                            stream,
                            lines,
                            split,
                            bytes,
                        });
                    }
                }
            }
            Message::Dropped { stream, dropped } => {
                if let Some(p) = pending.take() {
                    events.push(p.into_event(name));
                }
                events.push(events::new(
                    name,
                    EventType::OutputDropped,
                    json!({ "stream": stream, "dropped": dropped }),
                ));
            }
        }
    }
    if let Some(p) = pending.take() {
        events.push(p.into_event(name));
    }
    (events, counts, total_bytes)
}

/// Publishes until every reader has hung up and the queue is empty.
///
/// `dropped` counts, for the whole supervisor, the lines that never reached
/// the bus (they are still in the ring and the log file).
pub(super) async fn run(
    bus: Bus,
    name: String,
    mut rx: mpsc::Receiver<Message>,
    inflight: Arc<AtomicUsize>,
    dropped: Arc<AtomicU64>,
) {
    while let Some(first) = rx.recv().await {
        let mut messages = vec![first];
        while messages.len() < DRAIN_MESSAGES {
            match rx.try_recv() {
                Ok(m) => messages.push(m),
                Err(_) => break,
            }
        }
        let refused: u64 = messages
            .iter()
            .map(|m| match m {
                Message::Dropped { dropped, .. } => *dropped,
                Message::Lines(_) => 0,
            })
            .sum();
        dropped.fetch_add(refused, Ordering::Relaxed);
        let (events, counts, bytes) = coalesce(&name, messages);
        let result = bus.publish_all_async(events).await;
        inflight.fetch_sub(bytes, Ordering::SeqCst);
        let error = match result {
            Ok(_) => continue,
            Err(e) => e.to_string(),
        };
        // The lines are in the ring and the log, but not on the bus: say so.
        tracing::error!(process = %name, error = %error, "could not publish output");
        dropped.fetch_add(counts[0] + counts[1], Ordering::Relaxed);
        for stream in [Stream::Stdout, Stream::Stderr] {
            let dropped = counts[stream as usize];
            if dropped == 0 {
                continue;
            }
            let notice = events::new(
                &name,
                EventType::OutputDropped,
                json!({ "stream": stream, "dropped": dropped, "reason": error }),
            );
            if bus.submit(vec![notice]).is_err() {
                tracing::error!(process = %name, %stream, dropped, "output lines lost from the bus");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(stream: Stream, n: usize) -> Message {
        Message::Lines(Box::new(LineBatch {
            stream,
            lines: {
                let mut lines = JsonLines::default();
                for i in 0..n {
                    lines.push(&i.to_string());
                }
                lines
            },
            split: 0,
            bytes: n,
        }))
    }

    #[test]
    fn neighbouring_batches_of_one_stream_merge_into_one_event() {
        let messages = vec![
            lines(Stream::Stdout, 64),
            lines(Stream::Stdout, 64),
            lines(Stream::Stderr, 3),
            Message::Dropped {
                stream: Stream::Stdout,
                dropped: 7,
            },
            lines(Stream::Stdout, 1),
        ];
        let (events, counts, bytes) = coalesce("p", messages);
        let summary: Vec<_> = events
            .iter()
            .map(|e| {
                (
                    e.ty.as_str(),
                    e.data["stream"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("process.output", "stdout".to_string()),
                ("process.output", "stderr".to_string()),
                ("process.output_dropped", "stdout".to_string()),
                ("process.output", "stdout".to_string()),
            ]
        );
        assert_eq!(events[0].data["lines"].as_array().unwrap().len(), 128);
        assert_eq!(events[2].data["dropped"], 7);
        assert_eq!(counts, [129, 3]);
        assert_eq!(bytes, 132);
    }

    #[test]
    fn a_coalesced_event_never_exceeds_the_line_limit() {
        let messages = (0..40).map(|_| lines(Stream::Stdout, 64)).collect();
        let (events, counts, _) = coalesce("p", messages);
        assert!(
            events
                .iter()
                .all(|e| e.data["lines"].as_array().unwrap().len() <= EVENT_LINES)
        );
        let total: usize = events
            .iter()
            .map(|e| e.data["lines"].as_array().unwrap().len())
            .sum();
        assert_eq!(total, 40 * 64);
        assert_eq!(counts[0], 40 * 64);
    }

    #[test]
    fn any_line_reaches_the_event_as_it_was_said_across_merged_batches() {
        let mut rng = fastrand::Rng::with_seed(7);
        let alphabet = [
            'a', '"', '\\', '\n', '\u{0}', '\u{1f}', 'é', '\u{2028}', '😀', '/',
        ];
        for round in 0..200 {
            let mut said = Vec::new();
            let messages: Vec<Message> = (0..rng.usize(1..6))
                .map(|_| {
                    let mut lines = JsonLines::default();
                    for _ in 0..rng.usize(0..20) {
                        let line: String = (0..rng.usize(0..12))
                            .map(|_| alphabet[rng.usize(0..alphabet.len())])
                            .collect();
                        lines.push(&line);
                        said.push(line);
                    }
                    Message::Lines(Box::new(LineBatch {
                        stream: Stream::Stderr,
                        split: 1,
                        bytes: 0,
                        lines,
                    }))
                })
                .collect();
            let batches = messages.len();
            let (events, counts, _) = coalesce("p", messages);
            assert_eq!(events.len(), 1, "round {round}: one stream, few lines");
            let data: serde_json::Value = serde_json::from_str(events[0].data.json()).unwrap();
            let got: Vec<&str> = data["lines"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_str().unwrap())
                .collect();
            assert_eq!(got, said, "round {round}");
            assert_eq!(counts[1], said.len() as u64);
            assert_eq!(data["stream"], "stderr");
            assert_eq!(data["split"], batches);
        }
    }
}
