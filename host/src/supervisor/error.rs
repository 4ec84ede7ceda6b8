//! The one error type of the supervisor room.
//!
//! Every variant names the process it is about, so an API or CLI caller can
//! show the message as is.

use std::io;
use std::path::PathBuf;

use super::state::ProcessState;

/// What went wrong in a supervisor operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisorError {
    /// No process of that name was added.
    #[error("unknown process `{name}`")]
    UnknownProcess {
        /// The name asked for.
        name: String,
    },
    /// A process of that name already exists.
    #[error("a process named `{name}` already exists")]
    AlreadyExists {
        /// The duplicate name.
        name: String,
    },
    /// The action does not apply to the process's current state.
    #[error("cannot {action} process `{name}` while it is {state}")]
    InvalidState {
        /// The process.
        name: String,
        /// Its state when the action was asked for.
        state: ProcessState,
        /// The action that was refused (`start`, `pause`, ...).
        action: &'static str,
    },
    /// The operating system refused to start the child.
    #[error("could not start process `{name}`: {source}")]
    Spawn {
        /// The process.
        name: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The process's log file could not be opened.
    #[error("could not open log file {} for process `{name}`: {source}", path.display())]
    Log {
        /// The process.
        name: String,
        /// The log file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A field of the process spec is invalid.
    #[error("invalid process `{name}`: `{field}` {reason}")]
    InvalidSpec {
        /// The process (may be empty if the name itself is the problem).
        name: String,
        /// The offending field.
        field: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A status update was rejected.
    #[error("invalid status for process `{name}`: {reason}")]
    InvalidStatus {
        /// The process.
        name: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A signal could not be delivered to the process group.
    #[error("could not send {signal} to process `{name}`: {source}")]
    Signal {
        /// The process.
        name: String,
        /// The signal, e.g. `SIGSTOP`.
        signal: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A start or restart was asked for, but no new run followed.
    #[error("process `{name}` was not (re)started: {reason}; it is {state}")]
    NotRestarted {
        /// The process.
        name: String,
        /// Its state when the runner ended.
        state: ProcessState,
        /// Why: the restart limit, a stop, or shutdown.
        reason: String,
    },
    /// The journal could not be read to recover what the last host left.
    #[error("cannot read the journal to recover the processes of the last host: {source}")]
    Recovery {
        /// The bus's error.
        source: crate::bus::BusError,
    },
    /// The supervisor is shutting down and accepts no new work.
    #[error("the supervisor is shutting down; cannot {action} process `{name}`")]
    ShuttingDown {
        /// The process.
        name: String,
        /// The refused action.
        action: &'static str,
    },
}
