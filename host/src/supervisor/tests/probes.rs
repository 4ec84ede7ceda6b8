//! Dependencies and probes, as golden state-transition traces.

#[allow(unused_imports)]
use super::*;
