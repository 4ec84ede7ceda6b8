//! Human-readable durations for `host.toml` (`"500ms"`, `"10s"`, `"1m30s"`).
//!
//! A tiny parser instead of another dependency: the grammar is a sequence of
//! `<integer><unit>` pairs with units `ns us ms s m h d`. A bare TOML integer
//! is read as seconds, which is what people type for timeouts.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serializer};

/// Parses `"1m30s"`-style text into a [`Duration`].
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration; write e.g. \"500ms\", \"10s\" or \"5m\"".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "`{text}` is not a duration: expected a number at `{rest}`"
            ));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("`{text}` is not a duration: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = rest[..unit_len].trim();
        rest = &rest[unit_len..];
        let too_large = || format!("`{text}` is too long a duration");
        let secs = |per: u64| {
            number
                .checked_mul(per)
                .map(Duration::from_secs)
                .ok_or_else(too_large)
        };
        let part = match unit {
            "ns" => Duration::from_nanos(number),
            "us" | "µs" => Duration::from_micros(number),
            "ms" => Duration::from_millis(number),
            "s" | "sec" | "secs" => Duration::from_secs(number),
            "m" | "min" | "mins" => secs(60)?,
            "h" | "hr" | "hrs" => secs(3600)?,
            "d" | "day" | "days" => secs(86_400)?,
            "" => {
                return Err(format!(
                    "`{text}` has no unit; write e.g. \"{number}s\" or \"{number}ms\""
                ));
            }
            other => {
                return Err(format!(
                    "`{text}` has unknown unit `{other}` (use ns, us, ms, s, m, h or d)"
                ));
            }
        };
        total = total
            .checked_add(part)
            .ok_or_else(|| format!("`{text}` is too long a duration"))?;
    }
    Ok(total)
}

/// Formats a duration so that [`parse`] reads it back unchanged.
pub(crate) fn format(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}ns", d.as_nanos())
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a duration such as \"500ms\", \"10s\" or \"5m\", or whole seconds")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Ok(Duration::from_secs(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        u64::try_from(v)
            .map(Duration::from_secs)
            .map_err(|_| E::custom(format!("a duration cannot be negative ({v})")))
    }
}

/// `#[serde(with = "duration::required")]` for `Duration` fields.
pub(crate) mod required {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*d))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(DurationVisitor)
    }
}

/// `#[serde(with = "duration::optional")]` for `Option<Duration>` fields.
pub(crate) mod optional {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&format(*d)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "required")] Duration);
        Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(d)| d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_units_parse_to_the_right_length() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse("250us"), Ok(Duration::from_micros(250)));
    }

    #[test]
    fn compound_durations_add_up() {
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1s 500ms"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn text_without_a_unit_or_number_is_rejected_with_a_hint() {
        assert!(parse("10").unwrap_err().contains("no unit"));
        assert!(parse("ms").unwrap_err().contains("expected a number"));
        assert!(parse("3 weeks").unwrap_err().contains("unknown unit"));
        assert!(parse("").is_err());
    }

    #[test]
    fn formatting_round_trips_through_the_parser() {
        for d in [
            Duration::from_secs(60),
            Duration::from_millis(1500),
            Duration::from_nanos(1_000_001),
            Duration::ZERO,
        ] {
            assert_eq!(parse(&format(d)), Ok(d));
        }
    }
}
