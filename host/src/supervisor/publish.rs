//! The publisher of one run's output: batches from the readers become
//! `process.output` events, drop counts become `process.output_dropped`.
//!
//! Under load it coalesces queued batches of the same stream into larger
//! events, so a burst costs the bus fewer appends and fewer lines are
//! dropped. Each append awaits its commit on the bus's writer thread
//! (`publish_all_async`), so no worker blocks on the journal, and the bytes
//! in flight are released only once their lines are in the journal; the
//! readers keep draining the pipes meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use serde_json::json;
use tokio::sync::mpsc;

use super::events::{self, EventType};
use super::output::{LineBatch, Message};
use super::state::Stream;
use crate::bus::{Bus, NewEvent};

/// Most queued messages taken per bus append.
const DRAIN_MESSAGES: usize = 256;
/// Most lines in one coalesced `process.output` event.
const EVENT_LINES: usize = 1024;
/// Most bytes of line text in one coalesced `process.output` event.
const EVENT_BYTES: usize = 256 * 1024;

/// One `process.output` event being assembled.
struct Pending {
    stream: Stream,
    lines: Vec<String>,
    split: usize,
    bytes: usize,
}

/// Turns queued messages into events, merging neighbouring batches of the
/// same stream up to [`EVENT_LINES`] / [`EVENT_BYTES`]. Also returns the line
/// count per stream (stdout, stderr) and the bytes they held.
fn coalesce(name: &str, messages: Vec<Message>) -> (Vec<NewEvent>, [u64; 2], usize) {
    let mut events = Vec::new();
    let mut counts = [0u64; 2];
    let mut total_bytes = 0;
    let mut pending: Option<Pending> = None;
    let emit = |p: Pending, events: &mut Vec<NewEvent>| {
        events.push(events::new(
            name,
            EventType::Output,
            json!({ "stream": p.stream, "lines": p.lines, "split": p.split }),
        ));
    };
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
                        p.lines.extend(lines);
                        p.split += split;
                        p.bytes += bytes;
                    }
                    _ => {
                        if let Some(p) = pending.take() {
                            emit(p, &mut events);
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
                    emit(p, &mut events);
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
        emit(p, &mut events);
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
            lines: (0..n).map(|i| i.to_string()).collect(),
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
}
