//! Errors of the plugin room: loading (manifest, compile, link, validate)
//! and calling (trap, deadline, guest error).

use std::path::PathBuf;

/// Why a plugin could not be loaded, or why a call to it failed.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The wasmtime engine could not be created.
    #[error("could not create the wasm engine: {0}")]
    Engine(String),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A `plugin.toml` is malformed; the message names line and field.
    #[error("{}: {reason}", path.display())]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong, with line and column when known.
        reason: String,
    },
    /// The file is not a valid component for this host.
    #[error("{}: not a loadable component: {reason}", path.display())]
    Compile {
        /// The component file.
        path: PathBuf,
        /// The compiler's message.
        reason: String,
    },
    /// The component imports something the host does not provide.
    #[error("plugin `{plugin}`: cannot link: {reason}")]
    Link {
        /// The plugin's name.
        plugin: String,
        /// What is missing.
        reason: String,
    },
    /// The component exports none of the plugin interfaces.
    #[error(
        "plugin `{plugin}` exports no known plugin kind (expected one of \
         host:plugin/event-handler, status-mapper, dependency-rule or \
         background-agent @0.1.x); it exports: {exports}"
    )]
    NoKnownKind {
        /// The plugin's name.
        plugin: String,
        /// What it does export.
        exports: String,
    },
    /// A grant in the manifest cannot be satisfied (e.g. a missing folder).
    #[error("plugin `{plugin}`: permission `{field}`: {reason}")]
    Permission {
        /// The plugin's name.
        plugin: String,
        /// Which manifest field.
        field: String,
        /// Why it cannot be granted.
        reason: String,
    },
    /// A new version asks for grants the running one does not have, and
    /// nobody approved them: the running version keeps serving.
    #[error(
        "plugin `{plugin}`: the new version asks for more than the running one: {}; \
         approve with `host plugins approve {plugin}`, or set [plugins] accept_new_grants = true",
        grants.join(", ")
    )]
    NewGrants {
        /// The plugin's name.
        plugin: String,
        /// The grants it adds, in words.
        grants: Vec<String>,
    },
    /// `approve` of a plugin with no refused version waiting.
    #[error(
        "plugin `{0}` has no new version awaiting approval \
         (approval is for a reload refused with plugin.reload_refused)"
    )]
    NothingToApprove(String),
    /// A call into the plugin failed.
    #[error("plugin `{plugin}`: {call} failed: {failure}")]
    Call {
        /// The plugin's name.
        plugin: String,
        /// Which export was called, e.g. `handle`.
        call: &'static str,
        /// What went wrong.
        failure: CallFailure,
    },
    /// The manifest's build command failed.
    #[error("plugin `{plugin}`: build command `{command}` failed: {reason}")]
    Build {
        /// The plugin's name.
        plugin: String,
        /// The command.
        command: String,
        /// Exit status and the tail of its output.
        reason: String,
    },
    /// The plugin's actor is gone (the plugin was unloaded or the host is
    /// shutting down).
    #[error("plugin `{0}` is not running")]
    Gone(String),
    /// The plugin is quarantined after repeated failures.
    #[error("plugin `{0}` is quarantined after repeated failures; change its file to retry")]
    Quarantined(String),
    /// No plugin of that name in the plugins folder.
    #[error("no plugin `{name}` in the plugins folder (known: {known})")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The plugins there are, comma-separated.
        known: String,
    },
    /// A limit given to the plugin host is out of bounds.
    #[error("plugin host limits: {0}")]
    Limits(String),
}

/// The trap a host function raises when the call it serves has run into
/// its deadline while waiting in the host (a sleep, a poll, a blocking
/// stream): reported as [`CallFailure::Deadline`], like an epoch interrupt.
#[derive(Debug, thiserror::Error)]
#[error("the call's deadline passed while it waited in the host")]
pub(crate) struct DeadlineExceeded;

/// How a call failed. `Trap`s and deadlines replace the instance; a
/// `GuestError` is the plugin's own answer and changes nothing.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallFailure {
    /// The call ran past its deadline and was interrupted.
    #[error("deadline of {deadline_ms} ms exceeded")]
    Deadline {
        /// The deadline in force.
        deadline_ms: u64,
    },
    /// The guest tried to grow its memory past its cap.
    #[error("memory limit of {limit_mib} MiB exceeded")]
    Memory {
        /// The cap in force.
        limit_mib: u64,
    },
    /// Any other trap (panic, unreachable, out-of-bounds ...).
    #[error("trapped: {0}")]
    Trap(String),
    /// The guest returned a WIT `err`.
    #[error("returned an error: {0}")]
    GuestError(String),
    /// The guest returned something the host rejects (bad JSON ...).
    #[error("returned an invalid value: {0}")]
    Invalid(String),
}

impl CallFailure {
    /// Whether the instance must be replaced (it trapped or was cut off).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Self::Deadline { .. } | Self::Memory { .. } | Self::Trap(_)
        )
    }

    /// A short machine-friendly name, used in event data.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Deadline { .. } => "deadline",
            Self::Memory { .. } => "memory",
            Self::Trap(_) => "trap",
            Self::GuestError(_) => "error",
            Self::Invalid(_) => "invalid",
        }
    }
}
