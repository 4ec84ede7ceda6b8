//! How the journal stores values and how an [`EventQuery`] becomes SQL.
//!
//! Kept apart from the journal's connection handling so the translation can be
//! tested without a database, and so the storage formats (sequence as a signed
//! integer, time as fixed-width text) are defined in one place.

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::types::Value as SqlValue;

use crate::bus::pattern::Pattern;
use crate::bus::query::EventQuery;
use crate::bus::scan::ScanPlan;

/// A journal query: SQL for the sequence window and the indexed filters, plus
/// its parameters. Type patterns are only narrowed by literal prefix here; the
/// caller re-checks each row with [`EventQuery::matches`]. Time bounds are not
/// in the SQL: they became the window's sequence bounds (`scan`).
pub(crate) struct SqlQuery {
    pub(crate) sql: String,
    pub(crate) params: Vec<SqlValue>,
}

/// The SQL that reads `plan` (which must not be empty) for `q`, selecting `columns`.
pub(crate) fn to_sql(q: &EventQuery, plan: &ScanPlan, columns: &str) -> SqlQuery {
    let mut params: Vec<SqlValue> = Vec::new();
    let lo = bind(&mut params, SqlValue::Integer(clamp_seq(plan.lo)));
    let hi = bind(&mut params, SqlValue::Integer(clamp_seq(plan.hi)));
    let mut clauses = vec![format!("seq >= {lo} AND seq <= {hi}")];
    if let Some(subject) = &q.subject {
        let p = bind(&mut params, SqlValue::Text(subject.clone()));
        clauses.push(format!("subject = {p}"));
    }
    if let Some(source) = &q.source {
        let p = bind(&mut params, SqlValue::Text(source.clone()));
        clauses.push(format!("source = {p}"));
    }
    if let Some(types) = type_clause(&q.types, &mut params) {
        clauses.push(types);
    }
    let order = if plan.backward { "DESC" } else { "ASC" };
    SqlQuery {
        sql: format!(
            "SELECT {columns} FROM events WHERE {} ORDER BY seq {order}",
            clauses.join(" AND ")
        ),
        params,
    }
}

/// `type = ?` for literal patterns, a range on the literal prefix otherwise, OR-ed;
/// `None` when some pattern starts with a wildcard and so constrains nothing.
fn type_clause(types: &[Pattern], params: &mut Vec<SqlValue>) -> Option<String> {
    let prefixes: Vec<_> = types.iter().map(Pattern::literal_prefix).collect();
    // Decide before binding anything: a stray parameter would fail the statement.
    if prefixes.is_empty() || prefixes.iter().any(|(prefix, _)| prefix.is_empty()) {
        return None;
    }
    let mut alternatives = Vec::with_capacity(prefixes.len());
    for (prefix, literal) in prefixes {
        let joined = prefix.join(".");
        if literal {
            let p = bind(params, SqlValue::Text(joined));
            alternatives.push(format!("type = {p}"));
        } else {
            // Every type under `a.b.` sorts in [`a.b.`, `a.b/`): '/' follows '.'.
            let lo = bind(params, SqlValue::Text(format!("{joined}.")));
            let hi = bind(params, SqlValue::Text(format!("{joined}/")));
            alternatives.push(format!("(type >= {lo} AND type < {hi})"));
        }
    }
    Some(format!("({})", alternatives.join(" OR ")))
}

/// Adds a parameter and returns its placeholder.
fn bind(params: &mut Vec<SqlValue>, value: SqlValue) -> String {
    params.push(value);
    format!("?{}", params.len())
}

/// SQLite integers are signed; sequences beyond `i64::MAX` cannot exist in the journal.
pub(crate) fn clamp_seq(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// The journal's time format: fixed width, so text order is time order.
pub(crate) fn time_to_sql(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

pub(crate) fn time_from_sql(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_narrows_types_by_literal_prefix() {
        let q = EventQuery {
            types: vec![
                Pattern::parse("process.exited").unwrap(),
                Pattern::parse("plugin.*").unwrap(),
            ],
            subject: Some("web".into()),
            after_sequence: Some(3),
            ..Default::default()
        };
        let plan = ScanPlan::new(&q, 4, 10);
        let sql = to_sql(&q, &plan, "seq");
        assert!(sql.sql.contains("seq >= ?1 AND seq <= ?2"), "{}", sql.sql);
        assert!(sql.sql.ends_with("ORDER BY seq ASC"), "{}", sql.sql);
        assert!(sql.sql.contains("subject = ?3"), "{}", sql.sql);
        assert!(sql.sql.contains("type = ?4"), "{}", sql.sql);
        assert!(sql.sql.contains("type >= ?5 AND type < ?6"), "{}", sql.sql);
        assert_eq!(sql.params[4], SqlValue::Text("plugin.".into()));
        assert_eq!(sql.params[5], SqlValue::Text("plugin/".into()));
    }

    #[test]
    fn a_leading_wildcard_drops_the_type_filter_from_sql() {
        let q = EventQuery {
            types: vec![Pattern::parse("a").unwrap(), Pattern::parse("*.b").unwrap()],
            ..Default::default()
        };
        let sql = to_sql(&q, &ScanPlan::new(&q, 1, 9), "seq");
        assert!(sql.sql.ends_with("ORDER BY seq DESC"), "{}", sql.sql);
        assert!(!sql.sql.contains("type"), "{}", sql.sql);
        assert_eq!(sql.params.len(), 2, "only the window is bound");
    }
    #[test]
    fn stored_times_sort_as_text_in_time_order() {
        let a = DateTime::parse_from_rfc3339("2026-01-01T00:00:09.5Z")
            .unwrap()
            .to_utc();
        let b = DateTime::parse_from_rfc3339("2026-01-01T00:00:10Z")
            .unwrap()
            .to_utc();
        assert!(time_to_sql(a) < time_to_sql(b));
        assert_eq!(time_to_sql(b), "2026-01-01T00:00:10.000000000Z");
        assert_eq!(time_from_sql(&time_to_sql(a)).unwrap(), a);
    }
}
