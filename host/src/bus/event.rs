//! The event itself: a CloudEvents 1.0 record with a bus sequence number.
//!
//! [`NewEvent`] is what a publisher hands in; [`Event`] is what the log gives back
//! once it has assigned the id, time and sequence. Keeping the two apart means a
//! publisher can never forge a sequence, and validation lives in one place.
//!
//! Causation: an event may name the event whose handling produced it (`cause`,
//! its sequence) and how deep that chain is (`depth`: 0 for an event nobody
//! caused, the cause's depth + 1 otherwise). Two handlers emitting each other's
//! type then show up as a chain of growing depth that a runtime can cut off.

use crate::bus::data::EventData;
use crate::bus::error::BusError;
use crate::bus::pattern::check_subject;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The CloudEvents version every event declares.
const SPEC_VERSION: &str = "1.0";
/// The content type of `data`: the bus only carries JSON.
const CONTENT_TYPE: &str = "application/json";
/// Bytes of an event time in the journal (RFC 3339, nine fraction digits, `Z`).
pub(crate) const TIME_TEXT_LEN: usize = 30;

/// An event in the log, serialized in the CloudEvents 1.0 JSON format.
///
/// `sequence` is a CloudEvents extension attribute: the event's position in the
/// log, strictly increasing and never reused. `causesequence` and `causedepth`
/// are extension attributes too, omitted when there is no cause.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Always `"1.0"`.
    pub specversion: SpecVersion,
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
    /// The sequence of the event whose handling produced this one, if any
    /// (extension attribute `causesequence`).
    #[serde(
        default,
        rename = "causesequence",
        skip_serializing_if = "Option::is_none"
    )]
    pub cause: Option<u64>,
    /// How many causes lead back to an event nobody caused: 0 without a cause,
    /// the cause's depth + 1 otherwise (extension attribute `causedepth`).
    #[serde(default, rename = "causedepth", skip_serializing_if = "is_zero")]
    pub depth: u32,
    /// Always `"application/json"`.
    pub datacontenttype: JsonContentType,
    /// The payload, kept as JSON text (see [`EventData`]).
    pub data: EventData,
}

/// Declares a field that always holds one text: it takes no room in an
/// event (two strings allocated per event before, and 48 bytes of each
/// ring slot), is written as that text, and is read only from it, with
/// an error naming what was found instead.
macro_rules! fixed_text {
    ($(#[$doc:meta])* $name:ident, field $field:literal = $text:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        pub struct $name;

        impl $name {
            /// The text it stands for.
            pub const fn as_str(self) -> &'static str {
                $text
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str($text)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let found = std::borrow::Cow::<str>::deserialize(deserializer)?;
                if found == $text {
                    Ok($name)
                } else {
                    Err(serde::de::Error::custom(format!(
                        "{}: expected {:?}, found {found:?}",
                        $field, $text
                    )))
                }
            }
        }
    };
}

fixed_text! {
    /// An event's `specversion`: this host speaks CloudEvents 1.0 only.
    SpecVersion, field "specversion" = SPEC_VERSION
}

fixed_text! {
    /// An event's `datacontenttype`: the bus carries JSON only.
    JsonContentType, field "datacontenttype" = CONTENT_TYPE
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
    pub data: EventData,
    /// The sequence of the event whose handling produced this one, if any.
    pub cause: Option<u64>,
    /// 0 without a cause, the cause's depth + 1 otherwise.
    pub depth: u32,
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
    pub fn new(
        source: impl Into<String>,
        ty: impl Into<String>,
        data: impl Into<EventData>,
    ) -> Self {
        NewEvent {
            source: source.into(),
            ty: ty.into(),
            subject: None,
            data: data.into(),
            cause: None,
            depth: 0,
        }
    }

    /// Sets the subject.
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Records that handling `cause` produced this event: `cause` becomes its
    /// sequence and `depth` one more than its depth.
    ///
    /// # Examples
    ///
    /// ```
    /// # use host::bus::{Bus, BusConfig, NewEvent};
    /// # let bus = Bus::open_in_memory(BusConfig::default())?;
    /// let ping = bus.publish(NewEvent::new("host/doc", "test.ping", serde_json::json!({})))?;
    /// let pong = bus.publish(NewEvent::new("host/doc", "test.pong", serde_json::json!({})).caused_by(&ping))?;
    /// assert_eq!((pong.cause, pong.depth), (Some(ping.sequence), 1));
    /// # Ok::<(), host::bus::BusError>(())
    /// ```
    pub fn caused_by(self, cause: &Event) -> Self {
        self.with_cause(cause.sequence, cause.depth.saturating_add(1))
    }

    /// Sets the cause directly, for a caller that only kept the cause's numbers.
    ///
    /// - `sequence`: the causing event's sequence;
    /// - `depth`: this event's depth, i.e. the causing event's depth + 1 (at least 1).
    pub fn with_cause(mut self, sequence: u64, depth: u32) -> Self {
        self.cause = Some(sequence);
        self.depth = depth;
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
        match (self.cause, self.depth) {
            (None, 0) => {}
            (None, depth) => {
                return Err(BusError::InvalidEvent {
                    field: "causedepth",
                    reason: format!("is {depth} but the event has no cause (must be 0)"),
                });
            }
            (Some(cause), 0) => {
                return Err(BusError::InvalidEvent {
                    field: "causedepth",
                    reason: format!("is 0 but the event has cause #{cause} (must be at least 1)"),
                });
            }
            (Some(0), _) => return Err(invalid("causesequence", "must be at least 1")),
            (Some(_), _) => {}
        }
        Ok(())
    }

    /// Turns a validated description into a log entry.
    pub(crate) fn into_event(self, sequence: u64, time: DateTime<Utc>, id: String) -> Event {
        Event {
            specversion: SpecVersion,
            id,
            source: self.source,
            ty: self.ty,
            subject: self.subject,
            time,
            sequence,
            cause: self.cause,
            depth: self.depth,
            datacontenttype: JsonContentType,
            data: self.data,
        }
    }
}

/// The approximate size of an event, as the bus limits and counts it: its
/// serialized `data` plus its string attributes (id, source, type, subject, time).
/// The journal computes the same sum in SQL (`journal::schema::SIZE_SQL`).
pub(crate) fn approx_size(
    id: &str,
    source: &str,
    ty: &str,
    subject: Option<&str>,
    data_len: usize,
) -> usize {
    id.len() + source.len() + ty.len() + subject.map_or(0, str::len) + TIME_TEXT_LEN + data_len
}

/// A UUIDv7 for a new event: the millisecond timestamp, then 74 random bits
/// from a thread-local generator. `Uuid::now_v7` asks the kernel for
/// randomness on every call, a syscall per event (measured: about a tenth of a
/// publisher's time); an event id needs uniqueness and time order, not
/// cryptographic randomness.
pub(crate) fn new_event_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut random = [0u8; 10];
    fastrand::fill(&mut random);
    uuid::Builder::from_unix_timestamp_millis(millis, &random)
        .into_uuid()
        .to_string()
}

fn is_zero(n: &u32) -> bool {
    *n == 0
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
    fn a_cause_and_its_depth_must_agree() {
        let plain = NewEvent::new("src", "a.b", json!(null));
        assert_eq!(field_of(&plain.clone().with_cause(3, 1)), None);
        assert_eq!(
            field_of(&plain.clone().with_cause(3, 0)),
            Some("causedepth")
        );
        assert_eq!(
            field_of(&plain.clone().with_cause(0, 1)),
            Some("causesequence")
        );
        let mut uncaused_but_deep = plain;
        uncaused_but_deep.depth = 2;
        assert_eq!(field_of(&uncaused_but_deep), Some("causedepth"));
    }

    #[test]
    fn caused_by_takes_the_sequence_and_one_more_than_the_depth() {
        let cause = NewEvent::new("s", "t", json!(1))
            .with_cause(4, 2)
            .into_event(9, Utc::now(), "id".into());
        let effect = NewEvent::new("s", "u", json!(2)).caused_by(&cause);
        assert_eq!((effect.cause, effect.depth), (Some(9), 3));
    }

    #[test]
    fn causation_is_serialized_as_extension_attributes_only_when_present() {
        let e = NewEvent::new("s", "t", json!(1))
            .with_cause(5, 1)
            .into_event(6, Utc::now(), "id".into());
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["causesequence"], 5);
        assert_eq!(v["causedepth"], 1);
        assert_eq!(serde_json::from_value::<Event>(v).unwrap(), e);
        let plain = NewEvent::new("s", "t", json!(1)).into_event(1, Utc::now(), "id".into());
        let v = serde_json::to_value(&plain).unwrap();
        assert!(!v.as_object().unwrap().contains_key("causesequence"));
        assert!(!v.as_object().unwrap().contains_key("causedepth"));
    }

    #[test]
    fn the_size_counts_data_and_every_string_attribute() {
        let time = crate::bus::sql::time_to_sql(Utc::now());
        assert_eq!(time.len(), TIME_TEXT_LEN);
        assert_eq!(
            approx_size("id", "src", "a.b", Some("web"), 10),
            2 + 3 + 3 + 3 + 30 + 10
        );
        assert_eq!(approx_size("id", "src", "a.b", None, 0), 2 + 3 + 3 + 30);
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
    fn an_event_of_another_spec_version_or_content_type_is_refused_by_name() {
        let e = NewEvent::new("s", "t", json!(1)).into_event(1, Utc::now(), "id".into());
        for (field, other) in [("specversion", "0.3"), ("datacontenttype", "text/plain")] {
            let mut v = serde_json::to_value(&e).unwrap();
            v[field] = json!(other);
            let err = serde_json::from_value::<Event>(v).unwrap_err().to_string();
            assert!(err.contains(field) && err.contains(other), "{err}");
        }
    }

    #[test]
    fn an_event_without_subject_omits_the_key() {
        let e = NewEvent::new("s", "t", json!(1)).into_event(1, Utc::now(), "id".into());
        let v = serde_json::to_value(&e).unwrap();
        assert!(!v.as_object().unwrap().contains_key("subject"));
    }
}
