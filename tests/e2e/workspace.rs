//! Workspace events for processes with `watch_workspace = true`, and the aggregator's queries.
