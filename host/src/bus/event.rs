//! The event itself: a CloudEvents 1.0 record with a bus sequence number.
//!
//! [`NewEvent`] is what a publisher hands in; [`Event`] is what the log gives back
//! once it has assigned the id, time and sequence. Keeping the two apart means a
//! publisher can never forge a sequence, and validation lives in one place.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bus::error::BusError;
use crate::bus::pattern::check_subject;

/// The CloudEvents version every event declares.
pub(crate) const SPEC_VERSION: &str = "1.0";
/// The content type of `data`: the bus only carries JSON.
pub(crate) const CONTENT_TYPE: &str = "application/json";

/// An event in the log, serialized in the CloudEvents 1.0 JSON format.
///
/// `sequence` is a CloudEvents extension attribute: the event's position in the
/// log, strictly increasing and never reused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Always `"1.0"`.
    pub specversion: String,
    /// A UUIDv7, so ids also sort by creation time.
    pub id: String,
    /// Who published the event, e.g. `host/supervisor` or `plugin/notify`.
    pub source: String,
    /// The dotted event type, e.g. `process.exited`.
    #[serde(rename = "type")]
    pub ty: String,
    /// What the event is about, e.g. a process name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// When the bus accepted the event; never earlier than the event before it.
    pub time: DateTime<Utc>,
    /// The event's position in the log (1 for the first event ever).
    pub sequence: u64,
    /// Always `"application/json"`.
    pub datacontenttype: String,
    /// The payload.
    pub data: Value,
}

/// An event as a publisher describes it, before the bus assigns id, time and sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    /// Who publishes it; must not be blank.
    pub source: String,
    /// The dotted event type; must be a concrete name such as `process.exited`.
    pub ty: String,
    /// What the event is about; `None` or a non-blank string.
    pub subject: Option<String>,
    /// The payload.
    pub data: Value,
}

impl NewEvent {
    /// Describes an event without a subject.
    ///
    /// # Examples
    ///
    /// ```
    /// # use host::bus::NewEvent;
    /// let e = NewEvent::new("host/supervisor", "process.exited", serde_json::json!({"code": 0}))
    ///     .with_subject("web");
    /// assert_eq!(e.subject.as_deref(), Some("web"));
    /// ```
    pub fn new(source: impl Into<String>, ty: impl Into<String>, data: Value) -> Self {
        NewEvent {
            source: source.into(),
            ty: ty.into(),
            subject: None,
            data,
        }
    }

    /// Sets the subject.
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Checks the attributes a publisher controls.
    pub(crate) fn validate(&self) -> Result<(), BusError> {
        if self.ty.trim().is_empty() {
            return Err(invalid("type", "must not be empty"));
        }
        check_subject(&self.ty).map_err(|reason| BusError::InvalidEvent {
            field: "type",
            reason: format!("{:?} is not a dotted name: {reason}", self.ty),
        })?;
        if self.source.trim().is_empty() {
            return Err(invalid("source", "must not be empty"));
        }
        if let Some(subject) = &self.subject
            && subject.trim().is_empty()
        {
            return Err(invalid(
                "subject",
                "must not be blank (leave it out instead)",
            ));
        }
        Ok(())
    }

    /// Turns a validated description into a log entry.
    pub(crate) fn into_event(self, sequence: u64, time: DateTime<Utc>, id: String) -> Event {
        Event {
            specversion: SPEC_VERSION.to_owned(),
            id,
            source: self.source,
            ty: self.ty,
            subject: self.subject,
            time,
            sequence,
            datacontenttype: CONTENT_TYPE.to_owned(),
            data: self.data,
        }
    }
}

fn invalid(field: &'static str, reason: &str) -> BusError {
    BusError::InvalidEvent {
        field,
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(e: &NewEvent) -> Option<&'static str> {
        match e.validate() {
            Ok(()) => None,
            Err(BusError::InvalidEvent { field, .. }) => Some(field),
            Err(other) => panic!("unexpected error {other}"),
        }
    }

    #[test]
    fn validation_names_the_offending_field() {
        assert_eq!(field_of(&NewEvent::new("src", "a.b", json!(null))), None);
        assert_eq!(
            field_of(&NewEvent::new("src", "", json!(null))),
            Some("type")
        );
        assert_eq!(
            field_of(&NewEvent::new("src", "  ", json!(null))),
            Some("type")
        );
        assert_eq!(
            field_of(&NewEvent::new("src", "a..b", json!(null))),
            Some("type")
        );
        assert_eq!(
            field_of(&NewEvent::new("src", "a.*", json!(null))),
            Some("type")
        );
        assert_eq!(
            field_of(&NewEvent::new("", "a.b", json!(null))),
            Some("source")
        );
        assert_eq!(
            field_of(&NewEvent::new(" \t", "a.b", json!(null))),
            Some("source")
        );
        let blank_subject = NewEvent::new("src", "a.b", json!(null)).with_subject(" ");
        assert_eq!(field_of(&blank_subject), Some("subject"));
    }

    #[test]
    fn event_serializes_in_the_cloudevents_shape() {
        let e = NewEvent::new("host/test", "process.exited", json!({"code": 3}))
            .with_subject("web")
            .into_event(7, Utc::now(), uuid::Uuid::now_v7().to_string());
        let v = serde_json::to_value(&e).unwrap();
        let obj = v.as_object().unwrap();
        assert_eq!(obj["specversion"], "1.0");
        assert_eq!(obj["type"], "process.exited");
        assert_eq!(obj["source"], "host/test");
        assert_eq!(obj["subject"], "web");
        assert_eq!(obj["sequence"], 7);
        assert_eq!(obj["datacontenttype"], "application/json");
        assert_eq!(obj["data"], json!({"code": 3}));
        assert!(obj["time"].as_str().unwrap().ends_with('Z'));
        assert!(!obj.contains_key("ty"));
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn an_event_without_subject_omits_the_key() {
        let e = NewEvent::new("s", "t", json!(1)).into_event(1, Utc::now(), "id".into());
        let v = serde_json::to_value(&e).unwrap();
        assert!(!v.as_object().unwrap().contains_key("subject"));
    }
}
