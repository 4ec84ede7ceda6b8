//! Seed 003's dependency rules on the real binary.
