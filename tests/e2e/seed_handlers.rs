//! Seed 001's handlers and seed 002's agents on the real binary (metrics, warnings, pm, gatherer, security).
