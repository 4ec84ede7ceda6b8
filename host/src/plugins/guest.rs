//! A guest's exports behind one type per kind, whichever `host:plugin`
//! version it was built against.
//!
//! The 0.1 and 0.2 bindings generate distinct Rust types for the same
//! export (their names carry the version), but share every value type
//! (`bindings.rs`). Each wrapper here is an enum of the two; a call is a
//! `match` and the same generated call, so an ordinary call costs what it
//! did. Only `check-batch` exists in 0.2 alone: [`Rule::call_check_batch`]
//! says `None` for a 0.1 rule and the caller falls back to `check`.

use wasmtime::AsContextMut;
use wasmtime::component::InstancePre;

use super::bindings::{
    WitVersion, background_agent, dependency_rule, event_handler, status_mapper, v01, wit,
};
use super::sandbox::StoreState;

/// Declares, for one kind, the indices enum (found once per component)
/// and the loaded-export enum (once per instance).
macro_rules! versioned {
    ($indices:ident, $guest:ident, $v02:ident, $v01:ident) => {
        /// Where this kind's functions sit in a compiled component.
        #[derive(Clone)]
        pub(crate) enum $indices {
            /// A 0.1 guest.
            V01(v01::$v01::GuestIndices),
            /// A 0.2 guest.
            V02($v02::GuestIndices),
        }

        /// This kind's exports of one live instance.
        pub(crate) enum $guest {
            /// A 0.1 guest.
            V01(v01::$v01::Guest),
            /// A 0.2 guest.
            V02($v02::Guest),
        }

        impl $indices {
            /// Finds the exports in `pre`, for a component built against `version`.
            pub(crate) fn new(
                pre: &InstancePre<StoreState>,
                version: WitVersion,
            ) -> wasmtime::Result<Self> {
                Ok(match version {
                    WitVersion::V01 => Self::V01(v01::$v01::GuestIndices::new(pre)?),
                    WitVersion::V02 => Self::V02($v02::GuestIndices::new(pre)?),
                })
            }

            /// The typed exports of `instance`.
            pub(crate) fn load(
                &self,
                store: impl AsContextMut,
                instance: &wasmtime::component::Instance,
            ) -> wasmtime::Result<$guest> {
                Ok(match self {
                    Self::V01(i) => $guest::V01(i.load(store, instance)?),
                    Self::V02(i) => $guest::V02(i.load(store, instance)?),
                })
            }
        }
    };
}

versioned!(HandlerIndices, Handler, event_handler, event_handler);
versioned!(MapperIndices, Mapper, status_mapper, status_mapper);
versioned!(RuleIndices, Rule, dependency_rule, dependency_rule);
versioned!(AgentIndices, Agent, background_agent, background_agent);

impl Handler {
    /// `subscriptions`.
    pub(crate) fn call_subscriptions(&self, s: impl AsContextMut) -> wasmtime::Result<Vec<String>> {
        match self {
            Self::V01(g) => g.call_subscriptions(s),
            Self::V02(g) => g.call_subscriptions(s),
        }
    }

    /// `handle`.
    pub(crate) fn call_handle(
        &self,
        s: impl AsContextMut,
        e: &wit::Event,
    ) -> wasmtime::Result<Result<Vec<wit::Action>, String>> {
        match self {
            Self::V01(g) => g.call_handle(s, e),
            Self::V02(g) => g.call_handle(s, e),
        }
    }
}

impl Mapper {
    /// `kinds`.
    pub(crate) fn call_kinds(&self, s: impl AsContextMut) -> wasmtime::Result<Vec<String>> {
        match self {
            Self::V01(g) => g.call_kinds(s),
            Self::V02(g) => g.call_kinds(s),
        }
    }

    /// `map-status`.
    pub(crate) fn call_map_status(
        &self,
        s: impl AsContextMut,
        p: &wit::ProcessInfo,
        reported: &str,
    ) -> wasmtime::Result<Option<wit::StatusUpdate>> {
        match self {
            Self::V01(g) => g.call_map_status(s, p, reported),
            Self::V02(g) => g.call_map_status(s, p, reported),
        }
    }

    /// `map-output`.
    pub(crate) fn call_map_output(
        &self,
        s: impl AsContextMut,
        p: &wit::ProcessInfo,
        line: &str,
    ) -> wasmtime::Result<Option<wit::StatusUpdate>> {
        match self {
            Self::V01(g) => g.call_map_output(s, p, line),
            Self::V02(g) => g.call_map_output(s, p, line),
        }
    }
}

impl Rule {
    /// `describe`.
    pub(crate) fn call_describe(&self, s: impl AsContextMut) -> wasmtime::Result<wit::RuleInfo> {
        match self {
            Self::V01(g) => g.call_describe(s),
            Self::V02(g) => g.call_describe(s),
        }
    }

    /// `check`.
    pub(crate) fn call_check(
        &self,
        s: impl AsContextMut,
        a: &wit::Task,
        b: &wit::Task,
    ) -> wasmtime::Result<Option<wit::Dependency>> {
        match self {
            Self::V01(g) => g.call_check(s, a, b),
            Self::V02(g) => g.call_check(s, a, b),
        }
    }

    /// `check-batch`; `None` for a 0.1 rule, which has only `check`.
    pub(crate) fn call_check_batch(
        &self,
        s: impl AsContextMut,
        task: &wit::Task,
        candidates: &[wit::Task],
    ) -> Option<wasmtime::Result<Vec<(u32, wit::Dependency)>>> {
        match self {
            Self::V01(_) => None,
            Self::V02(g) => Some(g.call_check_batch(s, task, candidates)),
        }
    }
}

impl Agent {
    /// `describe`.
    pub(crate) fn call_describe(&self, s: impl AsContextMut) -> wasmtime::Result<wit::AgentInfo> {
        match self {
            Self::V01(g) => g.call_describe(s),
            Self::V02(g) => g.call_describe(s),
        }
    }

    /// `tick`.
    pub(crate) fn call_tick(
        &self,
        s: impl AsContextMut,
    ) -> wasmtime::Result<Result<wit::TickOutcome, String>> {
        match self {
            Self::V01(g) => g.call_tick(s),
            Self::V02(g) => g.call_tick(s),
        }
    }
}
