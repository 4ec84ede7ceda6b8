//! `configuration-dependency-rule`: a dependency rule (seed 003's `Configuration_Dependency`). Links tasks that both touch configuration and share a setting, e.g. "Add feature flag for new UI" and "Implement feature flag checks in backend".
//!
//! The decision lives in [`rule`], unit-tested natively; the WIT glue is
//! the one every shipped keyword rule shares
//! ([`rule_text::keyword_rule_plugin`]).

mod rule;
use rule_text as text;

rule_text::keyword_rule_plugin!();
