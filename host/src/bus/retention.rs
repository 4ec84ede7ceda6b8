//! Retention: keeping the journal within `max_journal_events` and
//! `max_journal_bytes`, oldest events first.
//!
//! The writer runs a pass after each commit (before answering its publishers,
//! so a publish that returns sees the journal within its limits). A pass
//! deletes at most [`PRUNE_ROWS`] rows, so a large prune never stalls
//! publishers for long; the writer runs the next pass at once when work is
//! owed. Consumers that had not read pruned events count them as skipped
//! (`consumer`).

use std::sync::atomic::Ordering;

use crate::bus::config::BusConfig;
use crate::bus::error::BusError;
use crate::bus::journal::{Journal, JournalSummary};
use crate::bus::log::Core;

/// Most rows one retention pass deletes; the rest waits for the next pass.
const PRUNE_ROWS: usize = 50_000;

/// The writer's retention state.
#[derive(Default)]
pub(crate) struct Retention {
    /// Events appended since the last count-retention pass.
    since_prune: u64,
    /// The last pass left work (it is chunked).
    owed: bool,
}

impl Retention {
    /// Whether the last pass left work for the next.
    pub(crate) fn owed(&self) -> bool {
        self.owed
    }

    /// Prunes to `max_journal_events` every so many appends and to
    /// `max_journal_bytes` (down to 15/16 of it, so it does not prune on every
    /// commit), at most [`PRUNE_ROWS`] per pass.
    pub(crate) fn after_commit(&mut self, core: &Core, appended: u64) {
        let config = &core.config;
        self.since_prune += appended;
        let head = core.head.load(Ordering::Acquire);
        let (bytes, first) = {
            let recent = core.recent.read();
            (recent.stats.bytes(), recent.journal_first)
        };
        let mut cutoff = None;
        let max = config.max_journal_events;
        // Small journals prune more often so they never grow far past their limit.
        if max > 0 && (self.since_prune >= max.clamp(1, 1000) || self.owed) {
            self.since_prune = 0;
            cutoff = head.checked_sub(max).filter(|c| *c > 0);
        }
        let max_bytes = config.max_journal_bytes;
        let target = max_bytes - max_bytes / 16;
        if max_bytes > 0 && (bytes > max_bytes || (self.owed && bytes > target)) {
            match core
                .journal
                .lock()
                .cutoff_for_bytes(bytes - target, PRUNE_ROWS)
            {
                Ok(found) => cutoff = cutoff.max(found),
                Err(error) => {
                    tracing::warn!(%error, "event journal retention could not size old events")
                }
            }
        }
        self.owed = false;
        let Some(mut cutoff) = cutoff.filter(|c| *c >= first) else {
            return;
        };
        if cutoff - first >= PRUNE_ROWS as u64 {
            cutoff = first + PRUNE_ROWS as u64 - 1;
            self.owed = true;
        }
        let pruned = core.journal.lock().prune_through(cutoff);
        match pruned {
            Ok(pruned) => {
                let mut recent = core.recent.write();
                recent.stats.forget(&pruned);
                recent.journal_first = recent.journal_first.max(cutoff + 1);
                if max_bytes > 0 && recent.stats.bytes() > target {
                    self.owed = true;
                }
            }
            // The publishes succeeded; retention retries on the next pass.
            Err(error) => tracing::warn!(%error, cutoff, "event journal retention failed"),
        }
    }
}

/// Retention at open, in full: the limits may have shrunk since the journal was
/// written. Returns whether anything was pruned.
pub(crate) fn prune_at_open(
    journal: &mut Journal,
    config: &BusConfig,
    summary: &JournalSummary,
) -> Result<bool, BusError> {
    let mut bytes: u64 = summary.groups.iter().map(|g| g.bytes).sum();
    let mut pruned = false;
    let max = config.max_journal_events;
    if max > 0 && summary.head > max && summary.head - max >= summary.first {
        let removed = journal.prune_through(summary.head - max)?;
        bytes -= removed.iter().map(|g| g.bytes).sum::<u64>().min(bytes);
        pruned = true;
    }
    let max_bytes = config.max_journal_bytes;
    while max_bytes > 0 && bytes > max_bytes {
        let Some(cutoff) = journal.cutoff_for_bytes(bytes - max_bytes, usize::MAX)? else {
            break;
        };
        let removed = journal.prune_through(cutoff)?;
        bytes -= removed.iter().map(|g| g.bytes).sum::<u64>().min(bytes);
        pruned = true;
    }
    if pruned {
        tracing::info!(journal = %journal.path().display(), "pruned the event journal to its configured limits at open");
    }
    Ok(pruned)
}
