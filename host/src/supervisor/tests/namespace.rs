//! PID namespaces: a tree dies with its init; the fallback without namespaces.

#[allow(unused_imports)]
use super::*;
