//! Seed 001's aggregator for users: counts of a window of the log by type,
//! by source and per minute, and the mean rate (`GET /v1/events/stats`, the
//! MCP tool `event_stats`, `host events --stats --since ...`).
//!
//! The request and answer shapes, the [`Control`] operation and the HTTP
//! handler live together here, so the shared files (`http.rs`, `mcp.rs`,
//! `ops.rs`, `client.rs`) only gain a line per face. The counting is the
//! bus's ([`Bus::stats_by`](crate::bus::Bus::stats_by)), shared with the
//! plugins' host imports; this file resolves the window and derives the rate.

use std::collections::BTreeMap;

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::bus::{MinuteCount, StatsBreakdown};

use super::control::Control;
use super::error::ApiError;
use super::events::when;
use super::http::QueryArgs;

/// Events one stats answer examines at most: the newest of the window
/// (the answer says `complete: false` when this cut it).
pub const MAX_STATS_SCAN: usize = 200_000;

/// `GET /v1/events/stats?since=1h&until=...`: the window to count.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct StatsQuery {
    /// Count events at or after this time (RFC 3339, or an age like `10m`,
    /// `2h`); default: the oldest event kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Count events before this time (RFC 3339, or an age); default: now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// Counts over a window of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EventStats {
    /// The window's start as asked (absent: from the oldest event kept).
    pub since: Option<DateTime<Utc>>,
    /// The window's end (exclusive): as asked, else the time of the answer.
    pub until: DateTime<Utc>,
    /// Events counted.
    pub total: u64,
    /// Events per type.
    pub by_type: BTreeMap<String, u64>,
    /// Events per source (`host/supervisor`, `host/workspace`, `plugin/NAME`, `api/NAME`).
    pub by_source: BTreeMap<String, u64>,
    /// Events per minute (UTC, each minute's start), oldest first; minutes
    /// without events are left out.
    #[schemars(with = "Vec<serde_json::Value>")]
    pub per_minute: Vec<MinuteCount>,
    /// The mean over the window: `total` divided by its length in minutes
    /// (from `since`, or the first counted minute, to `until`), at least one.
    pub events_per_minute: f64,
    /// The oldest and newest sequence counted (absent for an empty window).
    pub first_sequence: Option<u64>,
    /// See `first_sequence`.
    pub last_sequence: Option<u64>,
    /// False when the window held more than 200,000 events: only the newest
    /// were counted.
    pub complete: bool,
}

impl EventStats {
    /// The answer for a breakdown of the window `since..until`.
    pub fn new(
        since: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
        counts: StatsBreakdown,
    ) -> EventStats {
        let start = since.or_else(|| counts.per_minute.first().map(|m| m.minute));
        let minutes = start.map_or(0.0, |s| (until - s).num_milliseconds() as f64 / 60_000.0);
        EventStats {
            since,
            until,
            total: counts.total,
            events_per_minute: counts.total as f64 / minutes.max(1.0),
            by_type: counts.by_type,
            by_source: counts.by_source,
            per_minute: counts.per_minute,
            first_sequence: counts.first_sequence,
            last_sequence: counts.last_sequence,
            complete: counts.complete,
        }
    }
}

impl StatsQuery {
    /// The window, resolved against now: `(since, until)`.
    ///
    /// # Errors
    ///
    /// 400 naming `since` or `until`.
    pub fn window(&self) -> Result<(Option<DateTime<Utc>>, DateTime<Utc>), ApiError> {
        let since = self
            .since
            .as_deref()
            .map(|t| when("since", t))
            .transpose()?;
        let until = match self.until.as_deref() {
            Some(t) => when("until", t)?,
            None => Utc::now(),
        };
        if since.is_some_and(|s| s > until) {
            return Err(ApiError::bad_request("since", "is after `until`"));
        }
        Ok((since, until))
    }
}

impl Control {
    /// Counts the events of a window by type, by source and per minute.
    ///
    /// # Errors
    ///
    /// 400 for a bad time, 500 if the journal fails.
    pub fn event_stats(&self, query: &StatsQuery) -> Result<EventStats, ApiError> {
        let (since, until) = query.window()?;
        let counts = self
            .bus
            .stats_by(since, Some(until), Some(MAX_STATS_SCAN))?;
        Ok(EventStats::new(since, until, counts))
    }
}

pub(super) async fn event_stats(
    State(c): State<Control>,
    QueryArgs(query): QueryArgs<StatsQuery>,
) -> Result<axum::Json<EventStats>, ApiError> {
    Ok(axum::Json(c.event_stats(&query)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(minute: u32, second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 12, minute, second)
            .unwrap()
    }

    fn counts(per_minute: &[(u32, u64)]) -> StatsBreakdown {
        StatsBreakdown {
            total: per_minute.iter().map(|(_, n)| n).sum(),
            per_minute: per_minute
                .iter()
                .map(|(m, n)| MinuteCount {
                    minute: at(*m, 0),
                    events: *n,
                })
                .collect(),
            complete: true,
            ..StatsBreakdown::default()
        }
    }

    #[test]
    fn the_rate_is_the_total_over_the_window_in_minutes() {
        let s = EventStats::new(Some(at(0, 0)), at(10, 0), counts(&[(1, 30), (9, 20)]));
        assert_eq!(s.total, 50);
        assert_eq!(s.events_per_minute, 5.0);
    }

    #[test]
    fn an_open_window_starts_at_the_first_counted_minute() {
        let s = EventStats::new(None, at(4, 0), counts(&[(2, 10), (3, 10)]));
        assert_eq!(s.events_per_minute, 10.0);
    }

    #[test]
    fn a_window_shorter_than_a_minute_counts_as_one() {
        let s = EventStats::new(Some(at(5, 0)), at(5, 6), counts(&[(5, 12)]));
        assert_eq!(s.events_per_minute, 12.0, "not 120 a minute");
        let empty = EventStats::new(None, at(5, 0), counts(&[]));
        assert_eq!(empty.events_per_minute, 0.0);
    }

    #[test]
    fn a_window_that_ends_before_it_starts_names_since() {
        let q = StatsQuery {
            since: Some("1m".into()),
            until: Some("1h".into()),
        };
        assert_eq!(q.window().unwrap_err().field.as_deref(), Some("since"));
        let q = StatsQuery {
            since: Some("yesterday".into()),
            until: None,
        };
        assert_eq!(q.window().unwrap_err().field.as_deref(), Some("since"));
    }

    #[tokio::test]
    async fn stats_count_a_window_of_the_log_by_type_and_source() {
        use crate::bus::{Bus, BusConfig, NewEvent};
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        for (source, ty) in [
            ("a", "provider.api_call"),
            ("a", "provider.error"),
            ("b", "x"),
        ] {
            bus.publish(NewEvent::new(source, ty, serde_json::json!({})))
                .unwrap();
        }
        let counts = bus.stats_by(None, None, None).unwrap();
        let s = EventStats::new(
            Some(Utc::now() - chrono::Duration::minutes(2)),
            Utc::now(),
            counts,
        );
        assert_eq!(s.total, 3);
        assert_eq!(s.by_source["a"], 2);
        assert_eq!(s.by_type["provider.error"], 1);
        assert!(
            (s.events_per_minute - 1.5).abs() < 0.01,
            "{}",
            s.events_per_minute
        );
    }
}
