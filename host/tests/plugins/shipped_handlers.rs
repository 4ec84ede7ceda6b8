//! Tests of the shipped event handlers (failure-alert, completion-metrics, system-warnings) against their compiled components.
