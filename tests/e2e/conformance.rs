//! `host plugin check --conformance`: the kind-level contract check.
