//! Recovery from the journal of a host that was killed: `interrupted`, restored runtime processes.

#[allow(unused_imports)]
use super::*;
