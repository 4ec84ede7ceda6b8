//! `database-schema-rule`: a dependency rule (seed 003's `Database_Schema`). Links tasks that both touch the database and share a subject (a table, a model), e.g. "Add user preferences table" and "Read user preferences from the preferences table".
//!
//! The decision lives in [`rule`], unit-tested natively; the WIT glue is
//! the one every shipped keyword rule shares
//! ([`rule_text::keyword_rule_plugin`]).

mod rule;
use rule_text as text;

rule_text::keyword_rule_plugin!();
