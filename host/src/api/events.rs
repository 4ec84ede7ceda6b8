//! Event operations: query the log, publish into it, follow it.
//!
//! Following is built on the bus's consumers, as every other reader of the
//! log: a follower is a cursor, so history and live events come from one
//! sequence with no gap and no duplicate, and a client that reconnects with
//! its last sequence resumes exactly after it.

use chrono::{DateTime, Utc};
use futures::Stream;

use crate::bus::{Event, EventQuery, NewEvent, Pattern, StartAt};

use super::control::{Control, SOURCE};
use super::error::ApiError;
use super::model::{EventsPage, EventsQuery, PublishEvent};

/// Events one query returns at most.
pub const MAX_EVENTS: usize = 10_000;
/// Events one query returns when no limit is given.
pub const DEFAULT_EVENTS: usize = 100;
/// Journal rows one query examines at most: a filter that matches little
/// (a rare subject) never makes one request read the whole journal; the
/// answer says it is incomplete and where to go on from.
pub const MAX_SCAN: usize = 200_000;
/// Bytes of events one answer holds at most.
pub const MAX_BYTES: usize = 8 << 20;

impl EventsQuery {
    /// The bus query this asks for, with `since`/`until` resolved against
    /// now and a limit applied.
    ///
    /// # Errors
    ///
    /// 400 naming `type`, `since`, `until` or `limit`.
    pub fn to_bus_query(&self, default_limit: usize) -> Result<EventQuery, ApiError> {
        let limit = self.limit.unwrap_or(default_limit);
        if limit == 0 {
            return Err(ApiError::bad_request("limit", "must be at least 1"));
        }
        Ok(EventQuery {
            types: self.patterns()?,
            subject: self.subject.clone(),
            source: self.source.clone(),
            since: self
                .since
                .as_deref()
                .map(|t| when("since", t))
                .transpose()?,
            until: self
                .until
                .as_deref()
                .map(|t| when("until", t))
                .transpose()?,
            after_sequence: self.after,
            limit: Some(limit.min(MAX_EVENTS)),
            max_scan: Some(MAX_SCAN),
            max_bytes: Some(MAX_BYTES),
        })
    }

    /// The type patterns, parsed.
    ///
    /// # Errors
    ///
    /// 400 naming `type` and the bad pattern.
    pub fn patterns(&self) -> Result<Vec<Pattern>, ApiError> {
        self.types
            .iter()
            .map(|t| Pattern::parse(t).map_err(|e| ApiError::bad_request("type", e.to_string())))
            .collect()
    }
}

/// An RFC 3339 time, or an age (`90s`, `10m`, `1h30m`, `1d`) before now.
///
/// # Errors
///
/// 400 naming `field` and the text.
pub fn when(field: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    // Ages are written as everywhere else (host.toml durations).
    let age = crate::supervisor::duration::parse(text).map_err(|why| {
        ApiError::bad_request(
            field,
            format!("`{text}` is neither an RFC 3339 time nor an age like 10m ({why})"),
        )
    })?;
    chrono::Duration::from_std(age)
        .ok()
        .and_then(|age| Utc::now().checked_sub_signed(age))
        .ok_or_else(|| ApiError::bad_request(field, format!("`{text}` is too far back")))
}

impl Control {
    /// Events that match `query`, and the cursor to page on from.
    ///
    /// With `after`, the first matches after it (paging forward); without it,
    /// the newest. `next_after` is the sequence to pass as `after` next
    /// time: the last one this answer covered, so a caller following the
    /// log never misses an event. One answer examines at most [`MAX_SCAN`]
    /// journal rows and holds at most [`MAX_BYTES`]; `complete` says
    /// whether a bound stopped it (paging forward, just go on from
    /// `next_after`).
    ///
    /// # Errors
    ///
    /// 400 for a bad pattern, time or limit; 500 if the journal fails.
    pub fn events(&self, query: &EventsQuery) -> Result<EventsPage, ApiError> {
        let bus_query = query.to_bus_query(DEFAULT_EVENTS)?;
        let head = self.bus.head();
        let page = self.bus.query_page(&bus_query)?;
        let next_after = page
            .next_after
            .unwrap_or_else(|| head.max(query.after.unwrap_or(0)));
        Ok(EventsPage {
            events: page.events,
            next_after,
            complete: page.complete,
        })
    }

    /// Publishes an event for a caller outside the host (an agent's
    /// provider events, a script's markers), with source `api` or
    /// `api/<source>`.
    ///
    /// # Errors
    ///
    /// 400 for a reserved or malformed type, a blank subject or source, or
    /// data over the size limit.
    pub async fn publish(&self, request: PublishEvent) -> Result<Event, ApiError> {
        if let Some(why) = crate::runtime::reserved(&request.ty) {
            return Err(ApiError::bad_request("type", why));
        }
        let source = match request.source.as_deref() {
            None => SOURCE.to_string(),
            Some(s) if s.trim().is_empty() || s.contains(char::is_whitespace) => {
                return Err(ApiError::bad_request(
                    "source",
                    "must be a non-empty word without spaces",
                ));
            }
            Some(s) => format!("{SOURCE}/{s}"),
        };
        let mut event = NewEvent::new(source, request.ty, request.data);
        if let Some(subject) = request.subject {
            event = event.with_subject(subject);
        }
        Ok(self.bus.publish(event)?)
    }

    /// Where a follower of `query` starts: after `resume` when the client
    /// resumes, else just before the newest `limit` matching events, so it
    /// first replays that much history and then goes on live.
    ///
    /// # Errors
    ///
    /// As [`Control::events`].
    pub fn follow_start(&self, query: &EventsQuery, resume: Option<u64>) -> Result<u64, ApiError> {
        if let Some(after) = resume.or(query.after) {
            return Ok(after);
        }
        let head = self.bus.head();
        let history = EventsQuery {
            after: None,
            ..query.clone()
        }
        .to_bus_query(DEFAULT_EVENTS)?;
        let history = EventQuery {
            until: None,
            ..history
        };
        let newest = self.bus.query(&history)?;
        Ok(match newest.first() {
            Some(first) => first.sequence.saturating_sub(1),
            None => head,
        })
    }

    /// The events matching `query` after sequence `after`, as they come:
    /// from the journal while behind, then live. The stream ends only if
    /// the log does; dropping it loses nothing (the cursor is the client's
    /// last sequence).
    ///
    /// # Errors
    ///
    /// 400 for a bad pattern or time.
    pub fn follow(
        &self,
        query: &EventsQuery,
        after: u64,
    ) -> Result<impl Stream<Item = Result<Event, ApiError>> + Send + use<>, ApiError> {
        let bus_query = query.to_bus_query(DEFAULT_EVENTS)?;
        let consumer = self.bus.consumer(
            format!("api/stream/{after}"),
            bus_query.types.clone(),
            StartAt::After(after),
        );
        // Types are the consumer's filter; the rest is checked per event.
        let rest = EventQuery {
            types: Vec::new(),
            after_sequence: None,
            limit: None,
            ..bus_query
        };
        Ok(futures::stream::unfold(
            (consumer, rest),
            |(mut consumer, rest)| async move {
                loop {
                    match consumer.next().await {
                        Ok(event) if rest.until.is_some_and(|u| event.time >= u) => return None,
                        Ok(event) if rest.matches(&event) => {
                            return Some((Ok(event), (consumer, rest)));
                        }
                        Ok(_) => continue,
                        Err(e) => return Some((Err(ApiError::from(e)), (consumer, rest))),
                    }
                }
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_timestamps_are_accepted_and_nonsense_names_the_field() {
        let t = when("since", "2026-01-02T03:04:05Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-01-02T03:04:05+00:00");
        let age = Utc::now() - when("since", "10m").unwrap();
        assert!(age.num_seconds() >= 599 && age.num_seconds() <= 660);
        let e = when("since", "soon").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("since"));
        assert!(e.error.contains("soon"));
        assert!(when("until", "5y").unwrap_err().error.contains("unit"));
        assert!(when("since", "99999999999999999d").is_err());
    }

    #[test]
    fn a_bad_pattern_or_limit_is_a_bad_request_naming_the_field() {
        let q = EventsQuery {
            types: vec!["a..b".into()],
            ..Default::default()
        };
        assert_eq!(
            q.to_bus_query(10).unwrap_err().field.as_deref(),
            Some("type")
        );
        let q = EventsQuery {
            limit: Some(0),
            ..Default::default()
        };
        assert_eq!(
            q.to_bus_query(10).unwrap_err().field.as_deref(),
            Some("limit")
        );
        let q = EventsQuery {
            limit: Some(1_000_000),
            ..Default::default()
        };
        assert_eq!(q.to_bus_query(10).unwrap().limit, Some(MAX_EVENTS));
    }
}
