//! Subject patterns: NATS-style wildcards over dot-separated tokens.
//!
//! Event types are dotted names (`process.exited`) and every filter in the bus —
//! consumer subscriptions and queries — is a [`Pattern`] over them. Parsing happens
//! once, up front, so a bad pattern is refused where it is written (a manifest, a
//! query string) instead of silently matching nothing later. The same token rules
//! validate published event types, so every type is something a pattern can name.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::bus::error::BusError;

/// A parsed subject pattern such as `process.*` or `plugin.>`.
///
/// Tokens are separated by `.`. A `*` token matches exactly one token, a `>`
/// token (allowed only last) matches one or more remaining tokens, and any other
/// token matches itself exactly. Serialized as its string form.
///
/// # Examples
///
/// ```
/// # use host::bus::Pattern;
/// let p = Pattern::parse("process.*").unwrap();
/// assert!(p.matches("process.exited"));
/// assert!(!p.matches("process.output.line"));
/// assert!(Pattern::parse("process.>").unwrap().matches("process.output.line"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pattern {
    /// The pattern as written, kept for display and serialization.
    raw: String,
    /// The parsed tokens, matched left to right.
    tokens: Vec<Token>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Token {
    Literal(String),
    /// `*`: exactly one token.
    One,
    /// `>`: one or more tokens, only in last position.
    Rest,
}

impl Pattern {
    /// Parses a pattern.
    ///
    /// # Errors
    ///
    /// [`BusError::InvalidPattern`] if the pattern is empty, has an empty token
    /// (`a..b`, a leading or trailing dot), has `>` anywhere but last, mixes a
    /// wildcard into a literal token (`proc*`), or contains whitespace.
    pub fn parse(s: &str) -> Result<Pattern, BusError> {
        let invalid = |reason: String| BusError::InvalidPattern {
            pattern: s.to_owned(),
            reason,
        };
        if s.is_empty() {
            return Err(invalid("a pattern must not be empty".into()));
        }
        let parts: Vec<&str> = s.split('.').collect();
        let mut tokens = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let token = match *part {
                "*" => Token::One,
                ">" if i + 1 == parts.len() => Token::Rest,
                ">" => return Err(invalid("`>` may only be the last token".into())),
                literal => {
                    check_literal_token(literal, i).map_err(invalid)?;
                    Token::Literal(literal.to_owned())
                }
            };
            tokens.push(token);
        }
        Ok(Pattern {
            raw: s.to_owned(),
            tokens,
        })
    }

    /// Whether `s` (an event type) matches this pattern.
    pub fn matches(&self, s: &str) -> bool {
        let mut parts = s.split('.');
        for token in &self.tokens {
            match token {
                // `>` needs at least one more token; anything after it is accepted.
                Token::Rest => return parts.next().is_some(),
                Token::One => {
                    if parts.next().is_none() {
                        return false;
                    }
                }
                Token::Literal(lit) => {
                    if parts.next() != Some(lit.as_str()) {
                        return false;
                    }
                }
            }
        }
        parts.next().is_none()
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The literal tokens before the first wildcard, and whether the whole
    /// pattern is literal. The journal uses this for a coarse, index-friendly
    /// SQL filter; the exact match is always re-checked with [`Pattern::matches`].
    pub(crate) fn literal_prefix(&self) -> (Vec<&str>, bool) {
        let mut prefix = Vec::new();
        for token in &self.tokens {
            match token {
                Token::Literal(lit) => prefix.push(lit.as_str()),
                Token::One | Token::Rest => return (prefix, false),
            }
        }
        (prefix, true)
    }
}

/// Whether any of `patterns` matches `ty`; an empty list matches everything.
pub(crate) fn matches_any(patterns: &[Pattern], ty: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| p.matches(ty))
}

/// Checks that `s` is a concrete dotted name (no wildcards): the rule for event types.
pub(crate) fn check_subject(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    for (i, part) in s.split('.').enumerate() {
        check_literal_token(part, i)?;
    }
    Ok(())
}

fn check_literal_token(token: &str, index: usize) -> Result<(), String> {
    if token.is_empty() {
        return Err(format!(
            "token {} is empty (no leading, trailing or doubled dots)",
            index + 1
        ));
    }
    if token.chars().any(char::is_whitespace) {
        return Err(format!("token {token:?} contains whitespace"));
    }
    if token.contains(['*', '>']) {
        return Err(format!(
            "token {token:?} mixes a wildcard with text; `*` and `>` must stand alone"
        ));
    }
    Ok(())
}

impl FromStr for Pattern {
    type Err = BusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Pattern::parse(s)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Pattern::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_the_documented_table() {
        let table: &[(&str, &str, bool)] = &[
            ("process.*", "process.exited", true),
            ("process.*", "process", false),
            ("process.*", "process.output.line", false),
            ("process.*", "plugin.exited", false),
            ("process.>", "process.exited", true),
            ("process.>", "process.output.line", true),
            ("process.>", "process", false),
            ("*", "process", true),
            ("*", "process.exited", false),
            (">", "process", true),
            (">", "process.output.line", true),
            ("a.*.c", "a.b.c", true),
            ("a.*.c", "a.x.c", true),
            ("a.*.c", "a.b.d", false),
            ("a.*.c", "a.c", false),
            ("a.*.c", "a.b.c.d", false),
            ("process.exited", "process.exited", true),
            ("process.exited", "process.exited.now", false),
            ("process.exited", "process.exit", false),
            ("process.exited", "process", false),
        ];
        for &(pattern, subject, expected) in table {
            let p = Pattern::parse(pattern).unwrap();
            assert_eq!(p.matches(subject), expected, "{pattern} vs {subject}");
        }
    }

    #[test]
    fn malformed_patterns_are_refused_with_a_reason() {
        for bad in [
            "", ".", "a..b", ".a", "a.", ">.a", "a.>.b", "pro*", "a.b>", "a b",
        ] {
            match Pattern::parse(bad) {
                Err(BusError::InvalidPattern { pattern, reason }) => {
                    assert_eq!(pattern, bad);
                    assert!(!reason.is_empty());
                }
                other => panic!("{bad:?} should be refused, got {other:?}"),
            }
        }
    }

    #[test]
    fn pattern_round_trips_through_its_string_form() {
        let p: Pattern = "process.>".parse().unwrap();
        assert_eq!(p.as_str(), "process.>");
        assert_eq!(p.to_string(), "process.>");
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, "\"process.>\"");
        let back: Pattern = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
        assert!(serde_json::from_str::<Pattern>("\"a..b\"").is_err());
    }

    #[test]
    fn literal_prefix_stops_at_the_first_wildcard() {
        let p = Pattern::parse("a.b.*.d").unwrap();
        assert_eq!(p.literal_prefix(), (vec!["a", "b"], false));
        let p = Pattern::parse("a.b").unwrap();
        assert_eq!(p.literal_prefix(), (vec!["a", "b"], true));
        let p = Pattern::parse(">").unwrap();
        assert_eq!(p.literal_prefix(), (vec![], false));
    }

    #[test]
    fn an_empty_filter_matches_every_type() {
        assert!(matches_any(&[], "anything.at.all"));
        let only = [Pattern::parse("a.*").unwrap()];
        assert!(matches_any(&only, "a.b"));
        assert!(!matches_any(&only, "b.a"));
    }

    #[test]
    fn event_types_must_be_concrete_dotted_names() {
        assert!(check_subject("process.exited").is_ok());
        for bad in ["", "a..b", "a.", "a.*", "a.>", "a b"] {
            assert!(check_subject(bad).is_err(), "{bad:?}");
        }
    }
}
