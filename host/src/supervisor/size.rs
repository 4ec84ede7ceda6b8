//! Human-readable byte sizes for `host.toml` (`"512MiB"`, `"2GB"`, `1048576`).
//!
//! A tiny parser instead of another dependency, in the spirit of
//! `duration.rs`. A number followed by an optional unit: `B`; `KB MB GB TB`
//! are decimal (powers of 1000); `KiB MiB GiB TiB` and the bare `K M G T`
//! are binary (powers of 1024), as `ulimit`, Docker and systemd read them.
//! Units ignore case; a fraction such as `"1.5GiB"` is allowed. A bare TOML
//! integer is a count of bytes.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serializer};

const KIB: u64 = 1024;

/// The multiplier of a unit, or `None` if it is not one.
fn unit_bytes(unit: &str) -> Option<u64> {
    let bytes = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000u64.pow(2),
        "gb" => 1000u64.pow(3),
        "tb" => 1000u64.pow(4),
        "k" | "kib" => KIB,
        "m" | "mib" => KIB.pow(2),
        "g" | "gib" => KIB.pow(3),
        "t" | "tib" => KIB.pow(4),
        _ => return None,
    };
    Some(bytes)
}

/// Parses `"512MiB"`-style text into a number of bytes (rounded down).
pub(crate) fn parse(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let hint = "write e.g. \"512MiB\", \"2GB\" or a number of bytes";
    if text.is_empty() {
        return Err(format!("empty size; {hint}"));
    }
    let number_len = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(number_len);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || fraction.contains('.') {
        return Err(format!("`{text}` is not a size: {hint}"));
    }
    let unit = unit.trim();
    let multiplier = unit_bytes(unit).ok_or_else(|| {
        format!("`{text}` has unknown unit `{unit}` (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)")
    })?;
    let too_large = || format!("`{text}` is too large");
    let whole: u64 = whole.parse().map_err(|_| too_large())?;
    let mut bytes = whole.checked_mul(multiplier).ok_or_else(too_large)?;
    if !fraction.is_empty() {
        // Digits beyond 18 cannot change the result by a whole byte here.
        let digits = &fraction[..fraction.len().min(18)];
        let numerator: u128 = digits.parse().map_err(|_| too_large())?;
        let scale = 10u128.pow(digits.len() as u32);
        let part = numerator * u128::from(multiplier) / scale;
        bytes = bytes
            .checked_add(u64::try_from(part).map_err(|_| too_large())?)
            .ok_or_else(too_large)?;
    }
    Ok(bytes)
}

/// Formats a size so that [`parse`] reads it back unchanged: the largest
/// binary unit that divides it exactly, else plain bytes.
pub(crate) fn format(bytes: u64) -> String {
    for (unit, size) in [
        ("TiB", KIB.pow(4)),
        ("GiB", KIB.pow(3)),
        ("MiB", KIB.pow(2)),
        ("KiB", KIB),
    ] {
        if bytes != 0 && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    format!("{bytes}B")
}

struct SizeVisitor;

impl Visitor<'_> for SizeVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a size such as \"512MiB\" or \"2GB\", or a number of bytes")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        parse(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("a size cannot be negative ({v})")))
    }
}

/// `#[serde(deserialize_with = "size::required::deserialize")]` for `u64`
/// byte counts.
pub(crate) mod required {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        d.deserialize_any(SizeVisitor)
    }
}

/// `#[serde(with = "size::optional")]` for `Option<u64>` byte counts.
pub(crate) mod optional {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(size: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match size {
            Some(bytes) => s.serialize_some(&format(*bytes)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        struct Wrapped(u64);
        impl<'de> Deserialize<'de> for Wrapped {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(SizeVisitor).map(Wrapped)
            }
        }
        Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(bytes)| bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_decimal_units_scale_differently() {
        assert_eq!(parse("512MiB"), Ok(512 * 1024 * 1024));
        assert_eq!(parse("2GB"), Ok(2_000_000_000));
        assert_eq!(parse("2G"), Ok(2 * 1024 * 1024 * 1024));
        assert_eq!(parse("10kb"), Ok(10_000));
        assert_eq!(parse("1TiB"), Ok(1 << 40));
    }

    #[test]
    fn bare_numbers_and_fractions_are_bytes_of_the_unit() {
        assert_eq!(parse("4096"), Ok(4096));
        assert_eq!(parse("100 B"), Ok(100));
        assert_eq!(parse("1.5GiB"), Ok(3 * 512 * 1024 * 1024));
        assert_eq!(parse(" 0.5 KiB "), Ok(512));
    }

    #[test]
    fn bad_sizes_are_rejected_with_the_reason() {
        assert!(parse("").unwrap_err().contains("empty"));
        assert!(parse("MiB").unwrap_err().contains("not a size"));
        assert!(parse("1.2.3MB").unwrap_err().contains("not a size"));
        assert!(parse("12 parsecs").unwrap_err().contains("unknown unit"));
        assert!(parse("-5MB").is_err());
        assert!(parse("99999999999TiB").unwrap_err().contains("too large"));
    }

    #[test]
    fn formatting_round_trips_through_the_parser() {
        for bytes in [0, 1, 1000, 1024, 50 << 20, 3 << 30, (1 << 40) + 1] {
            assert_eq!(parse(&format(bytes)), Ok(bytes), "{}", format(bytes));
        }
        assert_eq!(format(50 << 20), "50MiB");
    }

    #[test]
    fn sizes_deserialize_from_integers_or_strings() {
        #[derive(Deserialize)]
        struct T {
            #[serde(default, with = "optional")]
            limit: Option<u64>,
        }
        let t: T = toml::from_str("limit = 2048").unwrap();
        assert_eq!(t.limit, Some(2048));
        let t: T = toml::from_str("limit = \"1MiB\"").unwrap();
        assert_eq!(t.limit, Some(1 << 20));
        let t: T = toml::from_str("").unwrap();
        assert_eq!(t.limit, None);
        let err = toml::from_str::<T>("limit = -1").err().unwrap();
        assert!(err.to_string().contains("negative"), "{err}");
    }
}
