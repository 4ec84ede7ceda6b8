//! The bus room's one error type.
//!
//! Every variant names what was wrong (the field, the pattern, the journal file
//! and what the bus was doing with it) so a message read by a user points at the
//! cause without a backtrace.

use std::path::PathBuf;

/// Everything that can go wrong in the event bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// A published event was rejected before it reached the log.
    #[error("invalid event: `{field}` {reason}")]
    InvalidEvent {
        /// The CloudEvents attribute at fault (`type`, `source`, `subject`, `data`,
        /// `causesequence`, `causedepth`).
        field: &'static str,
        /// Why the value was refused.
        reason: String,
    },

    /// A subject pattern could not be parsed.
    #[error("invalid pattern {pattern:?}: {reason}")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// Why it was refused.
        reason: String,
    },

    /// SQLite refused an operation on the journal.
    #[error("event journal {}: {action} failed: {source}", path.display())]
    Journal {
        /// The journal file (`:memory:` for an in-memory bus).
        path: PathBuf,
        /// What the bus was doing, e.g. "append events".
        action: &'static str,
        /// The underlying SQLite error.
        #[source]
        source: rusqlite::Error,
    },

    /// The directory that should hold the journal could not be created.
    #[error("cannot create state directory {}: {source}", path.display())]
    StateDir {
        /// The directory the bus tried to create.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A row in the journal could not be turned back into an event.
    #[error("event journal {}: event #{sequence} is unreadable: {reason}", path.display())]
    CorruptEvent {
        /// The journal file.
        path: PathBuf,
        /// The sequence of the bad row.
        sequence: u64,
        /// What could not be decoded.
        reason: String,
    },

    /// The journal was written by a newer host with a schema this one does not know.
    #[error(
        "event journal {}: schema version {found} is newer than this host understands ({supported})",
        path.display()
    )]
    UnsupportedSchema {
        /// The journal file.
        path: PathBuf,
        /// The `user_version` found in the file.
        found: i64,
        /// The newest version this build reads.
        supported: i64,
    },

    /// The bus's writer thread could not be started.
    #[error("cannot start the event bus writer thread: {source}")]
    Thread {
        /// The underlying I/O error from the thread spawn.
        #[source]
        source: std::io::Error,
    },

    /// The bus is gone (or its writer stopped); nothing more can be published
    /// or received.
    #[error("the event bus has shut down")]
    Closed,
}

impl BusError {
    /// Builds a [`BusError::Journal`] for `path` while doing `action`.
    pub(crate) fn journal(
        path: &std::path::Path,
        action: &'static str,
    ) -> impl FnOnce(rusqlite::Error) -> BusError {
        let path = path.to_path_buf();
        move |source| BusError::Journal {
            path,
            action,
            source,
        }
    }

    /// A copy of this error, for the writer to hand one failure to every batch
    /// of a failed group commit (the SQLite error itself is not `Clone`).
    pub(crate) fn duplicate(&self) -> BusError {
        match self {
            BusError::InvalidEvent { field, reason } => BusError::InvalidEvent {
                field,
                reason: reason.clone(),
            },
            BusError::InvalidPattern { pattern, reason } => BusError::InvalidPattern {
                pattern: pattern.clone(),
                reason: reason.clone(),
            },
            BusError::Journal {
                path,
                action,
                source,
            } => BusError::Journal {
                path: path.clone(),
                action,
                source: duplicate_sqlite(source),
            },
            BusError::StateDir { path, source } => BusError::StateDir {
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            BusError::CorruptEvent {
                path,
                sequence,
                reason,
            } => BusError::CorruptEvent {
                path: path.clone(),
                sequence: *sequence,
                reason: reason.clone(),
            },
            BusError::UnsupportedSchema {
                path,
                found,
                supported,
            } => BusError::UnsupportedSchema {
                path: path.clone(),
                found: *found,
                supported: *supported,
            },
            BusError::Thread { source } => BusError::Thread {
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            BusError::Closed => BusError::Closed,
        }
    }
}

/// The same SQLite failure (code and message); other rusqlite errors keep their text.
fn duplicate_sqlite(e: &rusqlite::Error) -> rusqlite::Error {
    match e {
        rusqlite::Error::SqliteFailure(code, message) => {
            rusqlite::Error::SqliteFailure(*code, message.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_event_message_names_the_field() {
        let e = BusError::InvalidEvent {
            field: "type",
            reason: "must not be empty".into(),
        };
        assert_eq!(e.to_string(), "invalid event: `type` must not be empty");
    }

    #[test]
    fn journal_error_names_the_file_and_the_action() {
        let e = BusError::journal(
            std::path::Path::new("/state/events.sqlite"),
            "append events",
        )(rusqlite::Error::InvalidQuery);
        let text = e.to_string();
        assert!(text.contains("/state/events.sqlite"), "{text}");
        assert!(text.contains("append events"), "{text}");
    }

    #[test]
    fn a_duplicated_disk_full_error_keeps_its_code_and_text() {
        let full = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            Some("database or disk is full".into()),
        );
        let e = BusError::journal(std::path::Path::new("/j"), "commit an append")(full);
        let copy = e.duplicate();
        assert_eq!(copy.to_string(), e.to_string());
        match copy {
            BusError::Journal {
                source: rusqlite::Error::SqliteFailure(code, _),
                ..
            } => assert_eq!(code.code, rusqlite::ErrorCode::DiskFull),
            other => panic!("unexpected {other:?}"),
        }
    }
}
