//! The event bus: an append-only, sequenced log of CloudEvents.
//!
//! Every event gets a strictly increasing `sequence` and is appended to a durable
//! SQLite journal by one writer thread, which commits what publishers queued in
//! groups; `publish` returns once its event is committed, `submit` at once.
//! Subscribers are [`Consumer`]s with a cursor over that log (as in NATS
//! JetStream): a slow consumer catches up from the journal, a reloaded one
//! resumes at its saved cursor ([`Bus::save_cursor`]), and nothing is dropped
//! silently — the only losses, journal retention and unreadable rows, are
//! counted per consumer and announced.
//!
//! Every size is bounded ([`BusConfig`]): an event (`max_event_bytes`, 1 MiB),
//! the ring (`ring_capacity` events and `ring_max_bytes`, 8 MiB), the journal
//! (`max_journal_events` and `max_journal_bytes`, 1 GiB), the queue to the
//! writer (32 MiB, then publishers wait) and the WAL: the writer checks it after
//! every commit and restarts it once it passes `max_wal_bytes` (64 MiB), after
//! which SQLite cuts the file back to that size (`journal_size_limit`). Under a
//! sustained storm the WAL file therefore stays under about 1.5 × `max_wal_bytes`
//! (the bound plus one commit's frames; a commit carries at most a quarter of
//! the bound in events). The one exception is a reader that keeps a single read
//! transaction open: the WAL cannot restart under it, and grows until it lets
//! go. After a second without commits, and at close, the WAL is truncated to
//! nothing.
//!
//! The bus knows nothing of processes or plugins; they publish and consume.
//!
//! Layout:
//! - `event`: [`Event`] (CloudEvents 1.0 + `sequence`, causation) and [`NewEvent`];
//! - `config`: [`BusConfig`];
//! - `pattern`: [`Pattern`], NATS-style `*` / `>` matching over dotted types;
//! - `log`: [`Bus`], its state and its reads; `publish`: the publishing API;
//!   `queue`: the hand-off to `writer`, the thread that commits, with its
//!   upkeep in `retention`, `wal` and `reaper`; `cursors`: durable consumer
//!   cursors;
//! - `ring`: the in-memory tail of the log;
//! - `journal`: the SQLite file, and [`Journal`] for read-only access elsewhere;
//!   `sql`: how queries and values map onto it; `checkpoint`: its WAL upkeep;
//! - `consumer`: [`Consumer`] and [`StartAt`];
//! - `query`: [`EventQuery`] and [`QueryPage`]; `scan`: running a query within
//!   its bounds over the ring or the journal;
//! - `stats`: [`BusStats`] and the windowed [`StatsBreakdown`];
//! - `error`: [`BusError`].

mod checkpoint;
mod config;
mod consumer;
mod cursors;
mod data;
mod error;
mod event;
mod journal;
mod log;
mod pattern;
mod publish;
mod query;
mod queue;
mod reaper;
mod retention;
mod ring;
mod scan;
mod sql;
mod stats;
mod wal;
mod writer;

pub use config::BusConfig;
pub use consumer::{Consumer, StartAt};
pub use data::EventData;
pub use error::BusError;
pub use event::{Event, JsonContentType, NewEvent, SpecVersion};
pub use journal::{Journal, journal_path};
pub use log::Bus;
pub use pattern::Pattern;
pub use query::{EventQuery, QueryPage};
pub use stats::{BusStats, DEFAULT_BREAKDOWN_SCAN, MinuteCount, StatsBreakdown};
