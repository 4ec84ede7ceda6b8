//! `security-compliance-rule`: a dependency rule (seed 003's `Security_Compliance`). Links tasks that both touch security (auth, tokens, permissions, encryption), e.g. "Implement JWT token refresh" and "Update authentication middleware".
//!
//! The decision lives in [`rule`], unit-tested natively; the WIT glue is
//! the one every shipped keyword rule shares
//! ([`rule_text::keyword_rule_plugin`]).

mod rule;
use rule_text as text;

rule_text::keyword_rule_plugin!();
