//! Crash loops under a virtual clock: restart times match the policy.

#[allow(unused_imports)]
use super::*;
