//! An event's payload, kept as the compact JSON text the journal stores.
//!
//! The bus holds its newest events in memory (the ring) and hands copies to
//! every consumer. Held as `serde_json::Value` trees, a small event cost ten
//! times its text (a `process.resource` sample: ~1.7 KiB as a tree, ~300
//! bytes as text), so a full ring of 10,000 events was ~17 MiB; and a large
//! one built as text (a dependency registration's hit lists) was parsed into
//! a tree only to be written out as text again for the journal. Most readers
//! want the text anyway: plugins get `data` as a JSON string, and the API,
//! SSE and MCP write events out as JSON.
//!
//! So [`EventData`] keeps the text, shared between copies (cloning an event
//! does not copy its payload), and parses it only when a reader looks inside
//! (through `Deref` to [`Value`]). The parsed tree belongs to the copy that
//! asked for it: one built from a tree keeps only the text, and a clone
//! starts without a tree, so the ring's own copies stay text however their
//! readers use theirs.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

/// An event's JSON payload: compact text, parsed on first look.
///
/// Reads go through `Deref<Target = Value>` (`data["field"]`,
/// `data.get("field")`); [`EventData::json`] gives the text itself. Build one
/// from a [`Value`] (`.into()`), or from text with [`EventData::from_json`].
pub struct EventData {
    /// The payload as compact JSON, valid by construction.
    json: Arc<str>,
    /// The payload parsed, once a reader of this copy needed it.
    parsed: OnceLock<Value>,
}

impl EventData {
    /// Takes `text` as the payload, checking that it is one JSON value.
    ///
    /// The text is kept as given, so give it compact (no whitespace between
    /// tokens) and without duplicate keys, as `serde_json` writes it: it is
    /// what the journal stores and every reader sees.
    ///
    /// # Errors
    ///
    /// The parse error, if `text` is not exactly one JSON value.
    pub fn from_json(text: impl Into<Arc<str>>) -> Result<EventData, serde_json::Error> {
        let json = text.into();
        serde_json::from_str::<IgnoredAny>(&json)?;
        Ok(EventData {
            json,
            parsed: OnceLock::new(),
        })
    }

    /// Writes `value` straight to JSON text, with no tree in between (a
    /// derived `Serialize` of borrowed fields makes none at all).
    ///
    /// # Errors
    ///
    /// `value`'s own serialization error (e.g. a map with non-string keys).
    pub fn serialized<T: Serialize + ?Sized>(value: &T) -> Result<EventData, serde_json::Error> {
        Ok(EventData {
            json: serde_json::to_string(value)?.into(),
            parsed: OnceLock::new(),
        })
    }

    /// The payload as JSON text, as the journal stores it.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The payload as a value tree (parsed on first use, then kept by this
    /// copy).
    pub fn value(&self) -> &Value {
        self.parsed.get_or_init(|| {
            // The text was checked when this was made; a failure here would be
            // a bug of this module, and `null` loses nothing the text holds.
            serde_json::from_str(&self.json).unwrap_or(Value::Null)
        })
    }

    /// The payload as an owned value tree.
    pub fn into_value(self) -> Value {
        match self.parsed.into_inner() {
            Some(value) => value,
            None => serde_json::from_str(&self.json).unwrap_or(Value::Null),
        }
    }
}

impl Deref for EventData {
    type Target = Value;

    fn deref(&self) -> &Value {
        self.value()
    }
}

impl From<Value> for EventData {
    /// Writes the tree out as text and lets it go: an event is built once and
    /// read (if at all) by its consumers' copies, so keeping the tree would
    /// only keep its memory in the ring.
    fn from(value: Value) -> Self {
        EventData::serialized(&value).expect("a JSON value serializes: its keys are strings")
    }
}

impl Default for EventData {
    /// `null`.
    fn default() -> Self {
        Value::Null.into()
    }
}

impl Clone for EventData {
    /// Shares the text; the copy parses its own tree if it needs one.
    fn clone(&self) -> Self {
        EventData {
            json: Arc::clone(&self.json),
            parsed: OnceLock::new(),
        }
    }
}

impl PartialEq for EventData {
    /// Equal values, whatever their texts (key order, number spelling).
    fn eq(&self, other: &Self) -> bool {
        self.json == other.json || self.value() == other.value()
    }
}

impl PartialEq<Value> for EventData {
    fn eq(&self, other: &Value) -> bool {
        self.value() == other
    }
}

impl PartialEq<EventData> for Value {
    fn eq(&self, other: &EventData) -> bool {
        self == other.value()
    }
}

impl fmt::Debug for EventData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.json)
    }
}

impl fmt::Display for EventData {
    /// The JSON text (so `to_string()` copies it rather than re-serializing).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.json)
    }
}

impl Serialize for EventData {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // serde_json writes a `RawValue` verbatim (and `to_value` parses it).
        let raw: &RawValue = serde_json::from_str(&self.json).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for EventData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Any format: read a tree and write it compact. (A `RawValue` would
        // skip the tree for serde_json input but keep the sender's spacing.)
        Value::deserialize(deserializer).map(EventData::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_in_text_out_and_a_look_inside() {
        let data = EventData::from_json(r#"{"b":[1,2],"a":"x"}"#).unwrap();
        assert_eq!(data.json(), r#"{"b":[1,2],"a":"x"}"#);
        assert_eq!(data["a"], "x");
        assert_eq!(data.get("b"), Some(&json!([1, 2])));
        assert_eq!(data.to_string(), r#"{"b":[1,2],"a":"x"}"#);
        assert_eq!(serde_json::to_string(&data).unwrap(), data.json());
    }

    #[test]
    fn text_that_is_not_one_json_value_is_refused() {
        for bad in ["", "{", r#"{"a":1} {"b":2}"#, "nul", "{'a':1}"] {
            assert!(EventData::from_json(bad).is_err(), "{bad:?} was taken");
        }
    }

    #[test]
    fn a_clone_shares_the_text_but_not_the_tree() {
        let data = EventData::from(json!({"n": 1}));
        assert!(
            data.parsed.get().is_none(),
            "built from a tree, it keeps the text only"
        );
        assert_eq!(data["n"], 1);
        let copy = data.clone();
        assert!(Arc::ptr_eq(&data.json, &copy.json));
        assert!(copy.parsed.get().is_none());
        assert_eq!(copy["n"], 1);
        assert!(copy.parsed.get().is_some());
    }

    #[test]
    fn equality_is_of_values_not_spelling() {
        let a = EventData::from_json(r#"{"a":1,"b":2}"#).unwrap();
        let b = EventData::from_json(r#"{"b":2,"a":1}"#).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, json!({"a": 1, "b": 2}));
        assert_ne!(a, EventData::from(json!({"a": 1})));
    }

    #[test]
    fn inside_an_event_it_round_trips_through_json_and_through_a_value() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Wrapper {
            data: EventData,
        }
        let w = Wrapper {
            data: EventData::from_json(r#"{"k":[true,null,1.5,"s"]}"#).unwrap(),
        };
        let text = serde_json::to_string(&w).unwrap();
        assert_eq!(text, r#"{"data":{"k":[true,null,1.5,"s"]}}"#);
        assert_eq!(serde_json::from_str::<Wrapper>(&text).unwrap(), w);
        let tree = serde_json::to_value(&w).unwrap();
        assert_eq!(tree, json!({"data": {"k": [true, null, 1.5, "s"]}}));
        assert_eq!(serde_json::from_value::<Wrapper>(tree).unwrap(), w);
        let pretty = serde_json::to_string_pretty(&w).unwrap();
        assert_eq!(serde_json::from_str::<Wrapper>(&pretty).unwrap(), w);
    }
}
