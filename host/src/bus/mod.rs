//! The event bus: an append-only, sequenced log of CloudEvents.
//!
//! Every event gets a strictly increasing `sequence` and is appended to a durable
//! SQLite journal before `publish` returns. Subscribers are [`Consumer`]s with a
//! cursor over that log (as in NATS JetStream): a slow consumer catches up from
//! the journal, a reloaded one resumes at its saved cursor, and nothing is dropped
//! silently — the only loss, journal retention, is counted per consumer.
//!
//! The bus knows nothing of processes or plugins; they publish and consume.
//!
//! Layout:
//! - `event`: [`Event`] (CloudEvents 1.0 + `sequence`) and [`NewEvent`];
//! - `pattern`: [`Pattern`], NATS-style `*` / `>` matching over dotted types;
//! - `log`: [`Bus`], its state and its reads; `append`: publishing and retention;
//! - `ring`: the in-memory tail of the log;
//! - `journal`: the SQLite file, and [`Journal`] for read-only access elsewhere;
//!   `sql`: how queries and values map onto it; `checkpoint`: its WAL upkeep;
//! - `consumer`: [`Consumer`] and [`StartAt`];
//! - `query`: [`EventQuery`], answered from the ring or the journal;
//! - `stats`: [`BusStats`];
//! - `error`: [`BusError`].

mod append;
mod checkpoint;
mod consumer;
mod error;
mod event;
mod journal;
mod log;
mod pattern;
mod query;
mod ring;
mod sql;
mod stats;

pub use consumer::{Consumer, StartAt};
pub use error::BusError;
pub use event::{Event, NewEvent};
pub use journal::{Journal, journal_path};
pub use log::{Bus, BusConfig};
pub use pattern::Pattern;
pub use query::EventQuery;
pub use stats::BusStats;
